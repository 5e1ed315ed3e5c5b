// An rrweb Replayer plugin for the replay page: what rrweb's replay leaves out or gets wrong in
// a sandbox without scripts (ADR 0001), done from this page's own script.
//
// * Canvas pictures: the snippet sends canvases as sampled WebP frames (CanvasMutation events:
//   clearRect + drawImage of an image blob). rrweb applies those only with UNSAFE_replayCanvas,
//   which adds allow-scripts to the sandbox; we never set it. Instead this page, which runs
//   outside the sandbox and may touch the same-origin frame's DOM, shows each frame as the
//   mirror canvas's background (a data: image, allowed by the replay CSP). No command in such
//   an event is ever executed: only a picture of an allowed type is taken from it.
// * Scroll: rrweb scrolls smoothly in live mode, so the mirror lags and an agent sees motion the
//   customer never made. Every scroll is re-applied instantly. The last known position of the
//   page and of every scrolled element is kept and re-applied while the mirror settles (images,
//   fonts, late styles change the page's height): otherwise a late joiner's scroll is clamped
//   to a page that is still short, and stays wrong.
// * Canvas boxes: a canvas sized only by its attributes would collapse in a script-less mirror
//   (it is drawn as its fallback content); it gets its box back.
// * Placeholders: a cross-origin iframe (nothing can be mirrored inside it) shows a label on its
//   box instead of an empty white hole; a masked <select> shows no option rather than the
//   first one (which would be a wrong answer, not a hidden one).

const SCROLL = 3;
const MUTATION = 0;
const CANVAS = 9;
const FULL_SNAPSHOT = 2;
const INCREMENTAL = 3;
const SETTLE_MS = [50, 250, 700, 1500, 3000, 5000];
const FRAME_WAIT_MS = 5000;
const IFRAME_LABEL = "Content from another site (not shared)";

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The data: URL of a sampled frame's drawImage argument, or null if it is not that shape. */
function frameUrl(arg) {
  if (!arg || arg.rr_type !== "ImageBitmap" || !Array.isArray(arg.args)) return null;
  const blob = arg.args[0];
  if (!blob || blob.rr_type !== "Blob" || !Array.isArray(blob.data) || blob.data.length !== 1) return null;
  if (typeof blob.type !== "string" || !/^image\/(webp|png|jpeg)$/.test(blob.type)) return null;
  const part = blob.data[0];
  if (!part || part.rr_type !== "ArrayBuffer" || typeof part.base64 !== "string" || !BASE64.test(part.base64)) return null;
  return `data:${blob.type};base64,${part.base64}`; // only [A-Za-z0-9+/=]: safe inside url("")
}

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function labelUrl(text) {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40">` +
    `<text x="200" y="25" text-anchor="middle" font-family="system-ui,sans-serif" font-size="14" fill="#52525b">${text}</text></svg>`;
  return `url("data:image/svg+xml,${encodeURIComponent(svg)}")`;
}

export function fidelityPlugin() {
  let replayer = null;
  const scrolls = new Map(); // rrweb id -> {x, y}: where the customer has it
  const frames = new Map(); // rrweb id -> latest frame not drawn yet
  const drawn = new Map(); // rrweb id -> the frame on it now (shown again if a style change drops it)
  const waitingSince = new Map(); // rrweb id -> when its frame started waiting for its canvas
  let settleTimers = [];
  let watched = null; // the mirror document whose loads we listen to
  let resizeObserver = null;
  let retryTimer = 0;

  const mirror = () => replayer.getMirror();
  const doc = () => (replayer.iframe && replayer.iframe.contentDocument) || null;

  // ------------------------------------------------------------------ canvas

  function drawPending() {
    clearTimeout(retryTimer);
    for (const [id, commands] of frames) {
      const node = mirror().getNode(id);
      if (!node || node.nodeName !== "CANVAS" || !node.isConnected) {
        const since = waitingSince.get(id) || Date.now();
        waitingSince.set(id, since);
        if (Date.now() - since > FRAME_WAIT_MS) {
          frames.delete(id); // its canvas is gone
          waitingSince.delete(id);
        }
        continue;
      }
      frames.delete(id);
      waitingSince.delete(id);
      drawn.set(id, commands);
      draw(node, commands);
    }
    // Nodes still missing (a recording's fast-forward builds them at its end): try again soon.
    if (frames.size) retryTimer = setTimeout(drawPending, 150);
  }

  /**
   * Show a frame as the mirror canvas's background image, stretched over its box. Drawing into
   * the canvas itself works (getImageData sees it) but Chromium never repaints a canvas of a
   * document whose frame runs no script, so the agent would see nothing. Only the frame's own
   * picture is used: the commands are never executed as such.
   */
  function draw(canvas, commands) {
    let url = null;
    for (const c of commands) {
      if (c && c.property === "drawImage" && Array.isArray(c.args)) url = frameUrl(c.args[0]) || url;
    }
    if (!url) return;
    const style = canvas.style;
    style.setProperty("background-image", `url("${url}")`, "important");
    style.setProperty("background-size", "100% 100%", "important");
    style.setProperty("background-repeat", "no-repeat", "important");
    style.setProperty("background-position", "0 0", "important");
    style.setProperty("background-origin", "content-box", "important");
  }

  // ------------------------------------------------------------------ scroll

  function scrollNode(id, pos, force) {
    const node = mirror().getNode(id);
    if (!node) return;
    const opts = { left: pos.x, top: pos.y, behavior: "instant" };
    if (node.nodeType === 9) {
      const win = node.defaultView;
      if (win && (force || Math.abs(win.scrollX - pos.x) > 0.5 || Math.abs(win.scrollY - pos.y) > 0.5)) win.scrollTo(opts);
    } else if (node.nodeType === 1 && node === node.ownerDocument.scrollingElement) {
      // The snapshot gives <html> (or <body> in quirks mode) the page's scroll as rr_scrollTop;
      // that copy goes stale as the page scrolls: the document's entry is the page's scroll.
      return;
    } else if (node.nodeType === 1 && (force || Math.abs(node.scrollLeft - pos.x) > 0.5 || Math.abs(node.scrollTop - pos.y) > 0.5)) {
      try {
        node.scrollTo(opts);
      } catch {
        // not scrollable
      }
    }
  }

  function reapply() {
    if (!replayer) return;
    for (const [id, pos] of scrolls) scrollNode(id, pos, false);
  }

  function settle() {
    for (const t of settleTimers) clearTimeout(t);
    settleTimers = SETTLE_MS.map((ms) => setTimeout(() => (reapply(), decorate()), ms));
  }

  /** Re-apply scroll whenever the mirror's layout may have grown (images, fonts, styles). */
  function watch() {
    const d = doc();
    if (!d || d === watched) return;
    watched = d;
    d.addEventListener("load", reapply, true); // images, stylesheets (capture: they don't bubble)
    if (d.fonts) d.fonts.addEventListener("loadingdone", reapply);
    if (resizeObserver) resizeObserver.disconnect();
    resizeObserver = new ResizeObserver(reapply);
    if (d.documentElement) resizeObserver.observe(d.documentElement);
    if (d.body) resizeObserver.observe(d.body);
  }

  function rememberSnapshotScrolls(event) {
    scrolls.clear();
    const root = event.data.node;
    const off = event.data.initialOffset;
    if (root && off) scrolls.set(root.id, { x: num(off.left), y: num(off.top) });
    const stack = root ? [root] : [];
    while (stack.length) {
      const n = stack.pop();
      const a = n.attributes;
      if (a && (a.rr_scrollTop || a.rr_scrollLeft)) scrolls.set(n.id, { x: num(a.rr_scrollLeft), y: num(a.rr_scrollTop) });
      if (n.childNodes) for (const c of n.childNodes) stack.push(c);
    }
  }

  // ------------------------------------------------------------------ placeholders

  /**
   * In a document that runs no script a <canvas> is drawn as its fallback content, an empty
   * inline box: one sized only by its width/height attributes collapses to nothing. Give it the
   * box a canvas would have (the page's own CSS sizes still win: these are only defaults).
   */
  function sizeCanvas(canvas) {
    const w = Number(canvas.getAttribute("width")) || 300;
    const h = Number(canvas.getAttribute("height")) || 150;
    const style = canvas.style;
    const win = canvas.ownerDocument.defaultView;
    if (win && win.getComputedStyle(canvas).display === "inline") style.setProperty("display", "inline-block");
    style.setProperty("aspect-ratio", `${w} / ${h}`);
    if (canvas.dataset.tandemWidth && canvas.dataset.tandemWidth !== String(w)) {
      style.removeProperty("width"); // its bitmap was resized: measure again
      delete canvas.dataset.tandemWidth;
    }
    if (canvas.getBoundingClientRect().width < 1) {
      style.setProperty("width", `${w}px`);
      canvas.dataset.tandemWidth = String(w);
    }
  }

  function decorate() {
    const d = doc();
    if (!d) return;
    for (const canvas of d.querySelectorAll("canvas")) sizeCanvas(canvas);
    for (const [id, commands] of drawn) {
      const node = mirror().getNode(id);
      if (node && node.nodeName === "CANVAS" && !node.style.backgroundImage) draw(node, commands);
    }
    for (const frame of d.querySelectorAll("iframe")) {
      let empty = true;
      try {
        const inner = frame.contentDocument;
        empty = !inner || !inner.body || inner.body.childNodes.length === 0;
      } catch {
        empty = true;
      }
      if (empty && !frame.dataset.tandemLabel) {
        frame.dataset.tandemLabel = "1";
        frame.style.setProperty("background", `#f4f4f5 ${labelUrl(IFRAME_LABEL)} center / min(400px, 100%) auto no-repeat`);
      } else if (!empty && frame.dataset.tandemLabel) {
        delete frame.dataset.tandemLabel;
        frame.style.removeProperty("background");
      }
    }
    for (const select of d.querySelectorAll("select")) {
      const meta = mirror().getMeta(select);
      const value = meta && meta.attributes ? meta.attributes.value : undefined;
      if (typeof value === "string" && /^\*+$/.test(value) && select.selectedIndex !== -1 && select.dataset.tandemMasked !== "1") {
        select.dataset.tandemMasked = "1";
        select.selectedIndex = -1;
      }
    }
  }

  // ------------------------------------------------------------------ the plugin

  let decorateTimer = 0;

  return {
    /** Called by the Replayer after it applied each event (isSync: during a fast-forward). */
    handler(event, isSync, context) {
      replayer = context.replayer;
      if (event.type === FULL_SNAPSHOT) {
        rememberSnapshotScrolls(event);
        frames.clear();
        drawn.clear();
        watch();
        settle();
        return;
      }
      if (event.type !== INCREMENTAL || !event.data) return;
      const d = event.data;
      if (d.source === CANVAS && Array.isArray(d.commands)) {
        frames.set(d.id, d.commands);
        drawPending(); // live events arrive as "sync" (startLive's baseline): draw them all the same
      } else if (d.source === SCROLL) {
        const pos = { x: num(d.x), y: num(d.y) };
        scrolls.set(d.id, pos);
        scrollNode(d.id, pos, true); // instantly, whatever rrweb chose (smooth when not "sync")
      } else if (d.source === MUTATION && (d.adds.length || d.attributes.length)) {
        // A new style attribute drops the picture (rrweb may replace the whole attribute): put
        // it back; the snippet sends a picture again only when it changes.
        for (const change of d.attributes) {
          if (drawn.has(change.id) && "style" in (change.attributes || {})) frames.set(change.id, drawn.get(change.id));
        }
        if (frames.size) drawPending();
        clearTimeout(decorateTimer);
        decorateTimer = setTimeout(() => (decorate(), reapply()), 60);
      }
    },
  };
}
