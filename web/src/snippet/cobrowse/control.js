// Remote control on the customer's page: the agent's (server-checked) actions, performed on the
// node rrweb knows by id, after our own check that the target is not masked or blocked.
//
//   {type: "click",  targetId, x, y}       x/y: page coordinates of the agent's click
//   {type: "scroll", targetId, x, y}       x/y: the scroll position to go to
//   {type: "type",   targetId, text}       text inserted at the caret
//   {type: "key",    targetId, key, shift} Enter, Tab, Backspace, Delete, Escape, arrows, ...

const FIELD = /^(input|textarea)$/;

function elementOf(node) {
  if (!node) return null;
  if (node.nodeType === 9) return node.scrollingElement || node.documentElement;
  return node.nodeType === 1 ? node : node.parentElement;
}

function fire(el, type, init = {}) {
  const Ctor = type.startsWith("key") ? KeyboardEvent : type.startsWith("pointer") ? PointerEvent : MouseEvent;
  return el.dispatchEvent(new Ctor(type, { bubbles: true, cancelable: true, composed: true, view: window, ...init }));
}

function nativeSet(el, value) {
  const proto = el.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  const setter = Object.getOwnPropertyDescriptor(proto, "value").set;
  setter.call(el, value); // frameworks that track `value` (React) see the change
}

function insertText(el, text) {
  if (el.isContentEditable) {
    el.focus();
    document.execCommand("insertText", false, text);
    return;
  }
  el.focus({ preventScroll: true });
  let start = el.value.length;
  let end = start;
  try {
    if (el.selectionStart != null) {
      start = el.selectionStart;
      end = el.selectionEnd;
    }
  } catch {
    // email/number inputs have no selection API: append
  }
  const next = el.value.slice(0, start) + text + el.value.slice(end);
  const max = el.maxLength > 0 ? el.maxLength : Infinity;
  nativeSet(el, next.slice(0, max));
  try {
    el.setSelectionRange(start + text.length, start + text.length);
  } catch {
    // no selection API
  }
  el.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: "insertText", data: text }));
}

function focusable(root = document) {
  return [...root.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")].filter(
    (el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length && !el.closest("[data-tandem]"),
  );
}

function pressKey(el, key, shift) {
  const init = { key, shiftKey: !!shift, code: key === " " ? "Space" : key };
  if (!fire(el, "keydown", init)) return fire(el, "keyup", init);
  const field = FIELD.test(el.tagName.toLowerCase());
  if (key === "Enter") {
    if (el.tagName === "TEXTAREA") insertText(el, "\n");
    else if (field && el.form) el.form.requestSubmit();
    else if (el.tagName === "BUTTON" || el.tagName === "A") el.click();
  } else if ((key === "Backspace" || key === "Delete") && field) {
    let start = el.value.length;
    let end = start;
    try {
      start = el.selectionStart;
      end = el.selectionEnd;
    } catch {
      // no selection API: act at the end
    }
    if (start === end) {
      if (key === "Backspace") start = Math.max(0, start - 1);
      else end = Math.min(el.value.length, end + 1);
    }
    nativeSet(el, el.value.slice(0, start) + el.value.slice(end));
    try {
      el.setSelectionRange(start, start);
    } catch {
      // no selection API
    }
    el.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: key === "Backspace" ? "deleteContentBackward" : "deleteContentForward" }));
  } else if (key === "Tab") {
    const all = focusable();
    const i = all.indexOf(document.activeElement);
    const next = all[(i + (shift ? -1 : 1) + all.length) % all.length];
    if (next) next.focus();
  } else if (key === " " && (el.tagName === "BUTTON" || el.type === "checkbox" || el.type === "radio")) {
    el.click();
  } else if (key === " " && field) {
    insertText(el, " ");
  } else if (!field) {
    const page = window.innerHeight * 0.9;
    const step = { ArrowDown: 40, ArrowUp: -40, PageDown: page, PageUp: -page, " ": page }[key];
    if (step) window.scrollBy(0, step);
    if (key === "Home") window.scrollTo(0, 0);
    if (key === "End") window.scrollTo(0, document.documentElement.scrollHeight);
  }
  fire(el, "keyup", init);
}

/**
 * Perform one action. Returns "" when done, else the reason it was refused.
 * @param {{type: string, targetId: number, x?: number, y?: number, text?: string, key?: string, shift?: boolean}} action
 * @param {(id: number) => Node | null} lookup rrweb's mirror
 * @param {import("./privacy.js").Privacy} privacy
 */
export function perform(action, lookup, privacy) {
  const node = lookup(action.targetId);
  if (!node || !node.isConnected) return "unknown_target";
  const refusal = privacy.refusal(node, action.type);
  if (refusal) return refusal;
  const el = elementOf(node);
  const isPage = node.nodeType === 9 || el === document.documentElement || el === document.body;
  switch (action.type) {
    case "click": {
      if (node.nodeType === 9) return "unknown_target";
      const x = (action.x || 0) - window.scrollX;
      const y = (action.y || 0) - window.scrollY;
      const init = { clientX: x, clientY: y, button: 0 };
      fire(el, "pointerdown", { ...init, pointerType: "mouse", isPrimary: true });
      fire(el, "mousedown", init);
      if (typeof el.focus === "function") el.focus({ preventScroll: true });
      fire(el, "pointerup", { ...init, pointerType: "mouse", isPrimary: true });
      fire(el, "mouseup", init);
      el.click(); // the default action too: follow a link, toggle a checkbox, submit a form
      return "";
    }
    case "scroll":
      if (isPage) window.scrollTo(action.x || 0, action.y || 0);
      else el.scrollTo(action.x || 0, action.y || 0);
      return "";
    case "type":
      if (!(FIELD.test(el.tagName.toLowerCase()) || el.isContentEditable)) return "not_editable";
      if (el.disabled || el.readOnly) return "not_editable";
      insertText(el, String(action.text || ""));
      return "";
    case "key": {
      const target = isPage ? document.activeElement || document.body : el;
      const again = target === el ? "" : privacy.refusal(target, "key"); // focus may be elsewhere
      if (again) return again;
      pressKey(target, action.key, action.shift);
      return "";
    }
    default:
      return "bad_action";
  }
}
