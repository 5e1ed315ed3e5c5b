// Call invitations ride on chat messages until the protocol has an event of its own: the agent's
// message reads like a line of chat ("Started a voice call…"), and its clientMsgId says what is
// asked, `call.<ask>.<random>`, so the widget can show a prompt for it. The customer's answer to
// a declined ask is `call-declined.<ask>.<random>`. Older widgets just show the text.

export const ASKS = ["voice", "camera", "screen"];

const rand = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 10);

export const inviteId = (ask) => `call.${ask}.${rand()}`;
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

/** The invitation as a line of chat (the agent is its author). */
export function inviteText(ask) {
  if (ask === "voice") return "Started a voice call. Answer it here in the chat.";
  if (ask === "camera") return "Asked to see through your camera.";
  return "Asked to see your screen.";
}

export function declineText(ask) {
  if (ask === "voice") return "I declined the call.";
  if (ask === "camera") return "I declined to turn on my camera.";
  return "I declined to share my screen.";
}
