// The console's end of the replay page (console/replay.html): an iframe on our own origin, fed
// with postMessage. Messages are accepted only from that frame's window and our origin.

import { h } from "../../shared/dom.js";

export const REPLAY_URL = "/console/replay.html";

/**
 * @param {string} title accessible name of the frame
 * @param {(message: any) => void} onMessage messages from the replay page (not "ready")
 */
export function replayFrame(title, onMessage) {
  const iframe = h("iframe", {
    class: "cb-frame",
    src: REPLAY_URL,
    title,
    referrerpolicy: "no-referrer",
  });
  let ready = false;
  let backlog = [];
  const listener = (event) => {
    if (event.source !== iframe.contentWindow || event.origin !== location.origin) return;
    const m = event.data;
    if (!m || m.tandem !== "replay") return;
    if (m.type === "ready") {
      ready = true;
      for (const msg of backlog) iframe.contentWindow.postMessage(msg, location.origin);
      backlog = [];
      return;
    }
    onMessage(m);
  };
  window.addEventListener("message", listener);
  return {
    iframe,
    /** Send to the replay page (queued until it says it is ready). */
    send(message) {
      const msg = { tandem: "replay", ...message };
      if (ready && iframe.contentWindow) iframe.contentWindow.postMessage(msg, location.origin);
      else backlog.push(msg);
    },
    /** After the iframe was moved or reloaded: wait for its next "ready". */
    reset() {
      ready = false;
      backlog = [];
    },
    destroy() {
      window.removeEventListener("message", listener);
      backlog = [];
    },
  };
}
