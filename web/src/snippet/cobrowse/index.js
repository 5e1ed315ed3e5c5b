// The co-browse chunk (loaded by ./bridge.js only when an agent asks to see the page, or when
// this tab was already sharing): the consent card, rrweb's recorder with Tandem's privacy rules,
// the "An agent is viewing this page" bar, the agent's pointer and highlights, remote control.
//
// Nothing is recorded before the customer presses Allow. Every event is masked in this browser
// (./privacy.js) before it is batched (~50 ms) and sent as `cobrowse.events` on the widget's
// socket. After a reconnect, a page load, or `cobrowse.snapshot_needed` a fresh full snapshot
// is sent. The one answering `cobrowse.snapshot_needed` is a checkpoint: the agents already
// follow this page (the same recorder, the same node ids), so it goes with `checkpoint: true`
// and the server keeps it for joiners without making every agent's view rebuild the page. All of this UI lives in Tandem's shadow root, whose host is blocked from the recording.

/* global __RRWEB_VERSION__ */
import { record } from "rrweb";
import { h, icon } from "../../shared/dom.js";
import { adoptCss } from "../css.js";
import { consentKey } from "./bridge.js";
import { AssetSupplier } from "./assets.js";
import { perform } from "./control.js";
import { Pixels, videoPoster } from "./pixels.js";
import { ElementStreams } from "./streams.js";
import { Privacy } from "./privacy.js";
import { watchLocation } from "../location.js";
import css from "./cobrowse.shadow.css";

const RECORDER = `rrweb@${__RRWEB_VERSION__}`;
const BATCH_MS = 50;
const BATCH_EVENTS = 500;
const BATCH_CHARS = 300_000; // a batch without a full snapshot must stay under the server's 512 KiB
const SINGLE_CHARS = 400_000;
const PART_CHARS = 890_000; // one socket frame carries at most 1,000,000 bytes, JSON-escaped
const MAX_PARTS = 16;
// The server checks and sanitizes a batch this big in a worker thread, and smaller batches sent
// meanwhile would overtake it (a snapshot's first mutations and pictures would reach the agent
// before the snapshot). While one is being processed, later events wait here for its answer.
const ORDERED_CHARS = 60_000;
const HEARTBEAT_MS = 10_000;
const POINTER_IDLE_MS = 6_000;
const ACK_TIMEOUT = 15_000;
const POINTER_PATH = "M4 2l16 9.5-7 1.6-3.6 6.9L4 2Z";

export function create(ctx) {
  return new Cobrowse(ctx);
}

/** JSON with every non-ASCII character escaped: its length is its size in bytes. */
function asciiJson(value) {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

function escapedLength(s) {
  let extra = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34 || c === 92) extra++;
  }
  return s.length + extra;
}

/** Split a batch's JSON text in parts whose JSON-escaped size stays under PART_CHARS. */
export function splitParts(data, max = PART_CHARS) {
  const parts = [];
  let i = 0;
  while (i < data.length) {
    let n = Math.min(max, data.length - i);
    for (;;) {
      const size = escapedLength(data.substr(i, n));
      if (size <= max) break;
      n = Math.max(1, Math.floor((n * max) / size) - 64);
    }
    // Cutting anywhere is fine: the server joins the parts before it parses them.
    parts.push(data.substr(i, n));
    i += n;
  }
  return parts;
}

const newId = () => "b" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

class Cobrowse {
  constructor({ socket, request, root, config }) {
    this.socket = socket;
    this.request = request;
    this.config = config;
    this.key = consentKey(config.site);
    this.assets = new AssetSupplier(socket, () => this.sharing); // what the server cannot fetch
    this.privacy = new Privacy(config);
    // A <video> in a snapshot carries its current frame as the mirror's poster (./pixels.js).
    this.privacy.posterFor = (el) => (this.privacy.marked(el) ? null : videoPoster(el));
    this.pixels = new Pixels({
      emit: (event) => this.push(event),
      getId: (node) => record.mirror.getId(node),
      skip: (el) => this.privacy.marked(el),
    });
    // Playing <video>s and canvases too busy to sample also go live to the agent as WebRTC
    // streams (./streams.js).
    this.streams = new ElementStreams({
      request,
      getId: (node) => record.mirror.getId(node),
      skip: (el) => this.privacy.marked(el),
      busy: (id) => this.pixels.busy.has(id),
      announce: (ids) => {
        try {
          record.addCustomEvent("tandem-streams", { ids });
        } catch {
          // not recording
        }
      },
      storageKey: `${this.key}:media`,
    });
    for (const name of ["rtc.offer", "media.tracks"]) socket.on(name, (ev) => this.streams.on(name, ev));
    this.stopRecording = null;
    this.stopLocation = null;
    this.accepted = false;
    this.sharing = false;
    this.control = "none";
    this.controller = null; // the agent holding control
    this.buf = [];
    this.bufChars = 0;
    this.bufPage = false; // the buffer holds a full snapshot
    this.bufCheckpoint = false; // ...and every one it holds is a checkpoint
    this.checkpointing = false; // a checkpoint is being taken (rrweb emits it synchronously)
    this.checkpointDue = false; // the snapshot waiting on snapshotTimer is a checkpoint
    this.waiting = null; // a big batch the server has not answered yet (see ORDERED_CHARS)
    this.timer = 0;
    this.heartbeat = 0;
    this.lastSnapshotAt = 0;
    this.snapshotTimer = 0;
    adoptCss(root, css);
    this.ui = new SharingUi(root, {
      allow: () => this.allow(),
      decline: () => this.decline(),
      stop: () => this.stop(),
      grant: (yes) => this.request(yes ? "control.grant" : "control.deny", {}),
      takeBack: () => this.request("control.revoke", {}),
    });
    socket.on("disconnect", () => {
      this.accepted = false;
      this.waiting = null;
      this.drop();
    });
    addEventListener("pagehide", () => this.flush());
    document.addEventListener("visibilitychange", () => this.beat());
    addEventListener("scroll", () => this.ui.reposition(), { passive: true });
  }

  consented() {
    try {
      return sessionStorage.getItem(this.key) === "1";
    } catch {
      return false;
    }
  }

  remember(on) {
    try {
      if (on) sessionStorage.setItem(this.key, "1");
      else sessionStorage.removeItem(this.key);
    } catch {
      // storage blocked: sharing then ends with the page
    }
  }

  on(name, p) {
    switch (name) {
      case "cobrowse.requested":
        if (this.sharing) return void this.start(); // already sharing: just resend the page
        return this.ui.consent(p.agent ? p.agent.name : "An agent");
      case "connect":
        if (this.consented()) this.start();
        return;
      case "cobrowse.snapshot_needed":
        return this.snapshot(false, true);
      case "cobrowse.state":
        if (p.state === "stopped") this.halt();
        return;
      case "cobrowse.pointer":
        if (this.sharing) this.ui.pointer(p);
        return;
      case "control.state":
        return this.controlState(p);
      case "control.action":
        return this.act(p.action);
      case "session.ended":
        this.ui.consent(null);
        return this.halt();
      default:
    }
  }

  // ------------------------------------------------------------------ consent and the stream

  allow() {
    this.ui.consent(null);
    this.remember(true);
    this.start();
  }

  decline() {
    this.ui.consent(null);
    this.request("cobrowse.decline", {});
  }

  async start() {
    if (this.starting) return;
    this.starting = true;
    try {
      const ack = await this.request("cobrowse.accept", { v: 1, recorder: RECORDER });
      if (!ack.ok) {
        if (ack.error.code === "offline" || ack.error.code === "timeout") return; // next connect
        this.remember(false); // the session ended, or co-browse is refused: forget the consent
        return this.halt();
      }
      this.accepted = true;
      this.sharing = true;
      this.ui.bar(true, this.control === "granted" ? this.controller : null);
      if (!this.stopRecording) {
        this.stopRecording = record({
          emit: (event) => this.push(event),
          ...this.privacy.recordOptions(),
          inlineStylesheet: true,
          inlineImages: false,
          recordCanvas: false,
          collectFonts: false,
          recordCrossOriginIframes: false,
          slimDOMOptions: {
            script: true,
            comment: true,
            headFavicon: true,
            headWhitespace: true,
            headMetaSocial: true,
            headMetaRobots: true,
            headMetaHttpEquiv: true,
            headMetaAuthorship: true,
            headMetaVerification: true,
            headMetaDescKeywords: true,
          },
          sampling: { mousemove: 50, scroll: 100, media: 800 }, // every keystroke, live
          errorHandler: () => true,
        });
        this.lastSnapshotAt = Date.now();
        this.pixels.start(); // canvases and videos as pictures (rrweb's recordCanvas stays off)
        this.streams.start();
        // rrweb tells the page's address only in the Meta of a snapshot: a single-page app's
        // navigation changes the page by mutations, and the agent's header would keep the old
        // address (the checkpoints the server asks for are not relayed to the agents).
        this.stopLocation = watchLocation((href) => {
          try {
            record.addCustomEvent("tandem-location", { href });
          } catch {
            // not recording
          }
        });
      } else {
        this.snapshot(true);
      }
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    } finally {
      this.starting = false;
    }
  }

  /**
   * A fresh Meta + FullSnapshot (at most every 2 s unless forced). A `checkpoint` answers the
   * server's request for one: what is buffered still goes (the agents following need it), and
   * the batch says it is a checkpoint. Any other snapshot replaces what is buffered.
   */
  snapshot(force = false, checkpoint = false) {
    if (!this.stopRecording || !this.accepted) return;
    // Merged with one already waiting: a checkpoint only if both are.
    if (this.snapshotTimer) checkpoint = checkpoint && this.checkpointDue;
    const wait = this.lastSnapshotAt + 2000 - Date.now();
    if (!force && wait > 0) {
      clearTimeout(this.snapshotTimer);
      this.checkpointDue = checkpoint;
      this.snapshotTimer = setTimeout(() => {
        this.snapshotTimer = 0;
        this.snapshot(true, this.checkpointDue);
      }, wait);
      return;
    }
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = 0;
    this.lastSnapshotAt = Date.now();
    if (!checkpoint) {
      this.drop(); // superseded by the snapshot
      record.takeFullSnapshot(true);
      return;
    }
    this.flush();
    this.checkpointing = true;
    try {
      record.takeFullSnapshot(true);
    } finally {
      this.checkpointing = false;
    }
  }

  /** Tell the agent we are still here (an idle page sends nothing otherwise) and if hidden. */
  beat() {
    if (!this.stopRecording || !this.accepted) return;
    try {
      record.addCustomEvent("tandem", { alive: true, hidden: document.hidden });
    } catch {
      // not recording
    }
  }

  stop() {
    this.halt(); // sends what is buffered first
    this.request("cobrowse.stop", {});
  }

  /** Stop recording and clear the UI (sharing ended by us, the server or the session). */
  halt() {
    this.flush();
    this.remember(false);
    if (this.stopRecording) this.stopRecording();
    this.stopRecording = null;
    if (this.stopLocation) this.stopLocation();
    this.stopLocation = null;
    this.pixels.stop();
    this.streams.stop();
    this.accepted = false;
    this.sharing = false;
    this.control = "none";
    clearInterval(this.heartbeat);
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = 0;
    this.drop();
    this.ui.bar(false);
    this.ui.controlPrompt(null);
    this.ui.pointer({ mode: "hide" });
  }

  push(event) {
    if (!this.privacy.scrub(event, (id) => record.mirror.getNode(id))) return;
    if (event.type === 2) {
      this.pixels.resend(); // the pictures start over with the page
      this.streams.resend();
      // A batch is a checkpoint only if every snapshot in it is one: one that is not is a page
      // an agent needs (the server relays such a batch whole).
      this.bufCheckpoint = this.checkpointing && (this.bufCheckpoint || !this.bufPage);
      this.bufPage = true;
    }
    const text = asciiJson(event);
    if (event.type !== 2 && text.length > SINGLE_CHARS) return void this.snapshot(true);
    this.buf.push(text);
    this.bufChars += text.length + 1;
    if (event.type === 2 || this.buf.length >= BATCH_EVENTS || this.bufChars >= BATCH_CHARS) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), BATCH_MS);
    }
  }

  drop() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.buf = [];
    this.bufChars = 0;
    this.bufPage = false;
    this.bufCheckpoint = false;
  }

  flush() {
    if (this.waiting && this.buf.length) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.flush(), BATCH_MS); // and at once when answered
      return;
    }
    const events = this.buf;
    const full = events.some((t) => t.startsWith('{"type":2,'));
    const checkpoint = this.bufCheckpoint;
    this.drop();
    if (!events.length || !this.accepted || !this.socket.connected) return;
    const data = `[${events.join(",")}]`;
    const parts = splitParts(data);
    if (parts.length > MAX_PARTS) {
      console.warn("Tandem: this page is too large to share");
      return;
    }
    const batchId = parts.length > 1 ? newId() : undefined;
    let unanswered = parts.length;
    const waiting = data.length >= ORDERED_CHARS ? {} : null;
    if (waiting) this.waiting = waiting;
    parts.forEach((part, i) => {
      const payload = parts.length > 1 ? { data: part, batchId, part: i, parts: parts.length } : { data: part };
      if (checkpoint) payload.checkpoint = true;
      this.socket.timeout(ACK_TIMEOUT).emit("cobrowse.events", payload, (err, ack) => {
        if (waiting && --unanswered === 0 && this.waiting === waiting) {
          this.waiting = null;
          if (this.buf.length) this.flush();
        }
        if (!err && ack && !ack.ok) this.refused(ack.error, full);
      });
    });
  }

  refused(error, full) {
    if (!this.sharing) return; // sharing ended meanwhile
    if (error.code === "invalid_state") return void this.start(); // e.g. the server restarted
    if (full && error.code !== "rate_limited") {
      console.warn(`Tandem: co-browse snapshot refused: ${error.message}`);
      return;
    }
    // A lost batch leaves the agent's copy behind: resend the whole page (throttled).
    this.snapshot();
  }

  // ------------------------------------------------------------------ remote control

  controlState({ state, agent }) {
    this.control = state;
    if (agent) this.controller = agent.name;
    this.ui.controlPrompt(state === "requested" ? this.controller || "The agent" : null);
    if (this.sharing) this.ui.bar(true, state === "granted" ? this.controller || "The agent" : null);
  }

  act(action) {
    if (this.control !== "granted" || !this.stopRecording || !action) return; // no grant, nothing
    const reason = perform(action, (id) => record.mirror.getNode(id), this.privacy);
    if (reason) console.warn(`Tandem: refused a remote ${action.type} (${reason})`);
  }
}

/** The customer-facing pieces, in Tandem's shadow root. */
class SharingUi {
  constructor(root, actions) {
    this.actions = actions;
    this.card = h("div", { class: "cb-card", role: "alertdialog", "aria-labelledby": "cb-title", hidden: true });
    this.barText = h("span", { class: "cb-text" });
    this.controlBox = h("span", { class: "cb-prompt", hidden: true });
    this.takeBack = h("button", { type: "button", class: "cb-btn", hidden: true, onClick: () => actions.takeBack() }, "Take back");
    this.stopBtn = h("button", { type: "button", class: "cb-btn", onClick: () => actions.stop() }, "Stop sharing");
    this.barEl = h(
      "div",
      { class: "cb-bar", role: "status", hidden: true },
      h("span", { class: "cb-dot", "aria-hidden": "true" }),
      this.barText,
      this.controlBox,
      this.takeBack,
      this.stopBtn,
    );
    this.pointerName = h("span");
    this.pointerEl = h("div", { class: "cb-pointer", hidden: true }, icon(POINTER_PATH, "cb-arrow"), this.pointerName);
    const arrow = this.pointerEl.querySelector("svg");
    arrow.setAttribute("fill", "#b91c1c");
    arrow.setAttribute("stroke", "#fff");
    arrow.setAttribute("stroke-width", "1.5");
    this.overlay = h("div", { class: "cb-overlay", "aria-hidden": "true" }, this.pointerEl);
    this.pointerAt = null;
    this.pointerTimer = 0;
    root.append(this.overlay, this.barEl, this.card);
  }

  /** Show the consent card for `agentName`, or hide it (null). */
  consent(agentName) {
    if (!agentName) {
      this.card.hidden = true;
      return;
    }
    this.card.replaceChildren(
      h("h2", { id: "cb-title" }, `${agentName} would like to see this page`),
      h(
        "p",
        null,
        "They will see this tab while you are on this website, and can point things out. " +
          "Passwords, card details and form fields stay hidden. You can stop at any time.",
      ),
      h(
        "div",
        { class: "cb-actions" },
        h("button", { type: "button", class: "cb-btn", onClick: () => this.actions.decline() }, "Decline"),
        h("button", { type: "button", class: "cb-btn primary", onClick: () => this.actions.allow() }, "Allow"),
      ),
    );
    this.card.hidden = false;
    this.card.querySelector(".primary").focus();
  }

  /** The sharing bar: shown while sharing; `controller` names the agent in control. */
  bar(on, controller = null) {
    this.barEl.hidden = !on;
    this.barEl.classList.toggle("control", !!controller);
    this.barText.textContent = controller ? `${controller} has control of this page` : "An agent is viewing this page";
    this.takeBack.hidden = !controller;
  }

  controlPrompt(agentName) {
    if (!agentName) {
      this.controlBox.hidden = true;
      this.controlBox.replaceChildren();
      return;
    }
    this.controlBox.replaceChildren(
      h("span", null, `· ${agentName} asks to control it`),
      h("button", { type: "button", class: "cb-btn ghost", onClick: () => this.actions.grant(false) }, "Deny"),
      h("button", { type: "button", class: "cb-btn", onClick: () => this.actions.grant(true) }, "Allow control"),
    );
    this.controlBox.hidden = false;
  }

  /** The agent's pointer (page coordinates) or a highlight ring. */
  pointer({ agent, x, y, mode }) {
    clearTimeout(this.pointerTimer);
    if (mode === "hide") {
      this.pointerEl.hidden = true;
      this.pointerAt = null;
      return;
    }
    if (agent) this.pointerName.textContent = agent.name;
    this.pointerAt = { x, y };
    this.pointerEl.hidden = false;
    this.reposition();
    this.pointerTimer = setTimeout(() => (this.pointerEl.hidden = true), POINTER_IDLE_MS);
    if (mode === "highlight") {
      const ring = h("div", { class: "cb-highlight" });
      ring.style.left = `${x - scrollX}px`; // set before it is attached: no mutation to diff
      ring.style.top = `${y - scrollY}px`;
      this.overlay.append(ring);
      setTimeout(() => ring.remove(), 3000);
    }
  }

  /**
   * Move the pointer with the Web Animations API, not the style attribute: rrweb diffs style
   * attribute changes through a detached document, which a host page's strict CSP reports.
   */
  reposition() {
    if (!this.pointerAt) return;
    const transform = `translate(${this.pointerAt.x - scrollX}px, ${this.pointerAt.y - scrollY}px)`;
    const previous = this.pointerAnim;
    this.pointerAnim = this.pointerEl.animate([{ transform }], { duration: 90, fill: "forwards", easing: "linear" });
    if (previous) this.pointerAnim.finished.then(() => previous.cancel(), () => {});
  }
}

