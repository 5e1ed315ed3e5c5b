// A CSS rule's text for the co-browse stream, taken from the page's own CSS source where
// Chromium's serialization loses declarations.
//
// rrweb copies stylesheets (a <style>'s rules, inlined <link>s, the adopted/constructed sheets
// of web components) rule by rule from `rule.cssText`. When a shorthand's value has a var() (a
// "pending substitution") and a later declaration of the same rule overrides one of its
// longhands, Chromium serializes the shorthand's other longhands with EMPTY values:
//
//   .alert { border: solid var(--w) var(--c); border-top-width: calc(var(--w) * 3); }
//   -> .alert { border-top-color: ; border-top-style: ; ... ; border-top-width: calc(...); }
//
// and no CSSOM read gives them back (getPropertyValue is "" for them and for the shorthand, the
// overridden longhand's own pending value is gone). The mirror then has no border at all
// (Shoelace's <sl-alert> is 4 px shorter, and so is the page's scroll range).
//
// The text survives only in the CSS source, which the page often still holds: a <style>'s text,
// and a Lit component's styles (`elementStyles`, the CSSResults its shadow root adopts; Lit is
// what Shoelace and most web-component libraries are built on). Sources are split into top-level
// rules; a rule of the source is used for a lossy rule only if the browser parses it to exactly
// the same `cssText`, so a wrong match cannot happen. A rule with no source found (a <link>ed
// sheet, another component library) is sent as Chromium serializes it.

const LOSSY = /[{;]\s*[a-z][a-z-]*: ;/; // an empty value of a standard property (custom ones may be empty)
const RESCAN_MS = 1000;

const sourceOf = new Map(); // lossy cssText -> the rule's source text
const scanned = new Set(); // source texts already split
let scannedAt = -Infinity;
let scratch = null;

/** rrweb's `rule.cssText`, from the source where Chromium's text lost declarations. */
export function ruleText(rule) {
  const text = rule.cssText;
  if (!text.includes(": ;") || !LOSSY.test(text)) return text;
  let source = sourceOf.get(text);
  const owner = rule.parentStyleSheet && rule.parentStyleSheet.ownerNode;
  if (source === undefined && owner && owner.localName === "style") {
    // Its own <style> first: one text, so never held back by the rescan's throttle (a rule
    // added within a second of the last scan went lossy, and stayed so in the agent's view).
    try {
      learn(owner.textContent || "");
    } catch {
      // a page we cannot read: Chromium's text
    }
    source = sourceOf.get(text);
  }
  if (source === undefined && performance.now() - scannedAt > RESCAN_MS) {
    scannedAt = performance.now();
    try {
      scan();
    } catch {
      // a page we cannot read: Chromium's text
    }
    source = sourceOf.get(text);
  }
  return source || text;
}

/** Every CSS source the page holds: <style> texts and Lit components' styles, shadow roots in. */
function sources() {
  const out = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.localName === "style") out.push(el.textContent || "");
      if (!el.shadowRoot) continue;
      const styles = el.constructor && el.constructor.elementStyles;
      if (Array.isArray(styles)) for (const s of styles) if (s && typeof s.cssText === "string") out.push(s.cssText);
      visit(el.shadowRoot);
    }
  };
  visit(document);
  return out;
}

function scan() {
  for (const css of sources()) learn(css);
}

/** The lossy rules of one CSS source, each mapped to its own text. */
function learn(css) {
  if (scanned.has(css) || !css.includes("var(")) return;
  scanned.add(css);
  for (const source of splitRules(css)) {
    if (!source.includes("var(")) continue; // no pending substitution, nothing lost
    scratch = scratch || new CSSStyleSheet();
    try {
      scratch.replaceSync(source);
    } catch {
      continue;
    }
    if (scratch.cssRules.length !== 1) continue;
    const parsed = scratch.cssRules[0].cssText;
    if (LOSSY.test(parsed)) sourceOf.set(parsed, source);
  }
  if (scratch) scratch.replaceSync("");
}

/** Top-level rules of a stylesheet's text (blocks and `;` statements), comments dropped. */
export function splitRules(css) {
  const rules = [];
  let current = "";
  let depth = 0;
  let i = 0;
  while (i < css.length) {
    const c = css[i];
    if (c === "/" && css[i + 1] === "*") {
      const end = css.indexOf("*/", i + 2);
      i = end < 0 ? css.length : end + 2;
      current += " ";
      continue;
    }
    let j = i + 1;
    if (c === '"' || c === "'") {
      while (j < css.length && css[j] !== c && css[j] !== "\n") j += css[j] === "\\" ? 2 : 1;
      j = Math.min(css.length, j + 1);
    } else if (c === "\\") {
      j = i + 2;
    }
    current += css.slice(i, j);
    i = j;
    if (c === "{") depth++;
    else if (c === "}" || (c === ";" && depth === 0)) {
      if (c === "}") depth = Math.max(0, depth - 1);
      if (depth === 0) {
        if (current.trim()) rules.push(current.trim());
        current = "";
      }
    }
  }
  return rules;
}
