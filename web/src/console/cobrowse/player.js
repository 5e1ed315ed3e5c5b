// Replaying a past co-browse from the ticket: the `recording` attachment (every part of it, in
// order: ./parts.js) is fetched with the bearer token, decompressed and parsed here
// (./recording.js), and played by rrweb's Replayer in the same sandboxed replay page as the live
// view, with play/pause and a progress bar.

import { h } from "../../shared/dom.js";
import { api } from "../auth.js";
import { dateTime } from "../format.js";
import { replayFrame } from "./frame.js";
import { recordingParts } from "./parts.js";
import { parseRecording } from "./recording.js";

export async function openRecording(attachment, all = [attachment]) {
  const status = h("p", { class: "cb-notice", role: "status" }, "Loading the recording…");
  const frame = replayFrame("Co-browse recording", () => {});
  const close = h("button", { type: "button", class: "btn small", onClick: () => dialog.close() }, "Close");
  const dialog = h(
    "dialog",
    { class: "cb-player", "aria-label": "Co-browse recording" },
    h(
      "div",
      { class: "cb-player-inner" },
      h(
        "header",
        { class: "cb-head" },
        h("div", { class: "cb-title" }, h("strong", null, "Co-browse recording"), h("span", { class: "cb-url" }, dateTime(attachment.createdAt))),
        h("div", { class: "cb-tools" }, close),
      ),
      h("div", { class: "cb-view" }, frame.iframe, status),
    ),
  );
  dialog.addEventListener("close", () => {
    frame.destroy();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  try {
    const parts = recordingParts(all, attachment);
    let header = null;
    const events = [];
    for (const part of parts) {
      const res = await api(part.url, { raw: true });
      const parsed = await parseRecording(new Uint8Array(await res.arrayBuffer()));
      header = header || parsed.header;
      for (const event of parsed.events) events.push(event);
    }
    status.hidden = true;
    dialog.dataset.recorder = header.recorder || "";
    dialog.dataset.parts = String(parts.length);
    dialog.dataset.events = String(events.length);
    frame.send({ type: "recording", events });
  } catch (err) {
    status.textContent = `Couldn't play the recording: ${err.message}`;
  }
  return dialog;
}
