// Push routing in the console: the agent's status (one for all their tabs), and the session
// offered to them ringing (a sound and a desktop notification, each switchable here) until
// they accept or decline it, or it rings out (the server then offers it to the next agent).

import { h, fill } from "../shared/dom.js";
import * as live from "./live.js";
import { customerName } from "./format.js";

const PREFS = "tandem.ring";
const LABELS = { available: "Available", away: "Away", busy: "Busy", wrap_up: "Wrap-up", offline: "Offline" };

function prefs() {
  try {
    return { sound: true, notify: false, ...JSON.parse(localStorage.getItem(PREFS) || "{}") };
  } catch {
    return { sound: true, notify: false };
  }
}

function savePrefs(value) {
  localStorage.setItem(PREFS, JSON.stringify(value));
}

/** A short two-tone ring through Web Audio (no sound file to ship). */
function ring() {
  try {
    const audio = new AudioContext();
    [0, 0.25].forEach((at, i) => {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = i ? 660 : 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.2);
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + at + 0.22);
    });
    setTimeout(() => audio.close(), 800);
  } catch {
    // No audio (autoplay blocked before any click): the card still shows.
  }
}

/** The status picker, the ring switches and the ringing offers; ``onAccepted`` opens a session. */
export function offersPanel({ meId, onAccepted, toast }) {
  const ringing = new Map(); // ticketId -> {offer, notification}
  let current = { status: "offline", reason: null };
  const statusLabel = h("span", { class: "agent-status" });
  const picker = h(
    "select",
    { "aria-label": "Your status", class: "status-pick" },
    ...["available", "away", "offline"].map((s) => h("option", { value: s }, LABELS[s])),
  );
  picker.addEventListener("change", async () => {
    const payload = { status: picker.value };
    if (picker.value === "away") payload.reason = "break";
    const ack = await live.request("agent.status", payload);
    if (!ack.ok) toast(`Couldn't change status: ${ack.error.message}`, "error");
  });
  const switches = prefs();
  const toggle = (key, text) => {
    const box = h("input", { type: "checkbox" });
    box.checked = !!switches[key];
    box.addEventListener("change", async () => {
      if (key === "notify" && box.checked && "Notification" in window) {
        box.checked = (await Notification.requestPermission()) === "granted";
      }
      switches[key] = box.checked;
      savePrefs(switches);
    });
    return h("label", { class: "ring-switch" }, box, text);
  };
  const cards = h("div", { class: "offers", "aria-live": "assertive" });
  const panel = h(
    "div",
    { class: "routing" },
    h("div", { class: "status-row" }, statusLabel, picker),
    h("div", { class: "ring-switches" }, toggle("sound", "Sound"), toggle("notify", "Desktop notification")),
    cards,
  );

  const drawStatus = () => {
    statusLabel.textContent = LABELS[current.status] + (current.reason ? ` (${current.reason})` : "");
    statusLabel.dataset.status = current.status;
    if (["available", "away", "offline"].includes(current.status)) picker.value = current.status;
  };

  const stop = (ticketId) => {
    const held = ringing.get(ticketId);
    if (!held) return;
    clearInterval(held.timer);
    if (held.notification) held.notification.close();
    ringing.delete(ticketId);
    drawCards();
  };

  const answer = async (ticketId, accept) => {
    if (accept) {
      const ack = await live.accept(ticketId);
      stop(ticketId);
      if (ack.ok) onAccepted(ticketId);
      else toast(`Couldn't accept: ${ack.error.message}`, "error");
    } else {
      await live.request("session.decline", { ticketId });
      stop(ticketId);
    }
  };

  function drawCards() {
    fill(
      cards,
      [...ringing.values()].map(({ offer }) => {
        // The queue's copy is newer when the customer wrote their first message meanwhile.
        const first = (live.store.queue.get(offer.ticketId) || {}).firstMessage || offer.entry.firstMessage;
        return h(
          "div",
          { class: "offer-card", role: "alert" },
          h(
            "div",
            { class: "offer-who" },
            offer.transfer
              ? `${offer.transfer.from.name} transfers ${customerName(offer.entry.customer)} to you (${offer.transfer.mode})`
              : `${customerName(offer.entry.customer)} is waiting`,
          ),
          h("div", { class: "offer-where" }, offer.entry.context.title || offer.entry.context.url),
          offer.transfer && offer.transfer.note
            ? h("blockquote", { class: "offer-note", title: "Note from your colleague (agents only)" }, offer.transfer.note)
            : null,
          first ? h("div", { class: "offer-first q-first" }, `“${first}”`) : null,
          h(
            "div",
            { class: "offer-actions" },
            h("button", { type: "button", class: "btn primary", onClick: () => answer(offer.ticketId, true) }, "Accept"),
            h("button", { type: "button", class: "btn", onClick: () => answer(offer.ticketId, false) }, "Decline"),
          ),
        );
      }),
    );
  }

  const offered = (offer) => {
    stop(offer.ticketId);
    // A warm transfer waits for this agent without a deadline (its expiresAt is the epoch): it
    // rings for the usual time, then its card stays until answered.
    const ringFor = offer.transfer && Date.parse(offer.expiresAt) <= 0;
    const ends = ringFor ? Date.now() + 20_000 : Date.parse(offer.expiresAt);
    const drop = ringFor ? () => clearInterval(held.timer) : () => stop(offer.ticketId);
    const held = { offer, notification: null, timer: null };
    if (switches.sound) {
      ring();
      held.timer = setInterval(() => (Date.now() < ends ? ring() : drop()), 3000);
    } else {
      held.timer = setInterval(() => Date.now() >= ends && drop(), 1000);
    }
    if (switches.notify && "Notification" in window && Notification.permission === "granted") {
      const title = offer.transfer ? "Tandem: a conversation is transferred to you" : "Tandem: a customer is waiting";
      held.notification = new Notification(title, {
        body: customerName(offer.entry.customer),
        tag: `offer-${offer.ticketId}`,
      });
      held.notification.onclick = () => window.focus();
    }
    ringing.set(offer.ticketId, held);
    drawCards();
  };

  const unsubscribe = [
    live.on("queue", () => ringing.size && drawCards()),
    live.onServer("session.offered", offered),
    live.onServer("session.offer.ended", ({ ticketId, reason }) => {
      // A transfer withdrawn because the session ended: say why its card went.
      const held = ringing.get(ticketId);
      if (held && held.offer.transfer && reason === "ended") {
        const who = customerName(held.offer.entry.customer);
        toast(`The conversation with ${who} ended before you accepted the transfer.`, "info");
      } else if (held && held.offer.transfer && reason === "cancelled") {
        const from = held.offer.transfer.from.name || "Your colleague";
        toast(`${from} took the transfer back.`, "info");
      }
      stop(ticketId);
    }),
    live.onServer("agent.status", (notice) => {
      if (notice.agent.id !== meId) return; // a supervisor hears everyone's
      current = notice;
      drawStatus();
    }),
  ];
  drawStatus();
  return {
    panel,
    destroy() {
      unsubscribe.forEach((fn) => fn());
      for (const id of [...ringing.keys()]) stop(id);
    },
  };
}
