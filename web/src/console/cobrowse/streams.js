// Live <video> elements of the customer's page, overlaid on the co-browse view.
//
// The customer's page sends each playing <video> as a WebRTC track on the co-browse media
// channel (snippet/cobrowse/streams.js), tagged with the element's rrweb node id. The replay
// page, which runs the sandboxed mirror, tells us where each mirrored <video> is ("elements"
// messages, see ./replay-page.js); here, in the console page and outside the sandbox, a muted
// <video> playing that track is laid over the mirror at the element's box, clipped to the stage.
// The mirror's own picture of the element (the sampled poster, or a labelled placeholder) stays
// beneath: it shows wherever there is no stream.
//
// The co-browse connection (a Call on the "cobrowse" channel, receive-only) is opened only once
// the customer's page says it streams elements (a "tandem-streams" custom event in the co-browse
// stream), and closed when co-browse ends.

import { h } from "../../shared/dom.js";
import * as live from "../live.js";
import { Call } from "../../shared/rtc.js";

/**
 * @param {{ticketId: string, view: HTMLElement, sharing: () => boolean}} opts
 *   `view` is the positioned box holding the replay iframe (at its top left corner)
 */
export function elementStreams({ ticketId, view, sharing }) {
  const layer = h("div", { class: "cb-streams", "aria-hidden": "true" });
  view.querySelector("iframe").after(layer); // under the notices, over the mirror
  let boxes = [];
  let streamed = false; // the customer's page streams some element
  let call = null;
  let retryAt = 0;

  const newCall = () =>
    new Call({
      request: (event, payload) => live.request(event, { ...payload, ticketId }),
      onChange: () => render(),
      onError: () => {
        call = null;
        retryAt = Date.now() + 10_000;
        render();
      },
      storageKey: `tandem:console:cobrowse-media:${ticketId}`,
      channel: "cobrowse",
    });

  function connect() {
    if (call || !streamed || !sharing() || Date.now() < retryAt) return;
    call = newCall();
    const mine = call;
    mine.start({}).catch(() => {
      if (call === mine) call = null;
      retryAt = Date.now() + 10_000;
    });
  }

  function render() {
    const tracks = new Map();
    if (call && call.active) {
      for (const r of call.remote()) {
        if (r.track.kind === "video" && r.info.source === "element" && r.info.active !== false) tracks.set(r.info.element, r.track);
      }
    }
    const shown = new Set();
    for (const box of boxes) {
      const track = tracks.get(box.id);
      if (!track) continue;
      shown.add(String(box.id));
      let video = layer.querySelector(`video[data-element="${box.id}"]`);
      if (!video) {
        video = h("video", { autoplay: true, playsinline: true, dataset: { element: String(box.id) } });
        video.muted = true;
        layer.append(video);
      }
      if (!video.srcObject || video.srcObject.getTracks()[0] !== track) {
        video.srcObject = new MediaStream([track]);
        video.play().catch(() => {});
      }
      Object.assign(video.style, {
        left: `${box.x}px`,
        top: `${box.y}px`,
        width: `${box.width}px`,
        height: `${box.height}px`,
        objectFit: /^(contain|cover|fill|none|scale-down)$/.test(box.fit) ? box.fit : "contain",
      });
    }
    for (const video of [...layer.children]) if (!shown.has(video.dataset.element)) video.remove();
  }

  return {
    /** An "elements" message from the replay page. */
    elements(m) {
      const stage = m.stage || { x: 0, y: 0, width: 0, height: 0 };
      Object.assign(layer.style, { left: `${stage.x}px`, top: `${stage.y}px`, width: `${stage.width}px`, height: `${stage.height}px` });
      boxes = Array.isArray(m.boxes) ? m.boxes.filter((b) => Number.isInteger(b.id)) : [];
      connect();
      render();
    },
    /** The page's "tandem-streams" announcement: the elements it streams now. */
    announced(ids) {
      streamed = Array.isArray(ids) && ids.length > 0;
      connect();
    },
    /** A socket message of the co-browse channel. */
    server(name, ev) {
      if (ev.ticketId !== ticketId || !call || !call.active || ev.channel !== "cobrowse") return;
      if (name === "rtc.offer") call.serverOffer(ev);
      else call.serverTracks(ev);
    },
    /** Co-browse ended (or the view closes): the connection goes. */
    stop() {
      const c = call;
      call = null;
      retryAt = 0;
      if (c) c.hangUp();
      render();
    },
  };
}
