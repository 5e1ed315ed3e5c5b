// The Tandem snippet loader: the only part every visitor downloads.
//
//   <script async src="https://HOST/tandem.js" data-site="SITE_KEY"></script>
//
// It mounts the help button (in a Shadow DOM), exposes `window.Tandem`, replays calls queued by
// the stub, and loads the chat widget chunk (socket.io and the panel) only when it is needed:
// when the visitor opens the panel (prefetched on hover/focus), or at once when they already
// have a session to resume.
//
// The stub, for calls made before this script has loaded (a method queue, as Intercom's):
//
//   window.Tandem = window.Tandem || function () { (Tandem.q = Tandem.q || []).push(arguments) };
//   Tandem("identify", { id: "u_42", name: "Ada", email: "ada@example.com", signature });
//   Tandem("setContext", { plan: "pro" });
//   Tandem("on", "ticket", (t) => console.log(t.ticketId));
//
// Once loaded, `Tandem("open")` and `Tandem.open()` are the same call.

import { h, icon } from "../shared/dom.js";
import { adoptCss } from "./css.js";
import css from "./launcher.shadow.css";

/* global __TANDEM_CHUNKS__ */
const CHUNKS = __TANDEM_CHUNKS__;
const EVENTS = ["ready", "open", "close", "ticket", "accepted", "message", "ended", "error"];
const MAX_APP_BYTES = 8192;
const CHAT_ICON = "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12Z";
const DOWN_ICON = "m6 9 6 6 6-6";

const previous = window.Tandem;
const script =
  document.currentScript ||
  [...document.getElementsByTagName("script")].find((s) => /\/tandem\.js(?:[?#]|$)/.test(s.src));

if (!(previous && previous.version) && script) start(script);

function start(script) {
  const data = script.dataset;
  const config = {
    base: new URL(".", script.src).href,
    site: data.site || "",
    position: data.position === "left" ? "left" : "right",
    label: data.label || "",
    accent: data.accent || "",
    title: data.title || "Support",
    geo: data.geo === "ask",
    nonce: script.nonce || "",
  };
  const listeners = {};
  /** What the host page told us: identity and its own context fields. */
  const state = { identity: null, app: {}, open: false };
  const storage = store(config.site);
  let widget = null;
  let loading = null;
  let ready = false;
  let ui = null;

  function emit(event, detail) {
    for (const fn of listeners[event] || []) {
      try {
        fn(detail);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  function loadChunk(name) {
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = config.base + CHUNKS[name];
      tag.async = true;
      if (config.nonce) tag.nonce = config.nonce;
      tag.onload = () => {
        const mod = window[`__tandem_${name}`];
        mod ? resolve(mod) : reject(new Error(`Tandem: chunk ${name} did not register`));
      };
      tag.onerror = () => reject(new Error(`Tandem: could not load ${tag.src}`));
      document.head.append(tag);
    });
  }

  function loadWidget() {
    loading =
      loading ||
      loadChunk("widget").then(
        (mod) => {
          widget = mod.mount({
            config,
            state,
            storage,
            emit,
            root: ui.root,
            panel: ui.panel,
            launcher: ui.launcher,
            setUnread: ui.setUnread,
            close: api.close,
            open: api.open, // a call invitation opens the panel
            isOpen: () => state.open,
            loadChunk, // later chunks (co-browse) load on demand too
          });
          if (state.open) widget.opened();
          return widget;
        },
        (err) => {
          loading = null;
          ui.failed();
          emit("error", { message: err.message });
          throw err;
        },
      );
    return loading;
  }

  const methods = {
    identify(who) {
      if (!who || !who.id) throw new TypeError("Tandem.identify needs at least {id}");
      state.identity = {
        id: String(who.id),
        name: who.name || undefined,
        email: who.email || undefined,
        signature: who.signature || undefined,
      };
    },
    setContext(fields) {
      const next = { ...state.app };
      for (const [key, value] of Object.entries(fields || {})) {
        if (value == null) delete next[key];
        else next[key] = value;
      }
      if (JSON.stringify(next).length > MAX_APP_BYTES) {
        console.warn(`Tandem.setContext: context is over ${MAX_APP_BYTES} bytes; ignored`);
        return;
      }
      state.app = next;
      if (widget) widget.contextChanged();
    },
    open() {
      if (!ui) return void (state.open = true);
      if (state.open) return;
      state.open = true;
      storage.setOpen(true);
      ui.show(true);
      emit("open");
      widget ? widget.opened() : loadWidget().catch(() => {});
    },
    close() {
      if (!state.open) return;
      state.open = false;
      storage.setOpen(false);
      if (ui) ui.show(false);
      emit("close");
    },
    toggle() {
      state.open ? methods.close() : methods.open();
    },
    on(event, fn) {
      if (!EVENTS.includes(event)) console.warn(`Tandem.on: unknown event ${event}`);
      (listeners[event] = listeners[event] || []).push(fn);
      if (event === "ready" && ready) setTimeout(() => fn());
    },
    off(event, fn) {
      listeners[event] = (listeners[event] || []).filter((f) => f !== fn);
    },
  };

  const api = function Tandem(method, ...args) {
    if (typeof methods[method] !== "function") {
      console.warn(`Tandem: unknown method ${method}`);
      return undefined;
    }
    return methods[method](...args);
  };
  Object.assign(api, methods, { version: 1 });
  window.Tandem = api;

  for (const args of (previous && previous.q) || []) {
    try {
      api(...args);
    } catch (err) {
      console.error(err);
    }
  }

  const mount = () => {
    ui = launcher(config, methods, () => loadWidget().catch(() => {}));
    ready = true;
    const wasOpen = state.open || storage.wasOpen();
    state.open = false;
    if (storage.get().token || wasOpen) loadWidget().catch(() => {});
    if (wasOpen) methods.open();
    emit("ready");
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
}

/** The help button and the (empty) panel frame, in a shadow root. */
function launcher(config, methods, prefetch) {
  const host = h("div", {
    id: "tandem-widget",
    "data-position": config.position,
    "data-tandem": "",
  });
  if (config.accent) host.style.setProperty("--tandem-accent", config.accent);
  const root = host.attachShadow({ mode: "open" });
  adoptCss(root, css);

  const badge = h("span", { class: "badge", hidden: true });
  const label = h("span", { class: "label" }, config.label);
  const button = h(
    "button",
    {
      type: "button",
      class: "launcher",
      part: "launcher",
      "aria-label": "Open support chat",
      "aria-expanded": "false",
      "aria-controls": "tandem-panel",
      "aria-haspopup": "dialog",
      onClick: () => methods.toggle(),
      onPointerenter: prefetch,
      onFocus: prefetch,
    },
    icon(CHAT_ICON, "icon chat"),
    icon(DOWN_ICON, "icon down"),
    label,
    badge,
  );
  if (!config.label) button.classList.add("round");
  const panel = h(
    "div",
    {
      id: "tandem-panel",
      class: "panel",
      part: "panel",
      role: "dialog",
      "aria-label": config.title,
      hidden: true,
    },
    h("div", { class: "boot", role: "status" }, h("span", { class: "spinner" }), "Loading…"),
  );
  root.append(panel, button);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.stopPropagation();
      methods.close();
      button.focus();
    }
  });
  document.body.append(host);

  return {
    root,
    panel,
    launcher: button,
    show(open) {
      panel.hidden = !open;
      host.toggleAttribute("data-open", open);
      button.setAttribute("aria-expanded", String(open));
      button.setAttribute("aria-label", open ? "Close support chat" : "Open support chat");
    },
    setUnread(count) {
      badge.hidden = !count;
      badge.textContent = count > 9 ? "9+" : String(count || "");
      button.setAttribute(
        "aria-label",
        count ? `Open support chat (${count} unread)` : "Open support chat",
      );
    },
    failed() {
      const boot = panel.querySelector(".boot");
      if (boot) boot.textContent = "Support chat could not load. Check your connection and try again.";
    },
  };
}

/** The customer's session token (per site, survives reloads) and the panel's open state (per tab). */
function store(site) {
  const key = `tandem:${site}`;
  const safe = (fn, fallback) => {
    try {
      return fn();
    } catch {
      return fallback; // storage blocked (privacy mode, sandboxed iframe)
    }
  };
  return {
    get: () => safe(() => JSON.parse(localStorage.getItem(key) || "{}"), {}),
    set: (value) => safe(() => localStorage.setItem(key, JSON.stringify(value))),
    wasOpen: () => safe(() => sessionStorage.getItem(`${key}:open`) === "1", false),
    setOpen: (open) =>
      safe(() =>
        open ? sessionStorage.setItem(`${key}:open`, "1") : sessionStorage.removeItem(`${key}:open`),
      ),
  };
}
