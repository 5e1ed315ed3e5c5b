// Handing a session over: the Transfer dialog (to a colleague, with their status and load, or
// back to the queue; warm or cold; an agent-only note), and the line the session view shows
// about a transfer (waiting for the colleague to accept, with "Take back", or "handed to you"
// with the note). The server decides (`session.transfer`, `transfer.cancel`); this only asks
// and shows.

import { h, fill } from "../shared/dom.js";
import * as auth from "./auth.js";
import * as live from "./live.js";
import { customerName } from "./format.js";

const STATUS = { available: "Available", away: "Away", busy: "Busy", wrap_up: "Wrap-up", offline: "Offline" };

/** Open the Transfer dialog for a session; resolves when it is closed. */
export async function openTransferDialog(s, { toast }) {
  const me = auth.session().agent.id;
  const inSession = new Set(s.ticket.agents.map((a) => a.id));
  const list = h("ul", { class: "transfer-agents", role: "radiogroup", "aria-label": "Colleagues" });
  const toAgent = h("input", { type: "radio", name: "transfer-to", value: "agent", checked: true });
  const toQueue = h("input", { type: "radio", name: "transfer-to", value: "queue" });
  const warm = h("input", { type: "radio", name: "transfer-mode", value: "warm", checked: true });
  const cold = h("input", { type: "radio", name: "transfer-mode", value: "cold" });
  const note = h("textarea", {
    class: "transfer-note",
    rows: 3,
    maxlength: 2000,
    placeholder: "What they should know (the customer does not see this)",
    "aria-label": "Note for the next agent",
  });
  const error = h("p", { class: "transfer-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Transfer");
  const cancel = h("button", { type: "button", class: "btn", value: "cancel" }, "Cancel");
  const modeHelp = h("p", { class: "transfer-help" });
  const form = h(
    "form",
    { class: "transfer-form", method: "dialog" },
    h("h2", null, `Transfer ${customerName(s.ticket.customer)}`),
    h(
      "fieldset",
      { class: "transfer-to" },
      h("legend", null, "To"),
      h("label", null, toAgent, "A colleague"),
      h("label", null, toQueue, "The queue (the next agent who can serve it)"),
    ),
    list,
    h(
      "fieldset",
      { class: "transfer-mode" },
      h("legend", null, "How"),
      h("label", null, warm, "Warm"),
      h("label", null, cold, "Cold"),
    ),
    modeHelp,
    h("label", { class: "transfer-note-label" }, "Note for the next agent", note),
    error,
    h("div", { class: "transfer-actions" }, cancel, submit),
  );
  const dialog = h("dialog", { class: "transfer-dialog", "aria-label": "Transfer the session" }, form);
  document.body.append(dialog);

  let picked = null;
  let agents = [];
  const drawAgents = () => {
    const offered = agents.filter((a) => a.agent.id !== me && !inSession.has(a.agent.id));
    list.hidden = !toAgent.checked;
    fill(
      list,
      offered.length
        ? offered.map((a) => {
            const full = a.capacity && a.load + 1 > a.capacity;
            const can = a.status !== "offline" && !full;
            const radio = h("input", {
              type: "radio",
              name: "transfer-agent",
              value: a.agent.id,
              disabled: !can,
              checked: picked === a.agent.id,
            });
            radio.addEventListener("change", () => (picked = a.agent.id));
            return h(
              "li",
              { class: `transfer-agent${can ? "" : " unavailable"}`, dataset: { agent: a.agent.id } },
              h(
                "label",
                null,
                radio,
                h("span", { class: "transfer-agent-name" }, a.agent.name),
                h(
                  "span",
                  { class: "agent-status", dataset: { status: a.status } },
                  STATUS[a.status] + (a.reason ? ` (${a.reason})` : ""),
                ),
                a.capacity ? h("span", { class: "transfer-load" }, `${a.load} of ${a.capacity}`) : null,
              ),
            );
          })
        : h("li", { class: "transfer-none" }, "No colleague is online."),
    );
  };
  const drawMode = () => {
    modeHelp.textContent = warm.checked
      ? "You stay in the conversation until they accept; then you leave it."
      : "You leave the conversation now; the customer waits for them.";
  };
  for (const input of [toAgent, toQueue]) input.addEventListener("change", drawAgents);
  for (const input of [warm, cold]) input.addEventListener("change", drawMode);
  cancel.addEventListener("click", () => dialog.close());
  drawMode();

  const ask = async () => {
    const ack = await live.request("agent.list", {});
    agents = ack.ok ? ack.agents : [];
    if (!ack.ok) toast(`Couldn't list your colleagues: ${ack.error.message}`, "error");
    drawAgents();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const to = toQueue.checked ? { queue: true } : picked ? { agentId: picked } : null;
    if (!to) {
      error.textContent = "Pick a colleague, or the queue.";
      error.hidden = false;
      return;
    }
    const payload = { ticketId: s.id, to, mode: warm.checked ? "warm" : "cold" };
    if (note.value.trim()) payload.note = note.value.trim();
    submit.disabled = true;
    const ack = await live.request("session.transfer", payload);
    submit.disabled = false;
    if (!ack.ok) {
      error.textContent = ack.error.message;
      error.hidden = false;
      return;
    }
    const name = to.queue ? "the queue" : (agents.find((a) => a.agent.id === picked) || {}).agent?.name;
    toast(payload.mode === "warm" && !to.queue ? `Waiting for ${name} to accept` : `Transferred to ${name}`);
    dialog.close();
  });

  dialog.showModal();
  await ask();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  dialog.remove();
}

/** What the session view says about transfers, from the session's timeline:
 * `{pending: {to, mode}}` while a warm transfer this session asked for waits for its agent,
 * `{handedToMe: {from, note, mode}}` once a colleague handed it to me. */
export function transferState(s) {
  const me = auth.session().agent.id;
  const entries = [...s.timeline.values()]
    .filter((e) =>
      ["transfer.requested", "transfer.declined", "transfer.cancelled", "session.transferred"].includes(e.type),
    )
    .sort((a, b) => a.id - b.id);
  const last = entries[entries.length - 1];
  const state = {};
  if (last && last.type === "transfer.requested" && last.data.mode === "warm" && last.data.to && last.data.to.agent) {
    state.pending = { to: last.data.to.agent, mode: last.data.mode };
  }
  const mine = entries.filter((e) => e.type === "session.transferred" && e.data.to && e.data.to.id === me).pop();
  if (mine) state.handedToMe = { from: mine.data.from || {}, note: mine.data.note || "", mode: mine.data.mode };
  if (last && last.type === "transfer.declined") state.declined = last.data.agent || {};
  return state;
}

/** The line above the transcript about a transfer (or nothing). */
export function transferBanner(s, { toast } = {}) {
  if (s.handedOver) {
    // A cold transfer's `left` names nobody: the dialog's choice is on the timeline.
    const asked = [...s.timeline.values()].filter((e) => e.type === "transfer.requested").sort((a, b) => a.id - b.id).pop();
    const to = s.handedOver.to || (asked && asked.data.to && asked.data.to.agent) || null;
    return h(
      "div",
      { class: "transfer-banner left", role: "status" },
      to ? `You handed this conversation to ${to.name}.` : "You handed this conversation back to the queue.",
      " You no longer receive its messages.",
    );
  }
  const state = transferState(s);
  if (state.pending) {
    const takeBack = async (event) => {
      event.currentTarget.disabled = true;
      const ack = await live.request("transfer.cancel", { ticketId: s.id });
      if (!ack.ok && toast) toast(`Couldn't take the transfer back: ${ack.error.message}`, "error");
    };
    return h(
      "div",
      { class: "transfer-banner pending", role: "status" },
      h("span", null, `Waiting for ${state.pending.to.name} to accept the transfer…`),
      h("button", { type: "button", class: "btn small ghost", onClick: takeBack }, "Take back"),
    );
  }
  if (state.handedToMe) {
    const { from, note } = state.handedToMe;
    return h(
      "div",
      { class: "transfer-banner handed", role: "note" },
      h("span", null, `${from.name || "A colleague"} handed this conversation to you`),
      note ? h("blockquote", { class: "transfer-note-text" }, note) : null,
    );
  }
  return null;
}
