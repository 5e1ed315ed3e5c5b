// The ticket timeline in words: every entry the server writes (signaling: Desk.timeline, the
// co-browse control audit, calls, transfers) as one sentence. The wording lives here only.
// Entry kinds this console does not know yet still read as a sentence ("Widget shaken").

import { bytes, capitalize } from "./format.js";

/** Agent names by id, from the session's agents and from the entries that name one. */
export function namesFrom(entries, agents = []) {
  const names = new Map();
  const add = (a) => a && typeof a === "object" && a.id && a.name && names.set(a.id, a.name);
  for (const a of agents) add(a);
  for (const e of entries) {
    const d = e.data || {};
    add(d.agent);
    add(d.from);
    if (d.to && typeof d.to === "object") add(d.to.agent || d.to);
  }
  return names;
}

const quoted = (text) => `“${text}”`;

/** A readable sentence for a kind nobody taught this console: "widget.shaken" -> "Widget shaken". */
export function fallbackSentence(type) {
  const words = String(type || "event")
    .split(/[._-]+/)
    .filter(Boolean)
    .map((w) => w.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase())
    .join(" ");
  return capitalize(words.replace(/\bcobrowse\b/g, "co-browse")) || "Something happened";
}

const ACTIONS = { click: "clicked on the page", scroll: "scrolled the page", key: "pressed a key", type: "typed" };

const REFUSALS = {
  masked_target: "a masked field",
  unknown_target: "an element that is no longer there",
  rate_limited: "too many actions",
  not_granted: "no control",
};

const ATTACHMENTS = {
  screenshot: "Screenshot taken",
  clip: "Clip saved",
  thumbnail: "Thumbnail saved",
  photo: "Customer sent a photo",
  video: "Customer sent a video",
  recording: "Co-browse recording saved",
};

const CONTEXT_FIELDS = {
  app: "the page's details",
  viewport: "window size",
  geo: "location",
  replyTo: "e-mail address for a reply",
};

/**
 * One timeline entry ({type, data}) as a sentence. `names`: agent id -> name (`namesFrom`).
 * @param {{type: string, data?: any}} entry
 * @param {Map<string, string>} [names]
 */
export function describeEntry(entry, names = new Map()) {
  const d = entry.data || {};
  const agentName = (a) => (a && a.name) || (a && names.get(a.id)) || "An agent";
  // Participants of a call: "customer", "agent:<id>" (and "/cobrowse" for the page's channel).
  const participant = (p) => {
    const base = String(p || "").split("/")[0];
    if (base === "customer") return "Customer";
    if (base.startsWith("agent:")) return names.get(base.slice(6)) || "An agent";
    return "Someone";
  };
  // The co-browse control audit names its actor by id and role.
  const actor = () => (d.role === "customer" ? "Customer" : d.role === "system" ? "Tandem" : names.get(d.actor) || "An agent");
  const refused = (what) => `${actor()}'s ${what} was refused${d.reason ? ` (${REFUSALS[d.reason] || String(d.reason).replace(/_/g, " ")})` : ""}`;

  switch (entry.type) {
    case "ticket.created": {
      const where = d.title || d.url;
      const again = d.previousTicketId ? " again" : "";
      return where ? `Customer asked for help${again} from ${quoted(where)}` : `Customer asked for help${again}`;
    }
    case "context.updated": {
      if (d.title || d.url) return `Customer went to ${quoted(d.title || d.url)}`;
      if (d.geo) return "Customer shared their location";
      if (d.replyTo) return "Customer left an e-mail address for a reply";
      const fields = Object.keys(d).map((k) => CONTEXT_FIELDS[k] || k);
      return fields.length ? `Customer's ${fields.join(", ")} changed` : "Customer's details changed";
    }
    case "session.accepted":
      return `${agentName(d.agent)} accepted the conversation`;
    case "session.joined":
      return `${agentName(d.agent)} joined`;
    case "session.left":
      return `${agentName(d.agent)} left`;
    case "session.ended":
      if (d.by === "customer") return "Customer ended the conversation";
      if (d.by === "agent") return `${agentName(d.agent)} ended the conversation`;
      return d.reason === "left" ? "The conversation ended: the customer left before it was queued" : "The conversation ended";
    case "transfer.requested": {
      const to = d.to && d.to.agent ? agentName(d.to.agent) : "the queue";
      const how = d.mode === "cold" ? "" : " (warm: staying until they join)";
      return `${agentName(d.from)} asked to transfer to ${to}${how}`;
    }
    case "session.transferred": {
      const to = agentName(d.to);
      return d.from && d.from.name && d.from.id !== (d.to && d.to.id) ? `Transferred from ${d.from.name} to ${to}` : `Transferred to ${to}`;
    }
    case "transfer.declined":
      return `${agentName(d.agent)} declined the transfer`;
    case "transfer.cancelled":
      return `${agentName(d.by)} took back the transfer to ${agentName(d.agent)}`;
    case "attachment.added":
      return `${ATTACHMENTS[d.kind] || `${capitalize(d.kind || "file")} attached`}${d.size ? ` (${bytes(d.size)})` : ""}`;
    case "cobrowse.requested":
      return `${agentName(d.agent)} asked to see the customer's page`;
    case "cobrowse.started":
      return "Customer started co-browsing";
    case "cobrowse.declined":
      return "Customer declined co-browsing";
    case "cobrowse.stopped":
      return d.by === "customer" ? "Customer stopped co-browsing" : "Co-browsing stopped";
    case "cobrowse.moved":
      return `Co-browsing moved to another server${d.part ? ` (recording part ${d.part})` : ""}`;
    case "cobrowse.assets": {
      const parts = [];
      if (d.server) parts.push(`${d.server} fetched by the server`);
      if (d.browser) parts.push(`${d.browser} sent by the customer's browser`);
      if (d.refused) parts.push(`${d.refused} refused`);
      return parts.length ? `Page images and styles: ${parts.join(", ")}` : "No page images or styles were needed";
    }
    case "control.request":
      return d.result === "refused" ? refused("request for control") : `${actor()} asked to control the page`;
    case "control.grant":
      return d.result === "refused" ? refused("grant of control") : "Customer gave control of the page";
    case "control.deny":
      return d.result === "refused" ? refused("refusal") : "Customer refused control of the page";
    case "control.revoke":
      if (d.result === "refused") return refused("revocation");
      if (d.role === "system") return d.reason === "home_moved" ? "Control ended: the session moved to another server" : "Control ended";
      return d.role === "customer" ? "Customer took back control" : `${actor()} gave back control`;
    case "control.expire":
      return "Control of the page expired";
    case "control.action": {
      const a = d.action || {};
      if (d.result === "refused") return refused(a.type === "type" ? "typing" : a.type || "action");
      const verb = ACTIONS[a.type] || "acted on the page";
      return a.type === "type" && a.text_len != null ? `${actor()} typed ${a.text_len} characters` : `${actor()} ${verb}`;
    }
    case "call.joined":
      return `${participant(d.participant)} joined the call`;
    case "call.left":
      return d.reason === "disconnected"
        ? `${participant(d.participant)} left the call (their page closed or reloaded)`
        : `${participant(d.participant)} left the call`;
    case "call.invited": {
      const what = { voice: "a call", camera: "the camera", screen: "a screen share" }[d.ask] || "a call";
      return d.from === "customer" ? "Customer asked for a call" : `${agentName(d.agent)} asked for ${what}`;
    }
    case "call.invite.ended": {
      const answer = { accepted: "accepted", declined: "declined", expired: "went unanswered", ended: "ended with the conversation" }[d.reason];
      const what = { voice: "The call invitation", camera: "The camera request", screen: "The screen share request" }[d.ask] || "The invitation";
      return `${what} ${answer || "ended"}${d.by && d.by.name ? ` (${d.by.name})` : ""}`;
    }
    case "call.shared": {
      const who = participant(d.participant);
      if (d.source === "screen") return `${who} shared their screen`;
      if (d.source === "camera") return `${who} turned on their camera`;
      return `${who} shared their ${d.source || "media"}`;
    }
    case "call.moved":
      return "The call moved to another server";
    case "clip.started":
      return "Clip recording started";
    case "upload.requested":
      return `${agentName(d.agent)} asked for a photo${d.note ? `: ${quoted(d.note)}` : ""}`;
    default:
      return fallbackSentence(entry.type);
  }
}
