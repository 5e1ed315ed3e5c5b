// The composer's extras around a live session: internal notes (agents only), canned replies
// (`/shortcut` fills the composer, never sends), and sending the customer a photo or video.
//
// session.js owns the composer; mountComposer() adds a tool row above it and listens to its
// input. Notes are kept on the session (live.js: `s.notes`) and drawn in the transcript between
// the messages, by time, styled apart: the customer never receives them.

import { h, fill, icon, ICONS } from "../shared/dom.js";
import * as auth from "./auth.js";
import * as live from "./live.js";
import { clock } from "./format.js";

const FILE_TYPES = ["image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm"];
const NOTE_ICON = ["M4 4h16v12H8l-4 4V4Z", "M8 9h8", "M8 12h5"];

/** The transcript's items: messages and notes by time (a pending message stays last). */
export function transcriptItems(s, line) {
  const notes = [...(s.notes ? s.notes.values() : [])];
  if (!notes.length) return s.messages.map((m) => line(m));
  const items = [...s.messages.map((m) => ({ at: m.pending ? "~" : m.at, el: () => line(m) }))];
  for (const n of notes) items.push({ at: n.at, el: () => noteLine(n) });
  items.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return items.map((item) => item.el());
}

export function noteLine(n) {
  const from = n.source === "transfer" ? `${n.author.name} · transfer note` : n.author.name;
  return h(
    "li",
    { class: "line note", dataset: { noteId: String(n.id) } },
    h(
      "div",
      { class: "line-head" },
      h("span", { class: "note-badge" }, icon(NOTE_ICON, "icon xs"), "Internal note"),
      h("span", { class: "author" }, from),
      h("span", { class: "when" }, clock(n.at)),
    ),
    h("div", { class: "line-text" }, n.text),
  );
}

/** The ticket page's notes (during the session or after it): the list and a form to add one. */
export function notesCard(t, { toast } = {}) {
  const notes = [...(t.notes || [])];
  const title = h("h3", { class: "card-title" });
  const list = h("ol", { class: "notes-list" });
  const text = h("textarea", {
    class: "composer-input",
    rows: 2,
    maxlength: 5000,
    placeholder: "Add an internal note… only agents see it",
    "aria-label": "Internal note",
  });
  const button = h("button", { type: "submit", class: "btn" }, icon(NOTE_ICON, "icon xs"), "Add note");
  const draw = () => {
    title.textContent = `Internal notes · ${notes.length}`;
    fill(list, notes.length ? notes.map(noteLine) : h("li", { class: "line system" }, "No notes yet. Only agents see them."));
  };
  const form = h("form", {
    class: "composer notes-form",
    onSubmit: async (e) => {
      e.preventDefault();
      const value = text.value.trim();
      if (!value) return;
      button.disabled = true;
      try {
        const body = await auth.api(`/api/tickets/${encodeURIComponent(t.id)}/notes`, {
          method: "POST",
          body: JSON.stringify({ text: value }),
          headers: { "Content-Type": "application/json" },
        });
        notes.push(body.note);
        text.value = "";
        draw();
      } catch (err) {
        if (toast) toast(`The note was not saved: ${err.message}`, "error");
      } finally {
        button.disabled = false;
      }
    },
  }, text, button);
  draw();
  return h("div", { class: "card notes-card" }, title, list, form);
}

/**
 * Adds the tools to a session's composer.
 * @returns {{el: HTMLElement, noting: () => boolean, note: (text: string) => void, destroy: () => void}}
 */
export function mountComposer({ s, ticketId, input, composer, toast }) {
  let noting = false;
  let replies = null; // the ticket's canned replies, fetched at the first "/"
  let loading = null;
  let shown = []; // replies in the open menu
  let active = 0;

  const placeholder = input.placeholder;
  const noteBtn = h(
    "button",
    {
      type: "button",
      class: "btn small ghost note-toggle",
      "aria-pressed": "false",
      title: "Write an internal note: only agents see it",
      onClick: () => setNoting(!noting),
    },
    icon(NOTE_ICON, "icon xs"),
    "Internal note",
  );
  const fileInput = h("input", {
    type: "file",
    accept: FILE_TYPES.join(","),
    hidden: true,
    "aria-label": "Photo or video to send to the customer",
    onChange: () => {
      for (const file of [...fileInput.files]) sendFile(file);
      fileInput.value = "";
    },
  });
  const fileBtn = h(
    "button",
    {
      type: "button",
      class: "btn small ghost send-file",
      title: "Send the customer a photo or video",
      onClick: () => fileInput.click(),
    },
    icon(ICONS.paperclip, "icon xs"),
    "Send file",
  );
  const sending = h("span", { class: "tool-status", role: "status" });
  const hint = h("span", { class: "tool-hint" }, "Type / for canned replies");
  const menu = h("ul", { class: "canned-menu", role: "listbox", "aria-label": "Canned replies", hidden: true });
  const el = h("div", { class: "composer-tools" }, noteBtn, fileBtn, fileInput, sending, hint);
  composer.prepend(menu);

  function setNoting(on) {
    noting = on;
    if (on) live.typing(ticketId, false);
    noteBtn.setAttribute("aria-pressed", String(on));
    composer.classList.toggle("noting", on);
    input.placeholder = on ? "Internal note… only agents see it (Enter to add)" : placeholder;
    const submit = composer.querySelector('button[type="submit"]');
    if (submit) submit.lastChild.textContent = on ? "Add note" : "Send";
    input.focus();
  }

  async function note(text) {
    const ack = await live.addNote(ticketId, text);
    if (!ack.ok) {
      toast(`The note was not saved: ${ack.error.message}`, "error");
      input.value = text;
    }
  }

  async function sendFile(file) {
    if (!FILE_TYPES.includes(file.type)) {
      toast("Only photos (PNG, JPEG, WebP) and videos (MP4, WebM) can be sent.", "error");
      return;
    }
    sending.textContent = `Sending ${file.name}…`;
    try {
      await auth.api(`/api/tickets/${encodeURIComponent(ticketId)}/files`, {
        method: "POST",
        body: file,
        headers: { "Content-Type": file.type },
      });
      sending.textContent = `Sent ${file.name}`;
    } catch (err) {
      sending.textContent = "";
      toast(`The file was not sent: ${err.message}`, "error");
    }
  }

  // ---------------------------------------------------------------- canned replies

  function prefix() {
    const m = /^\/([a-z0-9_-]*)$/.exec(input.value);
    return m ? m[1] : null;
  }

  async function load() {
    if (replies) return replies;
    loading = loading || auth.api(`/api/tickets/${encodeURIComponent(ticketId)}/canned-replies`).then(
      (body) => (replies = body.replies),
      () => (replies = []),
    );
    return loading;
  }

  async function update() {
    const p = prefix();
    if (p === null) return close();
    const all = await load();
    if (prefix() !== p) return; // typed on meanwhile: that input's update draws
    shown = all.filter((r) => r.shortcut.startsWith(p));
    active = Math.min(active, Math.max(0, shown.length - 1));
    draw();
  }

  function draw() {
    if (!shown.length) {
      fill(menu, h("li", { class: "canned-empty" }, replies && replies.length ? "No reply with that shortcut" : "No canned replies for this site"));
      menu.hidden = false;
      return;
    }
    fill(
      menu,
      shown.map((r, i) =>
        h(
          "li",
          {
            role: "option",
            class: `canned-option${i === active ? " active" : ""}`,
            "aria-selected": String(i === active),
            dataset: { shortcut: r.shortcut },
            onMousedown: (e) => {
              e.preventDefault(); // keep the focus in the composer
              choose(r);
            },
          },
          h("span", { class: "canned-shortcut" }, `/${r.shortcut}`),
          h("span", { class: "canned-text" }, r.rendered || r.text),
        ),
      ),
    );
    menu.hidden = false;
  }

  function close() {
    shown = [];
    active = 0;
    menu.hidden = true;
  }

  /** Fills the composer with the reply (variables filled in); the agent sends it, or not. */
  function choose(r) {
    input.value = r.rendered || r.text;
    close();
    input.dispatchEvent(new Event("input")); // keeps the draft and typing notice in step
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  const onInput = () => void update();
  const onKey = (e) => {
    if (menu.hidden) return;
    const picking = shown.length > 0;
    if (e.key === "ArrowDown" && picking) active = (active + 1) % shown.length;
    else if (e.key === "ArrowUp" && picking) active = (active - 1 + shown.length) % shown.length;
    else if ((e.key === "Enter" || e.key === "Tab") && picking && !e.shiftKey) choose(shown[active]);
    else if (e.key === "Escape") close();
    else return;
    e.preventDefault();
    e.stopImmediatePropagation(); // not a send: session.js's Enter handler must not see it
    if (!menu.hidden) draw();
  };
  input.addEventListener("input", onInput);
  input.addEventListener("keydown", onKey);
  input.addEventListener("blur", close);

  return {
    el,
    noting: () => noting,
    note,
    destroy() {
      input.removeEventListener("input", onInput);
      input.removeEventListener("keydown", onKey);
      input.removeEventListener("blur", close);
    },
  };
}
