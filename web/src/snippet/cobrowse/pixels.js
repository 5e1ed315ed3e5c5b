// What the DOM stream cannot carry, sent as pictures: <canvas> contents and <video> frames.
//
// * Canvases (2D and WebGL) are sampled a few times a second while visible, encoded as WebP by
//   the browser (`canvas.toBlob`, off the main thread) and sent as rrweb CanvasMutation events in
//   the shape of rrweb's own sampled canvas recording (clearRect + drawImage of an image blob),
//   only when the picture changed. rrweb's sampler needs a Worker from a blob: URL, which a
//   site's CSP usually forbids; this one needs none. The replay page shows them itself (rrweb's
//   canvas replay would need allow-scripts in the sandbox, ADR 0001).
// * Videos: the current frame goes into the snapshot as the mirror's `poster`, and later frames
//   follow as `poster` attribute mutations, so the mirror shows the picture at the right size
//   (the mirror never plays media). A video whose frames cannot be read (cross-origin without
//   CORS) gets a labelled placeholder of its size instead, and so does a canvas whose pictures
//   are too big or too slow to send ("too busy").
// Blocked and masked elements are never sampled (their pictures could carry what is hidden).

const FPS = 2;
const QUALITY = 0.6;
const MAX_FRAME_CHARS = 180_000; // one frame must fit a batch (see index.js BATCH_CHARS)
const MAX_SIDE = 1600; // frames are scaled down past this (the mirror stretches them back)
const SLOW_ENCODE_MS = 400;
const SLOW_TIMES = 3; // a canvas this many times in a row too slow to encode is "too busy"
const VIDEO_SIDE = 960;
const PER_TICK = 8;

const b64 = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(out);
};

const toBlob = (canvas, type, quality) =>
  new Promise((resolve, reject) => {
    try {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("empty"))), type, quality);
    } catch (err) {
      reject(err); // a tainted canvas (cross-origin pixels) throws SecurityError
    }
  });

function visible(el) {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
}

/** A picture of `el` scaled to fit `maxSide`, in a scratch canvas (or null if unreadable). */
function scratchCopy(el, width, height, maxSide) {
  const k = Math.min(1, maxSide / Math.max(width, height));
  const c = document.createElement("canvas");
  c.width = Math.max(1, Math.round(width * k));
  c.height = Math.max(1, Math.round(height * k));
  const ctx = c.getContext("2d");
  ctx.drawImage(el, 0, 0, c.width, c.height);
  return c;
}

/** A labelled grey picture (PNG data URL) of the given size: the mirror's placeholder. */
export function placeholder(width, height, label) {
  const w = Math.max(2, Math.min(1600, Math.round(width)));
  const hgt = Math.max(2, Math.min(1600, Math.round(height)));
  const c = document.createElement("canvas");
  c.width = w;
  c.height = hgt;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#e4e4e7";
  ctx.fillRect(0, 0, w, hgt);
  ctx.strokeStyle = "#a1a1aa";
  ctx.strokeRect(0.5, 0.5, w - 1, hgt - 1);
  ctx.fillStyle = "#3f3f46";
  ctx.font = `600 ${Math.max(11, Math.min(18, Math.round(hgt / 8)))}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, w / 2, hgt / 2, w - 16);
  return c.toDataURL("image/png");
}

export class Pixels {
  /**
   * @param {{emit: (event: object) => void, getId: (node: Node) => number, skip: (el: Element) => boolean}} opts
   *   `emit` sends an rrweb event; `skip(el)` is true for blocked or masked elements.
   */
  constructor({ emit, getId, skip }) {
    this.emit = emit;
    this.getId = getId;
    this.skip = skip;
    this.timer = 0;
    this.sent = new Map(); // rrweb id -> last picture sent (base64 or poster URL)
    this.busy = new Map(); // rrweb id -> its placeholder event, shown instead from now on
    this.slow = new Map(); // rrweb id -> encodes in a row that took too long
    this.inFlight = new Set();
    this.turn = 0; // where the next tick starts among the page's canvases
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.running) return;
      // Sampled in an animation frame, after the page's own callbacks of that frame have drawn:
      // a WebGL canvas without preserveDrawingBuffer reads as blank at any other time.
      if (!document.hidden) requestAnimationFrame(() => this.running && this.sample());
      this.schedule(1000 / FPS);
    }, ms);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.sent.clear();
    this.busy.clear();
    this.slow.clear();
  }

  /** After a full snapshot every picture must be sent again (a late joiner starts from it). */
  resend() {
    this.sent.clear();
    if (this.running) this.schedule(0);
  }

  sample() {
    // At most PER_TICK canvases start encoding per tick, taking turns (a page of sparklines
    // must not cost the customer's CPU dozens of encodes a second).
    const canvases = [...document.querySelectorAll("canvas")];
    const start = canvases.length ? this.turn % canvases.length : 0;
    let started = 0;
    for (let k = 0; k < canvases.length && started < PER_TICK; k++) {
      const canvas = canvases[(start + k) % canvases.length];
      const id = this.getId(canvas);
      if (id > 0 && !this.inFlight.has(id) && canvas.width && canvas.height && visible(canvas) && !this.skip(canvas)) {
        this.inFlight.add(id);
        started++;
        this.canvasFrame(canvas, id).finally(() => this.inFlight.delete(id));
      }
    }
    this.turn = start + Math.max(1, started);
    for (const video of document.querySelectorAll("video")) {
      const id = this.getId(video);
      if (id > 0 && visible(video) && !this.skip(video)) this.videoFrame(video, id);
    }
  }

  async canvasFrame(canvas, id) {
    if (this.busy.has(id)) {
      // After a snapshot the placeholder goes again, like any picture.
      if (!this.sent.has(id)) this.emitOnce(id, this.busy.get(id));
      return;
    }
    const started = performance.now();
    let data;
    try {
      let source = canvas;
      if (Math.max(canvas.width, canvas.height) > MAX_SIDE) source = scratchCopy(canvas, canvas.width, canvas.height, MAX_SIDE);
      let blob = await toBlob(source, "image/webp", QUALITY);
      if (blob.size * 1.34 > MAX_FRAME_CHARS) {
        source = scratchCopy(canvas, canvas.width, canvas.height, Math.max(canvas.width, canvas.height) / 2);
        blob = await toBlob(source, "image/webp", 0.45);
      }
      const slow = performance.now() - started > SLOW_ENCODE_MS ? (this.slow.get(id) || 0) + 1 : 0;
      this.slow.set(id, slow);
      if (blob.size * 1.34 > MAX_FRAME_CHARS || slow >= SLOW_TIMES) {
        return this.markBusy(canvas, id, "Live graphic: too busy to mirror");
      }
      data = { base64: b64(await blob.arrayBuffer()), type: blob.type };
    } catch {
      return this.markBusy(canvas, id, "Graphic from another site: not shared");
    }
    // Sent already (a snapshot since may have cleared `sent`: then it goes again).
    if (!this.running || this.sent.get(id) === data.base64) return;
    this.emitOnce(id, { ...data, width: canvas.width, height: canvas.height });
  }

  markBusy(canvas, id, label) {
    const url = placeholder(canvas.width, canvas.height, label);
    const base64 = url.slice(url.indexOf(",") + 1);
    this.busy.set(id, { base64, type: "image/png", width: canvas.width, height: canvas.height });
    this.emitOnce(id, this.busy.get(id));
  }

  emitOnce(id, picture) {
    if (!this.running) return;
    this.sent.set(id, picture.base64);
    this.emit(frameEvent(id, picture.width, picture.height, picture));
  }

  videoFrame(video, id) {
    const poster = videoPoster(video);
    if (!poster || this.sent.get(id) === poster) return;
    this.sent.set(id, poster);
    this.emit({
      type: 3,
      data: { source: 0, texts: [], attributes: [{ id, attributes: { poster } }], removes: [], adds: [] },
      timestamp: Date.now(),
    });
  }
}

/** The video's current frame (WebP data URL), or a labelled placeholder; null before it has a size. */
export function videoPoster(video) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  const box = video.getBoundingClientRect();
  if (!w || !h || video.readyState < 2) {
    if (!box.width || !box.height) return null;
    return placeholder(box.width, box.height, "Video");
  }
  try {
    const side = Math.min(VIDEO_SIDE, Math.max(box.width, box.height) * (devicePixelRatio || 1));
    const url = scratchCopy(video, w, h, side).toDataURL("image/webp", QUALITY);
    if (url.length <= MAX_FRAME_CHARS) return url;
    return scratchCopy(video, w, h, side / 2).toDataURL("image/webp", 0.45);
  } catch {
    return placeholder(w, h, "Video from another site: not shared"); // tainted (no CORS)
  }
}

function frameEvent(id, width, height, { base64, type }) {
  return {
    type: 3,
    data: {
      source: 9, // CanvasMutation, as rrweb's sampled canvas recording emits it
      id,
      type: 0, // 2D
      commands: [
        { property: "clearRect", args: [0, 0, width, height] },
        {
          property: "drawImage",
          args: [
            { rr_type: "ImageBitmap", args: [{ rr_type: "Blob", data: [{ rr_type: "ArrayBuffer", base64 }], type }] },
            0,
            0,
            width,
            height,
          ],
        },
      ],
    },
    timestamp: Date.now(),
  };
}
