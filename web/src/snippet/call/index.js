// The widget's call and upload chunk (lazy, loaded once the visitor has a session): voice,
// camera (front/back) and screen share to the agents, the agents' camera and voice back, prompts
// for what an agent asks (a call, the camera, the screen, a photo), and photo/video uploads.
//
// It plugs into the chat widget (widget.js) without changing it much: it listens on the widget's
// socket and adds its own elements to the panel (a call button in the header, an attach button
// in the composer, the call bar above the conversation and prompts above the composer).

import { h, icon } from "../../shared/dom.js";
import { CALL_ICONS as I } from "../../shared/call-icons.js";
import { Call, cameraTrack, countCameras, mediaErrorText, micTrack, screenTrack } from "../../shared/rtc.js";
import { declineId, declineText, parseInvite } from "../../shared/invite.js";
import { adoptCss } from "../css.js";
import { Uploads } from "./upload.js";
import css from "./call.shadow.css";

export function mount(widget) {
  return new CallUi(widget);
}

const canShareScreen = () =>
  !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) &&
  !/Android|iPhone|iPad|iPod/i.test(navigator.userAgent);

const duration = (ms) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

const ASK_TITLE = {
  voice: (who) => `${who} is calling you`,
  camera: (who) => `${who} would like to see through your camera`,
  screen: (who) => `${who} would like to see your screen`,
};
const ASK_BODY = {
  voice: "Talk with voice right here in your browser. You can mute yourself at any time.",
  camera: "Show them what you're looking at. You can turn the camera off at any time.",
  screen: "They'll see this browser tab only, until you stop sharing.",
};

class CallUi {
  constructor(widget) {
    this.w = widget;
    adoptCss(widget.host.root, css);
    this.cameras = 0;
    this.facing = "user";
    this.busy = false;
    /** ask ("voice" | "camera" | "screen") -> {who, id?}: what agents asked; `id` is the
     * `call.invite` being answered (none for a protocol-v1 console's chat-message invitation). */
    this.asks = new Map();
    /** Our own call request (`call.invite` from the customer) while it rings: its id. */
    this.request = null;
    this.ringer = null;
    this.uploadAsk = null;
    this.call = new Call({
      request: (event, payload) => widget.request(event, payload),
      onChange: () => this.render(),
      onError: (message) => this.showError(message),
      storageKey: `tandem:${widget.config.site}:call`,
    });
    this.uploads = new Uploads(widget, {
      onSent: () => {
        this.uploadAsk = null; // answered
        this.render();
      },
    });
    this.build();
    countCameras().then((n) => {
      this.cameras = n;
      this.render();
    });
    this.timer = setInterval(() => this.call.state === "connected" && this.renderStatus(), 1000);
    this.render();
  }

  // ------------------------------------------------------------------ DOM

  build() {
    const el = (this.el = {});
    const { w } = this;

    el.callBtn = h(
      "button",
      { type: "button", class: "icon-btn call-start", "aria-label": "Start a voice call", title: "Voice call", onClick: () => this.startVoice() },
      icon(I.phone),
    );
    w.el.end.before(el.callBtn);

    el.attach = h(
      "button",
      { type: "button", class: "call-attach", "aria-label": "Send a photo or video", title: "Send a photo or video", onClick: () => this.uploads.pick() },
      icon(I.camera),
    );
    w.el.composer.prepend(el.attach, this.uploads.input);

    // The call bar: what is shared, the agents' video, the controls.
    el.remote = h("div", { class: "call-tiles" });
    el.self = h("video", { class: "call-self", muted: true, autoplay: true, playsinline: true, "aria-label": "Your camera" });
    el.self.muted = true;
    el.audio = h("div", { hidden: true });
    el.status = h("span", { class: "call-status" });
    el.sharing = h("span", { class: "call-sharing" });
    el.timer = h("span", { class: "call-timer", "aria-label": "Call duration" });
    el.mic = this.control("mic", "Mute", () => this.toggleMic());
    el.cam = this.control("cam", "Camera", () => this.toggleCamera());
    el.flip = this.control("flip", "Switch camera", () => this.flip());
    el.screen = this.control("screen", "Share screen", () => this.toggleScreen());
    el.hangUp = h(
      "button",
      { type: "button", class: "call-ctl call-hang", "aria-label": "Hang up", title: "Hang up", onClick: () => this.hangUp() },
      icon(I.hangUp),
    );
    el.flip.append(icon(I.flip));
    el.screen.append(icon(I.screen));
    el.bar = h(
      "section",
      { class: "callbar", "aria-label": "Call" },
      el.remote,
      h("div", { class: "call-row" }, el.self, h("span", { class: "call-live", "aria-hidden": "true" }), h("div", { class: "call-text" }, el.status, el.sharing), el.timer),
      h("div", { class: "call-controls" }, el.mic, el.cam, el.flip, el.screen, el.hangUp),
      el.audio,
    );
    el.error = h("div", { class: "call-error", role: "alert", hidden: true });
    w.el.scroller.before(el.bar, el.error);

    // Prompts (what an agent asks) sit above the composer.
    el.tray = h("div", { class: "call-tray", "aria-live": "polite" });
    w.el.composer.before(el.tray);
  }

  control(name, label, onClick) {
    return h("button", { type: "button", class: `call-ctl ${name}`, "aria-label": label, title: label, "aria-pressed": "false", onClick });
  }

  // ------------------------------------------------------------------ socket

  /** A socket event, forwarded by the bridge (./bridge.js) in the widget chunk. */
  on(name, ev) {
    const ticket = this.w.ticket;
    const mine = (ticketId) => !!ticket && ticketId === ticket.id;
    switch (name) {
      case "rtc.offer":
        if (mine(ev.ticketId) && this.call.active) this.call.serverOffer(ev);
        break;
      case "media.tracks":
        if (mine(ev.ticketId) && this.call.active) this.call.serverTracks(ev);
        break;
      case "call.reoffer":
        if (mine(ev.ticketId) && this.call.active) this.call.rejoin();
        break;
      case "connect":
        // A new socket after a lost one: the server ended our media leg with the old socket
        // (docs/protocol.md, "Calls"), so a call still going here joins again.
        if (this.call.active) this.call.rejoin();
        break;
      case "call.invite": {
        const { invite } = ev;
        if (!mine(ev.ticketId)) break;
        if (invite.from === "customer") {
          this.request = invite.id;
          break;
        }
        if (this.covered(invite.ask)) break;
        this.asks.set(invite.ask, { who: invite.agent ? invite.agent.name : "Support", id: invite.id });
        this.ring(invite.ask);
        this.render();
        break;
      }
      case "call.invite.ended": {
        if (!mine(ev.ticketId)) break;
        for (const [ask, a] of this.asks) if (a.id === ev.inviteId) this.asks.delete(ask);
        if (this.request === ev.inviteId) {
          this.request = null;
          if (ev.reason === "declined" && this.call.active) {
            this.call.hangUp();
            this.showError("Support can't take a call right now. You can keep chatting here.");
          }
        }
        this.stopRinging();
        this.render();
        break;
      }
      case "chat.message": {
        // A protocol-v1 console invites with a chat message (shared/invite.js).
        const ask = mine(ev.message.ticketId) && parseInvite(ev.message);
        if (ask && !this.covered(ask)) {
          this.asks.set(ask, { who: ev.message.author });
          this.attention();
          this.render();
        }
        break;
      }
      case "upload.requested":
        if (!mine(ev.ticketId)) break;
        this.uploadAsk = { agent: ev.agent.name, note: ev.note };
        this.attention();
        this.render();
        break;
      case "attachment.added":
        if (mine(ev.ticketId)) this.uploads.added(ev.attachment);
        break;
      case "session.ended":
        if (!mine(ev.ticketId)) break;
        this.asks.clear();
        this.request = null;
        this.stopRinging();
        this.uploadAsk = null;
        this.call.hangUp();
        this.render();
        break;
    }
  }

  /** Is this ask already satisfied by what we send? */
  covered(ask) {
    const c = this.call;
    if (!c.active) return false;
    if (ask === "voice") return c.sending("microphone");
    if (ask === "camera") return c.sending("camera");
    return c.sending("screen");
  }

  attention() {
    const { host } = this.w;
    if (!host.isOpen()) host.setUnread(++this.w.unread);
  }

  /** An agent's invitation: the panel opens (if collapsed) and a soft ring plays until it is
   * answered, declined or ends (best effort: a page that never had a gesture stays silent). */
  ring(ask) {
    const { host } = this.w;
    if (!host.isOpen() && host.open) host.open();
    this.attention();
    if (ask !== "voice" || this.ringer) return;
    const beep = () => {
      try {
        const ctx = (this.audioCtx = this.audioCtx || new AudioContext());
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 660;
        gain.gain.setValueAtTime(0.08, ctx.currentTime);
        gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.6);
        osc.connect(gain).connect(ctx.destination);
        osc.start();
        osc.stop(ctx.currentTime + 0.6);
      } catch {
        // no audio here: the open panel and its card are the ring
      }
    };
    beep();
    this.ringer = setInterval(() => (this.asks.has("voice") ? beep() : this.stopRinging()), 2000);
  }

  stopRinging() {
    clearInterval(this.ringer);
    this.ringer = null;
  }

  // ------------------------------------------------------------------ actions

  async run(fn) {
    if (this.busy) return;
    this.busy = true;
    this.el.error.hidden = true;
    this.render();
    try {
      await fn();
    } catch (err) {
      this.showError(err.userMessage || err.message || String(err));
    } finally {
      this.busy = false;
      this.render();
    }
  }

  showError(message) {
    this.el.error.textContent = message;
    this.el.error.hidden = false;
    clearTimeout(this.errorTimer);
    this.errorTimer = setTimeout(() => (this.el.error.hidden = true), 8000);
    this.render();
  }

  /** Get a track, translating a refusal into a sentence. */
  async media(what, get) {
    try {
      return await get();
    } catch (err) {
      const e = new Error(mediaErrorText(err, what));
      e.userMessage = e.message;
      throw e;
    }
  }

  /** Start the call with these sources, or add them to the running call. */
  async share(sources) {
    const tracks = {};
    try {
      for (const [source, get, what] of sources) tracks[source] = await this.media(what, get);
    } catch (err) {
      for (const t of Object.values(tracks)) t.stop();
      throw err;
    }
    if (!this.call.active) {
      await this.call.start(tracks);
    } else {
      for (const [source, track] of Object.entries(tracks)) await this.call.send(source, track);
    }
  }

  startVoice() {
    return this.run(async () => {
      await this.share([["microphone", micTrack, "microphone"]]);
      // Ring the agents (a call request); refused if one is in the call already: fine.
      const ack = await this.w.request("call.invite", { ask: "voice" });
      if (ack && ack.ok) this.request = ack.invite.id;
    });
  }

  accept(ask, facing) {
    const asked = this.asks.get(ask);
    this.asks.delete(ask);
    this.stopRinging();
    return this.run(async () => {
      if (asked && asked.id) {
        const ack = await this.w.request("call.accept", { inviteId: asked.id });
        if (!ack.ok) throw Object.assign(new Error(ack.error.message), { userMessage: "That request has ended." });
      }
      const want = [];
      if (ask === "voice" && !this.call.sending("microphone")) want.push(["microphone", micTrack, "microphone"]);
      if (ask === "camera") {
        this.facing = facing || "user";
        want.push(["camera", () => cameraTrack(this.facing), "camera"]);
      }
      if (ask === "screen") want.push(["screen", screenTrack, "screen"]);
      await this.share(want);
    });
  }

  decline(ask) {
    const asked = this.asks.get(ask);
    this.asks.delete(ask);
    this.stopRinging();
    this.render();
    if (asked && asked.id) this.w.request("call.decline", { inviteId: asked.id });
    else this.w.request("chat.send", { clientMsgId: declineId(ask), text: declineText(ask) });
  }

  toggleMic() {
    const c = this.call;
    if (!c.sending("microphone")) return this.run(() => this.share([["microphone", micTrack, "microphone"]]));
    c.setMuted("microphone", !c.isMuted("microphone"));
  }

  toggleCamera() {
    const c = this.call;
    if (c.sending("camera")) return c.stop("camera");
    return this.run(() => this.share([["camera", () => cameraTrack(this.facing), "camera"]]));
  }

  flip() {
    return this.run(async () => {
      const next = this.facing === "user" ? "environment" : "user";
      const old = this.call.localTrack("camera");
      if (old) old.stop(); // phones cannot open both cameras at once
      const track = await this.media("camera", () => cameraTrack(next));
      this.facing = next;
      await this.call.send("camera", track);
    });
  }

  toggleScreen() {
    const c = this.call;
    if (c.sending("screen")) return c.stop("screen");
    return this.run(() => this.share([["screen", screenTrack, "screen"]]));
  }

  hangUp() {
    this.asks.clear();
    this.stopRinging();
    return this.call.hangUp();
  }

  // ------------------------------------------------------------------ render

  /** Called by the widget whenever its view changes, and by us on every call change. */
  update() {
    this.render();
  }

  agentName(participantId) {
    const id = participantId && participantId.startsWith("agent:") ? participantId.slice(6) : "";
    const agents = (this.w.ticket && this.w.ticket.agents) || [];
    const found = agents.find((a) => a.id === id) || (this.w.agent && this.w.agent.id === id ? this.w.agent : null);
    return found ? found.name : "Support";
  }

  render() {
    const { el, call: c, w } = this;
    const view = w.view;
    const active = view === "active";
    const inSession = view === "active" || view === "queued";
    const inCall = c.active;

    el.callBtn.hidden = !active || inCall;
    el.callBtn.disabled = this.busy;
    el.attach.hidden = !inSession;
    el.bar.hidden = !inCall;
    el.bar.dataset.state = c.state;

    if (inCall) {
      const micOn = c.sending("microphone");
      const muted = c.isMuted("microphone");
      el.mic.replaceChildren(icon(micOn && !muted ? I.mic : I.micOff));
      el.mic.setAttribute("aria-label", !micOn ? "Turn on microphone" : muted ? "Unmute" : "Mute");
      el.mic.title = el.mic.getAttribute("aria-label");
      el.mic.setAttribute("aria-pressed", String(micOn && muted));
      el.mic.classList.toggle("call-off", !micOn || muted);

      const camOn = c.sending("camera");
      el.cam.replaceChildren(icon(camOn ? I.video : I.videoOff));
      el.cam.setAttribute("aria-label", camOn ? "Turn off camera" : "Turn on camera");
      el.cam.title = el.cam.getAttribute("aria-label");
      el.cam.setAttribute("aria-pressed", String(camOn));
      el.cam.classList.toggle("call-off", !camOn);
      el.flip.hidden = !(camOn && this.cameras > 1);

      const screenOn = c.sending("screen");
      el.screen.hidden = !canShareScreen();
      el.screen.setAttribute("aria-label", screenOn ? "Stop sharing screen" : "Share screen");
      el.screen.title = el.screen.getAttribute("aria-label");
      el.screen.setAttribute("aria-pressed", String(screenOn));
      el.screen.classList.toggle("call-on", screenOn);
      for (const b of [el.mic, el.cam, el.flip, el.screen]) b.disabled = this.busy;

      const selfTrack = c.localTrack("camera");
      setStream(el.self, selfTrack);
      el.self.hidden = !selfTrack;
      el.self.classList.toggle("call-mirror", this.facing === "user");
      this.renderRemote();
      this.renderStatus();
    } else {
      setStream(el.self, null);
      el.remote.replaceChildren();
      el.audio.replaceChildren();
    }
    this.renderTray(active, inSession);
  }

  renderRemote() {
    const { el, call: c } = this;
    const remote = c.remote();
    const videos = remote.filter((r) => r.track.kind === "video" && r.info.active !== false);
    const audios = remote.filter((r) => r.track.kind === "audio");
    sync(el.remote, videos, (r) => {
      const v = h("video", { autoplay: true, playsinline: true, "aria-label": `${this.agentName(r.info.participantId)}'s ${r.info.source}` });
      v.muted = true;
      setStream(v, r.track);
      return h("div", { class: "call-tile" }, v, h("span", { class: "call-tile-name" }, this.agentName(r.info.participantId)));
    });
    sync(el.audio, audios, (r) => {
      const a = h("audio", { autoplay: true });
      setStream(a, r.track);
      return a;
    });
    el.remote.hidden = !videos.length;
  }

  renderStatus() {
    const { el, call: c } = this;
    const mics = c.others().filter((t) => t.role === "agent" && t.source === "microphone");
    const speakers = [...new Set(mics.map((t) => this.agentName(t.participantId) + (t.muted ? " (muted)" : "")))];
    const shared = [];
    if (c.sending("microphone")) shared.push(c.isMuted("microphone") ? "microphone (muted)" : "microphone");
    if (c.sending("camera")) shared.push("camera");
    if (c.sending("screen")) shared.push("screen");
    let status = "Connecting…";
    if (c.state === "connected") {
      status = speakers.length ? `On a call with ${speakers.join(", ")}` : "Connected to support";
    } else if (c.state === "reconnecting") status = "Reconnecting…";
    el.status.textContent = status;
    el.timer.textContent = c.state === "connected" ? duration(Date.now() - c.startedAt) : "";
    el.sharing.textContent = shared.length ? `Sharing your ${shared.join(", ")}` : "You're not sharing anything";
  }

  renderTray(active, inSession) {
    const { el } = this;
    const cards = [];
    if (active) {
      for (const [ask, asked] of this.asks) {
        if (this.covered(ask)) continue;
        cards.push(this.askCard(ask, asked.who || "Support"));
      }
    }
    if (inSession && this.uploadAsk) cards.push(this.uploadCard());
    // Rebuilt only when what it shows changes (keeps focus and the entry animation).
    const key = JSON.stringify([active && [...this.asks].filter(([ask]) => !this.covered(ask)).map(([ask, a]) => [ask, a.who, a.id]), inSession && this.uploadAsk, this.busy, this.cameras > 1]);
    if (key !== this.trayKey) {
      this.trayKey = key;
      el.tray.replaceChildren(...cards);
    }
    el.tray.hidden = !cards.length;
  }

  askCard(ask, who) {
    const buttons = [];
    if (ask === "camera" && this.cameras > 1) {
      buttons.push(
        h("button", { type: "button", class: "primary call-small", onClick: () => this.accept("camera", "environment") }, icon(I.camera), "Back camera"),
        h("button", { type: "button", class: "call-secondary call-small", onClick: () => this.accept("camera", "user") }, "Front camera"),
      );
    } else {
      const label = ask === "voice" ? "Answer" : ask === "camera" ? "Turn on camera" : "Share screen";
      const glyph = ask === "voice" ? I.phone : ask === "camera" ? I.video : I.screen;
      buttons.push(h("button", { type: "button", class: "primary call-small", disabled: this.busy, onClick: () => this.accept(ask) }, icon(glyph), label));
    }
    buttons.push(h("button", { type: "button", class: "call-ghost call-small", onClick: () => this.decline(ask) }, ask === "voice" ? "Decline" : "Not now"));
    return h(
      "div",
      { class: `call-card call-ask call-ask-${ask}`, role: "group", "aria-label": ASK_TITLE[ask](who) },
      h("div", { class: "call-card-icon", "aria-hidden": "true" }, icon(ask === "voice" ? I.phone : ask === "camera" ? I.video : I.screen)),
      h("div", { class: "call-card-body" }, h("p", { class: "call-card-title" }, ASK_TITLE[ask](who)), h("p", { class: "call-card-text" }, ASK_BODY[ask]), h("div", { class: "call-card-actions" }, buttons)),
    );
  }

  uploadCard() {
    const { agent, note } = this.uploadAsk;
    return h(
      "div",
      { class: "call-card call-ask call-ask-upload", role: "group", "aria-label": `${agent} asked for a photo` },
      h("div", { class: "call-card-icon", "aria-hidden": "true" }, icon(I.image)),
      h(
        "div",
        { class: "call-card-body" },
        h("p", { class: "call-card-title" }, `${agent} asked for a photo or video`),
        note ? h("p", { class: "call-card-note" }, note) : null,
        h(
          "div",
          { class: "call-card-actions" },
          h("button", { type: "button", class: "primary call-small", onClick: () => this.uploads.pick() }, icon(I.camera), "Send a photo or video"),
          h("button", { type: "button", class: "call-ghost call-small", onClick: () => ((this.uploadAsk = null), this.render()) }, "Dismiss"),
        ),
      ),
    );
  }
}

function setStream(media, track) {
  const current = media.srcObject && media.srcObject.getTracks()[0];
  if (current === (track || undefined) || (!track && !media.srcObject)) return;
  media.srcObject = track ? new MediaStream([track]) : null;
  if (track) media.play().catch(() => {});
}

/** Keep one child per item (keyed by mid), creating missing ones and dropping stale ones. */
function sync(parent, items, make) {
  const keep = new Set(items.map((r) => r.mid));
  for (const child of [...parent.children]) if (!keep.has(child.dataset.mid)) child.remove();
  for (const r of items) {
    if (!parent.querySelector(`[data-mid="${CSS.escape(r.mid)}"]`)) {
      const node = make(r);
      node.dataset.mid = r.mid;
      parent.append(node);
    }
  }
}
