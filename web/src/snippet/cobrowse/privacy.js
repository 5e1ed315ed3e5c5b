// What the customer's browser never shares, decided here, before anything leaves the page.
//
// * Every form value is masked unless the site opts the field in with `data-tandem-unmask`
//   (on the field or a container). rrweb's `maskAllInputs: true` list misses `type=hidden` and
//   unknown types (rrweb#1609), so we hand rrweb the tag-level option `input: true` as well.
// * Passwords, card fields (`autocomplete="cc-*"`), one-time codes and fields under
//   `data-tandem-mask` are masked even when opted in, and may never be remote-controlled.
// * `data-tandem-mask` (and the site's mask selectors) masks an element's text;
//   `data-tandem-block` (and the site's block selectors) replaces it by an empty box of its size.
//   Tandem's own UI (`[data-tandem]`) is always blocked.
// * After rrweb, `scrub()` walks every event once more (belt and braces): form values in
//   snapshots and mutations, and text-bearing attributes inside masked elements.

const MASK_ATTR = "[data-tandem-mask]";
const BLOCK_ATTR = "[data-tandem-block]";
const OWN_UI = "[data-tandem]";
/** The markers the server also recognises (cobrowse/mirror.py) plus rrweb's classes. */
const MARKERS = `${MASK_ATTR}, ${BLOCK_ATTR}, ${OWN_UI}, .rr-block, .rr-mask, .rr-ignore`;
const SECRET_AUTOCOMPLETE = /^(cc-|current-password|new-password|one-time-code)/;
/** Attributes that carry text a masked element must not leak. */
const TEXT_ATTRS = ["title", "alt", "aria-label", "aria-valuetext", "aria-description", "value"];

/** Media the mirror never plays (its CSP has media-src 'none'): their sources are not sent. */
const MEDIA_TAGS = new Set(["video", "audio", "source", "track"]);

const INPUT_TYPES = [
  "color", "date", "datetime-local", "email", "month", "number", "range", "search", "tel",
  "text", "time", "url", "week", "textarea", "select", "password", "hidden",
]; // prettier-ignore

/** A comma-separated selector list from the site, keeping only selectors the browser parses. */
function selectorList(text) {
  return String(text || "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => {
      if (!s) return false;
      try {
        document.createDocumentFragment().querySelector(s);
        return true;
      } catch {
        console.warn(`Tandem: ignoring the co-browse selector ${JSON.stringify(s)}`);
        return false;
      }
    });
}

export const mask = (text) => "*".repeat(Math.min(String(text || "").length, 64));

/** The site's own selectors, from the snippet's script tag (`data-mask-selectors`, ...). */
function siteSettings(site) {
  const tag = [...document.querySelectorAll("script[data-site]")].find((s) => s.dataset.site === site);
  return tag ? tag.dataset : {};
}

export class Privacy {
  constructor(config) {
    const settings = siteSettings(config.site);
    const siteMask = selectorList(settings.maskSelectors);
    const siteBlock = selectorList(settings.blockSelectors);
    this.maskSelector = [MASK_ATTR, ...siteMask].join(", ");
    this.blockSelector = [BLOCK_ATTR, OWN_UI, ...siteBlock].join(", ");
    this.protectedSelector = [MARKERS, ...siteMask, ...siteBlock].join(", ");
    /** `(videoElement) => poster URL | null`: set by the co-browse chunk (./pixels.js). */
    this.posterFor = null;
  }

  /** rrweb `record()` options for masking and blocking. */
  recordOptions() {
    const maskInputOptions = { input: true };
    for (const t of INPUT_TYPES) maskInputOptions[t] = true;
    return {
      maskInputOptions,
      maskInputFn: (text, element) => (this.valueVisible(element) ? text : mask(text)),
      maskTextSelector: this.maskSelector,
      blockSelector: this.blockSelector,
      maskTextFn: (text) => text.replace(/\S/g, "*"),
    };
  }

  /** A secret field: masked always, never controlled. */
  secretField(el) {
    if (!el || el.nodeType !== 1) return false;
    const tag = el.tagName.toLowerCase();
    if (tag !== "input" && tag !== "textarea" && tag !== "select") return false;
    const type = (el.getAttribute("type") || "").toLowerCase();
    const auto = (el.getAttribute("autocomplete") || "").toLowerCase().trim();
    return type === "password" || el.hasAttribute("data-rr-is-password") || SECRET_AUTOCOMPLETE.test(auto);
  }

  /** Masked or blocked by a marker (ours, rrweb's or the site's) on the element or an ancestor. */
  marked(el) {
    return !!(el && el.nodeType === 1 && el.closest(this.protectedSelector));
  }

  /** The agent may see this field's value: opted in, and not a secret or under a marker. */
  valueVisible(el) {
    if (!el || el.nodeType !== 1) return false;
    return !!el.closest("[data-tandem-unmask]") && !this.secretField(el) && !this.marked(el);
  }

  /** Why remote control must not touch this node (or "" when it may). */
  refusal(node, actionType) {
    const el = node && (node.nodeType === 1 ? node : node.parentElement);
    if (!el) return node && node.nodeType === 9 ? "" : "unknown_target";
    if (this.marked(el) || this.secretField(el)) return "masked_target";
    const tag = el.tagName.toLowerCase();
    const field = tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
    // The agent cannot see masked values, so they may not type into (or over) them either.
    if ((actionType === "type" || actionType === "key") && field && !this.valueVisible(el)) {
      if (!el.isContentEditable) return "masked_target";
    }
    return "";
  }

  /** Inside a blocked element (or the shadow root of one, like Tandem's own UI). */
  blocked(node) {
    const el = node && (node.nodeType === 11 ? node.host : node.nodeType === 1 ? node : node.parentElement);
    return !!(el && el.closest(this.blockSelector));
  }

  /**
   * Scrub one rrweb event in place (after rrweb's own masking). `lookup(id)` gives the DOM node.
   * Returns false when the event must not be sent at all.
   */
  scrub(event, lookup) {
    if (event.type === 3 && event.data && event.data.source === 15) {
      // rrweb follows the adopted stylesheets of every shadow root it meets, even a blocked
      // host's (Tandem's own UI): those stay here.
      if (this.blocked(lookup(event.data.id))) return false;
    }
    if (event.type === 2 && event.data && event.data.node) {
      this.scrubTree(event.data.node, lookup, false);
    } else if (event.type === 3 && event.data) {
      const d = event.data;
      if (d.source === 0) {
        for (const add of d.adds || []) {
          const parent = lookup(add.parentId);
          const masked = parent && parent.nodeType === 1 ? !!parent.closest(this.maskSelector) : false;
          this.scrubTree(add.node, lookup, masked);
        }
        for (const change of d.attributes || []) {
          const el = lookup(change.id);
          if (!el || el.nodeType !== 1) continue;
          this.scrubAttrs(el.tagName.toLowerCase(), change.attributes, el, !!el.closest(this.maskSelector));
        }
      } else if (d.source === 5 && typeof d.text === "string") {
        const el = lookup(d.id);
        if (!this.valueVisible(el)) d.text = mask(d.text);
      }
    }
    return true;
  }

  scrubTree(node, lookup, maskedAbove) {
    const stack = [[node, maskedAbove]];
    while (stack.length) {
      const [n, above] = stack.pop();
      if (!n) continue;
      let masked = above;
      if (n.type === 2) {
        const el = lookup(n.id);
        masked = above || !!(el && el.nodeType === 1 && el.matches(this.maskSelector));
        this.scrubAttrs(n.tagName, n.attributes || {}, el, masked);
        if (n.tagName === "option" && n.attributes) this.selectedOption(n.attributes, el);
        if (n.tagName === "video" && n.attributes && el && this.posterFor) {
          const poster = this.posterFor(el);
          if (poster) n.attributes.poster = poster;
        }
      }
      for (const child of n.childNodes || []) stack.push([child, masked]);
    }
  }

  /**
   * rrweb drops every option's `selected` once selects are masked (ours always are, then opted
   * in per field), so a choice made before sharing showed as the first option. An opted-in
   * select gets its live choice back; a masked one keeps none.
   */
  selectedOption(attrs, option) {
    const select = option && option.nodeType === 1 ? option.closest("select") : null;
    if (select && option.selected && this.valueVisible(select)) attrs.selected = true;
    else delete attrs.selected;
  }

  scrubAttrs(tag, attrs, el, masked) {
    if (!attrs) return;
    // A video is shown by its frames as the poster (./pixels.js); a source URL in the mirror
    // would only be a blocked load (and a URL the agent has no need of).
    if (MEDIA_TAGS.has(tag)) {
      delete attrs.src;
      delete attrs.srcset;
    }
    const field = tag === "input" || tag === "textarea" || tag === "select";
    if (field && typeof attrs.value === "string" && attrs.value) {
      const type = String(attrs.type || (el && el.type) || "").toLowerCase();
      const keep = type === "submit" || type === "button" || type === "reset" || type === "image";
      if (!keep && !(el && this.valueVisible(el))) attrs.value = mask(attrs.value);
    }
    if (masked) {
      for (const name of TEXT_ATTRS) {
        if (typeof attrs[name] === "string" && attrs[name]) attrs[name] = mask(attrs[name]);
      }
    }
  }
}
