// The protocol-v1 way of call invitations, kept for clients that only know it (docs/protocol.md,
// "Versioning"): an older console invites with a chat message whose clientMsgId says what is
// asked, `call.<ask>.<random>`; the widget shows a prompt for it and declines such an ask with a
// chat message `call-declined.<ask>.<random>`, which the console still reads. Invitations are
// otherwise `call.invite` / `call.accept` / `call.decline` events.

const rand = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 10);

export const declineId = (ask) => `call-declined.${ask}.${rand()}`;

function parse(message, from, prefix) {
  if (!message || message.from !== from || !message.clientMsgId) return null;
  const m = new RegExp(`^${prefix}\\.(voice|camera|screen)\\.`).exec(message.clientMsgId);
  return m ? m[1] : null;
}

/** The ask of an agent's invitation message, or null. */
export const parseInvite = (message) => parse(message, "agent", "call");
/** The ask a customer's message declines, or null. */
export const parseDecline = (message) => parse(message, "customer", "call-declined");

export function declineText(ask) {
  if (ask === "voice") return "I declined the call.";
  if (ask === "camera") return "I declined to turn on my camera.";
  return "I declined to share my screen.";
}
