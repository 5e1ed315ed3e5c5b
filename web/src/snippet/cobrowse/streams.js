// <video> elements (and canvases too busy to sample) shown live in the agent's co-browse view,
// as video rather than pictures.
//
// While co-browse is on, every visible, playing <video> of the page that is neither masked nor
// blocked, and every visible canvas ./pixels.js gave up sampling as too busy, is captured with
// its own `captureStream()` and sent on the co-browse media channel
// (a peer connection to Tandem's media relay beside any call, see shared/rtc.js): one track per
// element, tagged with the element's rrweb node id, which the agent's console overlays on the
// mirrored element. The customer's consent to co-browse covers it: it is a picture of the page
// they share, nothing more (no audio, no other tab, no screen).
//
// Where captureStream() is refused (cross-origin media without CORS throws) or WebRTC is not
// available, nothing is sent here and the sampled pictures (./pixels.js) stay what the agent
// sees: the frames as the mirror's poster, or a labelled placeholder of the element's size.
// Those pictures are sent in any case, for the recording and for an agent without the stream.
// Tab capture cropped to the element (Region Capture) is not used: it would need a consent of
// its own.

import { Call } from "../../shared/rtc.js";

const CHECK_MS = 1000;
const RETRY_MS = 30_000;
const CANVAS_FPS = 10;
const MAX_STREAMS = 4; // a page of autoplaying thumbnails must not upload a dozen videos

function visible(el) {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
}

const playing = (video) => !video.paused && !video.ended && video.readyState >= 2;

/** The element's own video track, or null where the browser refuses (cross-origin pixels). */
function capture(el) {
  const grab = el.captureStream || el.mozCaptureStream;
  if (!grab) return null;
  try {
    const stream = el.localName === "canvas" ? grab.call(el, CANVAS_FPS) : grab.call(el);
    const track = stream.getVideoTracks()[0];
    // "detail": under a tight bitrate keep the resolution and drop frames (what an agent reads
    // in a video is small text and controls, and a blurred picture matches nothing)
    if (track) track.contentHint = "detail";
    return track || null;
  } catch {
    return null; // SecurityError / NotSupportedError: its pictures are placeholders then
  }
}

export class ElementStreams {
  /**
   * @param {{request: (event: string, payload: object) => Promise<any>, getId: (node: Node) => number,
   *          skip: (el: Element) => boolean, busy: (id: number) => boolean,
   *          announce: (ids: number[]) => void, storageKey: string}} opts
   *   `busy(id)` is true for a canvas too busy to sample; `announce(ids)` tells the agents (in
   *   the co-browse stream) which elements are streamed, so their consoles connect for them
   */
  constructor({ request, getId, skip, busy, announce, storageKey }) {
    this.request = request;
    this.busy = busy;
    this.announce = announce;
    this.announced = "[]";
    this.getId = getId;
    this.skip = skip;
    this.storageKey = storageKey;
    this.call = null;
    this.streams = new Map(); // rrweb id -> {video, track}
    this.refused = new WeakSet(); // videos whose captureStream() was refused
    this.queue = Promise.resolve();
    this.timer = 0;
    this.unavailable = typeof RTCPeerConnection === "undefined";
    this.retryAt = 0; // after a failed connection, pictures only for a while
  }

  start() {
    if (this.timer || this.unavailable) return;
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.check();
  }

  /** After a full snapshot: say again what is streamed (a late joiner starts from it). */
  resend() {
    this.announced = null;
    if (this.timer) this.tell();
  }

  tell() {
    const ids = JSON.stringify([...this.streams.keys()].sort((a, b) => a - b));
    if (ids === this.announced) return;
    this.announced = ids;
    this.announce(JSON.parse(ids));
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.announced = "[]";
    this.streams.clear();
    const call = this.call;
    this.call = null;
    if (call) this.enqueue(() => call.hangUp());
  }

  /** A server message of the co-browse channel (`rtc.offer`, `media.tracks`). */
  on(name, ev) {
    if (!this.call || !this.call.active || ev.channel !== "cobrowse") return;
    if (name === "rtc.offer") this.call.serverOffer(ev);
    else if (name === "media.tracks") this.call.serverTracks(ev);
  }

  enqueue(task) {
    this.queue = this.queue.then(task).catch(() => {});
    return this.queue;
  }

  check() {
    if (document.hidden || Date.now() < this.retryAt) return;
    const want = new Map();
    for (const el of document.querySelectorAll("video, canvas")) {
      const id = this.getId(el);
      if (want.size >= MAX_STREAMS) break;
      const live = el.localName === "video" ? playing(el) : this.busy(id);
      if (id > 0 && live && !this.refused.has(el) && visible(el) && !this.skip(el)) want.set(id, el);
    }
    for (const [id, s] of [...this.streams]) {
      if (want.get(id) === s.video && s.track.readyState === "live") continue;
      this.streams.delete(id);
      this.enqueue(() => this.call && this.call.stop(`element:${id}`));
    }
    for (const [id, video] of want) {
      if (this.streams.has(id)) continue;
      const track = capture(video);
      if (!track) {
        this.refused.add(video);
        continue;
      }
      this.streams.set(id, { video, track });
      this.enqueue(() => this.send(id, track));
    }
    this.tell();
  }

  async send(id, track) {
    if (!this.timer || this.streams.get(id)?.track !== track) return track.stop();
    if (!this.call) {
      this.call = new Call({
        request: this.request,
        onChange: () => {},
        onError: () => this.failed(),
        storageKey: this.storageKey,
        channel: "cobrowse",
      });
    }
    const call = this.call;
    if (!call.active) {
      try {
        await call.start({ [`element:${id}`]: track });
      } catch {
        track.stop();
        this.failed();
      }
      return;
    }
    await call.send(`element:${id}`, track);
  }

  /** The connection could not be made or was lost: pictures only, for a while. */
  failed() {
    this.call = null;
    for (const s of this.streams.values()) s.track.stop();
    this.streams.clear();
    this.tell();
    this.retryAt = Date.now() + RETRY_MS;
  }
}
