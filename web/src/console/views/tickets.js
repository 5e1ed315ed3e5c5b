// Ticket search and the ticket page (read-only: transcript, context, timeline, attachments).

import { h, fill, icon, ICONS } from "../../shared/dom.js";
import { api, session as signedIn } from "../auth.js";
import * as live from "../live.js";
import { attachments, contextCards, customerCard, pageHistory, timeline, verifiedBadge } from "../details.js";
import { ago, capitalize, clock, customerName, dateTime, shortUrl } from "../format.js";
import { notesCard } from "../composer.js";

const STATUSES = [
  ["", "All"],
  ["queued", "Queued"],
  ["active", "Active"],
  ["closed", "Closed"],
];

const statusPill = (status) => h("span", { class: `pill ${status}` }, capitalize(status));

export function ticketsView(root) {
  const params = new URLSearchParams(location.search);
  let q = params.get("q") || "";
  let status = params.get("status") || "";
  let seq = 0;

  const search = h("input", {
    type: "search",
    class: "search-input",
    placeholder: "Search customers, pages, messages…",
    "aria-label": "Search tickets",
    value: q,
  });
  const filters = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "Status" },
    STATUSES.map(([value, label]) =>
      h(
        "button",
        {
          type: "button",
          class: "seg",
          "aria-pressed": String(value === status),
          dataset: { status: value },
          onClick: () => {
            status = value;
            for (const b of filters.children) b.setAttribute("aria-pressed", String(b.dataset.status === status));
            load();
          },
        },
        label,
      ),
    ),
  );
  const body = h("tbody");
  const info = h("p", { class: "page-sub" }, "Loading…");
  const empty = h("div", { class: "empty", hidden: true }, h("p", { class: "empty-title" }, "No tickets match"), h("p", { class: "muted" }, "Try another search or status."));
  root.append(
    h("header", { class: "page-head" }, h("div", null, h("h1", null, "Tickets"), info)),
    h(
      "div",
      { class: "page-body" },
      h("div", { class: "toolbar" }, h("label", { class: "search" }, icon(ICONS.search, "icon sm"), search), filters),
      h(
        "table",
        { class: "table" },
        h("thead", null, h("tr", null, ["Status", "Customer", "Page", "Messages", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        body,
      ),
      empty,
    ),
  );

  async function load() {
    const mine = ++seq;
    const query = new URLSearchParams();
    if (q) query.set("q", q);
    if (status) query.set("status", status);
    history.replaceState(null, "", `/console/tickets${query.size ? `?${query}` : ""}`);
    let data;
    try {
      data = await api(`/api/tickets?${query}`);
    } catch (err) {
      if (mine === seq) info.textContent = `Couldn't load tickets: ${err.message}`;
      return;
    }
    if (mine !== seq) return;
    info.textContent = `${data.tickets.length} ticket${data.tickets.length === 1 ? "" : "s"}${q ? ` matching “${q}”` : ""}`;
    empty.hidden = data.tickets.length > 0;
    fill(
      body,
      data.tickets.map((t) => {
        const href = `/console/tickets/${encodeURIComponent(t.id)}`;
        return h(
          "tr",
          { dataset: { ticket: t.id } },
          h("td", null, statusPill(t.status)),
          h(
            "td",
            null,
            h("a", { href, "data-link": "", class: "row-link" }, customerName(t.customer)),
            t.customer.verified ? h("span", { class: "tick-verified", title: "Verified" }, icon(ICONS.shield, "icon xs")) : null,
            h("div", { class: "cell-sub mono" }, t.id),
          ),
          h("td", { class: "cell-page" }, h("div", { class: "truncate" }, t.title), h("div", { class: "cell-sub truncate" }, shortUrl(t.url))),
          h("td", { class: "num" }, String(t.messageCount)),
          h("td", { title: dateTime(t.createdAt) }, ago(t.createdAt), h("div", { class: "cell-sub" }, t.site)),
        );
      }),
    );
  }

  let debounce = 0;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      q = search.value.trim();
      load();
    }, 250);
  });
  load();
  search.focus();
  return () => clearTimeout(debounce);
}

async function joinSession(button, ticketId, navigate, toast) {
  button.disabled = true;
  const ack = await live.join(ticketId);
  if (ack.ok) return navigate(`/console/sessions/${encodeURIComponent(ticketId)}`);
  button.disabled = false;
  toast(`Couldn't join: ${ack.error.message}`, "error");
}

export function ticketView(root, ticketId, { navigate, toast } = {}) {
  const blobs = new Map();
  let gone = false;
  root.append(h("div", { class: "page-body" }, h("p", { class: "muted" }, "Loading ticket…")));

  api(`/api/tickets/${encodeURIComponent(ticketId)}`).then(
    (t) => {
      if (gone) return;
      const isMine = live.store.sessions.has(t.id) && t.status !== "closed";
      const transcript = t.transcript.length
        ? h(
            "ol",
            { class: "transcript static" },
            t.transcript.map((m) =>
              m.from === "system"
                ? h("li", { class: "line system" }, m.text)
                : h(
                    "li",
                    { class: `line ${m.from}` },
                    h("div", { class: "line-head" }, h("span", { class: "author" }, m.author), h("span", { class: "when", title: dateTime(m.at) }, clock(m.at))),
                    h("div", { class: "line-text" }, m.text),
                  ),
            ),
          )
        : h("p", { class: "muted pad" }, "No messages were exchanged.");
      fill(
        root,
        h(
          "header",
          { class: "page-head" },
          h(
            "div",
            { class: "head-text" },
            h("a", { href: "/console/tickets", "data-link": "", class: "back" }, icon(ICONS.arrowLeft, "icon xs"), "Tickets"),
            h("h1", { class: "session-title" }, customerName(t.customer), " ", verifiedBadge(t.customer), " ", statusPill(t.status)),
            h(
              "p",
              { class: "page-sub" },
              [t.id, t.site, `opened ${dateTime(t.createdAt)}`, t.closedAt ? `closed ${dateTime(t.closedAt)}` : "", t.agents.map((a) => a.name).join(", ")]
                .filter(Boolean)
                .join(" · "),
            ),
          ),
          h(
            "div",
            { class: "actions" },
            t.previousTicketId
              ? h("a", { class: "btn ghost", href: `/console/tickets/${encodeURIComponent(t.previousTicketId)}`, "data-link": "" }, "Previous ticket")
              : null,
            isMine ? h("a", { class: "btn primary", href: `/console/sessions/${encodeURIComponent(t.id)}`, "data-link": "" }, "Open session") : null,
            // Supervisors and admins may join an active session (and watch its co-browse).
            !isMine && t.status === "active" && ["supervisor", "admin"].includes(signedIn().agent.role)
              ? h("button", { type: "button", class: "btn primary", onClick: (e) => joinSession(e.currentTarget, t.id, navigate, toast) }, "Join session")
              : null,
          ),
        ),
        h(
          "div",
          { class: "ticket" },
          h(
            "section",
            { class: "ticket-main" },
            h("div", { class: "card" }, h("h3", { class: "card-title" }, `Transcript · ${t.transcript.length} message${t.transcript.length === 1 ? "" : "s"}`), transcript),
            notesCard(t, { toast }),
          ),
          h(
            "aside",
            { class: "details static", "aria-label": "Context" },
            customerCard(t.customer),
            pageHistory(t.pages || []),
            contextCards(t.context),
            attachments(t.attachments, blobs),
            timeline(t.timeline, t.agents),
          ),
        ),
      );
    },
    (err) => {
      if (gone) return;
      fill(root, h("div", { class: "page-body" }, h("div", { class: "empty" }, h("p", { class: "empty-title" }, err.status === 404 ? "No such ticket" : "Couldn't load the ticket"), h("p", { class: "muted" }, err.message))));
    },
  );
  return () => {
    gone = true;
    for (const p of blobs.values()) p.then((url) => URL.revokeObjectURL(url), () => {});
  };
}
