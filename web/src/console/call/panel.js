// The call area of a session: the agent's call and ask buttons, incoming video tiles with
// Capture / Record clip, the customer's mute state, and the "Ask for photo" form.

import { h, fill, icon } from "../../shared/dom.js";
import { CALL_ICONS as I } from "../../shared/call-icons.js";
import * as live from "../live.js";
import * as calls from "./calls.js";

const SOURCE = { camera: "Camera", screen: "Screen", microphone: "Microphone" };

const mmss = (ms) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

function who(info, session) {
  if (info.role === "customer") return session.ticket.customer.name || "Customer";
  const id = (info.participantId || "").slice(6);
  const agent = session.ticket.agents.find((a) => a.id === id);
  return agent ? agent.name : "Agent";
}

/**
 * @param {any} session live.js Session
 * @param {{toast: (text: string, kind?: string) => void}} ui
 * @returns {{el: HTMLElement, destroy: () => void}}
 */
export function callPanel(session, { toast }) {
  const ticketId = session.id;
  const btn = (label, glyph, onClick, cls = "btn small") =>
    h("button", { type: "button", class: cls, onClick }, icon(glyph, "icon xs"), label);

  const callBtn = btn("Call", I.phone, () => calls.ask(ticketId, "voice"));
  const screenBtn = btn("Ask to share screen", I.screen, () => calls.ask(ticketId, "screen"));
  const cameraBtn = btn("Ask for camera", I.video, () => calls.ask(ticketId, "camera"));
  const photoBtn = btn("Ask for photo", I.image, () => {
    photoForm.hidden = !photoForm.hidden;
    if (!photoForm.hidden) note.focus();
  });

  const status = h("span", { class: "call-state", role: "status" });
  const muteBtn = h("button", { type: "button", class: "btn small icon-only", onClick: () => calls.toggleMute(ticketId) });
  const camBtn = h("button", { type: "button", class: "btn small icon-only", onClick: () => calls.toggleCamera(ticketId) });
  const hangBtn = btn("Hang up", I.hangUp, () => calls.hangUp(ticketId), "btn small danger");
  const inCallControls = h("div", { class: "call-controls" }, status, muteBtn, camBtn, hangBtn);

  const note = h("input", {
    type: "text",
    class: "input",
    maxlength: 200,
    placeholder: "What should the photo show? e.g. the label on the back",
    "aria-label": "Note for the customer",
  });
  const photoForm = h(
    "form",
    {
      class: "photo-form",
      hidden: true,
      onSubmit: async (e) => {
        e.preventDefault();
        const ack = await calls.requestUpload(ticketId, note.value.trim());
        if (!ack.ok) return toast(`Couldn't ask for a photo: ${ack.error.message}`, "error");
        toast("Asked the customer for a photo");
        note.value = "";
        photoForm.hidden = true;
      },
    },
    icon(I.image, "icon sm"),
    note,
    h("button", { type: "submit", class: "btn small primary" }, "Send request"),
    h("button", { type: "button", class: "btn small ghost", onClick: () => (photoForm.hidden = true) }, "Cancel"),
  );

  const banner = h("div", { class: "call-banner", role: "status" });
  const tiles = h("div", { class: "tiles" });
  const people = h("ul", { class: "call-people", "aria-label": "Audio in the call" });
  const selfView = h("video", { class: "self-view", autoplay: true, playsinline: true, "aria-label": "Your camera" });
  selfView.muted = true;
  const stage = h("div", { class: "call-stage" }, tiles, selfView);

  const el = h(
    "section",
    { class: "callpanel", "aria-label": "Call and captures" },
    h("div", { class: "call-toolbar" }, h("div", { class: "call-asks" }, callBtn, screenBtn, cameraBtn, photoBtn), inCallControls),
    photoForm,
    banner,
    stage,
    people,
  );

  async function captureStill(trackId) {
    const ack = await calls.capture(ticketId, trackId);
    if (ack.ok) toast("Screenshot saved to the ticket");
    else toast(`Capture failed: ${ack.error.message}`, "error");
  }
  async function toggleClip(trackId) {
    const e = calls.entry(ticketId);
    if (e.clips.has(trackId)) {
      const ack = await calls.stopClip(ticketId, trackId);
      if (ack.ok) toast(`Clip saved to the ticket (${Math.round(ack.attachment.meta.durationS || 0)} s)`);
      else toast(`Couldn't save the clip: ${ack.error.message}`, "error");
    } else {
      const ack = await calls.startClip(ticketId, trackId);
      if (!ack.ok) toast(`Couldn't record: ${ack.error.message}`, "error");
    }
  }

  function tile(r) {
    const video = h("video", { class: "remote", autoplay: true, playsinline: true });
    video.muted = true; // sound comes through the audio elements
    video.srcObject = new MediaStream([r.track]);
    video.play().catch(() => {});
    const caption = h("span", { class: "vt-name" });
    const mutedBadge = h("span", { class: "vt-badge", hidden: true }, "Paused");
    const capture = h("button", { type: "button", class: "btn small", onClick: () => captureStill(r.info.trackId) }, icon(I.camera, "icon xs"), "Capture");
    const record = h("button", { type: "button", class: "btn small", onClick: () => toggleClip(r.info.trackId) });
    const fig = h(
      "figure",
      { class: "vtile", dataset: { mid: r.mid, trackId: r.info.trackId, source: r.info.source } },
      video,
      h("figcaption", { class: "vt-caption" }, caption, mutedBadge),
      h("div", { class: "vt-actions" }, capture, record),
    );
    fig._update = (info, e) => {
      caption.textContent = `${who(info, session)} · ${SOURCE[info.source] || info.source}`;
      mutedBadge.hidden = !info.muted;
      const busy = e.busy.has(info.trackId);
      capture.disabled = busy;
      record.disabled = busy;
      const clip = e.clips.get(info.trackId);
      fill(record, icon(clip ? I.stop : I.record, "icon xs"), clip ? `Stop · ${mmss(Date.now() - clip.startedAt)}` : "Record clip");
      record.classList.toggle("recording", !!clip);
      record.setAttribute("aria-label", clip ? "Stop recording" : "Record clip");
    };
    return fig;
  }

  function draw() {
    const e = calls.entry(ticketId);
    const c = e.call;
    const ended = !!session.ended;
    const inCall = c.active;
    el.hidden = ended && !inCall;

    for (const b of [callBtn, screenBtn, cameraBtn, photoBtn]) b.disabled = ended || session.ticket.status !== "active";
    callBtn.hidden = inCall && c.sending("microphone");
    inCallControls.hidden = !inCall;

    // Status and own controls.
    if (inCall) {
      const since = c.startedAt ? ` · ${mmss(Date.now() - c.startedAt)}` : "";
      status.textContent = c.state === "connected" ? `In call${since}` : c.state === "reconnecting" ? "Reconnecting…" : "Connecting…";
      status.dataset.state = c.state;
      const micOn = c.sending("microphone");
      const muted = c.isMuted("microphone");
      fill(muteBtn, icon(micOn && !muted ? I.mic : I.micOff, "icon xs"));
      muteBtn.setAttribute("aria-label", !micOn ? "Turn on your microphone" : muted ? "Unmute" : "Mute");
      muteBtn.title = muteBtn.getAttribute("aria-label");
      muteBtn.classList.toggle("off", !micOn || muted);
      const camOn = c.sending("camera");
      fill(camBtn, icon(camOn ? I.video : I.videoOff, "icon xs"));
      camBtn.setAttribute("aria-label", camOn ? "Stop your camera" : "Show your camera to the customer");
      camBtn.title = camBtn.getAttribute("aria-label");
      camBtn.classList.toggle("on", camOn);
    }

    // Banner: problems, pending asks, a customer calling in.
    let text = "";
    let kind = "info";
    let action = null;
    if (e.error) {
      text = e.error;
      kind = "error";
      action = h("button", { type: "button", class: "link-btn", onClick: () => calls.dismiss(ticketId) }, "Dismiss");
    } else if (e.notice) {
      text = e.notice;
      action = h("button", { type: "button", class: "link-btn", onClick: () => calls.dismiss(ticketId) }, "Dismiss");
    } else if (!inCall && !ended && (e.incoming || calls.customerCalling(session))) {
      text = `${session.ticket.customer.name || "The customer"} started a call.`;
      kind = "incoming";
      action = h(
        "span",
        { class: "call-answer" },
        h("button", { type: "button", class: "btn small primary", onClick: () => calls.answerRequest(ticketId, true) }, icon(I.phone, "icon xs"), "Join call"),
        e.incoming ? h("button", { type: "button", class: "btn small ghost", onClick: () => calls.answerRequest(ticketId, false) }, "Decline") : null,
      );
    } else if (inCall && e.asks.size) {
      const asked = [...e.asks.keys()].map((a) => (a === "voice" ? "to join the call" : a === "camera" ? "for their camera" : "to share their screen"));
      text = `Waiting for the customer to answer (asked ${asked.join(", ")})…`;
    }
    banner.hidden = !text;
    banner.className = `call-banner ${kind}`;
    if (text) fill(banner, h("span", null, text), action);

    // Incoming video tiles.
    const remote = inCall ? c.remote() : [];
    const videos = remote.filter((r) => r.track.kind === "video");
    const keep = new Set(videos.map((r) => r.mid));
    for (const child of [...tiles.children]) if (!keep.has(child.dataset.mid)) child.remove();
    for (const r of videos) {
      let fig = tiles.querySelector(`[data-mid="${CSS.escape(r.mid)}"]`);
      if (!fig || fig.dataset.trackId !== r.info.trackId) {
        if (fig) fig.remove();
        fig = tile(r);
        tiles.append(fig);
      }
      fig._update(r.info, e);
    }
    tiles.dataset.count = String(videos.length);

    // Who is in the call with what (their sound plays from calls.js, whatever the view).
    const others = inCall ? c.others() : [];
    const byPerson = new Map();
    for (const t of others) {
      const list = byPerson.get(t.participantId) || [];
      list.push(t);
      byPerson.set(t.participantId, list);
    }
    fill(
      people,
      [...byPerson.values()].map((tracks) => {
        const mic = tracks.find((t) => t.source === "microphone");
        const shares = tracks.filter((t) => t.kind === "video").map((t) => SOURCE[t.source].toLowerCase());
        return h(
          "li",
          { class: `person${mic && mic.muted ? " muted" : ""}`, dataset: { participant: tracks[0].participantId } },
          icon(mic ? (mic.muted ? I.micOff : I.mic) : I.micOff, "icon xs"),
          h("span", { class: "person-name" }, who(tracks[0], session)),
          h("span", { class: "person-state" }, [mic ? (mic.muted ? "muted" : "talking") : "no microphone", ...shares].join(" · ")),
        );
      }),
    );
    people.hidden = !byPerson.size;

    const own = c.localTrack("camera");
    if ((selfView.srcObject && selfView.srcObject.getTracks()[0]) !== (own || undefined)) {
      selfView.srcObject = own ? new MediaStream([own]) : null;
    }
    selfView.hidden = !own;
    stage.hidden = !inCall;
    stage.classList.toggle("empty", !videos.length);
    stage.dataset.empty = videos.length ? "" : c.state === "connected" ? "Nothing shared yet. Ask the customer for their screen or camera." : "Connecting…";
  }

  const offCall = calls.on((id) => id === ticketId && draw());
  const offLive = live.on("session", (id) => id === ticketId && draw());
  const clock = setInterval(() => {
    const e = calls.get(ticketId);
    if (e && e.call.active) draw();
  }, 1000);
  draw();
  return {
    el,
    destroy() {
      offCall();
      offLive();
      clearInterval(clock);
    },
  };
}
