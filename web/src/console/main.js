// The agent console: login, then a shell (sidebar + view) with history-API routing under
// /console/ (the server answers every /console/* path with index.html).

import { h, fill, icon, ICONS } from "../shared/dom.js";
import * as auth from "./auth.js";
import * as live from "./live.js";
import { appSummary, customerName, initials } from "./format.js";
import { queueView } from "./views/queue.js";
import { sessionView } from "./views/session.js";
import { ticketsView, ticketView } from "./views/tickets.js";
import { loginView } from "./views/login.js";
import { offersPanel } from "./offers.js";

const app = document.getElementById("app");

const routes = [
  [/^\/console\/?$/, queueView, "queue"],
  [/^\/console\/tickets\/?$/, ticketsView, "tickets"],
  [/^\/console\/tickets\/([^/]+)\/?$/, ticketView, "tickets"],
  [/^\/console\/sessions\/([^/]+)\/?$/, sessionView, "session"],
];

let cleanup = null;
let shell = null;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else if (path !== location.pathname + location.search) history.pushState(null, "", path);
  render();
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  live.store.viewing = null;
  if (!auth.session()) {
    live.disconnect();
    if (shell) shell.destroy();
    shell = null;
    document.title = "Sign in · Tandem";
    cleanup = loginView(app, () => render());
    return;
  }
  if (!shell) shell = buildShell();
  live.connect();
  const path = location.pathname;
  const match = routes.map(([re, view, nav]) => [re.exec(path), view, nav]).find(([m]) => m);
  if (!match) return navigate("/console/", { replace: true });
  const [m, view, nav] = match;
  shell.setActive(nav, m[1]);
  shell.main.replaceChildren();
  shell.main.scrollTop = 0;
  cleanup = view(shell.main, decodeURIComponent(m[1] || ""), { navigate, toast: shell.toast });
}

function buildShell() {
  const me = auth.session().agent;
  const queueCount = h("span", { class: "count", hidden: true });
  const navQueue = h(
    "a",
    { href: "/console/", class: "nav-item", "data-link": "", "data-nav": "queue" },
    icon(ICONS.inbox, "icon sm"),
    h("span", null, "Queue"),
    queueCount,
  );
  const navTickets = h(
    "a",
    { href: "/console/tickets", class: "nav-item", "data-link": "", "data-nav": "tickets" },
    icon(ICONS.list, "icon sm"),
    h("span", null, "Tickets"),
  );
  const sessionList = h("ul", { class: "session-list", "aria-label": "Your sessions" });
  const sessionsEmpty = h("p", { class: "side-empty" }, "Accepted chats appear here.");
  const status = h("span", { class: "conn", role: "status" });
  const toastBox = h("div", { class: "toasts", "aria-live": "polite" });
  const main = h("main", { class: "main", id: "main", tabindex: "-1" });
  const toastLater = (text, kind) => shellApi.toast(text, kind);
  const routing = offersPanel({
    meId: me.id,
    onAccepted: (ticketId) => navigate(`/console/sessions/${encodeURIComponent(ticketId)}`),
    toast: toastLater,
  });
  const sidebar = h(
    "aside",
    { class: "sidebar" },
    h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "Tandem"),
    h("nav", { class: "nav", "aria-label": "Console" }, navQueue, navTickets),
    h("div", { class: "side-title" }, "Sessions"),
    sessionList,
    sessionsEmpty,
    routing.panel,
    h(
      "div",
      { class: "me" },
      h("span", { class: "avatar sm" }, initials(me.name)),
      h("div", { class: "me-text" }, h("div", { class: "me-name" }, me.name), status),
      h(
        "button",
        {
          type: "button",
          class: "icon-btn",
          "aria-label": "Sign out",
          title: "Sign out",
          onClick: () => auth.signOut(),
        },
        icon(ICONS.logout, "icon sm"),
      ),
    ),
  );
  fill(app, h("div", { class: "shell" }, sidebar, main), toastBox);

  let active = { nav: "", id: "" };
  const drawSessions = () => {
    const items = [...live.store.sessions.values()];
    sessionsEmpty.hidden = items.length > 0;
    fill(
      sessionList,
      items.map((s) => {
        const current = active.nav === "session" && active.id === s.id;
        return h(
          "li",
          null,
          h(
            "a",
            {
              href: `/console/sessions/${encodeURIComponent(s.id)}`,
              class: `session-item${current ? " active" : ""}${s.ended || s.handedOver ? " ended" : ""}`,
              "data-link": "",
              "aria-current": current ? "page" : null,
            },
            h("span", { class: "avatar xs" }, initials(customerName(s.ticket.customer))),
            h(
              "span",
              { class: "session-text" },
              h("span", { class: "session-name" }, customerName(s.ticket.customer)),
              h(
                "span",
                { class: "session-sub" },
                s.ended ? "Ended" : s.handedOver ? "Transferred" : appSummary(s.ticket.context.app) || s.ticket.context.title,
              ),
            ),
            s.unread ? h("span", { class: "unread", "aria-label": `${s.unread} unread` }, String(s.unread)) : null,
          ),
        );
      }),
    );
  };
  const drawQueue = () => {
    const n = Math.max(live.store.waiting, live.store.queue.size);
    queueCount.hidden = !n;
    queueCount.textContent = String(n);
    document.title = n ? `(${n}) Tandem console` : "Tandem console";
  };
  const drawStatus = () => {
    status.textContent = live.store.connected ? "Online" : "Connecting…";
    status.classList.toggle("online", live.store.connected);
  };
  const unsubscribe = [
    live.on("sessions", drawSessions),
    live.on("queue", drawQueue),
    live.on("status", drawStatus),
  ];
  drawSessions();
  drawQueue();
  drawStatus();

  const shellApi = {
    main,
    destroy: () => {
      unsubscribe.forEach((fn) => fn());
      routing.destroy();
    },
    setActive(nav, id) {
      active = { nav, id: id || "" };
      for (const a of [navQueue, navTickets]) {
        const on = a.dataset.nav === nav;
        a.classList.toggle("active", on);
        if (on) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      drawSessions();
    },
    toast(text, kind = "info") {
      const t = h("div", { class: `toast ${kind}` }, text);
      toastBox.append(t);
      setTimeout(() => t.remove(), 4500);
    },
  };
  return shellApi;
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);
auth.onChange((current) => {
  if (!current) render();
});
render();
