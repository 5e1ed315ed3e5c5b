"""Server-side sanitisation of rrweb events: defence in depth, never the only defence.

The agent console renders mirrored DOM only inside an iframe sandboxed *without*
``allow-scripts`` and under a CSP that allows loads only from Tandem's own routes
(see ``docs/adr/0001-sandboxed-replay.md``). This module removes or neutralises
what a hostile or compromised customer page could use against the agent's browser
if that sandbox were ever weakened: scripts, inline handlers, script/data URLs,
``srcdoc``, ``<base>``, meta refresh, SVG animation of ``href``/handlers, plugins,
nested frame sources, form targets, preload links, and CSS network beacons
(``url()``, ``@import``, ``image-set()``...) and ``attr()`` exfiltration.

Contract:

* Functions **mutate the events in place** (the validated batch belongs to the
  caller and nobody else) and return / update a :class:`SanitizeReport` that
  counts what was removed, by reason. Deep-copy first if you need the original.
* Node ids are never changed or removed, so later mutations that reference a
  neutralised node still apply: a ``<script>`` becomes an empty ``<noscript>``,
  an ``<object>`` becomes a ``<div>`` placeholder box, and so on.
* Benign content is left byte-for-byte intact: text, classes, ids, inline styles
  without URLs, ``http(s)`` links and image URLs (the CSP decides whether they load).
* Nothing here logs. Reports contain counts only, never text or attribute values.
* ``sanitize(sanitize(x)) == sanitize(x)``.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from .types import Event, EventType, IncrementalSource, NodeType

__all__ = [
    "BLOCKED_URL",
    "SanitizeReport",
    "sanitize_batch",
    "sanitize_css",
    "sanitize_event",
    "sanitize_node",
    "sanitize_url",
]

BLOCKED_URL: Final = "about:invalid"
"""What a dangerous URL is replaced with."""

# Report reasons (stable strings for metrics).
R_SCRIPT: Final = "script"
R_HANDLER: Final = "event_handler"
R_URL: Final = "bad_url"
R_SRCDOC: Final = "srcdoc"
R_BASE: Final = "base"
R_META: Final = "meta_http_equiv"
R_ANIMATE: Final = "svg_animate"
R_EMBED: Final = "embed"
R_IFRAME: Final = "iframe"
R_FORM: Final = "form_action"
R_LINK: Final = "link_rel"
R_CSS_URL: Final = "css_url"
R_CSS_IMPORT: Final = "css_import"
R_CSS_FUNC: Final = "css_function"
R_CSS_DROPPED: Final = "css_dropped"
R_ATTR_NAME: Final = "bad_attr_name"
R_TAG: Final = "bad_tag"
R_CANVAS: Final = "canvas_src"
R_DATAURL: Final = "bad_data_url"


@dataclass(slots=True)
class SanitizeReport:
    """Counts of what was removed or neutralised, by reason. Never holds content."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        """Count ``n`` removals for ``reason``."""
        self.counts[reason] += n

    @property
    def total(self) -> int:
        """Total number of removals."""
        return sum(self.counts.values())

    def merge(self, other: SanitizeReport) -> None:
        """Add another report's counts to this one."""
        self.counts.update(other.counts)

    def as_dict(self) -> dict[str, int]:
        """Plain dict for logs and metrics."""
        return dict(self.counts)


# ============================================================================ URLs

_SAFE_SCHEMES: Final = frozenset({"http", "https", "mailto", "tel", "sms"})
_SAFE_ABOUT: Final = frozenset({"about:invalid", "about:blank"})
_STRIP_FOR_SCHEME = re.compile(
    r"[\x00-\x20\x7f-\xa0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]+"
)
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_DATA_IMAGE = re.compile(
    r"data:image/(?:png|gif|jpe?g|webp|avif|bmp|x-icon|vnd\.microsoft\.icon)[;,]", re.I
)
_DATA_FONT = re.compile(
    r"data:(?:font/[a-z0-9.+\-]+|application/(?:x-)?font-[a-z0-9.+\-]+)[;,]", re.I
)


def _url_variants(value: str) -> Iterable[str]:
    """Normalised forms a browser or a decoding layer might see."""
    cur = value
    for _ in range(4):
        yield _STRIP_FOR_SCHEME.sub("", cur).lower()
        nxt = html.unescape(cur)
        nxt = unquote(nxt)
        if nxt == cur:
            break
        cur = nxt


def _url_ok(value: str, *, allow_data_image: bool) -> bool:
    for norm in _url_variants(value):
        m = _SCHEME.match(norm)
        if m is None:
            if norm.startswith(("&", "%")) and ":" in norm:
                return False  # undecodable entity/percent trick before a colon
            continue
        scheme = m.group(1)
        if scheme in _SAFE_SCHEMES:
            continue
        if scheme == "data" and allow_data_image and _DATA_IMAGE.match(norm):
            continue
        if scheme == "about" and norm in _SAFE_ABOUT:
            continue
        return False
    return True


def sanitize_url(
    value: str, report: SanitizeReport | None = None, *, allow_data_image: bool = True
) -> str:
    """Return ``value`` if it is a relative or ``http(s)``/``mailto``/``tel`` URL
    (or a raster ``data:image``), else :data:`BLOCKED_URL`.

    The scheme is checked after removing whitespace and control characters,
    decoding HTML entities and percent-escapes (repeatedly), case-insensitively.
    """
    if _url_ok(value, allow_data_image=allow_data_image):
        return value
    if report is not None:
        report.add(R_URL)
    return BLOCKED_URL


_SRCSET_URL = re.compile(r"[^\s]+")


def _sanitize_srcset(value: str, report: SanitizeReport) -> str:
    """Sanitise each candidate URL of a ``srcset`` (data URLs contain commas)."""
    out: list[str] = []
    pos = 0
    n = len(value)
    changed = False
    while pos < n:
        while pos < n and value[pos] in " \t\n\r\f,":
            pos += 1
        if pos >= n:
            break
        m = _SRCSET_URL.match(value, pos)
        assert m is not None
        url = m.group(0)
        pos = m.end()
        descriptor = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            depth = 0
            while pos < n:
                c = value[pos]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth = max(0, depth - 1)
                elif c == "," and depth == 0:
                    break
                pos += 1
            descriptor = value[start:pos].strip()
            pos += 1
        if _url_ok(url, allow_data_image=True):
            out.append(f"{url} {descriptor}".strip())
        else:
            changed = True
            report.add(R_URL)
    return ", ".join(out) if changed else value


# ============================================================================ CSS

_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\r\n\f])?|([^\r\n\f0-9a-fA-F]))")
_CSS_FUNC = re.compile(r"(?<![\w\-\\])(-(?:webkit|moz|ms|o)-)?([a-z_][a-z0-9_\-]*)\(", re.I)
_CSS_IMPORT = re.compile(r"@import(?![\w\-])", re.I)
_CSS_QUICK = re.compile(r"[(@\\]")
_CSS_URL_FUNCS: Final = frozenset({"url", "src"})
_CSS_NONE_FUNCS: Final = frozenset({"image-set", "image", "cross-fade", "element", "expression"})
_CSS_EMPTY_STRING_FUNCS: Final = frozenset({"attr"})
_CSS_RISKY = re.compile(
    r"(?<![\w\-\\])(?:-(?:webkit|moz|ms|o)-)?"
    r"(?:url|src|image-set|image|cross-fade|element|expression|attr)\(|@import(?![\w\-])",
    re.I,
)


def _css_unescape(m: re.Match[str]) -> str:
    hexpart, char = m.group(1), m.group(2)
    if hexpart is not None:
        code = int(hexpart, 16)
        c = "\ufffd" if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code)
    else:
        c = char
    if c.isascii() and not (c.isalnum() or c in "-_"):
        return f"\\{ord(c):x} "  # keep syntax characters escaped, in one canonical form
    return c


def _css_canonical(text: str) -> str:
    """Drop comments and decode escapes so a function name is spelled literally."""
    text = text.replace("\x00", "\ufffd")
    text = _CSS_COMMENT.sub("", text)
    return _CSS_ESCAPE.sub(_css_unescape, text)


def _css_scan_end(text: str, pos: int, *, stop_at_semicolon: bool) -> int:
    """Index just past the ``)`` closing the function opened before ``pos`` (or the ``;``
    ending an at-rule prelude), honouring strings and nesting. End of text if unclosed."""
    depth = 0
    quote = ""
    n = len(text)
    i = pos
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote or c == "\n":
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0 and not stop_at_semicolon:
                return i + 1
            depth = max(0, depth - 1)
        elif stop_at_semicolon and depth == 0 and c in ";{}":
            return i + 1 if c == ";" else i
        i += 1
    return n


def _css_url_arg_ok(arg: str) -> bool:
    arg = arg.strip().strip("\"'").strip()
    if not arg:
        return True  # url() / url(""): an invalid image, never a request
    if arg.startswith("#") and "(" not in arg and "\\" not in arg:
        return True  # local fragment reference (SVG gradients, filters): no fetch
    return bool(_DATA_IMAGE.match(arg) or _DATA_FONT.match(arg))


def _css_rewrite_once(text: str, report: SanitizeReport) -> str:
    out: list[str] = []
    pos = 0
    n = len(text)
    while pos < n:
        mi = _CSS_IMPORT.search(text, pos)
        mf = _CSS_FUNC.search(text, pos)
        while mf is not None:
            name = mf.group(2).lower()
            if name in _CSS_URL_FUNCS | _CSS_NONE_FUNCS | _CSS_EMPTY_STRING_FUNCS:
                break
            mf = _CSS_FUNC.search(text, mf.end())
        if mi is None and mf is None:
            break
        if mi is not None and (mf is None or mi.start() <= mf.start()):
            end = _css_scan_end(text, mi.end(), stop_at_semicolon=True)
            out.append(text[pos : mi.start()])
            report.add(R_CSS_IMPORT)
            pos = end
            continue
        assert mf is not None
        name = mf.group(2).lower()
        end = _css_scan_end(text, mf.end(), stop_at_semicolon=False)
        out.append(text[pos : mf.start()])
        call = text[mf.start() : end]
        if name in _CSS_URL_FUNCS:
            inner = text[mf.end() : end - 1 if text[end - 1 : end] == ")" else end]
            if _css_url_arg_ok(inner):
                out.append(call)
            else:
                out.append("url()")
                report.add(R_CSS_URL)
        elif name in _CSS_NONE_FUNCS:
            out.append("none")
            report.add(R_CSS_FUNC)
        else:
            out.append('""')
            report.add(R_CSS_FUNC)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _css_is_clean(text: str) -> bool:
    for m in _CSS_RISKY.finditer(text):
        frag = m.group(0).lower()
        if frag.startswith("@"):
            return False
        end = _css_scan_end(text, m.end(), stop_at_semicolon=False)
        inner = text[m.end() : end - 1 if text[end - 1 : end] == ")" else end]
        if not (frag.endswith(("url(", "src(")) and _css_url_arg_ok(inner)):
            return False
    return True


def sanitize_css(text: str, report: SanitizeReport | None = None) -> str:
    """Neutralise network and exfiltration constructs in CSS text.

    ``url()``/``src()`` become ``url()`` (an invalid image, no request) unless they
    point at a fragment (``#id``) or an inline raster image or font; ``@import``
    rules are removed; ``image-set()``, ``image()``, ``cross-fade()``, ``element()``
    and ``expression()`` become ``none``; ``attr()`` becomes ``""``. Comments and
    escapes are resolved first so ``u\\72l(`` or ``@\\69mport`` cannot hide.
    CSS without such constructs is returned unchanged.
    """
    rep = report if report is not None else SanitizeReport()
    if not _CSS_QUICK.search(text):
        return text
    canon = _css_canonical(text)
    if _css_is_clean(canon):
        return text
    out = canon
    for _ in range(4):
        new = _css_rewrite_once(out, rep)
        if new == out:
            break
        out = new
    if not _css_is_clean(out):  # pathological input: give up on the whole text
        rep.add(R_CSS_DROPPED)
        return ""
    return out


# ============================================================================ DOM

_TAG_RE = re.compile(r"[a-z][a-z0-9._:\-]*")
_ATTR_NAME_RE = re.compile(r"[^\s\"'<>/=\x00-\x1f\x7f]+")
_URL_ATTRS: Final = frozenset(
    {
        "href", "src", "poster", "background", "data", "codebase", "cite", "longdesc",
        "lowsrc", "dynsrc", "manifest", "profile", "classid", "archive", "icon", "usemap",
        "itemtype", "formaction", "action", "content-url",
    }
)  # fmt: skip
_DROP_ATTRS: Final = {
    "srcdoc": R_SRCDOC,
    "rr_src": R_IFRAME,
    "ping": R_URL,
    "attributionsrc": R_URL,
    "xml:base": R_URL,
    "action": R_FORM,
    "formaction": R_FORM,
}
_CSS_ATTRS: Final = frozenset(
    {
        "style", "_csstext", "rr_width", "rr_height", "fill", "stroke", "filter",
        "clip-path", "mask", "marker", "marker-start", "marker-mid", "marker-end", "cursor",
        "color-profile",
    }
)  # fmt: skip
_ANIMATION_VALUE_ATTRS: Final = frozenset({"to", "from", "by", "values"})
_ANIMATED_DANGEROUS: Final = frozenset(
    {"href", "src", "style", "action", "formaction", "srcdoc", "data", "poster", "background"}
)
_HTTP_EQUIV_OK: Final = frozenset(
    {"content-type", "content-language", "x-ua-compatible", "default-style"}
)
_RISKY_REL: Final = frozenset(
    {
        "prefetch", "preload", "modulepreload", "import", "dns-prefetch", "preconnect",
        "prerender", "manifest", "serviceworker", "pingback", "next",
    }
)  # fmt: skip
_FRAME_TAGS: Final = frozenset({"iframe", "frame"})
_PLUGIN_TAGS: Final = frozenset({"object", "embed", "applet", "portal", "fencedframe"})
_ANIMATE_TAGS: Final = frozenset(
    {"animate", "set", "animatemotion", "animatetransform", "animatecolor"}
)
NESTED_FRAME_SANDBOX: Final = "allow-same-origin"
"""``sandbox`` forced onto nested frames: scripts stay off even if the outer
sandbox were misconfigured; same-origin keeps the replayer able to fill them."""
_PLACEHOLDER_KEEP: Final = frozenset({"id", "class", "style", "title", "width", "height"})


def _norm_name(name: str) -> tuple[str, str]:
    lower = name.lower()
    return lower, lower.rsplit(":", 1)[-1]


def _sanitize_attr(
    name: str, value: Any, tag: str | None, report: SanitizeReport
) -> tuple[bool, Any]:
    """Decide one attribute. Returns ``(keep, new_value)``. ``tag`` is ``None`` when the
    element is unknown (attribute mutations)."""
    if not _ATTR_NAME_RE.fullmatch(name):
        report.add(R_ATTR_NAME)
        return False, None
    lower, local = _norm_name(name)
    if local.startswith("on"):
        report.add(R_HANDLER)
        return False, None
    if value is None:  # attribute removal (mutations): always safe
        return True, None
    reason = _DROP_ATTRS.get(lower) or _DROP_ATTRS.get(local)
    if reason is not None:
        report.add(reason)
        return False, None
    if lower == "sandbox":
        if tag is None or tag in _FRAME_TAGS:
            if value != NESTED_FRAME_SANDBOX:
                report.add(R_IFRAME)
            return True, NESTED_FRAME_SANDBOX
        return True, value
    if lower == "allow" and (tag is None or tag in _FRAME_TAGS):
        report.add(R_IFRAME)
        return False, None
    if isinstance(value, dict):  # styleOMValue from an attribute mutation
        if lower != "style":
            report.add(R_ATTR_NAME)
            return False, None
        return True, _sanitize_style_om(value, report)
    if not isinstance(value, str):
        return True, value
    if lower == "rr_dataurl":
        if _DATA_IMAGE.match(value.lstrip()):
            return True, value
        report.add(R_DATAURL)
        return False, None
    if lower in ("srcset", "imagesrcset"):
        return True, _sanitize_srcset(value, report)
    if lower in _URL_ATTRS or local in _URL_ATTRS:
        return True, sanitize_url(value, report)
    if lower in _CSS_ATTRS:
        return True, sanitize_css(value, report)
    if lower == "http-equiv":
        if value.strip().lower() in _HTTP_EQUIV_OK:
            return True, value
        report.add(R_META)
        return False, None
    if lower == "attributename":
        _, target = _norm_name(value.strip())
        if target.startswith("on") or target in _ANIMATED_DANGEROUS:
            report.add(R_ANIMATE)
            return False, None
        return True, value
    if lower in _ANIMATION_VALUE_ATTRS and (tag is None or tag in _ANIMATE_TAGS):
        if all(_url_ok(part, allow_data_image=True) for part in value.split(";")):
            return True, value
        report.add(R_ANIMATE)
        return False, None
    if lower == "rel" and (tag is None or tag == "link"):
        tokens = value.split()
        kept = [t for t in tokens if t.lower() not in _RISKY_REL]
        if len(kept) != len(tokens):
            report.add(R_LINK)
            return (bool(kept), " ".join(kept) if kept else None)
    return True, value


def _sanitize_style_om(value: dict[str, Any], report: SanitizeReport) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop, pv in value.items():
        if isinstance(pv, str):
            out[prop] = sanitize_css(pv, report)
        elif isinstance(pv, list):
            out[prop] = [sanitize_css(p, report) if isinstance(p, str) else p for p in pv]
        else:
            out[prop] = pv
    return out


def _sanitize_attr_map(attrs: dict[str, Any], tag: str | None, report: SanitizeReport) -> None:
    for name in list(attrs):
        keep, new = _sanitize_attr(name, attrs[name], tag, report)
        if not keep:
            del attrs[name]
        elif new is not attrs[name]:
            attrs[name] = new


def _neutralise_script(node: dict[str, Any], report: SanitizeReport) -> None:
    report.add(R_SCRIPT)
    node["tagName"] = "noscript"
    node["attributes"] = {"data-tandem-removed": "script"}
    node["childNodes"] = []
    node.pop("isSVG", None)
    node.pop("isCustom", None)


def _placeholder(node: dict[str, Any], local: str, report: SanitizeReport) -> None:
    report.add(R_EMBED)
    old = node.get("attributes") or {}
    attrs: dict[str, Any] = {k: v for k, v in old.items() if k.lower() in _PLACEHOLDER_KEEP}
    style = str(attrs.pop("style", "") or "")
    for dim in ("width", "height"):
        v = attrs.pop(dim, None)
        if isinstance(v, int | float) or (isinstance(v, str) and re.fullmatch(r"\d{1,5}", v)):
            style = f"{dim}:{v}px;{style}"
    if style:
        attrs["style"] = style
    attrs["data-tandem-removed"] = local
    node["tagName"] = "div"
    node["attributes"] = attrs
    node.pop("isSVG", None)
    node.pop("isCustom", None)


def _sanitize_element(node: dict[str, Any], report: SanitizeReport) -> str:
    """Sanitise one element in place (not its children). Returns its local tag name."""
    raw_tag = node.get("tagName")
    tag = raw_tag.lower() if isinstance(raw_tag, str) else ""
    if not _TAG_RE.fullmatch(tag):
        report.add(R_TAG)
        tag = "div"
    node["tagName"] = tag
    local = tag.rsplit(":", 1)[-1]
    if local == "script":
        _neutralise_script(node, report)
        return "noscript"
    attrs = node.get("attributes")
    if not isinstance(attrs, dict):
        attrs = {}
        node["attributes"] = attrs
    if local in _PLUGIN_TAGS:
        _placeholder(node, local, report)
        attrs = node["attributes"]
        local = "div"
    elif local == "base":
        if attrs:
            report.add(R_BASE)
        node["attributes"] = attrs = {}
    elif local in _FRAME_TAGS:
        if "src" in attrs:
            report.add(R_IFRAME)
            del attrs["src"]
        attrs["sandbox"] = NESTED_FRAME_SANDBOX
    elif local == "link":
        rel = attrs.get("rel")
        rel_tokens = str(rel).lower().split() if rel is not None else []
        if "stylesheet" not in rel_tokens:
            dropped = [k for k in ("href", "imagesrcset", "imagesizes") if k in attrs]
            if dropped:
                report.add(R_LINK)
            for k in dropped:
                del attrs[k]
    _sanitize_attr_map(attrs, local, report)
    return local


def sanitize_node(
    root: dict[str, Any],
    report: SanitizeReport | None = None,
    *,
    parent_is_style: bool | None = False,
) -> SanitizeReport:
    """Sanitise a serialized node and its subtree **in place**.

    ``parent_is_style`` says whether ``root``'s parent is a ``<style>`` element;
    ``None`` means unknown (a mutation add whose parent is elsewhere), in which
    case a root text node is treated as possibly CSS.
    """
    rep = report if report is not None else SanitizeReport()
    stack: list[tuple[dict[str, Any], bool | None]] = [(root, parent_is_style)]
    while stack:
        node, in_style = stack.pop()
        ntype = node.get("type")
        if ntype == NodeType.ELEMENT:
            local = _sanitize_element(node, rep)
            children = node.get("childNodes")
            if isinstance(children, list):
                child_style = local == "style"
                stack.extend((c, child_style) for c in children if isinstance(c, dict))
        elif ntype == NodeType.DOCUMENT:
            children = node.get("childNodes")
            if isinstance(children, list):
                stack.extend((c, False) for c in children if isinstance(c, dict))
        elif ntype == NodeType.TEXT:
            text = node.get("textContent")
            if isinstance(text, str) and (in_style is not False or node.get("isStyle")):
                node["textContent"] = sanitize_css(text, rep)
    return rep


# ============================================================================ events


def _sanitize_mutation(data: dict[str, Any], rep: SanitizeReport) -> None:
    for add in data.get("adds") or ():
        if isinstance(add, dict) and isinstance(add.get("node"), dict):
            sanitize_node(add["node"], rep, parent_is_style=None)
    for change in data.get("attributes") or ():
        if isinstance(change, dict) and isinstance(change.get("attributes"), dict):
            _sanitize_attr_map(change["attributes"], None, rep)
    for t in data.get("texts") or ():
        # The parent of a text mutation is unknown here; it may be a <style>.
        if isinstance(t, dict) and isinstance(t.get("value"), str):
            t["value"] = sanitize_css(t["value"], rep)


def _sanitize_rules(rules: object, rep: SanitizeReport) -> None:
    if not isinstance(rules, list):
        return
    for r in rules:
        if isinstance(r, dict) and isinstance(r.get("rule"), str):
            r["rule"] = sanitize_css(r["rule"], rep)


def _sanitize_canvas_args(obj: object, rep: SanitizeReport) -> None:
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            src = cur.get("src")
            if isinstance(src, str) and src and not _DATA_IMAGE.match(src.lstrip()):
                cur["src"] = ""
                rep.add(R_CANVAS)
            stack.extend(v for v in cur.values() if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, dict | list))


def sanitize_event(event: Event, report: SanitizeReport | None = None) -> SanitizeReport:
    """Sanitise one validated event **in place**."""
    rep = report if report is not None else SanitizeReport()
    etype = event.get("type")
    data = event.get("data")
    if not isinstance(data, dict):
        return rep
    if etype == EventType.FULL_SNAPSHOT:
        if isinstance(data.get("node"), dict):
            sanitize_node(data["node"], rep)
    elif etype == EventType.META:
        if isinstance(data.get("href"), str):
            data["href"] = sanitize_url(data["href"], rep, allow_data_image=False)
    elif etype == EventType.INCREMENTAL_SNAPSHOT:
        source = data.get("source")
        if source == IncrementalSource.MUTATION:
            _sanitize_mutation(data, rep)
        elif source == IncrementalSource.STYLE_SHEET_RULE:
            _sanitize_rules(data.get("adds"), rep)
            for key in ("replace", "replaceSync"):
                if isinstance(data.get(key), str):
                    data[key] = sanitize_css(data[key], rep)
        elif source == IncrementalSource.ADOPTED_STYLE_SHEET:
            for style in data.get("styles") or ():
                if isinstance(style, dict):
                    _sanitize_rules(style.get("rules"), rep)
        elif source == IncrementalSource.STYLE_DECLARATION:
            s = data.get("set")
            if isinstance(s, dict) and isinstance(s.get("value"), str):
                s["value"] = sanitize_css(s["value"], rep)
        elif source == IncrementalSource.FONT:
            # A non-buffer fontSource is CSS `src` text: FontFace would fetch it.
            if not data.get("buffer") and isinstance(data.get("fontSource"), str):
                data["fontSource"] = sanitize_css(data["fontSource"], rep)
        elif source == IncrementalSource.CANVAS_MUTATION:
            _sanitize_canvas_args(data.get("commands"), rep)
            _sanitize_canvas_args(data.get("args"), rep)
    return rep


def sanitize_batch(events: list[Event], report: SanitizeReport | None = None) -> SanitizeReport:
    """Sanitise a validated batch **in place**; returns the counts of removals."""
    rep = report if report is not None else SanitizeReport()
    for ev in events:
        sanitize_event(ev, rep)
    return rep
