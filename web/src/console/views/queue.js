// The live queue: who is waiting, for how long, and what they are looking at.

import { h, fill, icon, ICONS } from "../../shared/dom.js";
import * as live from "../live.js";
import { appSummary, customerName, deviceLine, initials, shortUrl, waited } from "../format.js";
import { verifiedBadge } from "../details.js";

export function queueView(root, _param, { navigate, toast }) {
  const subtitle = h("p", { class: "page-sub" });
  const list = h("ul", { class: "queue", "aria-label": "Waiting customers" });
  const empty = h(
    "div",
    { class: "empty" },
    h("div", { class: "empty-icon" }, icon(ICONS.inbox)),
    h("p", { class: "empty-title" }, "No one is waiting"),
    h("p", { class: "muted" }, "New requests appear here the moment a customer asks for help."),
  );
  root.append(
    h("header", { class: "page-head" }, h("div", null, h("h1", null, "Queue"), subtitle)),
    h("div", { class: "page-body" }, list, empty),
  );

  const accept = async (entry, button) => {
    button.disabled = true;
    button.textContent = "Accepting…";
    const ack = await live.accept(entry.ticketId);
    if (ack.ok) return navigate(`/console/sessions/${encodeURIComponent(entry.ticketId)}`);
    button.disabled = false;
    button.textContent = "Accept";
    if (ack.error.code === "already_taken") {
      toast(`${customerName(entry.customer)} was picked up by a colleague.`);
    } else if (ack.error.code === "invalid_state") {
      toast(`${customerName(entry.customer)} left before anyone answered.`);
    } else {
      toast(`Couldn't accept: ${ack.error.message}`, "error");
    }
  };

  const draw = () => {
    const entries = [...live.store.queue.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    empty.hidden = entries.length > 0;
    const waiting = Math.max(live.store.waiting, entries.length);
    subtitle.textContent = entries.length
      ? `${waiting} waiting · oldest first${waiting > entries.length ? ` · ${entries.length} shown` : ""}`
      : live.store.connected
        ? "All caught up"
        : "Connecting…";
    fill(
      list,
      entries.map((entry, i) => {
        const ctx = entry.context;
        const button = h("button", { type: "button", class: "btn primary" }, "Accept");
        button.addEventListener("click", () => accept(entry, button));
        const summary = appSummary(ctx.app);
        return h(
          "li",
          { class: "q-item", dataset: { ticket: entry.ticketId } },
          h("span", { class: "q-rank", "aria-label": `Position ${i + 1}` }, String(i + 1)),
          h("span", { class: "avatar" }, initials(customerName(entry.customer))),
          h(
            "div",
            { class: "q-main" },
            h(
              "div",
              { class: "q-line1" },
              h("span", { class: "q-name" }, customerName(entry.customer)),
              verifiedBadge(entry.customer),
              entry.previousTicketId ? h("span", { class: "badge" }, "Returning") : null,
              entry.queue && entry.queue !== "default"
                ? h("span", { class: "badge q-queue", title: "Queue" }, entry.queue)
                : null,
            ),
            h(
              "div",
              { class: "q-line2" },
              h("span", { class: "q-title" }, ctx.title || shortUrl(ctx.url)),
              h("span", { class: "q-url" }, shortUrl(ctx.url)),
            ),
            summary ? h("div", { class: "q-app" }, h("span", { class: "chip accent" }, summary), cartChip(ctx.app)) : null,
            entry.firstMessage
              ? h("div", { class: "q-first", title: "The customer's first message" }, `“${entry.firstMessage}”`)
              : null,
            h("div", { class: "q-device" }, [deviceLine(ctx.device), ctx.language, ctx.timeZone].filter(Boolean).join(" · ")),
          ),
          h(
            "div",
            { class: "q-side" },
            h("span", { class: "q-wait", dataset: { since: entry.createdAt }, title: "Waiting" }, icon(ICONS.clock, "icon xs"), h("span", null, waited(entry.createdAt))),
            button,
          ),
        );
      }),
    );
  };
  const tick = () => {
    for (const el of list.querySelectorAll("[data-since]")) {
      const text = waited(el.dataset.since);
      el.lastChild.textContent = text;
      el.classList.toggle("long", Date.now() - Date.parse(el.dataset.since) > 120_000);
    }
  };
  draw();
  tick();
  const timer = setInterval(tick, 1000);
  const off = [live.on("queue", draw), live.on("status", draw)];
  return () => {
    clearInterval(timer);
    off.forEach((fn) => fn());
  };
}

function cartChip(app) {
  const cart = app && app.cart;
  if (!cart || typeof cart !== "object") return null;
  const count = cart.count != null ? cart.count : Array.isArray(cart.items) ? cart.items.length : null;
  if (!count) return null;
  return h("span", { class: "chip" }, `Cart: ${count} item${count === 1 ? "" : "s"}`);
}
