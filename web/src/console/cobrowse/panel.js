// Co-browse in the session view: the "Co-browse" button, the live view of the customer's page
// (the replay page in an iframe, see ./replay-page.js), the agent's pointer and highlight, and
// remote control once the customer grants it.
//
//   Co-browse          -> cobrowse.request; the customer sees Allow / Decline
//   cobrowse.state     sharing -> cobrowse.join (ack: the current page) -> live cobrowse.events
//   pointer / click    -> cobrowse.pointer move / highlight (<= 10 per second)
//   Request control    -> control.request; once granted, clicks, keys and wheel on the view
//                         become control.action {type, targetId, x, y, text, key}
//   <video> in the page -> its live stream overlaid at its box (./streams.js)
//
// Every request, grant, denial, revocation and action is put on the ticket timeline by the server.

import { h } from "../../shared/dom.js";
import * as auth from "../auth.js";
import * as live from "../live.js";
import { replayFrame } from "./frame.js";
import { elementStreams } from "./streams.js";

const STALE_AFTER_MS = 25_000; // the customer's page sends a heartbeat every 10 s
// The view keeps every event it applied. The server does not relay the snapshots it asks for
// (checkpoints: the view has the page already), so on one long page no new page would ever
// start it over: after this many events it joins again, from the server's latest page.
const REJOIN_AFTER_EVENTS = 20_000;
const HIDDEN_TEXT = "The customer switched to another tab or window";

/**
 * @param {{ticketId: string, actions: HTMLElement, layout: HTMLElement, toast: Function, ended: () => boolean}} opts
 */
export function mountCobrowse({ ticketId, actions, layout, toast, ended }) {
  const me = auth.session().agent;
  const state = {
    sharing: false,
    requested: false,
    stopped: false,
    control: "none",
    controlAgent: null,
    lastEventAt: 0,
    hidden: false,
    href: "",
    joining: false,
    pending: null, // events that arrived while cobrowse.join was in flight
    followed: 0, // events applied since the last join
    pointer: true,
  };

  const startBtn = h("button", { type: "button", class: "btn", onClick: () => requestShare() }, "Co-browse");
  actions.prepend(startBtn);

  const url = h("span", { class: "cb-url", title: "" });
  const pill = h("span", { class: "cb-pill" });
  const pointerBtn = h(
    "button",
    { type: "button", class: "btn small", "aria-pressed": "true", onClick: () => togglePointer() },
    "Pointer",
  );
  const controlBtn = h("button", { type: "button", class: "btn small", onClick: () => controlClick() }, "Request control");
  const closeBtn = h("button", { type: "button", class: "btn small ghost", onClick: () => hidePanel() }, "Hide");
  const notice = h("div", { class: "cb-notice", role: "status", hidden: true });
  const frame = replayFrame("The customer's page (co-browse)", onFrameMessage);
  const view = h("div", { class: "cb-view" }, frame.iframe, notice);
  const section = h(
    "section",
    { class: "cobrowse", "aria-label": "Co-browse", hidden: true },
    h(
      "header",
      { class: "cb-head" },
      h("div", { class: "cb-title" }, h("strong", null, "Co-browse"), pill, url),
      h("div", { class: "cb-tools" }, pointerBtn, controlBtn, closeBtn),
    ),
    view,
  );
  layout.prepend(section);
  const streams = elementStreams({ ticketId, view, sharing: () => state.sharing });

  // ------------------------------------------------------------------ drawing

  function draw() {
    const stale = state.sharing && state.lastEventAt && Date.now() - state.lastEventAt > STALE_AFTER_MS;
    const mineControl = state.control === "granted" && state.controlAgent === me.id;
    startBtn.hidden = (state.sharing && !section.hidden) || ended();
    startBtn.disabled = state.requested;
    startBtn.textContent = state.sharing
      ? "Show co-browse"
      : state.requested
        ? "Waiting for the customer…"
        : state.stopped
          ? "Co-browse again"
          : "Co-browse";
    if (!section.hidden && !state.sharing && !state.stopped) section.hidden = true;
    layout.classList.toggle("cobrowsing", !section.hidden);

    let status = "Live";
    let kind = "live";
    let message = "";
    if (state.stopped) {
      status = "Stopped";
      kind = "stopped";
      message = "The customer stopped sharing. This is the last thing they showed.";
    } else if (!state.lastEventAt) {
      status = "Connecting";
      kind = "wait";
      message = "Waiting for the customer's page…";
    } else if (stale) {
      status = "Stale";
      kind = "stale";
      const secs = Math.round((Date.now() - state.lastEventAt) / 1000);
      message = `No updates from the customer for ${secs} s: their connection may have dropped.`;
    } else if (state.hidden) {
      status = "Away";
      kind = "stale";
      message = HIDDEN_TEXT;
    }
    pill.textContent = status;
    pill.className = `cb-pill ${kind}`;
    section.classList.toggle("dim", kind === "stale" || kind === "stopped");
    notice.hidden = !message;
    notice.textContent = message;
    url.textContent = state.href.replace(/^https?:\/\//, "");
    url.title = state.href;

    controlBtn.hidden = !state.sharing;
    pointerBtn.hidden = !state.sharing;
    controlBtn.disabled = state.control === "requested";
    controlBtn.classList.toggle("primary", mineControl);
    controlBtn.textContent = mineControl
      ? "Release control"
      : state.control === "requested"
        ? "Waiting for the customer…"
        : state.control === "granted"
          ? "Another agent has control"
          : "Request control";
    if (state.control === "granted" && !mineControl) controlBtn.disabled = true;
    pointerBtn.setAttribute("aria-pressed", String(state.pointer));
    frame.send({ type: "mode", pointer: state.sharing && state.pointer, control: state.sharing && mineControl });
  }

  function showPanel() {
    section.hidden = false;
    draw();
  }

  function hidePanel() {
    section.hidden = true;
    state.stopped = false;
    draw();
  }

  // ------------------------------------------------------------------ server

  async function requestShare() {
    if (state.sharing) return showPanel();
    state.requested = true;
    draw();
    const ack = await live.request("cobrowse.request", { ticketId });
    if (!ack.ok) {
      state.requested = false;
      toast(`Couldn't ask to co-browse: ${ack.error.message}`, "error");
    }
    draw();
  }

  async function join() {
    if (state.joining) return;
    state.joining = true;
    state.pending = [];
    state.followed = 0;
    const ack = await live.request("cobrowse.join", { ticketId });
    const pending = state.pending;
    state.pending = null;
    state.joining = false;
    if (!ack.ok) {
      if (ack.error.code !== "offline") toast(`Co-browse: ${ack.error.message}`, "error");
      return;
    }
    state.control = ack.control;
    if (!ack.sharing) {
      state.sharing = false;
      draw();
      return;
    }
    state.sharing = true;
    state.stopped = false;
    state.requested = false;
    const events = ack.events;
    // Events relayed while the join was answered may be in the catch-up as well: keep the new.
    const last = events.length ? events[events.length - 1].timestamp : -Infinity;
    const seen = new Set(events.filter((e) => e.timestamp === last).map((e) => JSON.stringify(e)));
    const extra = pending.filter((e) => e.timestamp > last || (e.timestamp === last && !seen.has(JSON.stringify(e))));
    const all = [...events, ...extra];
    if (all.length) observe(all);
    frame.send({ type: "live", events: all });
    showPanel();
  }

  /** Follow what the events say: the page's address, activity, tab visibility. */
  function observe(events) {
    state.lastEventAt = Date.now();
    for (const e of events) {
      if (e.type === 4 && e.data && e.data.href) state.href = e.data.href;
      if (e.type === 5 && e.data && e.data.tag === "tandem-location" && e.data.payload) {
        // A single-page app's navigation (the snippet's ../snippet/location.js).
        if (typeof e.data.payload.href === "string") state.href = e.data.payload.href;
      } else if (e.type === 5 && e.data && e.data.tag === "tandem" && e.data.payload) state.hidden = !!e.data.payload.hidden;
      else if (e.type === 5 && e.data && e.data.tag === "tandem-streams" && e.data.payload) streams.announced(e.data.payload.ids);
      else if (e.type === 3 && e.data && (e.data.source === 1 || e.data.source === 2)) state.hidden = false;
    }
  }

  const offs = [
    live.onServer("cobrowse.state", (ev) => {
      if (ev.ticketId !== ticketId) return;
      if (ev.state === "sharing") {
        state.stopped = false;
        join();
      } else if (ev.state === "declined") {
        state.requested = false;
        toast("The customer declined to share their page.");
      } else if (ev.state === "stopped") {
        streams.stop();
        state.requested = false;
        if (state.sharing) state.stopped = true;
        state.sharing = false;
        state.control = "none";
      }
      draw();
    }),
    live.onServer("cobrowse.events", (ev) => {
      if (ev.ticketId !== ticketId) return;
      if (state.pending) return void state.pending.push(...ev.events);
      if (!state.sharing) return;
      observe(ev.events);
      frame.send({ type: "events", events: ev.events });
      state.followed += ev.events.length;
      if (state.followed > REJOIN_AFTER_EVENTS) join();
      if (!section.hidden) draw();
    }),
    live.onServer("control.state", (ev) => {
      if (ev.ticketId !== ticketId) return;
      const before = state.control;
      state.control = ev.state;
      state.controlAgent = ev.agent ? ev.agent.id : null;
      const mine = !ev.agent || ev.agent.id === me.id;
      if (mine && before === "requested" && ev.state === "denied") toast("The customer declined remote control.");
      if (mine && ev.state === "granted") toast("You have control of the customer's page.");
      if (mine && before === "granted" && ev.state === "revoked") toast("Remote control ended.");
      if (mine && ev.state === "expired") toast("Remote control expired.");
      draw();
    }),
    live.onServer("rtc.offer", (ev) => streams.server("rtc.offer", ev)),
    live.onServer("media.tracks", (ev) => streams.server("media.tracks", ev)),
    live.onServer("connect", () => {
      if (state.sharing || !section.hidden) join();
    }),
    live.onServer("session.ended", (ev) => {
      if (ev.ticketId !== ticketId) return;
      state.requested = false;
      draw();
    }),
  ];

  // ------------------------------------------------------------------ the view's messages

  function onFrameMessage(m) {
    if (m.type === "elements") return void streams.elements(m);
    if (!state.sharing) return;
    if (m.type === "pointer") {
      live.request("cobrowse.pointer", { ticketId, x: m.x, y: m.y, mode: m.mode });
    } else if (m.type === "action") {
      live.request("control.action", { ticketId, action: m.action }).then((ack) => {
        if (!ack.ok) toast(`Not done: ${ack.error.message}`, "error");
      });
    } else if (m.type === "refused") {
      toast("That part of the page is private: it can't be controlled.");
    }
  }

  function togglePointer() {
    state.pointer = !state.pointer;
    if (!state.pointer) live.request("cobrowse.pointer", { ticketId, x: 0, y: 0, mode: "hide" });
    draw();
  }

  async function controlClick() {
    const mine = state.control === "granted" && state.controlAgent === me.id;
    const ack = await live.request(mine ? "control.revoke" : "control.request", { ticketId });
    if (!ack.ok) toast(`Remote control: ${ack.error.message}`, "error");
  }

  const ticker = setInterval(() => {
    if (state.sharing && !section.hidden) draw();
  }, 2000);
  draw();
  if (!ended()) join(); // already sharing (e.g. the view was reopened): show it at once

  return {
    redraw: draw,
    destroy() {
      clearInterval(ticker);
      for (const off of offs) off();
      streams.stop();
      frame.destroy();
    },
  };
}
