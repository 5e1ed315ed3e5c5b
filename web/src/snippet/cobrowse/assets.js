// Images, fonts and stylesheets the Tandem server could not fetch for the agent's view of this
// page (they need this customer's cookies, or come from a host the server may not or cannot
// reach): the server names them in `cobrowse.assets.needed`, and this browser, which loaded them
// already, sends their bytes back as `cobrowse.assets.supply`.
//
// Only while sharing; only URLs this page itself loaded (resource timing, its images, its
// stylesheets), so the server cannot use this tab to read anything else; cookies go to this
// site's own origin only (credentials: "same-origin"); other hosts must allow CORS; the same
// type allowlist and size cap as the server's.

const MAX_BYTES = 8 * 1024 * 1024;
const PART_CHARS = 880_000; // base64 characters per message: one socket frame carries ~1 MB
const PARALLEL = 4;
const ACK_TIMEOUT = 15_000;
const SEEN_MAX = 5000;
const BATCH_MS = 30;
const TYPES =
  /^(image\/(png|jpe?g|gif|webp|avif|bmp|x-icon|vnd\.microsoft\.icon|svg\+xml)|font\/[a-z0-9.+-]+|application\/(x-)?font-[a-z0-9.+-]+|application\/vnd\.ms-fontobject|application\/octet-stream|text\/css)$/;

export class AssetSupplier {
  /**
   * @param {object} socket the widget's socket.io socket
   * @param {() => boolean} sharing whether this tab is sharing right now
   */
  constructor(socket, sharing) {
    this.socket = socket;
    this.sharing = sharing;
    this.seen = new Set();
    this.outbox = [];
    this.draining = null;
    try {
      this.observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) this.remember(entry.name);
      });
      this.observer.observe({ type: "resource", buffered: true });
    } catch {
      // no resource timing: images and stylesheets of the document still count
    }
    socket.on("cobrowse.assets.needed", (p) => {
      if (this.sharing() && p && Array.isArray(p.assets)) this.supply(p.assets);
    });
  }

  remember(url) {
    if (this.seen.size < SEEN_MAX) this.seen.add(url);
  }

  /** Whether this page loaded `url` itself. */
  loadedByPage(url) {
    if (this.seen.has(url) || performance.getEntriesByName(url).length) return true;
    for (const img of document.images) if (img.currentSrc === url || img.src === url) return true;
    for (const sheet of document.styleSheets) if (sheet.href === url) return true;
    return false;
  }

  async supply(wanted) {
    const queue = wanted.slice(0, 200);
    const work = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) this.queue(await this.fetchOne(item));
    };
    await Promise.all(Array.from({ length: PARALLEL }, work));
  }

  /** The asset as chunks `{id, contentType, url, data, part, parts}`, or `[{id, error}]`. */
  async fetchOne({ id, url }) {
    const failed = (error) => [{ id, error }];
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      return failed("bad_url");
    }
    if (!/^https?:$/.test(parsed.protocol) || !this.loadedByPage(url)) return failed("not_on_page");
    try {
      const res = await fetch(url, { credentials: "same-origin", mode: "cors", cache: "force-cache" });
      const type = (res.headers.get("content-type") || "").split(";")[0].trim().toLowerCase();
      if (!res.ok) return failed(`status_${res.status}`);
      if (!TYPES.test(type)) return failed("bad_type");
      if (Number(res.headers.get("content-length") || 0) > MAX_BYTES) return failed("too_large");
      const blob = await res.blob();
      if (blob.size > MAX_BYTES) return failed("too_large");
      const data = await base64(blob);
      const parts = Math.max(1, Math.ceil(data.length / PART_CHARS));
      return Array.from({ length: parts }, (_, part) => ({
        id,
        contentType: type,
        url: res.url || url,
        data: data.slice(part * PART_CHARS, (part + 1) * PART_CHARS),
        part,
        parts,
      }));
    } catch {
      return failed("fetch_failed"); // network error, or CORS refused a cross-origin read
    }
  }

  /** Send chunks as they are ready, packed into messages of at most PART_CHARS characters. */
  queue(chunks) {
    this.outbox.push(...chunks);
    if (!this.draining) this.draining = this.drain();
  }

  async drain() {
    await sleep(BATCH_MS); // let the other fetches of the same page join
    while (this.outbox.length) {
      const batch = [];
      let size = 0;
      while (this.outbox.length && batch.length < 64) {
        const n = this.outbox[0].data ? this.outbox[0].data.length : 0;
        if (batch.length && size + n > PART_CHARS) break;
        batch.push(this.outbox.shift());
        size += n;
      }
      // One message at a time: the socket's byte budget is shared with the page's own stream.
      for (let attempt = 1; attempt <= 3; attempt++) {
        const ack = await this.emit(batch);
        if (!ack || ack.ok || !ack.error || ack.error.code !== "rate_limited") break;
        await sleep(500 * attempt);
      }
    }
    this.draining = null;
  }

  emit(batch) {
    return new Promise((resolve) => {
      this.socket
        .timeout(ACK_TIMEOUT)
        .emit("cobrowse.assets.supply", { assets: batch }, (err, ack) => resolve(err ? null : ack));
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function base64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
