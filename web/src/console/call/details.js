// Calls in the details pane and on the ticket page. Video attachments (agent clips, customer
// videos) get a player with the clip's thumbnail as its poster. The bytes need the bearer token, so they are
// fetched into a blob: URL; small files at once, big ones when the agent presses play.

import { h, icon } from "../../shared/dom.js";
import { CALL_ICONS as I } from "../../shared/call-icons.js";
import { blobUrl } from "../auth.js";
import { bytes, capitalize, clock } from "../format.js";

const EAGER_BYTES = 25 * 1024 * 1024;

const mmss = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`;

function cached(blobs, id, url) {
  let p = blobs.get(id);
  if (!p) {
    p = blobUrl(url);
    blobs.set(id, p);
  }
  return p;
}

/**
 * @param {any} a the video attachment
 * @param {Map<string, Promise<string>>} blobs id -> blob URL (revoked by the view)
 * @param {any[]} all every attachment of the ticket (for the thumbnail)
 */
export function videoAttachment(a, blobs, all) {
  const meta = a.meta || {};
  const thumb = meta.thumbnailId && all.find((t) => t.id === meta.thumbnailId);
  const video = h("video", { controls: true, preload: "metadata", playsinline: true, "aria-label": `${capitalize(a.kind)} from ${clock(a.createdAt)}` });
  const box = h("div", { class: "video-box", "data-attachment": a.id }, video);
  if (thumb) cached(blobs, thumb.id, thumb.url).then((src) => (video.poster = src), () => {});
  const load = () => cached(blobs, a.id, a.url).then((src) => (video.src = src));
  if (a.size <= EAGER_BYTES) {
    load().catch(() => box.replaceChildren(h("span", { class: "thumb missing" }, "Could not load")));
  } else {
    video.controls = false;
    const play = h(
      "button",
      {
        type: "button",
        class: "play",
        "aria-label": `Load and play (${bytes(a.size)})`,
        onClick: async () => {
          play.disabled = true;
          await load();
          play.remove();
          video.controls = true;
          video.play().catch(() => {});
        },
      },
      icon(I.play, "icon"),
    );
    box.append(play);
    if (meta.durationS) box.append(h("span", { class: "dur" }, mmss(meta.durationS)));
  }

  const details = [capitalize(a.kind), meta.durationS ? `${Math.round(meta.durationS)} s` : "", meta.width ? `${meta.width}×${meta.height}` : "", bytes(a.size)]
    .filter(Boolean)
    .join(" · ");
  return h("li", { class: "attachment video" }, box, h("span", { class: "att-meta" }, details, " · ", clock(a.createdAt)));
}
