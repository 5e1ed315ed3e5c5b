// The chat widget chunk: the panel's views and the customer's socket.io connection.
// Loaded lazily by loader.js, which hands over the shadow root, the panel and its own state.
//
// Views: start -> (connecting) -> queued -> active -> ended; "resuming" when a stored token
// brings back a session after a reload.

import { io } from "socket.io-client";
import { h, icon, ICONS } from "../shared/dom.js";
import { SeqGate, gated } from "../shared/seq.js";
import { contextPacket, contextPatch, askGeo } from "./context.js";
import { watchLocation } from "./location.js";
import { attachCobrowse } from "./cobrowse/bridge.js";
import { attachCall } from "./call/bridge.js";
import { adoptCss } from "./css.js";
import css from "./widget.shadow.css";

const ACK_TIMEOUT = 10000;
const TYPING_EVERY = 2500; // ms between "typing: true" notices while the customer types
const TYPING_IDLE = 3000; // ms without a keystroke before "typing: false"

const AWAY = {
  no_agents: "No one from our team is available right now",
  closed: "We're closed right now",
  full: "Our team is very busy right now",
};

/** "about 2 minutes" for an estimated wait in seconds. */
function waitText(seconds) {
  const minutes = Math.max(1, Math.round(seconds / 60));
  return minutes === 1 ? "about a minute" : `about ${minutes} minutes`;
}

export function mount(host) {
  return new Widget(host);
}

const newId = () =>
  "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);

const clock = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

const initials = (name) =>
  String(name || "?")
    .split(/\s+/)
    .map((w) => w[0])
    .slice(0, 2)
    .join("")
    .toUpperCase();

class Widget {
  constructor(host) {
    this.host = host;
    this.config = host.config;
    adoptCss(host.root, css);
    const saved = host.storage.get();
    this.token = saved.token || null;
    this.previousToken = saved.prev || null;
    /** @type {Map<string, {clientMsgId: string, text: string, failed?: boolean, inflight?: boolean}>} */
    this.pending = new Map((saved.pending || []).map((p) => [p.clientMsgId, { ...p }]));
    this.view = this.token ? "resuming" : "start";
    this.ticket = null;
    this.agent = null;
    this.position = null;
    this.etaSeconds = null;
    /** Whether an agent can serve now ("open"), or why not: "no_agents", "closed", "full"
     * (the help.request ack); kept with the token so a reload still offers the message form. */
    this.availability = saved.away || "open";
    this.messageLeft = Boolean(saved.left);
    this.lastId = 0;
    this.seen = new Set();
    this.unread = 0;
    this.online = true;
    this.resumedOnce = false;
    this.typingSentAt = 0;
    this.typingTimer = 0;
    this.theirTypingTimer = 0;
    this.contextTimer = 0;
    this.contextDirty = false; // a change not yet taken by the server (sent again on resume)
    // A single-page app changes its address without a page load: each change is a page of the
    // ticket's history, as a load is.
    watchLocation(() => this.contextChanged());
    // Session events in order and once; a hole in their numbers asks for a resume.
    this.gate = new SeqGate(() => this.resume());
    this.build();
    this.update();
    if (this.token) this.connect();
  }

  // ------------------------------------------------------------------ loader hooks

  opened() {
    this.unread = 0;
    this.host.setUnread(0);
    requestAnimationFrame(() => {
      const target =
        this.view === "start"
          ? this.el.first
          : this.view === "ended"
            ? this.el.again
            : this.el.input;
      if (target && !target.disabled) target.focus();
      this.scrollDown();
    });
  }

  contextChanged() {
    if (!this.ticket || this.ticket.status === "closed") return;
    this.contextDirty = true;
    clearTimeout(this.contextTimer);
    this.contextTimer = setTimeout(() => this.sendContext(), 300);
  }

  // ------------------------------------------------------------------ DOM

  build() {
    const el = (this.el = {});
    el.avatar = h("div", { class: "avatar", "aria-hidden": "true" });
    el.title = h("div", { class: "title", id: "tandem-title" });
    el.subtitle = h("div", { class: "subtitle" });
    el.end = h(
      "button",
      { type: "button", class: "text-btn", onClick: () => this.end() },
      "End chat",
    );
    el.close = h(
      "button",
      {
        type: "button",
        class: "icon-btn",
        "aria-label": "Close support chat",
        onClick: () => {
          this.host.close();
          this.host.launcher.focus();
        },
      },
      icon(ICONS.close),
    );
    const header = h(
      "header",
      { class: "head" },
      el.avatar,
      h("div", { class: "who" }, el.title, el.subtitle),
      el.end,
      el.close,
    );

    // Start screen
    el.first = h("textarea", {
      class: "field",
      id: "tandem-first",
      rows: 4,
      maxlength: 10000,
      placeholder: "Tell us what you need (optional)",
      onKeydown: (e) => {
        if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) this.el.startForm.requestSubmit();
      },
    });
    el.geo = h("input", { type: "checkbox", id: "tandem-geo" });
    el.startBtn = h("button", { type: "submit", class: "primary" }, "Start conversation");
    el.startError = h("p", { class: "error", role: "alert", hidden: true });
    el.startForm = h(
      "form",
      {
        class: "start",
        onSubmit: (e) => {
          e.preventDefault();
          this.start();
        },
      },
      h("h2", { class: "hello" }, "How can we help?"),
      h(
        "p",
        { class: "muted" },
        "Ask us anything. A person from our team will join you here, usually within a few minutes.",
      ),
      h("label", { class: "sr-only", for: "tandem-first" }, "Your question"),
      el.first,
      this.config.geo &&
        h(
          "label",
          { class: "check" },
          el.geo,
          h("span", null, "Share my location with the support team"),
        ),
      el.startBtn,
      el.startError,
      h("p", { class: "fineprint" }, "The agent will see this page's address and your browser type."),
    );

    // Conversation
    el.status = h("div", { class: "status", role: "status" });
    el.log = h("ol", { class: "log", "aria-live": "polite", "aria-label": "Conversation" });
    el.typing = h(
      "div",
      { class: "typing", hidden: true, "aria-live": "polite" },
      h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
      h("span", { class: "typing-text" }),
    );
    el.scroller = h("div", { class: "scroller" }, el.log, el.typing);
    el.input = h("textarea", {
      class: "composer-input",
      rows: 1,
      maxlength: 10000,
      placeholder: "Write a message…",
      "aria-label": "Message",
      onKeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submitComposer();
        }
      },
      onInput: () => {
        this.autosize();
        this.typing();
      },
    });
    el.send = h(
      "button",
      { type: "submit", class: "send", "aria-label": "Send message" },
      icon(ICONS.send),
    );
    el.composer = h(
      "form",
      {
        class: "composer",
        onSubmit: (e) => {
          e.preventDefault();
          this.submitComposer();
        },
      },
      el.input,
      el.send,
    );
    el.again = h(
      "button",
      { type: "button", class: "primary", onClick: () => this.startAgain() },
      "Start a new conversation",
    );
    el.ended = h(
      "div",
      { class: "ended" },
      h("p", { class: "ended-title" }, "Conversation ended"),
      h("p", { class: "muted" }, "Thanks for reaching out. Need anything else?"),
      el.again,
    );
    // Leave a message: shown instead of "We'll be with you shortly" when nobody can serve now.
    el.awayText = h("textarea", {
      class: "field",
      id: "tandem-away-text",
      rows: 3,
      maxlength: 10000,
      placeholder: "Your message",
    });
    el.awayEmail = h("input", {
      class: "field",
      id: "tandem-away-email",
      type: "email",
      maxlength: 254,
      placeholder: "you@example.com",
      autocomplete: "email",
    });
    el.awayError = h("p", { class: "error", role: "alert", hidden: true });
    el.away = h(
      "form",
      {
        class: "away",
        onSubmit: (e) => {
          e.preventDefault();
          this.leaveMessage();
        },
      },
      h("label", { for: "tandem-away-text" }, "Leave us a message"),
      el.awayText,
      h("label", { for: "tandem-away-email" }, "Your e-mail address, for our reply"),
      el.awayEmail,
      h("button", { type: "submit", class: "primary" }, "Leave message"),
      el.awayError,
    );
    el.chat = h(
      "div",
      { class: "chat" },
      el.status,
      el.away,
      el.scroller,
      el.composer,
      el.ended,
    );
    el.notice = h("div", { class: "notice", role: "status", hidden: true });

    this.host.panel.setAttribute("aria-labelledby", "tandem-title");
    this.host.panel.replaceChildren(header, el.notice, el.startForm, el.chat);
  }

  update() {
    const { el, view } = this;
    const inChat = view === "queued" || view === "active" || view === "ended" || view === "resuming";
    el.startForm.hidden = view !== "start" && view !== "connecting";
    el.chat.hidden = !inChat;
    el.composer.hidden = view === "ended";
    el.ended.hidden = view !== "ended";
    el.end.hidden = !(view === "queued" || view === "active");
    el.startBtn.disabled = view === "connecting";
    el.startBtn.textContent = view === "connecting" ? "Connecting…" : "Start conversation";
    el.input.disabled = view === "resuming";
    el.notice.hidden = this.online || view === "start";
    el.notice.textContent = "Reconnecting…";

    let title = this.config.title;
    let subtitle = "We usually reply in a few minutes";
    let status = "";
    el.avatar.textContent = "";
    el.avatar.classList.toggle("agent", false);
    if (view === "resuming") subtitle = "Loading your conversation…";
    const away = view === "queued" && this.availability !== "open";
    if (view === "queued" && !away) {
      title = "Waiting for an agent";
      subtitle = "We'll be with you shortly";
      const eta = this.etaSeconds ? ` (${waitText(this.etaSeconds)})` : "";
      status = this.position
        ? `You're number ${this.position} in line${eta}. You can keep writing in the meantime.`
        : "You're in line. You can keep writing in the meantime.";
    }
    if (away) {
      title = "We'll get back to you";
      subtitle = AWAY[this.availability] || AWAY.no_agents;
      status = this.messageLeft
        ? "Thanks, we have your message. We'll reply as soon as someone is back; you can come back to this conversation here."
        : "Leave a message and your e-mail address, and we'll reply as soon as someone is back.";
    }
    el.away.hidden = !away || this.messageLeft;
    if (view === "active" && this.agent) {
      title = this.agent.name;
      subtitle = "Support team · online";
      el.avatar.textContent = initials(this.agent.name);
      el.avatar.classList.add("agent");
    }
    if (view === "ended") {
      title = this.agent ? this.agent.name : this.config.title;
      subtitle = "Conversation ended";
    }
    el.title.textContent = title;
    el.subtitle.textContent = subtitle;
    el.status.textContent = status;
    el.status.hidden = !status;
    el.avatar.hidden = !el.avatar.textContent;
    if (this.calls) this.calls.viewChanged();
  }

  autosize() {
    const input = this.el.input;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }

  scrollDown() {
    const s = this.el.scroller;
    s.scrollTop = s.scrollHeight;
  }

  line(msg) {
    // One <li> per message, keyed by clientMsgId for our own (so the ack updates the pending
    // line in place) and by server id otherwise.
    const key = msg.clientMsgId || `m${msg.id}`;
    let li = this.el.log.querySelector(`li[data-key="${CSS.escape(key)}"]`);
    const mine = msg.from === "customer";
    if (msg.from === "system") {
      const sys = h("li", { class: "system", dataset: { key } }, msg.text);
      li ? li.replaceWith(sys) : this.el.log.append(sys);
      return;
    }
    const meta = msg.pending
      ? msg.failed
        ? h(
            "button",
            { type: "button", class: "retry", onClick: () => this.retry(msg.clientMsgId) },
            "Not sent · Retry",
          )
        : "Sending…"
      : mine
        ? [icon(ICONS.check, "tick"), clock(msg.at)]
        : `${msg.author} · ${clock(msg.at)}`;
    const next = h(
      "li",
      {
        class: `msg ${mine ? "mine" : "theirs"}${msg.pending ? " pending" : ""}`,
        dataset: { key },
      },
      h("div", { class: "bubble" }, msg.text),
      h("div", { class: "meta" }, meta),
    );
    li ? li.replaceWith(next) : this.el.log.append(next);
  }

  systemLine(key, text) {
    this.line({ from: "system", clientMsgId: key, text });
  }

  // ------------------------------------------------------------------ socket

  connect() {
    if (!this.socket) {
      const socket = io(this.config.base, {
        transports: ["websocket"],
        autoConnect: false,
        reconnectionDelay: 500,
        reconnectionDelayMax: 8000,
        auth: (cb) =>
          cb({ v: 1, role: "customer", site: this.config.site, token: this.token || undefined }),
      });
      this.socket = gated(socket, this.gate); // numbered events reach every listener via the gate
      this.listen(this.socket);
      attachCobrowse(this); // co-browse: its own lazily loaded chunk (./cobrowse/)
      this.calls = attachCall(this); // calls and uploads: their own lazy chunk (./call/)
    }
    if (!this.socket.connected) this.socket.connect();
    return new Promise((resolve, reject) => {
      if (this.socket.connected) return resolve();
      const ok = () => {
        this.socket.off("connect_error", bad);
        resolve();
      };
      const bad = (err) => {
        this.socket.off("connect", ok);
        reject(err);
      };
      this.socket.once("connect", ok);
      this.socket.once("connect_error", bad);
    });
  }

  listen(socket) {
    socket.on("connect", () => {
      this.online = true;
      this.update();
      if (this.token) this.resume();
      else this.flush();
    });
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") return;
      this.online = false;
      this.update();
    });
    socket.on("connect_error", (err) => {
      const code = err && err.data && err.data.code;
      if (code === "unauthorized" && this.token) {
        // The token expired or the server's secret changed: forget it, start afresh.
        this.forget();
        this.view = "start";
        this.online = true;
        this.update();
        return;
      }
      if (code) {
        this.online = true;
        this.fail(
          code === "forbidden"
            ? "Support chat isn't available on this website."
            : `Support chat is unavailable (${err.message}).`,
        );
        return;
      }
      this.online = false; // transport error: socket.io keeps retrying
      this.update();
    });
    socket.on("server.resync", () => {
      // The node may have missed events of our session (several nodes): catch up.
      if (this.token) this.resume();
    });
    socket.on("server.restarting", ({ reconnectAfterMs }) => {
      this.online = false;
      this.update();
      socket.disconnect();
      const delay = (reconnectAfterMs || 1000) + Math.random() * 1000;
      setTimeout(() => socket.connect(), delay);
    });
    socket.on("queue.position", (ev) => {
      if (!this.ticket || ev.ticketId !== this.ticket.id) return;
      this.position = ev.position;
      if (ev.estimatedWaitSeconds !== undefined) this.etaSeconds = ev.estimatedWaitSeconds;
      this.update();
    });
    socket.on("session.accepted", (ev) => {
      if (!this.ticket || ev.ticketId !== this.ticket.id) return;
      this.agent = ev.agent;
      this.ticket.status = "active";
      this.view = "active";
      this.systemLine(`joined-${ev.agent.id}`, `${ev.agent.name} joined the conversation`);
      this.update();
      this.scrollDown();
      this.host.emit("accepted", { ticketId: ev.ticketId, agent: ev.agent });
    });
    // Handed to another agent (warm or cold), or back in line for the next one.
    socket.on("session.transferred", (ev) => {
      if (!this.ticket || ev.ticketId !== this.ticket.id) return;
      if (ev.agent) {
        this.agent = ev.agent;
        this.ticket.status = "active";
        this.view = "active";
        this.systemLine(`transferred-${ev.seq ?? ev.agent.id}`, `You're now talking to ${ev.agent.name}`);
      } else if (ev.queued) {
        this.agent = null;
        this.ticket.status = "queued";
        this.view = "queued";
        this.systemLine(`requeued-${ev.seq ?? ""}`, "We're passing you to a colleague. Please hold on.");
      } else {
        return; // only the leaving agent changed: the customer is told when someone takes over
      }
      this.update();
      this.scrollDown();
    });
    socket.on("chat.message", ({ message, seq }) => {
      if (!this.ticket || message.ticketId !== this.ticket.id) return;
      this.addMessage(message, true, typeof seq === "number");
    });
    socket.on("chat.typing", (ev) => {
      if (ev.from !== "agent") return;
      this.showTyping(ev.typing ? ev.name : null);
    });
    socket.on("session.ended", (ev) => {
      if (!this.ticket || ev.ticketId !== this.ticket.id) return;
      this.ended(ev.by);
      this.host.emit("ended", { ticketId: ev.ticketId, by: ev.by });
    });
  }

  request(event, payload) {
    return new Promise((resolve) => {
      if (!this.socket || !this.socket.connected) {
        return resolve({ ok: false, error: { code: "offline", message: "not connected" } });
      }
      this.socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, ack) => {
        resolve(err ? { ok: false, error: { code: "timeout", message: "no answer" } } : ack);
      });
    });
  }

  // ------------------------------------------------------------------ session

  async start() {
    const text = this.el.first.value.trim();
    this.view = "connecting";
    this.el.startError.hidden = true;
    this.update();
    const geo = this.config.geo && this.el.geo.checked ? await askGeo() : null;
    try {
      await this.connect();
    } catch {
      return this.startFailed("We couldn't connect. Check your connection and try again.");
    }
    const state = this.host.state;
    const ack = await this.request("help.request", {
      context: contextPacket(state.app, geo),
      identity: state.identity || undefined,
      previousToken: this.previousToken || undefined,
    });
    if (!ack.ok) return this.startFailed(ack.error.message);
    this.availability = ack.availability || "open";
    this.messageLeft = false;
    this.el.log.replaceChildren();
    this.seen.clear();
    this.lastId = 0;
    this.agent = null;
    this.apply(ack);
    this.resumedOnce = true;
    this.el.first.value = "";
    this.host.emit("ticket", { ticketId: ack.ticket.id, position: ack.position });
    if (text) this.send(text);
    if (this.host.isOpen()) this.el.input.focus();
  }

  /** The leave-a-message form: the address goes into the ticket's context, the text into the
   * conversation; the ticket waits for an agent either way. */
  async leaveMessage() {
    const text = this.el.awayText.value.trim();
    const email = this.el.awayEmail.value.trim();
    const error = this.el.awayError;
    error.hidden = true;
    if (!text && !email) {
      error.textContent = "Write a message or leave your e-mail address.";
      error.hidden = false;
      return;
    }
    if (email) {
      const ack = await this.request("context.update", { context: { replyTo: email } });
      if (!ack.ok) {
        error.textContent = "That e-mail address doesn't look right.";
        error.hidden = false;
        return;
      }
    }
    if (text) this.send(text);
    this.el.awayText.value = "";
    this.messageLeft = true;
    this.save();
    this.update();
  }

  startFailed(message) {
    this.view = "start";
    this.update();
    this.el.startError.textContent = message;
    this.el.startError.hidden = false;
  }

  startAgain() {
    this.view = "start";
    this.el.log.replaceChildren();
    this.update();
    this.el.first.focus();
  }

  /** Catch up after a reconnect, a gap or a resync: the events after the last applied seq, or
   * (after a reload, or when the server no longer holds them) a snapshot. */
  async resume() {
    const afterSeq = this.ticket ? this.gate.last(this.ticket.id) : null;
    const ack = await this.request("session.resume", {
      afterMessageId: this.lastId,
      afterSeq: afterSeq === null ? undefined : afterSeq,
    });
    if (!ack.ok) {
      if (["not_found", "unauthorized", "forbidden"].includes(ack.error.code)) {
        this.forget();
        this.view = "start";
        this.update();
      }
      return;
    }
    if (ack.events && this.ticket && ack.ticket.id === this.ticket.id) {
      if (ack.token) {
        this.token = ack.token;
        this.save();
      }
      if (ack.position) this.position = ack.position;
      this.gate.replay(ack.events);
      this.update();
    } else {
      this.apply(ack);
    }
    // A new page, or a change made while the socket was away.
    if ((!this.resumedOnce || this.contextDirty) && this.ticket.status !== "closed") this.sendContext();
    this.resumedOnce = true;
    this.flush();
  }

  /** Take a SessionState ack (help.request / session.resume). */
  apply(ack) {
    this.ticket = ack.ticket;
    this.position = ack.position || null;
    if (ack.ticket.agents.length) this.agent = ack.ticket.agents[0];
    if (ack.token) {
      this.token = ack.token;
      this.save();
    }
    for (const message of ack.messages) this.addMessage(message, false);
    for (const p of this.pending.values()) this.line({ ...p, from: "customer", pending: true });
    // Where the session stands now; numbered events held behind it follow at once.
    this.gate.start(ack.ticket.id, ack.seq);
    if (this.ticket.status === "closed") return this.ended(null);
    this.view = this.ticket.status === "queued" ? "queued" : "active";
    this.update();
    if (ack.files && this.calls) this.calls.sentFiles(ack.ticket.id, ack.files);
    this.scrollDown();
  }

  /** `inOrder`: every message before this one is held too (it came in a state, or numbered
   * through the gate), so a resume may start after it (`afterMessageId`). An unnumbered event
   * (the server could not number it) or a send's ack may overtake the other side's messages. */
  addMessage(message, live, inOrder = true) {
    if (inOrder) this.lastId = Math.max(this.lastId, message.id);
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (message.clientMsgId && this.pending.delete(message.clientMsgId)) this.save();
    this.line(message);
    if (message.from === "agent") {
      this.showTyping(null);
      if (live) {
        this.host.emit("message", { ticketId: message.ticketId, message });
        if (!this.host.isOpen()) this.host.setUnread(++this.unread);
      }
    }
    this.scrollDown();
  }

  ended(by) {
    this.view = "ended";
    if (this.ticket) this.ticket.status = "closed";
    this.previousToken = this.token || this.previousToken;
    this.token = null;
    this.pending.clear();
    this.save();
    this.showTyping(null);
    if (by) {
      const who = by === "customer" ? "You" : by === "agent" && this.agent ? this.agent.name : "Support";
      this.systemLine("ended", `${who} ended the conversation`);
    }
    this.update();
    this.scrollDown();
    if (this.host.isOpen()) this.el.again.focus();
  }

  async end() {
    const ack = await this.request("session.end", {});
    if (!ack.ok && ack.error.code !== "invalid_state") {
      this.flash(`Couldn't end the chat: ${ack.error.message}`);
    }
  }

  forget() {
    this.token = null;
    this.ticket = null;
    this.pending.clear();
    this.save();
  }

  fail(message) {
    this.view = "start";
    this.update();
    this.el.startError.textContent = message;
    this.el.startError.hidden = false;
    this.host.emit("error", { message });
  }

  flash(message) {
    this.el.notice.textContent = message;
    this.el.notice.hidden = false;
    setTimeout(() => this.update(), 4000);
  }

  save() {
    this.host.storage.set({
      token: this.token || undefined,
      prev: this.previousToken || undefined,
      away: this.token && this.availability !== "open" ? this.availability : undefined,
      left: this.token && this.messageLeft ? 1 : undefined,
      pending: this.pending.size
        ? [...this.pending.values()].map(({ clientMsgId, text }) => ({ clientMsgId, text }))
        : undefined,
    });
  }

  async sendContext() {
    this.contextDirty = false;
    const ack = await this.request("context.update", { context: contextPatch(this.host.state.app) });
    if (!ack.ok && ["offline", "timeout"].includes(ack.error.code)) this.contextDirty = true;
  }

  // ------------------------------------------------------------------ chat

  submitComposer() {
    const text = this.el.input.value.trim();
    if (!text || this.view === "ended") return;
    this.el.input.value = "";
    this.autosize();
    this.send(text);
    this.el.input.focus();
  }

  send(text) {
    const p = { clientMsgId: newId(), text };
    this.pending.set(p.clientMsgId, p);
    this.save();
    this.line({ ...p, from: "customer", pending: true });
    this.scrollDown();
    this.stopTyping();
    this.deliver(p);
  }

  retry(clientMsgId) {
    const p = this.pending.get(clientMsgId);
    if (!p) return;
    p.failed = false;
    this.line({ ...p, from: "customer", pending: true });
    this.deliver(p);
  }

  /** Send every message still waiting for its ack (after a reconnect or a reload). */
  flush() {
    for (const p of this.pending.values()) if (!p.failed) this.deliver(p);
  }

  async deliver(p) {
    if (p.inflight || !this.ticket || !this.socket || !this.socket.connected) return;
    p.inflight = true;
    const ack = await this.request("chat.send", { clientMsgId: p.clientMsgId, text: p.text });
    p.inflight = false;
    if (ack.ok) return this.addMessage(ack.message, false, false);
    const code = ack.error.code;
    if (code === "timeout" || code === "offline") return; // resent on reconnect
    if (code === "rate_limited") return void setTimeout(() => this.deliver(p), 1500);
    p.failed = true;
    this.line({ ...p, from: "customer", pending: true });
  }

  typing() {
    if (!this.ticket || this.view === "ended") return;
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_EVERY) {
      this.typingSentAt = now;
      this.request("chat.typing", { typing: true });
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (!this.typingSentAt) return;
    this.typingSentAt = 0;
    this.request("chat.typing", { typing: false });
  }

  showTyping(name) {
    clearTimeout(this.theirTypingTimer);
    this.el.typing.hidden = !name;
    this.el.typing.querySelector(".typing-text").textContent = name ? `${name} is typing…` : "";
    if (name) {
      // A lost "typing: false" must not leave the dots up forever.
      this.theirTypingTimer = setTimeout(() => this.showTyping(null), 8000);
      this.scrollDown();
    }
  }
}
