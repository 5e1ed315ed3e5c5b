// Photo and video uploads from the widget: POST /api/uploads with the session token, progress
// from XHR, the server's refusal turned into a plain sentence, and the file shown in the chat as
// the customer's own item.

import { h, icon, ICONS } from "../../shared/dom.js";
import { CALL_ICONS as I } from "../../shared/call-icons.js";

const MB = 1024 * 1024;
const LIMITS = { image: 20 * MB, video: 200 * MB };
const TYPES = ["image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm"];
const PHONE = /Android|iPhone|iPad|iPod/i;

const sizeText = (n) => (n >= MB ? `${(n / MB).toFixed(n >= 10 * MB ? 0 : 1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`);
const isVideo = (type) => (type || "").startsWith("video/");

/** A refusal from the server (or the network) as a sentence for the customer. */
export function uploadError(status, body, file) {
  const err = (body && body.error) || {};
  const reason = err.reason || err.code || "";
  const video = isVideo(file.type);
  if (status === 413 || reason === "too_large") {
    return `That file is too large (max ${video ? "200" : "20"} MB).`;
  }
  if (reason === "type_mismatch") {
    return "That file isn't a real PNG, JPEG, WebP, MP4 or WebM file (its contents don't match its name). Please send a photo or video in one of those formats.";
  }
  if (status === 415 || reason === "unsupported_type") {
    return "That type of file can't be sent. Please send a photo (JPEG, PNG or WebP) or a video (MP4 or WebM).";
  }
  if (reason === "image_bomb") return "That image has too many pixels to process (over 40 megapixels).";
  if (reason === "corrupt" || status === 422) return "That file seems to be damaged and couldn't be read.";
  if (status === 401) return "Your chat session has expired. Reload the page and try again.";
  if (status === 409) return "This conversation has ended, so files can't be sent anymore.";
  if (status === 429) return "Too many uploads at once. Please wait a moment and try again.";
  if (!status) return "The upload didn't go through. Check your connection and try again.";
  return `The upload failed (${err.message || `error ${status}`}).`;
}

export class Uploads {
  constructor(widget, { onSent }) {
    this.w = widget;
    this.onSent = onSent;
    this.items = new Map(); // attachment id -> <li>
    this.inflight = 0;
    this.deferred = []; // attachment.added events that may be one of our uploads in flight
    this.input = h("input", {
      type: "file",
      accept: "image/*,video/*",
      class: "sr-only",
      tabindex: "-1",
      "aria-label": "Photo or video to send",
      onChange: () => {
        for (const file of [...this.input.files]) this.send(file);
        this.input.value = "";
      },
    });
    this.input.hidden = true;
    if (PHONE.test(navigator.userAgent)) this.input.setAttribute("capture", "environment");
  }

  pick() {
    this.input.click();
  }

  /** `attachment.added`: ours from another tab, or the agent's captures (said in a line). */
  added(a) {
    if (this.items.has(a.id) || a.kind === "thumbnail") return;
    if (a.kind === "agent_file") {
      this.items.set(a.id, null);
      this.append(this.received(a));
      return;
    }
    if (a.kind === "photo" || a.kind === "video") {
      if (this.inflight) return void this.deferred.push(a); // maybe ours: wait for its answer
      const li = this.item({ key: a.id, name: a.kind === "photo" ? "Photo" : "Video", size: a.size });
      this.done(li, a);
      this.append(li);
      return;
    }
    const by = (a.meta && a.meta.by) || "The agent";
    const what =
      a.kind === "screenshot"
        ? `${by} saved a picture of your ${a.meta && a.meta.source === "screen" ? "screen" : "camera"}`
        : a.kind === "clip"
          ? `${by} saved a ${Math.round((a.meta && a.meta.durationS) || 0)}-second clip of your ${a.meta && a.meta.source === "screen" ? "screen" : "video"}`
          : "";
    if (what) {
      this.items.set(a.id, null);
      this.append(h("li", { class: "system", dataset: { key: `att-${a.id}` } }, what));
    }
  }

  /** A photo or video the agent sent: shown, with a link to download it. Its `url` is a signed
   * link to that one file (the widget has no bearer token an <img> could send). */
  received(a) {
    const src = `${this.w.config.base}${a.url.replace(/^\//, "")}`;
    const by = (a.meta && a.meta.by && a.meta.by.name) || "The agent";
    const video = isVideo(a.contentType);
    const what = video ? "video" : "photo";
    const preview = video
      ? h("video", { class: "call-up-thumb agent-file-media", src, controls: true, playsinline: true, preload: "metadata" })
      : h("a", { href: src, target: "_blank", rel: "noopener" }, h("img", { class: "call-up-thumb agent-file-media", src, alt: `${what} from ${by}` }));
    return h(
      "li",
      { class: "msg theirs agent-file", dataset: { key: `att-${a.id}` } },
      h(
        "div",
        { class: "bubble call-up-bubble" },
        preview,
        h(
          "div",
          { class: "call-up-text" },
          h("span", { class: "call-up-name" }, `${by} sent you a ${what}`),
          h("span", { class: "call-up-size" }, sizeText(a.size)),
          h("a", { class: "agent-file-download", href: src, download: "", target: "_blank", rel: "noopener" }, "Download"),
        ),
      ),
    );
  }

  append(li) {
    this.w.el.log.append(li);
    this.w.scrollDown();
  }

  item({ key, name, size, preview, type }) {
    const thumb = preview
      ? isVideo(type)
        ? h("video", { class: "call-up-thumb", src: preview, muted: true, playsinline: true, preload: "metadata" })
        : h("img", {
            class: "call-up-thumb",
            src: preview,
            alt: "",
            // Not a picture the browser can show (or not a picture at all): an icon instead.
            onError: (e) => e.target.replaceWith(h("span", { class: "call-up-icon", "aria-hidden": "true" }, icon(I.image))),
          })
      : h("span", { class: "call-up-icon", "aria-hidden": "true" }, icon(isVideo(type) || name === "Video" ? I.video : I.image));
    const bar = h("span", { class: "call-up-bar" });
    const progress = h("span", {
      class: "call-up-progress",
      role: "progressbar",
      "aria-label": `Uploading ${name}`,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": "0",
    }, bar);
    const meta = h("div", { class: "meta" }, "Sending…");
    const li = h(
      "li",
      { class: "msg mine call-upload pending", dataset: { key: `up-${key}` } },
      h(
        "div",
        { class: "bubble call-up-bubble" },
        thumb,
        h("div", { class: "call-up-text" }, h("span", { class: "call-up-name" }, name), h("span", { class: "call-up-size" }, sizeText(size)), progress),
      ),
      meta,
    );
    li._parts = { bar, progress, meta };
    return li;
  }

  send(file) {
    const type = file.type || "application/octet-stream";
    const preview = TYPES.includes(type) ? URL.createObjectURL(file) : null;
    const li = this.item({ key: Math.random().toString(36).slice(2), name: file.name || "Photo", size: file.size, preview, type });
    this.append(li);
    this.onSent();
    const limit = isVideo(type) ? LIMITS.video : LIMITS.image;
    if (file.size > limit) return this.failed(li, uploadError(413, null, file), file);
    this.upload(li, file, type);
  }

  upload(li, file, type) {
    const { bar, progress, meta } = li._parts;
    li.classList.add("pending");
    li.classList.remove("call-failed");
    meta.replaceChildren("Sending…");
    progress.hidden = false;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${this.w.config.base}api/uploads`);
    xhr.setRequestHeader("Authorization", `Bearer ${this.w.token}`);
    xhr.setRequestHeader("Content-Type", type);
    xhr.responseType = "json";
    this.inflight += 1;
    const settled = () => {
      this.inflight -= 1;
      if (!this.inflight) for (const a of this.deferred.splice(0)) this.added(a);
    };
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded / e.total) * 100);
      bar.style.width = `${pct}%`;
      progress.setAttribute("aria-valuenow", String(pct));
      meta.textContent = pct < 100 ? `Sending… ${pct}%` : "Checking…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201 && xhr.response && xhr.response.attachment) {
        this.done(li, xhr.response.attachment);
      } else {
        this.failed(li, uploadError(xhr.status, xhr.response, file), file, type);
      }
      settled();
    });
    xhr.addEventListener("error", () => {
      this.failed(li, uploadError(0, null, file), file, type);
      settled();
    });
    xhr.send(file);
  }

  done(li, attachment) {
    const { progress, meta } = li._parts;
    this.items.set(attachment.id, li);
    li.classList.remove("pending");
    progress.hidden = true;
    meta.replaceChildren(icon(ICONS.check, "tick"), "Sent to support");
  }

  failed(li, message, file, type) {
    const { progress, meta } = li._parts;
    li.classList.remove("pending");
    li.classList.add("call-failed");
    progress.hidden = true;
    const retry =
      type && message.includes("connection")
        ? h("button", { type: "button", class: "retry", onClick: () => this.upload(li, file, type) }, "Retry")
        : null;
    meta.replaceChildren(...[h("span", { class: "call-up-error", role: "alert" }, icon(I.alert, "tick"), message), retry].filter(Boolean));
  }
}
