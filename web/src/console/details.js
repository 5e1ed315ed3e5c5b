// The right-hand details: the context packet, the ticket timeline and attachments.

import { h, icon, ICONS } from "../shared/dom.js";
import { blobUrl } from "./auth.js";
import { videoAttachment } from "./call/details.js";
import { describeEntry, namesFrom } from "./timeline.js";
import { firstPart } from "./cobrowse/parts.js";
import {
  appSummary,
  bytes,
  capitalize,
  clock,
  customerName,
  dateTime,
  flatten,
  localTime,
  money,
  shortUrl,
} from "./format.js";

const row = (label, value, cls) =>
  value || value === 0
    ? h("div", { class: "kv" }, h("dt", null, label), h("dd", { class: cls }, value))
    : null;

export function section(title, ...body) {
  return h("section", { class: "card" }, h("h3", { class: "card-title" }, title), ...body);
}

export function verifiedBadge(customer) {
  return customer.verified
    ? h(
        "span",
        { class: "badge verified", title: "Identity signed by the site's backend" },
        icon(ICONS.shield, "icon xs"),
        "Verified",
      )
    : h("span", { class: "badge", title: "Not verified by the site" }, "Unverified");
}

export function link(url, text) {
  let safe = "";
  try {
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") safe = u.href;
  } catch {
    // not a URL: shown as text
  }
  return safe
    ? h("a", { href: safe, target: "_blank", rel: "noopener noreferrer", class: "ext" }, text || shortUrl(url))
    : h("span", null, text || url);
}

export function customerCard(customer) {
  return section(
    "Customer",
    h("dl", null,
      row("Name", h("span", { class: "inline" }, customerName(customer), " ", verifiedBadge(customer))),
      row("Email", customer.email),
      row("ID", customer.id, "mono"),
    ),
  );
}

export function contextCards(ctx) {
  const cards = [];
  // The host app's fields: each object (product, cart, order) gets a card; loose values share one.
  const loose = [];
  for (const [key, value] of Object.entries(ctx.app || {})) {
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      loose.push(...flatten({ [key]: value }));
      continue;
    }
    const currency = typeof value.currency === "string" ? value.currency : undefined;
    const rows = flatten(value).filter(([label]) => label !== "currency");
    cards.push(
      section(
        capitalize(key),
        h("dl", { class: "app-fields" },
          rows.map(([label, text]) =>
            row(label, /price|total|amount/i.test(label) && text !== "" && !isNaN(Number(text)) ? money(Number(text), currency) : text),
          ),
        ),
      ),
    );
  }
  cards.push(
    section(
      "Page",
      h("dl", null,
        row("Title", ctx.title),
        row("URL", link(ctx.url)),
        row("Referrer", ctx.referrer ? link(ctx.referrer) : ""),
      ),
    ),
  );
  if (loose.length) {
    cards.push(section("App fields", h("dl", { class: "app-fields" }, loose.map(([label, text]) => row(label, text)))));
  }
  const d = ctx.device || {};
  const size = (s) => (s ? `${s.width} × ${s.height}` : "");
  cards.push(
    section(
      "Device",
      h("dl", null,
        row("Browser", [d.browser, d.browserVersion].filter(Boolean).join(" ")),
        row("OS", [d.os, d.osVersion].filter(Boolean).join(" ")),
        row("Type", d.type ? capitalize(d.type) : ""),
        row("Screen", size(ctx.screen)),
        row("Viewport", size(ctx.viewport)),
        row("Language", ctx.language),
        row("Time zone", ctx.timeZone ? `${ctx.timeZone} (${localTime(ctx.timeZone)} now)` : ""),
        row(
          "Location",
          ctx.geo
            ? link(
                `https://www.openstreetmap.org/?mlat=${ctx.geo.latitude}&mlon=${ctx.geo.longitude}#map=14/${ctx.geo.latitude}/${ctx.geo.longitude}`,
                `${ctx.geo.latitude.toFixed(4)}, ${ctx.geo.longitude.toFixed(4)}` +
                  (ctx.geo.accuracy ? ` ±${Math.round(ctx.geo.accuracy)} m` : ""),
              )
            : "",
        ),
      ),
    ),
  );
  return cards;
}

/** The ticket's timeline, each entry in words (`timeline.js`); `agents`: the session's agents. */
export function timeline(entries, agents = []) {
  const sorted = [...entries].sort((a, b) => a.id - b.id);
  const names = namesFrom(sorted, agents);
  return section(
    "Timeline",
    sorted.length
      ? h(
          "ol",
          { class: "timeline" },
          sorted.map((e) =>
            h(
              "li",
              { class: `tl tl-${e.type.replace(/\W/g, "-")}`, title: dateTime(e.at) },
              h("span", { class: "tl-dot", "aria-hidden": "true" }),
              h("span", { class: "tl-text" }, describeEntry(e, names)),
              h("time", { datetime: e.at }, clock(e.at)),
            ),
          ),
        )
      : h("p", { class: "empty-small" }, "Nothing yet."),
  );
}

/** Pages a ticket keeps (signaling.store.base.MAX_PAGES). */
const MAX_PAGES = 50;

/** What the customer had on screen on a page: the app's item (product), else their cart. */
function pageItem(app) {
  const item = appSummary(app || {});
  if (item) return item;
  const cart = app && app.cart;
  if (cart && typeof cart === "object") {
    const count = cart.count != null ? cart.count : Array.isArray(cart.items) ? cart.items.length : cart.items;
    if (count) return `Cart: ${count} item${count === 1 ? "" : "s"}`;
  }
  return "";
}

/** Every page the customer visited in this session: the page they asked from first (marked),
 * then the others in the order visited. */
export function pageHistory(pages) {
  const inOrder = [...pages].sort((a, b) => a.id - b.id);
  const requested = inOrder.filter((p) => p.request);
  // As the server keeps them: the request's page and the latest others, 50 in all.
  const later = inOrder.filter((p) => !p.request).slice(-Math.max(0, MAX_PAGES - requested.length));
  const ordered = [...requested, ...later];
  return section(
    `Pages visited${ordered.length ? ` · ${ordered.length}` : ""}`,
    ordered.length
      ? h(
          "ol",
          { class: "pages", "aria-label": "Pages visited, the page of the request first" },
          ordered.map((p) => {
            const item = pageItem(p.app);
            return h(
              "li",
              { class: `page-visit${p.request ? " request" : ""}`, dataset: { page: String(p.id) } },
              h(
                "div",
                { class: "pv-line1" },
                h("time", { datetime: p.at, title: dateTime(p.at) }, clock(p.at)),
                p.request ? h("span", { class: "badge accent" }, "Asked for help here") : null,
              ),
              h("div", { class: "pv-title" }, link(p.url, p.title || shortUrl(p.url))),
              item ? h("div", { class: "pv-item" }, h("span", { class: "chip" }, item)) : null,
            );
          }),
        )
      : h("p", { class: "empty-small" }, "No pages yet."),
  );
}

/** Image attachments are fetched with the bearer token and shown through blob: URLs. */
export function attachments(list, blobs) {
  // Thumbnails are shown as their clip's or video's poster, not on their own.
  const items = [...list].filter((a) => a.kind !== "thumbnail").sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return section(
    `Attachments${items.length ? ` · ${items.length}` : ""}`,
    items.length
      ? h("ul", { class: "attachments" }, items.map((a) => attachment(a, blobs, list)))
      : h("p", { class: "empty-small" }, "No files yet."),
  );
}

function attachment(a, blobs, all) {
  if (a.contentType.startsWith("video/")) return videoAttachment(a, blobs, all);
  const label = `${capitalize(a.kind)} · ${bytes(a.size)}`;
  if (a.contentType.startsWith("image/")) {
    const img = h("img", { alt: `${capitalize(a.kind)} from ${dateTime(a.createdAt)}`, class: "thumb", loading: "lazy" });
    const known = blobs.get(a.id);
    const ready = known || blobUrl(a.url);
    blobs.set(a.id, ready);
    ready.then((src) => {
      img.src = src;
      open.href = src;
    }, () => img.replaceWith(h("span", { class: "thumb missing" }, "Could not load")));
    const open = h("a", { class: "thumb-link", target: "_blank", rel: "noopener", "data-attachment": a.id }, img);
    return h("li", { class: "attachment image" }, open, h("span", { class: "att-meta" }, label, " · ", clock(a.createdAt)));
  }
  const download = h(
    "button",
    {
      type: "button",
      class: "btn small",
      onClick: async () => {
        const src = await blobUrl(a.url);
        const tmp = h("a", { href: src, download: `${a.kind}-${a.id}` });
        tmp.click();
        setTimeout(() => URL.revokeObjectURL(src), 10_000);
      },
    },
    "Download",
  );
  // A co-browse recording plays in the sandboxed replay page (loaded only when asked for); a
  // co-browse recorded in several parts has one button, on its first part, playing them all.
  const replay =
    a.kind === "recording" && firstPart(all, a)
      ? h(
          "button",
          {
            type: "button",
            class: "btn small primary",
            onClick: () => import("./cobrowse/player.js").then((m) => m.openRecording(a, all)),
          },
          "Replay",
        )
      : null;
  return h("li", { class: "attachment file" }, icon(ICONS.paperclip, "icon sm"), h("span", { class: "att-meta" }, label, " · ", a.contentType), replay, download);
}
