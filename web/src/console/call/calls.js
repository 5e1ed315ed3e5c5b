// The agent's calls: one `Call` (shared/rtc.js) per session, kept while the agent moves around
// the console, and the captures made from them. Views subscribe with `on(fn)` (fn(ticketId)).

import { h } from "../../shared/dom.js";
import * as live from "../live.js";
import { Call, CallError, cameraTrack, mediaErrorText, micTrack } from "../../shared/rtc.js";
import { parseDecline } from "../../shared/invite.js";

const bus = new EventTarget();
/** @type {Map<string, Entry>} */
const entries = new Map();

/**
 * @typedef {object} Entry
 * @property {Call} call
 * @property {Map<string, {id: string, at: number}>} asks  what we asked the customer for (call.invite)
 * @property {any} incoming                  the customer's call request ringing here (call.invite), or null
 * @property {Map<string, {clipId: string, startedAt: number}>} clips  by track id
 * @property {Set<string>} busy              track ids with a capture in flight
 * @property {string} error                  last problem, shown in the panel
 * @property {string} notice
 */

export function on(fn) {
  const listener = (e) => fn(e.detail);
  bus.addEventListener("change", listener);
  return () => bus.removeEventListener("change", listener);
}
const fire = (ticketId) => {
  playAudio();
  bus.dispatchEvent(new CustomEvent("change", { detail: ticketId }));
};

/** Remote voices play from one place outside the views, so they go on while the agent browses. */
let speakers = null;
function playAudio() {
  if (!speakers) {
    speakers = h("div", { hidden: true, "data-call-audio": "" });
    document.body.append(speakers);
  }
  const wanted = new Map();
  for (const [ticketId, e] of entries) {
    if (!e.call.active) continue;
    for (const r of e.call.remote()) if (r.track.kind === "audio") wanted.set(`${ticketId}/${r.mid}`, r.track);
  }
  for (const el of [...speakers.children]) {
    if (wanted.get(el.dataset.key) !== el.srcObject.getTracks()[0]) el.remove();
  }
  for (const [key, track] of wanted) {
    if (speakers.querySelector(`[data-key="${CSS.escape(key)}"]`)) continue;
    const a = h("audio", { autoplay: true, dataset: { key } });
    a.srcObject = new MediaStream([track]);
    a.play().catch(() => {});
    speakers.append(a);
  }
}

export function entry(ticketId) {
  let e = entries.get(ticketId);
  if (!e) {
    e = {
      call: null,
      asks: new Map(),
      incoming: null,
      clips: new Map(),
      busy: new Set(),
      error: "",
      notice: "",
    };
    e.call = new Call({
      request: (event, payload) => live.request(event, { ...payload, ticketId }),
      onChange: () => fire(ticketId),
      onError: (message) => {
        e.error = message;
        e.clips.clear();
        fire(ticketId);
      },
      storageKey: `tandem:console:call:${ticketId}`,
    });
    entries.set(ticketId, e);
  }
  return e;
}

export const get = (ticketId) => entries.get(ticketId) || null;

live.onServer("rtc.offer", (ev) => {
  const e = entries.get(ev.ticketId);
  if (e && e.call.active) e.call.serverOffer(ev);
});
live.onServer("connect", () => {
  // A new socket after a lost one: the server ended our media legs with the old socket
  // (docs/protocol.md, "Calls"), so the calls still going here join again.
  for (const e of entries.values()) if (e.call.active) e.call.rejoin();
});
live.onServer("call.reoffer", (ev) => {
  const e = entries.get(ev.ticketId);
  if (e && e.call.active) e.call.rejoin();
});
live.onServer("media.tracks", (ev) => {
  const e = entries.get(ev.ticketId);
  if (!e || !e.call.active) return;
  e.call.serverTracks(ev);
  // An ask is answered once the customer sends what was asked for.
  const sending = new Set(ev.tracks.filter((t) => t.role === "customer").map((t) => t.source));
  if (sending.has("microphone")) e.asks.delete("voice");
  if (sending.has("camera")) e.asks.delete("camera");
  if (sending.has("screen")) e.asks.delete("screen");
  for (const trackId of e.clips.keys()) {
    if (!ev.tracks.some((t) => t.trackId === trackId)) e.clips.delete(trackId); // ended with it
  }
  fire(ev.ticketId);
});
const ASKED = { voice: "the call", camera: "to turn on their camera", screen: "to share their screen" };

live.onServer("call.invite", ({ ticketId, invite }) => {
  if (invite.from !== "customer") return; // ours: the ack told us
  const e = entry(ticketId);
  e.incoming = invite;
  fire(ticketId);
});
live.onServer("call.invite.ended", ({ ticketId, inviteId, ask, reason }) => {
  const e = entries.get(ticketId);
  if (!e) return;
  if (e.incoming && e.incoming.id === inviteId) e.incoming = null;
  const mine = e.asks.get(ask);
  if (mine && mine.id === inviteId) {
    e.asks.delete(ask);
    if (reason === "declined") e.notice = `The customer declined ${ASKED[ask]}.`;
    if (reason === "expired") e.notice = `The customer didn't answer (asked ${ask === "voice" ? "to join the call" : ASKED[ask]}).`;
  }
  fire(ticketId);
});
live.onServer("ticket.timeline", ({ ticketId, entry: item }) => {
  // The customer's page went (closed or reloaded) while in the call: the server ended their
  // media leg at once; so does the console, rather than keep frozen tiles.
  const e = entries.get(ticketId);
  const data = item.data || {};
  if (!e || item.type !== "call.left" || data.participant !== "customer" || data.reason !== "disconnected") return;
  e.asks.clear();
  e.clips.clear();
  if (e.call.active) {
    e.call.hangUp();
    e.notice = "The call ended: the customer left the page (closed or reloaded it).";
  }
  fire(ticketId);
});
// A protocol-v1 widget declines with a chat message (shared/invite.js).
live.onServer("chat.message", ({ message }) => {
  const e = entries.get(message.ticketId);
  const ask = parseDecline(message);
  if (e && ask && e.asks.delete(ask)) {
    e.notice = `The customer declined ${ask === "voice" ? "the call" : ask === "camera" ? "to turn on their camera" : "to share their screen"}.`;
    fire(message.ticketId);
  }
});
live.onServer("session.ended", ({ ticketId }) => {
  const e = entries.get(ticketId);
  if (!e) return;
  e.asks.clear();
  e.incoming = null;
  e.clips.clear();
  e.call.teardown(); // the server closed the room
  fire(ticketId);
});

function fail(ticketId, err) {
  const e = entry(ticketId);
  e.error = err instanceof CallError || err.userMessage ? err.message : `Call failed: ${err.message || err}`;
  fire(ticketId);
}

/** Join the session's call (with the microphone if `mic`), if not in it yet. */
export async function join(ticketId, { mic = true } = {}) {
  const e = entry(ticketId);
  e.error = "";
  e.notice = "";
  if (e.call.active) {
    if (mic && !e.call.sending("microphone")) await addMic(ticketId);
    return true;
  }
  const tracks = {};
  if (mic) {
    try {
      tracks.microphone = await micTrack();
    } catch (err) {
      e.notice = `${mediaErrorText(err, "microphone")} You can still see and hear the customer.`;
    }
  }
  try {
    await e.call.start(tracks);
    return true;
  } catch (err) {
    fail(ticketId, err);
    return false;
  }
}

async function addMic(ticketId) {
  const e = entry(ticketId);
  try {
    await e.call.send("microphone", await micTrack());
  } catch (err) {
    e.error = mediaErrorText(err, "microphone");
    fire(ticketId);
  }
}

/** "Call" / "Ask to share screen" / "Ask for camera": join, then invite the customer
 * (`call.invite`: their widget rings and opens). */
export async function ask(ticketId, what) {
  const e = entry(ticketId);
  if (!(await join(ticketId, { mic: what === "voice" }))) return;
  const ack = await live.request("call.invite", { ticketId, ask: what });
  if (!ack.ok) {
    e.error = `Couldn't ask the customer: ${ack.error.message}`;
  } else {
    e.asks.set(what, { id: ack.invite.id, at: Date.now() });
  }
  fire(ticketId);
}

/** The customer's call request: "Join call" accepts it (then joins), "Decline" declines it. */
export async function answerRequest(ticketId, accept) {
  const e = entry(ticketId);
  const invite = e.incoming;
  e.incoming = null;
  if (invite) {
    const ack = await live.request(accept ? "call.accept" : "call.decline", { ticketId, inviteId: invite.id });
    if (!ack.ok && !accept) e.error = `Couldn't decline: ${ack.error.message}`;
  }
  if (accept) await join(ticketId, { mic: true });
  fire(ticketId);
}

export async function hangUp(ticketId) {
  const e = entries.get(ticketId);
  if (!e) return;
  e.asks.clear();
  e.incoming = null;
  e.clips.clear();
  e.error = "";
  e.notice = "";
  await e.call.hangUp();
  fire(ticketId);
}

export function toggleMute(ticketId) {
  const c = entry(ticketId).call;
  if (!c.sending("microphone")) return addMic(ticketId);
  c.setMuted("microphone", !c.isMuted("microphone"));
}

export async function toggleCamera(ticketId) {
  const e = entry(ticketId);
  if (e.call.sending("camera")) return e.call.stop("camera");
  try {
    await e.call.send("camera", await cameraTrack("user"));
  } catch (err) {
    e.error = mediaErrorText(err, "camera");
    fire(ticketId);
  }
}

export function dismiss(ticketId) {
  const e = entries.get(ticketId);
  if (!e) return;
  e.error = "";
  e.notice = "";
  fire(ticketId);
}

// ------------------------------------------------------------------ captures

/** A full-resolution still of a track, filed on the ticket. Resolves to the ack. */
export async function capture(ticketId, trackId) {
  const e = entry(ticketId);
  e.busy.add(trackId);
  fire(ticketId);
  const ack = await live.request("capture.still", { ticketId, trackId });
  e.busy.delete(trackId);
  fire(ticketId);
  return ack;
}

export async function startClip(ticketId, trackId) {
  const e = entry(ticketId);
  e.busy.add(trackId);
  fire(ticketId);
  const ack = await live.request("capture.clip.start", { ticketId, trackId });
  e.busy.delete(trackId);
  if (ack.ok) e.clips.set(trackId, { clipId: ack.clipId, startedAt: Date.now() });
  fire(ticketId);
  return ack;
}

export async function stopClip(ticketId, trackId) {
  const e = entry(ticketId);
  const clip = e.clips.get(trackId);
  if (!clip) return { ok: false, error: { code: "not_found", message: "not recording" } };
  e.clips.delete(trackId);
  e.busy.add(trackId);
  fire(ticketId);
  const ack = await live.request("capture.clip.stop", { ticketId, clipId: clip.clipId });
  e.busy.delete(trackId);
  fire(ticketId);
  return ack;
}

export function requestUpload(ticketId, note) {
  return live.request("upload.request", { ticketId, note });
}

/** Did the customer start a call (timeline: their last call.joined after any call.left)? */
export function customerCalling(session) {
  let inCall = false;
  for (const entry of [...session.timeline.values()].sort((a, b) => a.id - b.id)) {
    if (!entry.data || entry.data.participant !== "customer") continue;
    if (entry.type === "call.joined") inCall = true;
    if (entry.type === "call.left") inCall = false;
  }
  return inCall;
}
