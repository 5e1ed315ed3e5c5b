// One participant's call: ONE RTCPeerConnection to the Tandem server's media room, shared by the
// widget (customer) and the console (agents).
//
// Negotiation is W3C "perfect negotiation" with this client as the POLITE peer and the server
// impolite (see media/room.py):
//
// * Every signaling step runs in one queue, so an offer, its answer (the rtc.offer ack) and a
//   server offer never interleave on this side.
// * We offer on `negotiationneeded` (first connection, a track added, a sender stopped). If the
//   server has an offer of its own in flight, it refuses ours ("glare", invalid_state): we roll
//   back, wait for its offer (it is already on the wire), answer it, and offer again.
// * A server offer (`rtc.offer` event) is applied and answered with `rtc.answer`; if we somehow
//   hold a local offer at that moment, we roll it back first (the polite side yields). It
//   keeps the payload types and header extension ids we negotiated (the server's media room
//   renumbers aiortc's offers: media/numbering.py), so it is applied as it comes.
// * Our ICE candidates trickle with `rtc.candidate`, held back while an offer is unanswered (the
//   server must have applied the offer before it can take candidates). The server never
//   trickles: its candidates are in its SDP.
//
// Our own media goes out on sendonly transceivers, one per source (microphone, camera, screen),
// labelled by mid in every offer. A Call on the "cobrowse" channel is a second connection beside
// the call: the customer sends page elements on it (source "element:<mirror node id>", labelled
// "element" with the node id in `elements`), agents receive them; every request carries the
// channel and only that channel's server messages may be given to it. Stopping a source sets its transceiver inactive (the server
// ends the publication); starting it again reuses the transceiver. What we receive comes on the
// server's transceivers: each server offer lists which mid carries which track, and
// `media.tracks` carries every track's state (muted, active).


const ELEMENT = "element:";
const CONNECT_TIMEOUT = 20_000;
const GLARE_WAIT = 3_000;

export class CallError extends Error {}

/** A readable sentence for a getUserMedia/getDisplayMedia failure. */
export function mediaErrorText(err, what) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return `Access to your ${what} was blocked. Allow it in your browser's address bar and try again.`;
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") return `No ${what} was found.`;
  if (name === "NotReadableError") return `Your ${what} is in use by another app.`;
  if (name === "AbortError") return `Sharing your ${what} was cancelled.`;
  return `Couldn't use your ${what}${err && err.message ? ` (${err.message})` : ""}.`;
}

export async function countCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === "videoinput").length;
  } catch {
    return 0;
  }
}

export function cameraTrack(facing) {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  if (facing) video.facingMode = { ideal: facing };
  return navigator.mediaDevices.getUserMedia({ video }).then((s) => s.getVideoTracks()[0]);
}

export function micTrack() {
  return navigator.mediaDevices
    .getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } })
    .then((s) => s.getAudioTracks()[0]);
}

export function screenTrack() {
  // preferCurrentTab: Chrome offers this tab first (what a support call usually needs to see).
  return navigator.mediaDevices
    .getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false, preferCurrentTab: true, selfBrowserSurface: "include" })
    .then((s) => s.getVideoTracks()[0]);
}

/**
 * @typedef {object} RemoteTrack
 * @property {string} mid          our mid for it
 * @property {MediaStreamTrack} track
 * @property {any} info            {trackId, participantId, role, kind, source, muted, active}
 */

export class Call {
  /**
   * @param {object} opts
   * @param {(event: string, payload: object) => Promise<any>} opts.request emit with an ack;
   *   the caller adds `ticketId`
   * @param {() => void} opts.onChange anything shown changed
   * @param {(message: string) => void} [opts.onError] the call failed or ended by itself
   * @param {string} [opts.storageKey] sessionStorage key marking "in a call" (stale-call cleanup)
   * @param {"call"|"cobrowse"} [opts.channel] which of the participant's connections this is
   */
  constructor({ request, onChange, onError, storageKey, channel = "call" }) {
    this.channel = channel;
    this.request = channel === "call" ? request : (event, payload) => request(event, { ...payload, channel });
    this.onChange = onChange;
    this.onError = onError || (() => {});
    this.storageKey = storageKey;
    /** "idle" | "connecting" | "connected" | "reconnecting" | "ended" */
    this.state = "idle";
    this.pc = null;
    /** source -> {transceiver, track, muted, facing?} */
    this.local = {};
    /** mid -> track info (from the latest server offer) */
    this.midInfo = new Map();
    /** trackId -> latest state from media.tracks */
    this.trackState = new Map();
    this.queue = Promise.resolve();
    this.offerQueued = false;
    this.holdCandidates = true;
    this.heldCandidates = [];
    this.reoffer = false;
    this.glareTimer = 0;
    this.connectTimer = 0;
    this.startedAt = 0;
    this.participantId = null;
    /** True while moving to another server node (`rejoin`). */
    this.rejoining = false;
  }

  get active() {
    return this.state !== "idle" && this.state !== "ended";
  }

  /** True if this tab was in a call that may still be open on the server (a reload). */
  wasInCall() {
    try {
      return !!(this.storageKey && sessionStorage.getItem(this.storageKey));
    } catch {
      return false;
    }
  }

  mark(on) {
    try {
      if (!this.storageKey) return;
      if (on) sessionStorage.setItem(this.storageKey, "1");
      else sessionStorage.removeItem(this.storageKey);
    } catch {
      // storage blocked
    }
  }

  changed() {
    try {
      this.onChange();
    } catch (err) {
      setTimeout(() => {
        throw err;
      });
    }
  }

  /**
   * Join the room with these tracks (source -> MediaStreamTrack; may be empty: then we only
   * receive). Resolves once the offer is answered; the connection completes in the background.
   */
  async start(tracks = {}) {
    if (this.active) throw new CallError("already in a call");
    this.state = "connecting";
    this.changed();
    try {
      if (this.wasInCall()) await this.request("rtc.leave", {}); // a reload left one behind
      const joined = await this.request("rtc.join", {});
      if (!joined.ok) throw new CallError(joined.error.message);
      this.participantId = joined.participantId;
      const iceServers = (joined.iceServers || []).map((s) => {
        const server = { urls: s.urls };
        if (s.username) server.username = s.username;
        if (s.credential) server.credential = s.credential;
        return server;
      });
      const pc = (this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" }));
      pc.addEventListener("icecandidate", (e) => this.candidate(e.candidate));
      pc.addEventListener("track", () => this.changed());
      pc.addEventListener("negotiationneeded", () => this.negotiate());
      pc.addEventListener("connectionstatechange", () => this.connectionChanged());
      for (const [source, track] of Object.entries(tracks)) if (track) this.attach(source, track);
      if (!pc.getTransceivers().length) pc.addTransceiver("audio", { direction: "recvonly" });
      this.mark(true);
      this.startedAt = Date.now();
      this.connectTimer = setTimeout(() => {
        if (this.state === "connecting") this.fail("The call could not connect. Check your network and try again.");
      }, CONNECT_TIMEOUT);
      await this.enqueue(() => this.offer());
    } catch (err) {
      this.teardown();
      throw err;
    }
  }

  /**
   * The call's media moved to another server node (`call.reoffer`: the node holding it
   * stopped): a new peer connection to the new one, sending the same tracks, muted as before.
   */
  async rejoin() {
    if (!this.active || this.rejoining) return;
    this.rejoining = true;
    const tracks = {};
    const muted = [];
    for (const [source, entry] of Object.entries(this.local)) {
      if (!entry.track) continue;
      tracks[source] = entry.track;
      if (entry.muted) muted.push(source);
    }
    clearTimeout(this.connectTimer);
    clearTimeout(this.glareTimer);
    this.glareTimer = 0;
    if (this.pc) this.pc.close();
    this.pc = null;
    this.local = {};
    this.midInfo.clear();
    this.trackState.clear();
    this.heldCandidates = [];
    this.queue = Promise.resolve();
    this.offerQueued = false;
    this.reoffer = false;
    this.state = "idle";
    try {
      await this.start(tracks);
      for (const source of muted) this.setMuted(source, true);
    } catch (err) {
      this.onError(`The call could not move to another server (${err.message || err}).`);
    } finally {
      this.rejoining = false;
    }
  }

  connectionChanged() {
    const s = this.pc && this.pc.connectionState;
    if (s === "connected") {
      clearTimeout(this.connectTimer);
      this.state = "connected";
    } else if (s === "disconnected" && this.state === "connected") {
      this.state = "reconnecting";
    } else if (s === "failed") {
      return this.fail("The call's connection was lost.");
    }
    this.changed();
  }

  fail(message) {
    if (!this.active) return;
    this.request("rtc.leave", {});
    this.teardown();
    this.onError(message);
  }

  // ------------------------------------------------------------------ negotiation

  enqueue(task) {
    const run = this.queue.then(task);
    this.queue = run.catch((err) => {
      if (this.active) console.warn("Tandem call: negotiation step failed", err);
    });
    return run;
  }

  negotiate() {
    if (this.offerQueued || !this.pc) return;
    this.offerQueued = true;
    this.enqueue(async () => {
      this.offerQueued = false;
      await this.offer();
    });
  }

  async offer() {
    const pc = this.pc;
    if (!pc || pc.signalingState === "closed") return;
    if (pc.signalingState !== "stable" || this.glareTimer) {
      this.reoffer = true; // after the server's offer is answered
      return;
    }
    this.holdCandidates = true;
    try {
      await pc.setLocalDescription();
      const payload = { sdp: pc.localDescription.sdp, labels: this.labels() };
      if (this.channel === "cobrowse") payload.elements = this.elements();
      const ack = await this.request("rtc.offer", payload);
      if (!this.pc) return;
      if (ack.ok) {
        await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
        this.resendMutes();
      } else if (ack.error.code === "invalid_state" && /glare/i.test(ack.error.message)) {
        // The server's offer crossed ours: yield, answer it (it is on its way), then offer again.
        if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
        this.reoffer = true;
        this.glareTimer = setTimeout(() => {
          this.glareTimer = 0;
          if (this.reoffer) {
            this.reoffer = false;
            this.negotiate();
          }
        }, GLARE_WAIT);
      } else {
        if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
        throw new CallError(ack.error.message);
      }
    } finally {
      this.holdCandidates = false;
      this.flushCandidates();
    }
  }

  /** A server `rtc.offer` event for us. */
  serverOffer(msg) {
    if ((msg.channel || "call") !== this.channel) return Promise.resolve(); // the other connection's
    return this.enqueue(async () => {
      const pc = this.pc;
      if (!pc || pc.signalingState === "closed") return;
      if (pc.signalingState === "have-local-offer") {
        await pc.setLocalDescription({ type: "rollback" });
        this.reoffer = true;
      }
      this.midInfo = new Map((msg.tracks || []).map((t) => [t.mid, t]));
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      await pc.setLocalDescription();
      const ack = await this.request("rtc.answer", { sdp: pc.localDescription.sdp });
      if (!ack.ok) console.warn("Tandem call: answer refused", ack.error);
      clearTimeout(this.glareTimer);
      this.glareTimer = 0;
      this.changed();
      if (this.reoffer) {
        this.reoffer = false;
        this.negotiate();
      }
    });
  }

  /** A `media.tracks` event: every published track in the room and its state. */
  serverTracks(msg) {
    if ((msg.channel || "call") !== this.channel) return;
    this.trackState = new Map((msg.tracks || []).map((t) => [t.trackId, t]));
    this.changed();
  }

  candidate(candidate) {
    if (!candidate) return; // end of candidates: nothing to tell the server
    this.heldCandidates.push(candidate.toJSON());
    if (!this.holdCandidates) this.flushCandidates();
  }

  flushCandidates() {
    const list = this.heldCandidates.splice(0);
    for (const candidate of list) this.request("rtc.candidate", { candidate });
  }

  labels() {
    const labels = {};
    for (const [source, entry] of Object.entries(this.local)) {
      if (entry.transceiver.mid) labels[entry.transceiver.mid] = source.startsWith(ELEMENT) ? "element" : source;
    }
    return labels;
  }

  /** mid -> mirror node id of each page element we send (cobrowse channel). */
  elements() {
    const elements = {};
    for (const [source, entry] of Object.entries(this.local)) {
      if (source.startsWith(ELEMENT) && entry.transceiver.mid) elements[entry.transceiver.mid] = Number(source.slice(ELEMENT.length));
    }
    return elements;
  }

  // ------------------------------------------------------------------ our media

  attach(source, track) {
    let entry = this.local[source];
    if (entry && entry.transceiver.currentDirection !== "stopped") {
      entry.transceiver.sender.replaceTrack(track);
      entry.transceiver.direction = "sendonly";
      entry.track = track;
    } else {
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly" });
      entry = this.local[source] = { transceiver, track, muted: false };
    }
    entry.muted = false;
    track.enabled = true;
    if (source === "screen") {
      track.contentHint = "detail";
      track.addEventListener("ended", () => {
        // The browser's own "Stop sharing" button.
        if (this.local.screen && this.local.screen.track === track) this.stop("screen");
      });
    }
    this.changed();
  }

  /** Start sending a source (or swap its track, e.g. the other camera). */
  async send(source, track) {
    if (!this.pc) throw new CallError("not in a call");
    const entry = this.local[source];
    if (entry && entry.track && entry.track !== track && entry.transceiver.direction === "sendonly") {
      // Same source, new track (camera flip): no renegotiation needed.
      const old = entry.track;
      await entry.transceiver.sender.replaceTrack(track);
      entry.track = track;
      old.stop();
      this.changed();
      return;
    }
    this.attach(source, track);
  }

  /** Stop sending a source: the server ends its publication. */
  stop(source) {
    const entry = this.local[source];
    if (!entry || !entry.track) return;
    entry.track.stop();
    entry.track = null;
    entry.transceiver.sender.replaceTrack(null);
    if (this.pc && this.pc.signalingState !== "closed") entry.transceiver.direction = "inactive";
    this.changed();
  }

  sending(source) {
    const entry = this.local[source];
    return !!(entry && entry.track);
  }

  localTrack(source) {
    const entry = this.local[source];
    return (entry && entry.track) || null;
  }

  isMuted(source) {
    const entry = this.local[source];
    return !!(entry && entry.muted);
  }

  setMuted(source, muted) {
    const entry = this.local[source];
    if (!entry || !entry.track) return;
    entry.muted = muted;
    entry.track.enabled = !muted;
    this.changed();
    if (entry.transceiver.mid) this.request("media.track.update", { ref: entry.transceiver.mid, muted });
  }

  resendMutes() {
    for (const entry of Object.values(this.local)) {
      if (entry.muted && entry.track && entry.transceiver.mid) {
        this.request("media.track.update", { ref: entry.transceiver.mid, muted: true });
      }
    }
  }

  // ------------------------------------------------------------------ what we receive

  /** @returns {RemoteTrack[]} tracks the server sends us now, with their latest state. */
  remote() {
    if (!this.pc) return [];
    const out = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const info = transceiver.mid != null && this.midInfo.get(transceiver.mid);
      if (!info || !transceiver.receiver.track) continue;
      const live = this.trackState.get(info.trackId);
      out.push({ mid: transceiver.mid, track: transceiver.receiver.track, info: { ...info, ...(live || {}) } });
    }
    return out;
  }

  /** Tracks published by others, by participant, from media.tracks (what the room holds). */
  others() {
    return [...this.trackState.values()].filter((t) => t.participantId !== this.participantId);
  }

  // ------------------------------------------------------------------ leaving

  async hangUp() {
    if (!this.active) return;
    const leaving = this.request("rtc.leave", {});
    this.teardown();
    await leaving;
  }

  teardown() {
    clearTimeout(this.connectTimer);
    clearTimeout(this.glareTimer);
    this.glareTimer = 0;
    for (const entry of Object.values(this.local)) if (entry.track) entry.track.stop();
    this.local = {};
    if (this.pc) this.pc.close();
    this.pc = null;
    this.midInfo.clear();
    this.trackState.clear();
    this.heldCandidates = [];
    this.state = "ended";
    this.mark(false);
    this.changed();
  }
}
