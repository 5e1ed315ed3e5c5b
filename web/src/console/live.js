// The console's live state: one socket.io connection, the queue and the agent's sessions.
// Views read `store` and subscribe to changes with `on(type, fn)`:
//   "status"   connection changed          "queue"   the queue changed
//   "sessions" a session was added/removed  "session" detail = ticketId: something in it changed

import { io } from "socket.io-client";
import * as auth from "./auth.js";
import { SeqGate, gated } from "../shared/seq.js";

const ACK_TIMEOUT = 10_000;

export const store = {
  connected: false,
  /** @type {Map<string, any>} ticketId -> QueueEntry */
  queue: new Map(),
  /** How many sessions wait in all (the queue map holds the oldest 500 and later arrivals). */
  waiting: 0,
  /** @type {Map<string, Session>} ticketId -> session */
  sessions: new Map(),
  /** The session on screen (its messages are not counted as unread). */
  viewing: null,
};

const bus = new EventTarget();
export function on(type, fn) {
  const listener = (e) => fn(e.detail);
  bus.addEventListener(type, listener);
  return () => bus.removeEventListener(type, listener);
}
function fire(type, detail) {
  bus.dispatchEvent(new CustomEvent(type, { detail }));
}

/**
 * @typedef {object} Session
 * @property {string} id
 * @property {any} ticket TicketSummary
 * @property {any[]} messages transcript, plus our own pending lines ({pending: true})
 * @property {number} lastId
 * @property {{name: string} | null} typing
 * @property {Map<number, any>} timeline
 * @property {Map<string, any>} attachments
 * @property {Map<number, any>} pages the customer's page history (PageVisit by id)
 * @property {number} unread
 * @property {{by: string, at: string} | null} ended
 * @property {string} draft
 */
function session(ticket) {
  let s = store.sessions.get(ticket.id);
  if (!s) {
    s = {
      id: ticket.id,
      ticket,
      messages: [],
      lastId: 0,
      typing: null,
      timeline: new Map(),
      attachments: new Map(),
      notes: new Map(), // internal notes (agents only), by id
      pages: new Map(),
      unread: 0,
      ended: null,
      draft: "",
      typingTimer: 0,
    };
    store.sessions.set(ticket.id, s);
    fire("sessions");
    loadDetails(s);
  }
  s.ticket = ticket;
  if (ticket.status === "closed" && !s.ended) s.ended = { by: "", at: ticket.closedAt };
  return s;
}

/** `inOrder`: every message before this one is held too (it came in a state, or numbered through
 * the gate), so a resume may start after it (`afterMessageId`). An unnumbered event (the server
 * could not number it) or a send's ack may overtake the customer's messages. */
function addMessage(s, message, live, inOrder = true) {
  if (inOrder) s.lastId = Math.max(s.lastId, message.id);
  const i = s.messages.findIndex(
    (m) => m.id === message.id || (message.clientMsgId && m.clientMsgId === message.clientMsgId),
  );
  if (i >= 0) {
    if (!s.messages[i].pending) return;
    s.messages[i] = message;
  } else {
    s.messages.push(message);
    s.messages.sort((a, b) => (a.id || Infinity) - (b.id || Infinity));
  }
  if (live && message.from === "customer") {
    s.typing = null;
    if (store.viewing !== s.id || document.hidden) s.unread += 1;
  }
}

async function loadDetails(s) {
  try {
    const detail = await auth.api(`/api/tickets/${encodeURIComponent(s.id)}`);
    for (const entry of detail.timeline) s.timeline.set(entry.id, entry);
    for (const att of detail.attachments) s.attachments.set(att.id, att);
    for (const note of detail.notes || []) s.notes.set(note.id, note);
    for (const page of detail.pages || []) s.pages.set(page.id, page);
    fire("session", s.id);
  } catch {
    // shown without timeline; live events still arrive
  }
}

let socket = null;
/** Each session's events in order and once; a hole in their numbers resumes that session. */
const gate = new SeqGate((ticketId) => resume(ticketId));
/** [event, fn] pairs registered with onServer(), attached to every socket this module opens. */
const extraHandlers = [];

/** Listen to a server event (e.g. co-browse's) on the console's socket, now and after reconnects. */
export function onServer(event, fn) {
  const pair = [event, fn];
  extraHandlers.push(pair);
  if (socket) socket.on(event, fn);
  return () => {
    extraHandlers.splice(extraHandlers.indexOf(pair), 1);
    if (socket) socket.off(event, fn);
  };
}

export function request(event, payload) {
  return new Promise((resolve) => {
    if (!socket || !socket.connected) {
      return resolve({ ok: false, error: { code: "offline", message: "Not connected" } });
    }
    socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, ack) => {
      resolve(err ? { ok: false, error: { code: "timeout", message: "No answer from server" } } : ack);
    });
  });
}

export function connect() {
  if (socket) return;
  let refreshed = false;
  socket = gated(
    io({
      transports: ["websocket"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 8000,
      auth: (cb) => cb({ v: 2, role: "agent", token: auth.token() }),
    }),
    gate,
  );
  for (const [event, fn] of extraHandlers) socket.on(event, fn);
  socket.on("connect", async () => {
    refreshed = false;
    store.connected = true;
    fire("status");
    await catchUp();
  });
  // The node may have missed events meant for us (several nodes): fetch everything again.
  socket.on("server.resync", () => catchUp());
  async function catchUp() {
    // The oldest page of the queue; later changes arrive as queue.changed.
    const queue = await request("queue.list", { limit: 500 });
    if (queue.ok) {
      store.queue = new Map(queue.entries.map((e) => [e.ticketId, e]));
      store.waiting = queue.waiting ?? queue.entries.length;
      fire("queue");
    }
    const list = await request("session.list", {});
    if (list.ok) for (const ticket of list.sessions) session(ticket);
    // Every session we hold (restored or already open) catches up on what it missed.
    await Promise.all([...store.sessions.values()].map((s) => (s.ended || s.handedOver ? null : resume(s.id))));
  }
  socket.on("disconnect", () => {
    store.connected = false;
    fire("status");
  });
  socket.on("connect_error", async (err) => {
    store.connected = false;
    fire("status");
    const code = err && err.data && err.data.code;
    if (code === "unauthorized" && !refreshed) {
      refreshed = true;
      if (await auth.refresh()) socket.connect();
    } else if (code) {
      auth.logout(`The server refused the connection: ${err.message}`);
    }
  });
  socket.on("server.restarting", ({ reconnectAfterMs }) => {
    socket.disconnect();
    setTimeout(() => socket && socket.connect(), (reconnectAfterMs || 1000) + Math.random() * 1000);
  });
  // Protocol v2: the queue's changes, coalesced by the server (at most one event per 50 ms).
  socket.on("queue.changed", ({ added, removed, waiting, updated }) => {
    for (const entry of added) store.queue.set(entry.ticketId, entry);
    // An entry that changed while waiting (the customer's first message): only if still held.
    for (const entry of updated || []) if (store.queue.has(entry.ticketId)) store.queue.set(entry.ticketId, entry);
    for (const { ticketId } of removed) store.queue.delete(ticketId);
    store.waiting = waiting;
    fire("queue");
  });
  socket.on("session.joined", ({ ticketId, agent }) => {
    const s = store.sessions.get(ticketId);
    if (s && !s.ticket.agents.some((a) => a.id === agent.id)) {
      s.ticket.agents.push(agent);
      fire("session", ticketId);
    }
  });
  // A transfer completed: who is in the session now. When I am the one who left (`left`), the
  // session stays in my sidebar as handed over, and nothing more of it reaches me.
  socket.on("session.transferred", ({ ticketId, agent, left, queued }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    const me = auth.session().agent.id;
    if (left && left.id === me) {
      s.handedOver = { to: agent || null, queued: !!queued };
      s.typing = null;
    } else {
      if (left) s.ticket.agents = s.ticket.agents.filter((a) => a.id !== left.id);
      if (agent && !s.ticket.agents.some((a) => a.id === agent.id)) s.ticket.agents.push(agent);
    }
    fire("session", ticketId);
    fire("sessions");
  });
  socket.on("chat.message", ({ message, seq }) => {
    const s = store.sessions.get(message.ticketId);
    if (!s) return;
    addMessage(s, message, true, typeof seq === "number");
    fire("session", s.id);
    fire("sessions");
  });
  socket.on("chat.typing", ({ ticketId, from, name, typing }) => {
    const s = store.sessions.get(ticketId);
    if (!s || from !== "customer") return;
    clearTimeout(s.typingTimer);
    s.typing = typing ? { name } : null;
    if (typing) {
      s.typingTimer = setTimeout(() => {
        s.typing = null;
        fire("session", ticketId);
      }, 8000);
    }
    fire("session", ticketId);
  });
  socket.on("session.ended", ({ ticketId, by, at }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.ended = { by, at };
    s.typing = null;
    s.ticket.status = "closed";
    s.ticket.closedAt = at;
    fire("session", ticketId);
    fire("sessions");
  });
  socket.on("ticket.timeline", ({ ticketId, entry }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.timeline.set(entry.id, entry);
    fire("session", ticketId);
  });
  socket.on("context.changed", ({ ticketId, context }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.ticket.context = context;
    fire("session", ticketId);
    fire("sessions");
  });
  socket.on("page.visited", ({ ticketId, page }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.pages.set(page.id, page);
    fire("session", ticketId);
  });
  socket.on("attachment.added", ({ ticketId, attachment }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.attachments.set(attachment.id, attachment);
    fire("session", ticketId);
  });
  socket.on("note.added", ({ ticketId, note }) => {
    const s = store.sessions.get(ticketId);
    if (!s) return;
    s.notes.set(note.id, note);
    fire("session", ticketId);
  });
}

/** The notes a session state carries (accept, join, a resume snapshot). */
function takeNotes(s, ack) {
  for (const note of ack.notes || []) s.notes.set(note.id, note);
}

/** Write an internal note on the ticket (agents only; never sent to the customer). */
export async function addNote(ticketId, text) {
  const clientNoteId = "n" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  const ack = await request("note.add", { ticketId, text, clientNoteId });
  const s = store.sessions.get(ticketId);
  if (ack.ok && s) {
    s.notes.set(ack.note.id, ack.note);
    fire("session", ticketId);
  }
  return ack;
}

export function disconnect() {
  if (!socket) return;
  socket.disconnect();
  socket = null;
  store.connected = false;
  store.queue.clear();
  for (const id of store.sessions.keys()) gate.forget(id);
  store.sessions.clear();
}

/** Catch up on a session: the events after the last applied seq, or a snapshot (a session this
 * page has not followed yet, or one the server no longer holds the events of). */
async function resume(ticketId) {
  const s = store.sessions.get(ticketId);
  const afterSeq = s ? gate.last(ticketId) : null;
  const ack = await request("session.resume", {
    ticketId,
    afterMessageId: s ? s.lastId : 0,
    afterSeq: afterSeq === null ? undefined : afterSeq,
  });
  if (!ack.ok) return ack;
  const current = session(ack.ticket);
  if (ack.events) {
    gate.replay(ack.events);
  } else {
    for (const message of ack.messages) addMessage(current, message, false);
    takeNotes(current, ack);
    // A snapshot replaces what we knew, timeline and attachments too.
    if (afterSeq !== null) loadDetails(current);
    gate.start(ticketId, ack.seq);
  }
  for (const m of current.messages) if (m.pending && !m.failed) deliver(current, m);
  fire("session", ticketId);
  return ack;
}

export async function accept(ticketId) {
  const ack = await request("session.accept", { ticketId });
  if (!ack.ok) return ack;
  store.queue.delete(ticketId);
  fire("queue");
  const s = session(ack.ticket);
  for (const message of ack.messages) addMessage(s, message, false);
  takeNotes(s, ack);
  gate.start(ticketId, ack.seq);
  fire("session", ticketId);
  return ack;
}

/** A supervisor or admin joins an active session; it then shows like an accepted one. */
export async function join(ticketId) {
  const ack = await request("session.join", { ticketId });
  if (!ack.ok) return ack;
  const s = session(ack.ticket);
  for (const message of ack.messages) addMessage(s, message, false);
  takeNotes(s, ack);
  gate.start(ticketId, ack.seq);
  fire("session", ticketId);
  return ack;
}

export function send(ticketId, text) {
  const s = store.sessions.get(ticketId);
  if (!s) return;
  const me = auth.session().agent;
  const line = {
    pending: true,
    clientMsgId: "a" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10),
    from: "agent",
    author: me.name,
    text,
    at: new Date().toISOString(),
  };
  s.messages.push(line);
  fire("session", ticketId);
  deliver(s, line);
}

async function deliver(s, line) {
  if (line.inflight) return;
  line.inflight = true;
  const ack = await request("chat.send", {
    ticketId: s.id,
    clientMsgId: line.clientMsgId,
    text: line.text,
  });
  line.inflight = false;
  if (ack.ok) addMessage(s, ack.message, false, false);
  else if (!["offline", "timeout"].includes(ack.error.code)) line.failed = ack.error.message;
  fire("session", s.id);
}

export function retry(ticketId, clientMsgId) {
  const s = store.sessions.get(ticketId);
  const line = s && s.messages.find((m) => m.clientMsgId === clientMsgId);
  if (!line) return;
  line.failed = false;
  deliver(s, line);
}

export function typing(ticketId, value) {
  request("chat.typing", { ticketId, typing: value });
}

export function end(ticketId) {
  return request("session.end", { ticketId });
}

/** Drop an ended session from the sidebar. */
export function dismiss(ticketId) {
  gate.forget(ticketId);
  if (store.sessions.delete(ticketId)) fire("sessions");
}

export function markRead(ticketId) {
  const s = store.sessions.get(ticketId);
  if (s && s.unread) {
    s.unread = 0;
    fire("sessions");
  }
}
