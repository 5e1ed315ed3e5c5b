// The demo shop (a stand-in for a customer's website). It embeds Tandem like any site would and
// tells it what the shopper is looking at with Tandem.setContext().

import { PRODUCTS, byId, money, artSvg, CURRENCY } from "./products.js";

// The Tandem stub: calls made before /tandem.js has loaded are queued and replayed by it.
window.Tandem =
  window.Tandem ||
  function () {
    (window.Tandem.q = window.Tandem.q || []).push(arguments);
  };
const Tandem = (...args) => window.Tandem(...args);

const CART_KEY = "fernhill.cart";
const USER_KEY = "fernhill.user";
const DEMO_USER = { id: "cust_1042", name: "Jamie Rivera", email: "jamie.rivera@example.com" };

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.flat().filter((c) => c != null && c !== false));
  return node;
};
const withArt = (node, product, hex) => {
  node.innerHTML = artSvg(product); // constant markup from products.js
  node.style.setProperty("--c", hex);
  return node;
};

// ------------------------------------------------------------------ cart

function cart() {
  try {
    return JSON.parse(localStorage.getItem(CART_KEY) || "[]");
  } catch {
    return [];
  }
}

function saveCart(lines) {
  localStorage.setItem(CART_KEY, JSON.stringify(lines));
  drawCartCount();
}

function cartSummary() {
  const lines = cart();
  const items = lines.map((l) => {
    const p = byId(l.id);
    return { id: l.id, name: p ? p.name : l.id, colour: l.colour, size: l.size, qty: l.qty };
  });
  return {
    count: lines.reduce((n, l) => n + l.qty, 0),
    total: lines.reduce((sum, l) => sum + (byId(l.id) ? byId(l.id).price * l.qty : 0), 0),
    currency: CURRENCY,
    items,
  };
}

function drawCartCount() {
  const badge = $("#cart-count");
  if (!badge) return;
  const n = cartSummary().count;
  badge.textContent = String(n);
  badge.hidden = n === 0;
}

// ------------------------------------------------------------------ demo account

function user() {
  try {
    return JSON.parse(localStorage.getItem(USER_KEY) || "null");
  } catch {
    return null;
  }
}

function drawAccount() {
  const slot = $("#account");
  if (!slot) return;
  const who = user();
  const button = el(
    "button",
    { type: "button", className: "account-btn" },
    who ? `Signed in as ${who.name.split(" ")[0]} · Sign out` : "Sign in (demo)",
  );
  button.addEventListener("click", () => {
    if (who) localStorage.removeItem(USER_KEY);
    else localStorage.setItem(USER_KEY, JSON.stringify(DEMO_USER));
    location.reload();
  });
  slot.replaceChildren(button);
  // Unsigned: the console shows the name with an "Unverified" badge. A real site computes
  // `signature` (HMAC of the id with the site secret) on its backend.
  if (who) Tandem("identify", who);
}

// ------------------------------------------------------------------ pages

function catalogue() {
  const grid = $("#grid");
  for (const p of PRODUCTS) {
    const colour = p.colours[0];
    const inStock = p.colours.some((c) => c.stock > 0);
    grid.append(
      el(
        "li",
        { className: "tile" },
        el(
          "a",
          { href: `product.html?id=${p.id}`, className: "tile-link" },
          withArt(el("div", { className: "tile-art" }), p, colour.hex),
          el("span", { className: "tile-cat" }, p.category),
          el("span", { className: "tile-name" }, p.name),
          el(
            "span",
            { className: "tile-foot" },
            el("span", { className: "tile-price" }, money(p.price)),
            el(
              "span",
              { className: "swatches-mini", ariaLabel: `${p.colours.length} colours` },
              p.colours.map((c) => {
                const dot = el("i", { title: c.name });
                dot.style.setProperty("--c", c.hex);
                return dot;
              }),
            ),
          ),
          inStock ? null : el("span", { className: "tile-flag" }, "Sold out"),
        ),
      ),
    );
  }
  Tandem("setContext", { product: null, page: "catalogue", cart: cartSummary() });
}

function product() {
  const params = new URLSearchParams(location.search);
  const p = byId(params.get("id")) || PRODUCTS[0];
  let colour = p.colours.find((c) => c.name === params.get("colour")) || p.colours[0];
  document.title = `${p.name} · Fernhill Outdoor`;

  const art = withArt($("#product-art"), p, colour.hex);
  $("#crumb").textContent = p.name;
  $("#category").textContent = p.category;
  $("#name").textContent = p.name;
  $("#price").textContent = money(p.price);
  $("#blurb").textContent = p.blurb;
  const colourName = $("#colour-name");
  const stock = $("#stock");
  const add = $("#add");
  const size = $("#size");
  for (const s of p.sizes) size.append(el("option", { value: s }, s));
  if (p.sizes.length === 1) size.closest(".field").hidden = true;

  const swatches = $("#swatches");
  for (const c of p.colours) {
    const input = el("input", { type: "radio", name: "colour", value: c.name, checked: c === colour, className: "sr-only", id: `c-${c.name}` });
    const label = el("label", { htmlFor: `c-${c.name}`, className: "swatch", title: c.name }, el("span", { className: "sr-only" }, c.name));
    label.style.setProperty("--c", c.hex);
    input.addEventListener("change", () => {
      colour = c;
      draw();
    });
    swatches.append(input, label);
  }

  function draw() {
    art.style.setProperty("--c", colour.hex);
    colourName.textContent = colour.name;
    stock.className = `stock ${colour.stock === 0 ? "out" : colour.stock <= 3 ? "low" : "ok"}`;
    stock.textContent =
      colour.stock === 0 ? "Out of stock" : colour.stock <= 3 ? `Only ${colour.stock} left` : "In stock, ships in 1–2 days";
    add.disabled = colour.stock === 0;
    add.textContent = colour.stock === 0 ? "Sold out" : "Add to cart";
    const url = new URL(location.href);
    url.searchParams.set("colour", colour.name);
    history.replaceState(null, "", url);
    tell();
  }

  function tell() {
    Tandem("setContext", {
      page: "product",
      product: {
        id: p.id,
        name: p.name,
        colour: colour.name,
        size: p.sizes.length > 1 ? size.value : undefined,
        price: p.price,
        currency: CURRENCY,
        stock: colour.stock,
      },
      cart: cartSummary(),
    });
  }

  size.addEventListener("change", tell);
  $("#buy").addEventListener("submit", (event) => {
    event.preventDefault();
    const lines = cart();
    const same = lines.find((l) => l.id === p.id && l.colour === colour.name && l.size === size.value);
    if (same) same.qty += 1;
    else lines.push({ id: p.id, colour: colour.name, size: size.value, qty: 1 });
    saveCart(lines);
    const note = $("#added");
    note.hidden = false;
    note.textContent = `Added ${p.name} (${colour.name}${p.sizes.length > 1 ? `, ${size.value}` : ""}) to your cart.`;
    tell();
  });
  draw();
}

function cartPage() {
  const list = $("#lines");
  const draw = () => {
    const lines = cart();
    list.replaceChildren();
    $("#empty").hidden = lines.length > 0;
    $("#summary").hidden = lines.length === 0;
    lines.forEach((line, i) => {
      const p = byId(line.id);
      if (!p) return;
      const hex = (p.colours.find((c) => c.name === line.colour) || p.colours[0]).hex;
      const remove = el("button", { type: "button", className: "link" }, "Remove");
      remove.addEventListener("click", () => {
        const next = cart();
        next.splice(i, 1);
        saveCart(next);
        draw();
      });
      list.append(
        el(
          "li",
          { className: "line" },
          withArt(el("div", { className: "line-art" }), p, hex),
          el(
            "div",
            { className: "line-text" },
            el("a", { href: `product.html?id=${p.id}&colour=${encodeURIComponent(line.colour)}`, className: "line-name" }, p.name),
            el("span", { className: "muted" }, [line.colour, p.sizes.length > 1 ? line.size : null].filter(Boolean).join(" · ")),
            remove,
          ),
          el("span", { className: "line-qty" }, `× ${line.qty}`),
          el("span", { className: "line-price" }, money(p.price * line.qty)),
        ),
      );
    });
    const s = cartSummary();
    $("#subtotal").textContent = money(s.total);
    $("#total").textContent = money(s.total);
    Tandem("setContext", { product: null, page: "cart", cart: s });
  };
  draw();
}

function checkout() {
  const s = cartSummary();
  $("#co-count").textContent = `${s.count} item${s.count === 1 ? "" : "s"}`;
  $("#co-total").textContent = money(s.total);
  const list = $("#co-lines");
  for (const item of s.items) {
    list.append(el("li", null, el("span", null, `${item.name} · ${item.colour}`), el("span", null, `× ${item.qty}`)));
  }
  const form = $("#checkout");
  const who = user();
  if (who) {
    form.elements.name.value = who.name;
    form.elements.email.value = who.email;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    saveCart([]);
    form.hidden = true;
    $("#done").hidden = false;
    Tandem("setContext", { page: "order-placed", cart: cartSummary() });
  });
  Tandem("setContext", { product: null, page: "checkout", cart: s });
}

function info() {
  Tandem("setContext", { product: null, page: document.body.dataset.page, cart: cartSummary() });
}

const pages = { catalogue, product, cart: cartPage, checkout, guide: info };
drawCartCount();
drawAccount();
(pages[document.body.dataset.page] || info)();
