// The co-browse replay page (console/replay.html), embedded by the console as an iframe.
//
// rrweb's Replayer rebuilds the customer's page inside its own iframe, sandboxed with exactly
// `allow-same-origin` (never allow-scripts: rrweb-snapshot enforces it), under this page's CSP
// (style-src may be inline here, the console's may not; every load is confined to our origin).
// The console talks to this page with postMessage, both sides checking origin and source:
//
//   console -> page  {tandem: "replay", type: "live", events}      start the live view
//                    {type: "events", events}                      more live events
//                    {type: "recording", events}                   play a recording (controls)
//                    {type: "mode", pointer, control}              what the agent's input does
//                    {type: "clear"}
//   page -> console  {tandem: "replay", type: "ready"}
//                    {type: "pointer", x, y, mode}                 page coordinates
//                    {type: "action", action}                      control.action payload
//                    {type: "refused", reason}                     a masked target was clicked
//                    {type: "elements", stage, boxes}              live view: where each mirrored
//                                                                  <video> is, for the console's
//                                                                  stream overlay (see below)
//
// Live <video> streams are not played in here (the mirror runs no script, and a MediaStream
// cannot be posted into this page): the console overlays them. This page tells it, whenever it
// changes, the stage's box in this page and each mirrored <video>'s and <canvas>'s box on the stage, in this
// page's pixels (scale, the mirror's scroll, layout changes and resizes included), with its rrweb
// id and object-fit.
//
// Remote control never goes through the mirror: clicks, keys and wheel land on a "glass" layer
// above it, are mapped to rrweb node ids (replayer.getMirror()), and sent as actions.

import { Replayer } from "rrweb";
import { fidelityPlugin } from "./fidelity.js";
import css from "./replay.shadow.css";

const sheet = new CSSStyleSheet();
sheet.replaceSync(css);
document.adoptedStyleSheets = [sheet];

const stage = document.getElementById("stage");
const glass = document.getElementById("glass");
const hint = document.getElementById("hint");
const viewport = document.getElementById("viewport");
const controls = document.getElementById("controls");
const playBtn = document.getElementById("play");
const seek = document.getElementById("seek");
const timeLabel = document.getElementById("time");

const POINTER_EVERY_MS = 100; // <= 10 pointer messages per second
const TYPE_FLUSH_MS = 300;
const SCROLL_EVERY_MS = 120;
const RESTART_AFTER_EVENTS = 20_000;
const INSERT_RULES = [
  "noscript { display: none !important; }",
  "html { scrollbar-width: none; }",
  // The mirror runs no script, and Chromium then shows a video's own controls even without the
  // `controls` attribute; the customer sees none.
  "video:not([controls])::-webkit-media-controls { display: none !important; }",
];
const KEYS = new Set([
  "Enter", "Tab", "Backspace", "Delete", "Escape", "ArrowUp", "ArrowDown", "ArrowLeft",
  "ArrowRight", "Home", "End", "PageUp", "PageDown",
]); // prettier-ignore
const SECRET_AUTOCOMPLETE = /^(cc-|current-password|new-password|one-time-code)/;

let replayer = null;
let live = false;
let added = 0;
let size = { width: 1024, height: 768 };
let scale = 1;
let mode = { pointer: false, control: false };
let lastPointerAt = 0;
let pointerTimer = 0;
let focusId = null;
let focusNode = null;
let typed = "";
let typeTimer = 0;
let scrollPending = null;
let scrollTimer = 0;
let progressTimer = 0;

function post(message) {
  parent.postMessage({ tandem: "replay", ...message }, location.origin);
}

window.addEventListener("message", (event) => {
  if (event.source !== parent || event.origin !== location.origin) return;
  const m = event.data;
  if (!m || m.tandem !== "replay") return;
  if (m.type === "live") startLive(m.events || []);
  else if (m.type === "events") addEvents(m.events || []);
  else if (m.type === "recording") startRecording(m.events || []);
  else if (m.type === "mode") setMode(m);
  else if (m.type === "clear") destroy();
});

// ------------------------------------------------------------------ the replayer

function destroy() {
  clearInterval(progressTimer);
  if (replayer) {
    try {
      replayer.pause();
      replayer.destroy();
    } catch {
      // already gone
    }
  }
  replayer = null;
  for (const el of stage.querySelectorAll(".replayer-wrapper")) el.remove();
  added = 0;
}

function makeReplayer(events, options) {
  destroy();
  replayer = new Replayer(events, {
    root: stage,
    showWarning: false,
    mouseTail: false,
    triggerFocus: false,
    UNSAFE_replayCanvas: false, // never: it would add allow-scripts to the sandbox
    insertStyleRules: INSERT_RULES,
    plugins: [fidelityPlugin()], // canvas pictures, instant scroll, placeholders (./fidelity.js)
    ...options,
  });
  replayer.on("resize", (dim) => fit(dim.width, dim.height));
  quietMedia();
  replayer.on("fullsnapshot-rebuilded", quietMedia);
  return replayer;
}

/**
 * The mirror never plays media (it has none: a live <video> is overlaid by the console), but
 * rrweb's replay calls play() and pause() on mirrored media as the customer's change, and a
 * play() cut short by pause() rejects with nobody to catch it. In the mirror, play() is a no-op.
 */
function quietMedia() {
  const win = mirrorWindow();
  if (win && win.HTMLMediaElement) win.HTMLMediaElement.prototype.play = () => Promise.resolve();
}

function startLive(events) {
  live = true;
  controls.hidden = true;
  // No virtual DOM: rrweb builds one for "sync" mutations and writes it back only when a
  // fast-forward ends, which never happens in live mode (later mutations would be lost).
  makeReplayer([], { liveMode: true, useVirtualDom: false });
  // Every event is applied as soon as it arrives (it is older than this baseline), so the
  // customer's clock does not matter and nothing waits in a buffer.
  replayer.startLive(Number.MAX_SAFE_INTEGER);
  addEvents(events);
}

function addEvents(events) {
  if (!live) return;
  if (!replayer) return startLive(events);
  for (const event of events) {
    if (event.type === 4 && added > RESTART_AFTER_EVENTS) {
      // A new page or snapshot: start over, so a long session does not keep every event.
      const rest = events.slice(events.indexOf(event));
      startLive(rest);
      return;
    }
    replayer.addEvent(event);
    added++;
  }
}

function startRecording(events) {
  live = false;
  setMode({ pointer: false, control: false });
  if (events.length < 2) {
    showHint("This recording is empty");
    return;
  }
  makeReplayer(events, { liveMode: false, skipInactive: true, mouseTail: { strokeStyle: "#f59e0b" } });
  const total = replayer.getMetaData().totalTime;
  seek.max = String(total);
  controls.hidden = false;
  replayer.pause(0);
  let playing = false;
  const draw = () => {
    const now = Math.min(replayer.getCurrentTime(), total);
    seek.value = String(now);
    timeLabel.textContent = `${clock(now)} / ${clock(total)}`;
    playBtn.textContent = playing ? "Pause" : now >= total ? "Replay" : "Play";
  };
  const setPlaying = (on, at = replayer.getCurrentTime()) => {
    playing = on;
    // Play from the end starts over; seeking to the end (paused) shows the end.
    if (on && at >= total) at = 0;
    if (on) replayer.play(at);
    else replayer.pause(at);
    clearInterval(progressTimer);
    if (on) progressTimer = setInterval(draw, 200);
    draw();
  };
  replayer.on("finish", () => {
    playing = false;
    clearInterval(progressTimer);
    draw();
  });
  playBtn.onclick = () => setPlaying(!playing);
  seek.oninput = () => setPlaying(playing, Number(seek.value));
  draw();
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Scale the customer's viewport to fit this page. */
function fit(width, height) {
  if (width && height) size = { width, height };
  const wrapper = stage.querySelector(".replayer-wrapper");
  const box = viewport.getBoundingClientRect();
  scale = Math.min(box.width / size.width, box.height / size.height) || 1;
  stage.style.width = `${Math.floor(size.width * scale)}px`;
  stage.style.height = `${Math.floor(size.height * scale)}px`;
  if (wrapper) wrapper.style.transform = `scale(${scale})`;
}
new ResizeObserver(() => fit()).observe(viewport);

// ------------------------------------------------------------------ the agent's input

function setMode(next) {
  mode = { pointer: !!next.pointer, control: !!next.control };
  glass.classList.toggle("pointer", mode.pointer && !mode.control);
  glass.classList.toggle("control", mode.control);
  if (!mode.control) {
    flushTyping();
    focusId = null;
  }
}

function showHint(text, ms = 2500) {
  hint.textContent = text;
  hint.hidden = false;
  clearTimeout(showHint.timer);
  if (ms) showHint.timer = setTimeout(() => (hint.hidden = true), ms);
}

function mirrorWindow() {
  const frame = replayer && replayer.iframe;
  return frame && frame.contentWindow && frame.contentDocument ? frame.contentWindow : null;
}

/** Where the agent points: mirror viewport and page coordinates, and the node under it. */
function locate(event) {
  const win = mirrorWindow();
  if (!win) return null;
  const rect = stage.getBoundingClientRect();
  const vx = (event.clientX - rect.left) / scale;
  const vy = (event.clientY - rect.top) / scale;
  if (vx < 0 || vy < 0 || vx > size.width || vy > size.height) return null;
  const node = win.document.elementFromPoint(vx, vy);
  return { vx, vy, x: Math.max(0, vx + win.scrollX), y: Math.max(0, vy + win.scrollY), node, win };
}

function attrsOf(node) {
  const meta = replayer.getMirror().getMeta(node);
  return (meta && meta.attributes) || {};
}

/** Masked or blocked in the customer's page (the markers the server and the snippet check). */
function isProtected(node) {
  for (let n = node; n && n.nodeType === 1; n = n.parentNode) {
    const a = attrsOf(n);
    if ("rr_width" in a || "data-tandem-mask" in a || "data-tandem-block" in a || "data-tandem" in a) return true;
    const cls = String(a.class || "").split(/\s+/);
    if (cls.includes("rr-block") || cls.includes("rr-mask") || cls.includes("rr-ignore")) return true;
    const tag = n.tagName.toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") {
      if (String(a.type || "").toLowerCase() === "password") return true;
      if (SECRET_AUTOCOMPLETE.test(String(a.autocomplete || "").toLowerCase().trim())) return true;
    }
  }
  return false;
}

/** The customer opted this field in (`data-tandem-unmask`): its value is visible and editable. */
function optedIn(node) {
  for (let n = node; n && n.nodeType === 1; n = n.parentNode) {
    if ("data-tandem-unmask" in attrsOf(n)) return true;
  }
  return false;
}

const isField = (node) => node && node.nodeType === 1 && /^(input|textarea)$/i.test(node.tagName);

function idOf(node) {
  const id = replayer.getMirror().getId(node);
  return typeof id === "number" && id > 0 ? id : null;
}

glass.addEventListener("mousemove", (event) => {
  const at = locate(event);
  if (!at) return;
  if (mode.control) glass.classList.toggle("masked", !!at.node && isProtected(at.node));
  if (!mode.pointer && !mode.control) return;
  const now = Date.now();
  clearTimeout(pointerTimer);
  const send = () => {
    lastPointerAt = Date.now();
    post({ type: "pointer", x: at.x, y: at.y, mode: "move" });
  };
  if (now - lastPointerAt >= POINTER_EVERY_MS) send();
  else pointerTimer = setTimeout(send, POINTER_EVERY_MS - (now - lastPointerAt));
});

glass.addEventListener("mouseleave", () => {
  clearTimeout(pointerTimer);
  if (mode.pointer || mode.control) post({ type: "pointer", x: 0, y: 0, mode: "hide" });
});

glass.addEventListener("click", (event) => {
  const at = locate(event);
  if (!at) return;
  glass.focus({ preventScroll: true });
  if (!mode.control) {
    if (mode.pointer) post({ type: "pointer", x: at.x, y: at.y, mode: "highlight" });
    return;
  }
  flushTyping();
  if (!at.node || isProtected(at.node)) {
    post({ type: "refused", reason: "masked_target" });
    showHint("This part of the page is private: it can't be controlled");
    return;
  }
  const id = idOf(at.node);
  if (id == null) return;
  focusId = isField(at.node) || at.node.isContentEditable ? id : null;
  focusNode = at.node;
  post({ type: "action", action: { type: "click", targetId: id, x: Math.round(at.x), y: Math.round(at.y) } });
});

function flushTyping() {
  clearTimeout(typeTimer);
  if (typed && focusId != null) {
    post({ type: "action", action: { type: "type", targetId: focusId, text: typed } });
  }
  typed = "";
}

glass.addEventListener("keydown", (event) => {
  if (!mode.control || event.ctrlKey || event.metaKey || event.altKey) return;
  const win = mirrorWindow();
  if (!win) return;
  const printable = event.key.length === 1;
  if (printable && focusId != null) {
    event.preventDefault();
    if (!optedIn(focusNode)) {
      showHint("This field is masked: the customer has to fill it in");
      return;
    }
    typed += event.key;
    clearTimeout(typeTimer);
    typeTimer = setTimeout(flushTyping, TYPE_FLUSH_MS);
    if (typed.length >= 200) flushTyping();
    return;
  }
  if (KEYS.has(event.key) || (printable && event.key === " ")) {
    event.preventDefault();
    flushTyping();
    const target = focusId != null ? focusId : idOf(win.document);
    if (target == null) return;
    post({ type: "action", action: { type: "key", targetId: target, key: event.key, shift: event.shiftKey } });
  }
});

function scrollable(node, win) {
  for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
    if (n === win.document.documentElement || n === win.document.body) break;
    const style = win.getComputedStyle(n);
    if (/(auto|scroll)/.test(style.overflowY + style.overflowX) && (n.scrollHeight > n.clientHeight + 1 || n.scrollWidth > n.clientWidth + 1)) return n;
  }
  return null;
}

glass.addEventListener(
  "wheel",
  (event) => {
    if (!mode.control) return;
    const at = locate(event);
    if (!at) return;
    event.preventDefault();
    const box = at.node && scrollable(at.node, at.win);
    const target = box || at.win.document;
    const id = idOf(target);
    if (id == null) return;
    const base = scrollPending && scrollPending.targetId === id ? scrollPending : {
      x: box ? box.scrollLeft : at.win.scrollX,
      y: box ? box.scrollTop : at.win.scrollY,
    };
    scrollPending = {
      type: "scroll",
      targetId: id,
      x: Math.max(0, Math.round(base.x + event.deltaX)),
      y: Math.max(0, Math.round(base.y + event.deltaY)),
    };
    if (!scrollTimer) {
      scrollTimer = setTimeout(() => {
        scrollTimer = 0;
        if (scrollPending) post({ type: "action", action: scrollPending });
        scrollPending = null;
      }, SCROLL_EVERY_MS);
    }
  },
  { passive: false },
);

// ------------------------------------------------------------------ where the videos are

let lastBoxes = "";

function trackElements() {
  requestAnimationFrame(trackElements);
  const win = live ? mirrorWindow() : null;
  const boxes = [];
  if (win) {
    for (const el of win.document.querySelectorAll("video, canvas")) {
      const id = idOf(el);
      const r = el.getBoundingClientRect();
      if (id == null || !r.width || !r.height) continue;
      const style = win.getComputedStyle(el);
      if (style.visibility === "hidden") continue;
      boxes.push({
        id,
        x: r.left * scale,
        y: r.top * scale,
        width: r.width * scale,
        height: r.height * scale,
        fit: el.localName === "canvas" ? "fill" : style.objectFit || "contain",
      });
    }
  }
  const rect = stage.getBoundingClientRect();
  const stageBox = { x: rect.left, y: rect.top, width: rect.width, height: rect.height };
  const text = JSON.stringify([stageBox, boxes]);
  if (text === lastBoxes) return;
  lastBoxes = text;
  post({ type: "elements", stage: stageBox, boxes });
}
requestAnimationFrame(trackElements);

post({ type: "ready" });
