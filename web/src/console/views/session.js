// One live session: the chat in the middle, the customer's context on the right.

import { h, fill, icon, ICONS } from "../../shared/dom.js";
import * as live from "../live.js";
import { attachments, contextCards, customerCard, pageHistory, timeline, verifiedBadge } from "../details.js";
import { clock, customerName, dateTime, deviceLine } from "../format.js";
import { callPanel } from "../call/panel.js";
import { mountCobrowse } from "../cobrowse/panel.js";
import { openTransferDialog, transferBanner } from "../transfer.js";
import { mountComposer, transcriptItems } from "../composer.js";

const TYPING_EVERY = 2500;
const TYPING_IDLE = 3000;

export function sessionView(root, ticketId, { navigate, toast }) {
  const s = live.store.sessions.get(ticketId);
  if (!s) {
    // Not (or no longer) one of ours: the ticket page shows it read-only.
    navigate(`/console/tickets/${encodeURIComponent(ticketId)}`, { replace: true });
    return () => {};
  }
  live.store.viewing = ticketId;
  live.markRead(ticketId);
  const blobs = new Map();

  const name = h("h1", { class: "session-title" });
  const sub = h("p", { class: "page-sub" });
  const endBtn = h(
    "button",
    {
      type: "button",
      class: "btn danger-outline",
      onClick: async () => {
        endBtn.disabled = true;
        const ack = await live.end(ticketId);
        if (!ack.ok && ack.error.code !== "invalid_state") {
          endBtn.disabled = false;
          toast(`Couldn't end the session: ${ack.error.message}`, "error");
        }
      },
    },
    "End session",
  );
  const closeBtn = h(
    "button",
    {
      type: "button",
      class: "btn",
      onClick: () => {
        live.dismiss(ticketId);
        navigate("/console/");
      },
    },
    "Close",
  );
  const transferBtn = h(
    "button",
    { type: "button", class: "btn", onClick: () => openTransferDialog(s, { toast }) },
    "Transfer",
  );
  const transferLine = h("div", { class: "transfer-slot" });
  const ticketLink = h(
    "a",
    { href: `/console/tickets/${encodeURIComponent(ticketId)}`, class: "btn ghost", "data-link": "" },
    "Ticket",
  );
  const log = h("ol", { class: "transcript", "aria-live": "polite", "aria-label": "Conversation" });
  const typingLine = h(
    "div",
    { class: "typing", hidden: true },
    h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
    h("span", { class: "typing-text" }),
  );
  const scroller = h("div", { class: "transcript-scroll" }, log, typingLine);
  const input = h("textarea", {
    class: "composer-input",
    rows: 2,
    maxlength: 10000,
    placeholder: "Reply…  (Enter to send, Shift+Enter for a new line)",
    "aria-label": "Reply",
  });
  input.value = s.draft || "";
  const sendBtn = h("button", { type: "submit", class: "btn primary" }, icon(ICONS.send, "icon xs"), "Send");
  const composer = h("form", { class: "composer" }, input, sendBtn);
  const endedBar = h("div", { class: "ended-bar", role: "status" });
  const details = h("aside", { class: "details", "aria-label": "Context" });
  let call = null; // calls, captures and "ask for photo" (../call/panel.js)
  // Notes, /shortcut canned replies, files to the customer (../composer.js).
  const extras = mountComposer({ s, ticketId, input, composer, toast });

  root.append(
    h(
      "div",
      { class: "session" },
      h(
        "section",
        { class: "chat-col" },
        h(
          "header",
          { class: "page-head compact" },
          h("div", { class: "head-text" }, name, sub),
          h("div", { class: "actions" }, ticketLink, transferBtn, endBtn, closeBtn),
        ),
        transferLine,
        (call = callPanel(s, { toast })).el,
        scroller,
        endedBar,
        extras.el,
        composer,
      ),
      details,
    ),
  );

  // Co-browse: a button in the header, the live view beside the chat (../cobrowse/panel.js).
  const cobrowse = mountCobrowse({
    ticketId,
    actions: root.querySelector(".chat-col .actions"),
    layout: root.querySelector(".session"),
    toast,
    ended: () => !!s.ended || !!s.handedOver,
  });

  let typingAt = 0;
  let typingTimer = 0;
  const stopTyping = () => {
    clearTimeout(typingTimer);
    if (typingAt) live.typing(ticketId, false);
    typingAt = 0;
  };
  const submit = () => {
    const text = input.value.trim();
    if (!text || s.ended) return;
    input.value = "";
    s.draft = "";
    stopTyping();
    if (extras.noting()) extras.note(text);
    else live.send(ticketId, text);
    input.focus();
  };
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", () => {
    s.draft = input.value;
    // An internal note is not for the customer: not even "is typing".
    if (!extras.noting() && Date.now() - typingAt > TYPING_EVERY) {
      typingAt = Date.now();
      live.typing(ticketId, true);
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE);
  });

  let drawnDetails = "";
  const draw = () => {
    const t = s.ticket;
    const customer = t.customer;
    fill(name, customerName(customer), " ", verifiedBadge(customer));
    sub.textContent = [t.id, t.site, `started ${dateTime(t.createdAt)}`, deviceLine(t.context.device)]
      .filter(Boolean)
      .join(" · ");

    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    fill(log, transcriptItems(s, line));
    typingLine.hidden = !s.typing;
    typingLine.lastChild.textContent = s.typing ? `${s.typing.name} is typing…` : "";
    if (nearBottom) scroller.scrollTop = scroller.scrollHeight;

    const over = !!s.ended || !!s.handedOver; // ended, or handed to a colleague
    endBtn.hidden = over;
    transferBtn.hidden = over;
    closeBtn.hidden = !over;
    composer.hidden = over;
    extras.el.hidden = over;
    fill(transferLine, s.ended ? null : transferBanner(s, { toast }));
    endedBar.hidden = !s.ended;
    if (s.ended) {
      const by = s.ended.by === "customer" ? "the customer" : s.ended.by === "agent" ? "an agent" : "";
      endedBar.textContent = `Session ended${by ? ` by ${by}` : ""}${s.ended.at ? ` at ${clock(s.ended.at)}` : ""}. The transcript is on the ticket.`;
    }

    // The details pane is rebuilt only when what it shows changed (keeps scroll and images).
    const key = JSON.stringify([t.context, t.customer, [...s.timeline.keys()], [...s.attachments.keys()], [...s.pages.keys()]]);
    if (key !== drawnDetails) {
      drawnDetails = key;
      const top = details.scrollTop;
      fill(
        details,
        customerCard(customer),
        pageHistory([...s.pages.values()]),
        contextCards(t.context),
        attachments([...s.attachments.values()], blobs),
        timeline([...s.timeline.values()], t.agents),
      );
      details.scrollTop = top;
    }
  };

  function line(m) {
    if (m.from === "system") return h("li", { class: "line system" }, m.text);
    const mine = m.from === "agent";
    const status = m.pending
      ? m.failed
        ? h(
            "button",
            { type: "button", class: "link-btn danger", onClick: () => live.retry(ticketId, m.clientMsgId) },
            "Not sent · Retry",
          )
        : "Sending…"
      : clock(m.at);
    return h(
      "li",
      { class: `line ${mine ? "agent" : "customer"}${m.pending ? " pending" : ""}` },
      h("div", { class: "line-head" }, h("span", { class: "author" }, m.author), h("span", { class: "when" }, status)),
      h("div", { class: "line-text" }, m.text),
    );
  }

  draw();
  scroller.scrollTop = scroller.scrollHeight;
  if (!s.ended) input.focus();
  const off = live.on("session", (id) => {
    if (id !== ticketId) return;
    draw();
    live.markRead(ticketId);
  });
  return () => {
    off();
    call.destroy();
    cobrowse.destroy();
    extras.destroy();
    stopTyping();
    for (const p of blobs.values()) p.then((url) => URL.revokeObjectURL(url), () => {});
  };
}
