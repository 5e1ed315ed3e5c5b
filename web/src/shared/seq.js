// Session events in order, each once (docs/protocol.md, "Sequence numbers").
//
// The server numbers every session event per ticket (`seq`: 1, 2, 3, ...). A client keeps the
// last number it applied per ticket and passes events through a SeqGate:
//   - seq <= last: seen already (a replay, or a copy that came two ways): dropped;
//   - seq == last + 1: applied, then whatever was held behind it;
//   - seq > last + 1: something is missing (a dropped socket, a lost bus message): the event is
//     held and, if the hole is still there a moment later, the gate asks for a resume from
//     `last` (`session.resume` with `afterSeq`), whose replayed events fill it.
// Events without `seq` (typing, pointer, co-browse frames, media negotiation) and events of a
// ticket the gate does not track yet pass straight through.
//
// `gated(socket, gate)` is the socket as the rest of the client sees it: listeners of numbered
// events are registered with the gate, so every part of the client gets them in order and once.

/** Server events that carry `seq` (signaling/protocol.py: SessionEvent). */
export const NUMBERED = new Set([
  "session.accepted",
  "session.joined",
  "chat.message",
  "attachment.added",
  "session.ended",
  "ticket.timeline",
  "context.changed",
  "cobrowse.requested",
  "cobrowse.state",
  "control.state",
  "upload.requested",
  "call.invite",
  "call.invite.ended",
  "note.added",
  "page.visited",
]);

/** How long a hole may stay open before the gate asks for a resume (events from two nodes may
 * arrive slightly out of order; the missing one is usually right behind). */
const GAP_GRACE_MS = 250;

export function ticketOf(payload) {
  if (!payload) return null;
  return payload.ticketId || (payload.message && payload.message.ticketId) || null;
}

export class SeqGate {
  /**
   * @param {(ticketId: string, afterSeq: number) => void} resync asks the server for what came
   *   after `afterSeq` (session.resume); the answer goes to replay() or start().
   */
  constructor(resync) {
    this.resync = resync;
    /** @type {Map<string, {last: number, held: Map<number, [string, any]>, timer: any}>} */
    this.lines = new Map();
    /** @type {Map<string, Function[]>} */
    this.listeners = new Map();
  }

  /** The last seq applied for the ticket, or null when it is not tracked. */
  last(ticketId) {
    const line = this.lines.get(ticketId);
    return line ? line.last : null;
  }

  /** A state (help.request, accept, join, or a resume snapshot) says where the ticket stands:
   * it replaces what the gate knew. */
  start(ticketId, seq) {
    if (typeof seq !== "number") return;
    let line = this.lines.get(ticketId);
    if (!line) {
      line = { last: seq, held: new Map(), timer: 0 };
      this.lines.set(ticketId, line);
    }
    line.last = seq;
    for (const held of [...line.held.keys()]) if (held <= seq) line.held.delete(held);
    this.drain(ticketId, line);
  }

  /** A resume's replayed events (in order). */
  replay(events) {
    for (const event of events || []) this.receive(event.type, event);
  }

  forget(ticketId) {
    const line = this.lines.get(ticketId);
    if (line) clearTimeout(line.timer);
    this.lines.delete(ticketId);
  }

  /** Every tracked ticket (what a `server.resync` resumes). */
  tickets() {
    return [...this.lines.keys()];
  }

  on(name, fn) {
    const fns = this.listeners.get(name) || [];
    fns.push(fn);
    this.listeners.set(name, fns);
  }

  off(name, fn) {
    const fns = this.listeners.get(name) || [];
    if (fn) this.listeners.set(name, fns.filter((f) => f !== fn));
    else this.listeners.delete(name);
  }

  receive(name, payload) {
    const ticketId = ticketOf(payload);
    const line = ticketId && this.lines.get(ticketId);
    const seq = payload && payload.seq;
    if (!line || typeof seq !== "number") return this.deliver(name, payload);
    if (seq <= line.last || line.held.has(seq)) return; // seen already
    line.held.set(seq, [name, payload]);
    this.drain(ticketId, line);
  }

  drain(ticketId, line) {
    while (line.held.has(line.last + 1)) {
      const [name, payload] = line.held.get(line.last + 1);
      line.held.delete(line.last + 1);
      line.last += 1;
      this.deliver(name, payload);
      if (this.lines.get(ticketId) !== line) return; // a listener forgot the ticket
    }
    clearTimeout(line.timer);
    line.timer = 0;
    if (line.held.size) {
      line.timer = setTimeout(() => {
        line.timer = 0;
        if (line.held.size && this.lines.get(ticketId) === line) this.resync(ticketId, line.last);
      }, GAP_GRACE_MS);
    }
  }

  deliver(name, payload) {
    for (const fn of [...(this.listeners.get(name) || [])]) {
      try {
        fn(payload);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

/**
 * The socket with numbered events routed through the gate: `on`/`off` of those names register
 * with the gate (which listens on the real socket once per name); everything else is the socket's.
 */
export function gated(socket, gate) {
  const wired = new Set();
  const proxy = new Proxy(socket, {
    get(target, prop) {
      if (prop === "on" || prop === "off") {
        return (name, fn) => {
          if (!NUMBERED.has(name)) {
            target[prop](name, fn);
          } else if (prop === "on") {
            if (!wired.has(name)) {
              wired.add(name);
              target.on(name, (payload) => gate.receive(name, payload));
            }
            gate.on(name, fn);
          } else {
            gate.off(name, fn);
          }
          return proxy;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return proxy;
}
