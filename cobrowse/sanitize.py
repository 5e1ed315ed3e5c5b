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
  without URLs, ``http(s)`` links and, without an asset rewriter, image URLs.
* With a :class:`SanitizeContext` that carries an :class:`~cobrowse.assets.AssetRewriter`,
  every resource URL (``img``/``srcset``/``poster``/``background``, SVG ``image``/``use``,
  ``<link rel=stylesheet>``, CSS ``url()``, ``@import``, ``image-set()``, font sources) is
  rewritten to Tandem's asset route or blocked: nothing in the mirror names another host.
  Media sources (``<video src>``, ``<audio>``, ``<track>``) are blocked.
* The context also remembers, per session, which node ids are ``<style>`` elements, their text
  children and frames, so that ``<style>`` text split over several text nodes is sanitized as
  one whole and cannot be joined into a beacon, and a later ``src`` on a frame is dropped.
* Nothing here logs. Reports contain counts only, never text or attribute values.
* ``sanitize(sanitize(x)) == sanitize(x)``.
"""

from __future__ import annotations

import functools
import html
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from .assets import AssetKind, AssetRewriter, resolve_url, split_fragment, svg_data_url_ok
from .types import (
    EVENT_FULL_SNAPSHOT,
    EVENT_INCREMENTAL,
    EVENT_META,
    NODE_DOCUMENT,
    NODE_ELEMENT,
    SOURCE_MUTATION,
    Event,
    IncrementalSource,
    NodeType,
)

__all__ = [
    "BLOCKED_URL",
    "SanitizeContext",
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
R_NESTED_DOC: Final = "nested_document"
R_CSS_COMMENT: Final = "css_comment"
R_MEDIA: Final = "media_url"


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


_TRACKED_TAGS: Final = frozenset(
    {
        "style", "iframe", "frame", "link", "img", "input", "source", "video", "audio",
        "track", "image", "use", "feimage", "object", "embed", "applet", "portal",
        "fencedframe",
    }
)  # fmt: skip
"""Elements whose later attribute and text mutations the context must recognise."""


@dataclass(slots=True)
class SanitizeContext:
    """What sanitizing one customer tab's stream needs to remember between batches.

    Holds the asset rewriter (``None``: resource URLs stay as they are, for the CSP to refuse),
    the page's address (from ``Meta`` events) to resolve relative URLs against, and which node
    ids are elements whose mutations need their tag (``<style>``, frames, images, plugins).
    Not thread-safe: one batch at a time per context.
    """

    assets: AssetRewriter | None = None
    base_url: str | None = None
    tags: dict[int, str] = field(default_factory=dict)
    """id -> local tag name, for :data:`_TRACKED_TAGS` only."""
    style_text_ids: set[int] = field(default_factory=set)
    """Text nodes known to be children of a ``<style>``."""
    seen_snapshot: bool = False
    """A full snapshot was seen: an element not in ``tags`` is an ordinary one."""

    def reset(self) -> None:
        """Forget the node ids (a new full snapshot describes the whole page again)."""
        self.tags.clear()
        self.style_text_ids.clear()
        self.seen_snapshot = True

    def is_style(self, node_id: object) -> bool | None:
        """Whether ``node_id`` is a ``<style>``; ``None`` if unknown (no snapshot seen)."""
        if isinstance(node_id, int) and self.tags.get(node_id) == "style":
            return True
        return False if self.seen_snapshot else None


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
_DATA_SVG = re.compile(r"\s*data:image/svg\+xml[;,]", re.I)
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


_MEDIA: Final = "media"
"""A resource the mirror cannot have (audio/video sources): blocked when assets are on."""


def _own_asset(value: str, ctx: SanitizeContext) -> bool:
    return ctx.assets is not None and ctx.assets.is_asset_url(value.strip())


def _resource_url(
    value: str, kind: AssetKind | str, ctx: SanitizeContext, report: SanitizeReport
) -> str:
    """A URL the mirror would load: kept if inert or inline, rewritten to the asset route
    (when the context has a rewriter), else blocked."""
    if kind == AssetKind.IMAGE and _DATA_SVG.match(value):
        if svg_data_url_ok(value):
            return value
        report.add(R_DATAURL)
        return BLOCKED_URL
    if not _url_ok(value, allow_data_image=True):
        report.add(R_URL)
        return BLOCKED_URL
    if ctx.assets is None:
        return value
    stripped = value.strip()
    if not stripped or stripped in _SAFE_ABOUT or _DATA_IMAGE.match(stripped):
        return value
    if stripped.startswith("#") and kind != _MEDIA:
        return value  # same-document reference (<use href="#icon">): no request
    if _own_asset(stripped, ctx):
        return value
    if kind == _MEDIA:
        report.add(R_MEDIA)
        return BLOCKED_URL
    assert isinstance(kind, AssetKind)
    rewritten = _rewrite(stripped, kind, ctx)
    if rewritten is None:
        report.add(R_URL)
        return BLOCKED_URL
    return rewritten


def _rewrite(value: str, kind: AssetKind, ctx: SanitizeContext) -> str | None:
    assert ctx.assets is not None
    absolute = resolve_url(value, ctx.base_url)
    if absolute is None:
        return None
    url, frag = split_fragment(absolute)
    out = ctx.assets.asset_url(url, kind)
    if out is None:
        return None
    return f"{out}#{frag}" if frag else out


_SRCSET_URL = re.compile(r"[^\s]+")


def _sanitize_srcset(value: str, ctx: SanitizeContext, report: SanitizeReport) -> str:
    """Sanitise (and rewrite) each candidate URL of a ``srcset`` (data URLs contain commas)."""
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
        new = _resource_url(url, AssetKind.IMAGE, ctx, report)
        if new == BLOCKED_URL:
            changed = True
            continue
        changed = changed or new != url
        out.append(f"{new} {descriptor}".strip())
    return ", ".join(out) if changed else value


# ============================================================================ CSS

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
_CSS_PROPERTY = re.compile(r"\s*(-{0,2}[a-z_][a-z0-9_\-]*)\s*:", re.I)
_CSS_IMAGE_PROPERTIES: Final = frozenset(
    {
        "background", "background-image", "list-style", "list-style-image", "mask",
        "mask-image", "-webkit-mask", "-webkit-mask-image", "-webkit-mask-box-image",
        "mask-border", "mask-border-source", "border-image", "border-image-source",
        "-webkit-border-image", "content", "cursor",
    }
)  # fmt: skip
"""Where an inline SVG is only ever drawn as an image (custom properties too, see below)."""
_CSS_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?", re.S)


@dataclass(slots=True)
class _Css:
    """How CSS URLs are treated: the session's context and the property of an attribute."""

    ctx: SanitizeContext
    default_property: str | None = None


def _css_escaped_char(m: re.Match[str]) -> str:
    hexpart, char = m.group(1), m.group(2)
    if hexpart is None:
        return char
    code = int(hexpart, 16)
    return "\ufffd" if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code)


def _css_unescape(m: re.Match[str]) -> str:
    c = _css_escaped_char(m)
    if c.isascii() and not (c.isalnum() or c in "-_"):
        return f"\\{ord(c):x} "  # keep syntax characters escaped, in one canonical form
    return c


_CSS_SPACE: Final = " \t\n\r\f"
_CSS_SPECIAL = re.compile(r"/\*|[\"'\\(]")


def _css_canonical(text: str, *, join: bool = False) -> str:
    """CSS as a browser tokenizes it, spelled plainly so that checks can read it: escapes
    decoded (syntax characters stay escaped), a comment replaced by a space (it ends a name:
    ``red/**/url(`` is two tokens, never ``redurl(``), nothing inside a string or an unquoted
    ``url(...)`` taken for a comment (``url(/*)`` is a URL, and what follows it is CSS).

    ``join``: drop comments instead, the way an old parser might read ``u/**/rl(``; text is
    only kept as it is when both readings are clean."""
    text = text.replace("\x00", "\ufffd")
    out: list[str] = []
    name = ""  # the name being read, decoded: "url" before "(" opens an unquoted URL
    i, n = 0, len(text)
    while i < n:
        special = _CSS_SPECIAL.search(text, i)
        stop = special.start() if special is not None else n
        if stop > i:  # plain text up to the next comment, string, escape or "("
            chunk = text[i:stop]
            out.append(chunk)
            name = _name_after(name, chunk)
            i = stop
            continue
        c = text[i]
        if c == "/":  # a comment
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            if not join:
                out.append(" ")
                name = ""
        elif c in "\"'":
            m = _CSS_STRING.match(text, i)
            assert m is not None
            out.append(_CSS_ESCAPE.sub(_css_unescape, m.group(0)))
            i = m.end()
            name = ""
        elif c == "\\":
            m = _CSS_ESCAPE.match(text, i)
            if m is None:  # before a newline or at the end: a lone delimiter
                out.append(c)
                i += 1
                name = ""
                continue
            out.append(_css_unescape(m))
            name = (name + _css_escaped_char(m))[-5:]
            i = m.end()
        elif name.lower() == "url" and _unquoted_url_at(text, i + 1):
            end = i + 1
            while end < n and text[end] != ")":
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
            name = ""
        else:  # any other "("
            out.append(c)
            i += 1
            name = ""
    return "".join(out)


def _name_char(c: str) -> bool:
    return c.isalnum() or c in "-_" or not c.isascii()


def _name_after(name: str, chunk: str) -> str:
    """The end of the name being read after ``chunk`` (at most 5 characters are kept: enough to
    tell "url" from any other name, in constant time whatever the input)."""
    tail = chunk[-5:]
    k = len(tail)
    while k > 0 and _name_char(tail[k - 1]):
        k -= 1
    if k == 0 and len(chunk) <= 5:
        return (name + chunk)[-5:]
    return tail[k:]


def _unquoted_url_at(text: str, pos: int) -> bool:
    while pos < len(text) and text[pos] in _CSS_SPACE:
        pos += 1
    return pos < len(text) and text[pos] not in "\"'"


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


def _css_property_at(text: str, pos: int, default: str | None) -> str | None:
    """The declaration's property name that the value at ``pos`` belongs to."""
    start = max(text.rfind(";", 0, pos), text.rfind("{", 0, pos), text.rfind("}", 0, pos)) + 1
    m = _CSS_PROPERTY.match(text, start, pos)
    return m.group(1).lower() if m else default


def _image_property(prop: str | None) -> bool:
    return prop is not None and (prop in _CSS_IMAGE_PROPERTIES or prop.startswith("--"))


_BAD_UNQUOTED_URL = re.compile(r"[\s\"'(\\]")


def _url_arg_value(arg: str) -> str | None:
    """The URL a ``url()`` argument names, or ``None`` if a browser would not read it as one
    whole URL (a string with more after it, or an unquoted URL with quotes, spaces,
    parentheses or escapes: a "bad url" the browser ends early, letting what follows be CSS)."""
    arg = arg.strip()
    if arg[:1] in ("'", '"'):
        m = _CSS_STRING.fullmatch(arg)
        if m is None or len(arg) < 2 or arg[-1] != arg[0]:
            return None
        return arg[1:-1].strip()
    if _BAD_UNQUOTED_URL.search(arg):
        return None
    return arg


def _css_url_arg_ok(arg: str, env: _Css | None, prop: str | None) -> bool:
    value = _url_arg_value(arg)
    if value is None:
        return False
    if not value:
        return True  # url() / url(""): an invalid image, never a request
    if value.startswith("#") and "(" not in value and "\\" not in value:
        return True  # local fragment reference (SVG gradients, filters): no fetch
    if _DATA_IMAGE.match(value) or _DATA_FONT.match(value):
        return True
    if env is None:
        return False
    if _DATA_SVG.match(value):
        return _image_property(prop) and svg_data_url_ok(value)
    return _own_asset(value, env.ctx)


def _css_quoted_asset(url: str) -> str:
    return f'url("{url}")'


def _css_url_replacement(arg: str, env: _Css | None, kind: AssetKind) -> str | None:
    """The ``url("...")`` on Tandem's origin for a CSS URL argument, if there is one."""
    if env is None or env.ctx.assets is None:
        return None
    value = _url_arg_value(arg)
    if not value or not _url_ok(value, allow_data_image=False):
        return None
    rewritten = _rewrite(value, kind, env.ctx)
    return _css_quoted_asset(rewritten) if rewritten is not None else None


def _import_target(text: str, pos: int) -> tuple[str, int] | None:
    """The URL of the ``@import`` whose prelude starts at ``pos`` and where it ends."""
    i = pos
    n = len(text)
    while i < n and text[i] in " \t\r\n\f":
        i += 1
    if i < n and text[i] in "\"'":
        m = _CSS_STRING.match(text, i)
        assert m is not None
        return m.group(0), m.end()
    if text[i : i + 4].lower() == "url(":
        end = _css_scan_end(text, i + 4, stop_at_semicolon=False)
        return text[i + 4 : end - 1 if text[end - 1 : end] == ")" else end], end
    return None


def _import_is_ours(arg: str, env: _Css | None) -> bool:
    """An ``@import`` may stay only when it imports from Tandem's asset route (for this
    session): not a fragment (the mirror's own address), not a ``data:`` URL."""
    value = _url_arg_value(arg)
    return bool(value) and env is not None and _own_asset(value or "", env.ctx)


def _image_set_clean(inner: str, env: _Css | None) -> bool:
    """``image-set()`` options name their image with ``url()`` (checked on its own) only."""
    if env is None or env.ctx.assets is None:
        return False
    depth = 0
    at_option_start = True
    i = 0
    while i < len(inner):
        c = inner[i]
        if c in "\"'":
            if at_option_start:
                return False  # a bare string is a URL here
            m = _CSS_STRING.match(inner, i)
            assert m is not None
            i = m.end()
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            at_option_start = True
            i += 1
            continue
        if not c.isspace():
            at_option_start = False
        i += 1
    return True


def _rewrite_image_set(inner: str, env: _Css, report: SanitizeReport) -> str:
    """Each option's bare string URL becomes ``url(...)`` on Tandem's origin (or ``url()``)."""
    out: list[str] = []
    depth = 0
    at_option_start = True
    i = 0
    while i < len(inner):
        c = inner[i]
        if c in "\"'":
            m = _CSS_STRING.match(inner, i)
            assert m is not None
            if at_option_start and depth == 0:
                new = _css_url_replacement(m.group(0), env, AssetKind.IMAGE)
                if new is None:
                    report.add(R_CSS_URL)
                out.append(new or "url()")
                at_option_start = False
            else:
                out.append(m.group(0))
            i = m.end()
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        if c == "," and depth == 0:
            at_option_start = True
        elif not c.isspace():
            at_option_start = False
        out.append(c)
        i += 1
    return "".join(out)


def _css_rewrite_once(text: str, report: SanitizeReport, env: _Css | None) -> str:
    out: list[str] = []
    pos = 0
    n = len(text)
    assets_on = env is not None and env.ctx.assets is not None
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
            target = _import_target(text, mi.end()) if assets_on else None
            out.append(text[pos : mi.start()])
            if target is not None:
                arg, arg_end = target
                if _import_is_ours(arg, env):
                    out.append(text[mi.start() : arg_end])
                    pos = arg_end
                    continue
                local = (_url_arg_value(arg) or "").startswith("#")  # the mirror's own address
                new = None if local else _css_url_replacement(arg, env, AssetKind.STYLE)
                if new is not None:
                    out.append(f"@import {new}")
                    pos = arg_end  # the rest of the prelude is scanned like any CSS
                    continue
            end = _css_scan_end(text, mi.end(), stop_at_semicolon=True)
            report.add(R_CSS_IMPORT)
            pos = end
            continue
        assert mf is not None
        name = mf.group(2).lower()
        end = _css_scan_end(text, mf.end(), stop_at_semicolon=False)
        closed = text[end - 1 : end] == ")"
        inner = text[mf.end() : end - 1 if closed else end]
        out.append(text[pos : mf.start()])
        call = text[mf.start() : end]
        if name in _CSS_URL_FUNCS:
            prop = _css_property_at(text, mf.start(), env.default_property if env else None)
            if _css_url_arg_ok(inner, env, prop):
                out.append(call if closed else call + ")")
            else:
                kind = AssetKind.IMAGE if _image_property(prop) else AssetKind.RESOURCE
                new = _css_url_replacement(inner, env, kind)
                if new is None:
                    report.add(R_CSS_URL)
                out.append(new or "url()")
            pos = end
        elif name == "image-set" and assets_on:
            assert env is not None
            if not _image_set_clean(inner, env):
                inner = _rewrite_image_set(inner, env, report)
            # The options' own url()s, like any other.
            out.append(f"{mf.group(0)}{_css_rewrite_once(inner, report, env)})")
            pos = end
        elif name in _CSS_NONE_FUNCS:
            out.append("none")
            report.add(R_CSS_FUNC)
            pos = end
        else:
            out.append('""')
            report.add(R_CSS_FUNC)
            pos = end
    out.append(text[pos:])
    return "".join(out)


def _css_is_clean(text: str, env: _Css | None) -> bool:
    assets_on = env is not None and env.ctx.assets is not None
    pos = 0
    while (m := _CSS_RISKY.search(text, pos)) is not None:
        frag = m.group(0).lower()
        if frag.startswith("@"):
            target = _import_target(text, m.end()) if assets_on else None
            if target is None or not _import_is_ours(target[0], env):
                return False
            pos = target[1]
            continue
        end = _css_scan_end(text, m.end(), stop_at_semicolon=False)
        if text[end - 1 : end] != ")":
            return False  # unclosed: a later fragment could finish it
        inner = text[m.end() : end - 1]
        if frag.endswith(("url(", "src(")):
            prop = _css_property_at(text, m.start(), env.default_property if env else None)
            if not _css_url_arg_ok(inner, env, prop):
                return False
            pos = end  # its argument is one URL, whatever it spells
        elif frag.endswith("image-set("):
            if not _image_set_clean(inner, env):
                return False
            pos = m.end()  # its options' url()s are checked next
        else:
            return False
    return True


def _css_sanitize(text: str, rep: SanitizeReport, env: _Css | None) -> str:
    if not _CSS_QUICK.search(text):
        return text
    canon = _css_canonical(text)
    joined = _css_canonical(text, join=True) if "/*" in text else canon
    joined_clean = joined == canon or _css_is_clean(joined, env)
    if _css_is_clean(canon, env) and joined_clean:
        return text
    if not joined_clean:
        rep.add(R_CSS_COMMENT)  # comments become spaces: no reading of them is risky then
    out = canon
    for _ in range(4):
        new = _css_rewrite_once(out, rep, env)
        if new == out:
            break
        out = new
    if not _css_is_clean(out, env):  # pathological input: give up on the whole text
        rep.add(R_CSS_DROPPED)
        return ""
    return out


def sanitize_css(
    text: str,
    report: SanitizeReport | None = None,
    *,
    context: SanitizeContext | None = None,
    property: str | None = None,
) -> str:
    """Neutralise network and exfiltration constructs in CSS text.

    Without an asset rewriter in ``context``: ``url()``/``src()`` become ``url()`` (an invalid
    image, no request) unless they point at a fragment (``#id``) or an inline raster image or
    font; ``@import`` rules are removed; ``image-set()``, ``image()``, ``cross-fade()``,
    ``element()`` and ``expression()`` become ``none``; ``attr()`` becomes ``""``.

    With one, ``url()``, ``@import`` and ``image-set()`` URLs are rewritten to Tandem's asset
    route instead, and an inline SVG image is kept where a property only draws it
    (``property`` names the property when ``text`` is a bare value, e.g. an SVG ``mask``
    attribute). Comments and escapes are resolved first so ``u\\72l(`` or ``@\\69mport``
    cannot hide. CSS without such constructs is returned unchanged.
    """
    rep = report if report is not None else SanitizeReport()
    env = _Css(context, property) if context is not None else None
    return _css_sanitize(text, rep, env)


_CSS_JOIN_SAFE_END: Final = frozenset(" \t\n\r\f;{}()[],:\"'*>~=|^$%&?")


_CSS_JOIN_TOKENS = re.compile(
    r"/\*.*?(?:\*/|\Z)"
    r"|\"(?:[^\"\\\n]|\\.)*(?P<dq>\")?|'(?:[^'\\\n]|\\.)*(?P<sq>')?"
    r"|\\.|[()]",
    re.S,
)


def _css_join_safe(text: str) -> str:
    """Close whatever ``text`` leaves open (comment, string, escape, parentheses, a name) so
    that text after it, in a sibling text node of the same ``<style>``, starts afresh."""
    body = text
    lone_backslash = (len(text) - len(text.rstrip("\\"))) % 2 == 1
    if lone_backslash:  # it would escape whatever comes next
        body = text[:-1]
    n = len(body)
    in_comment = False
    quote = ""
    comment_ends_text = False
    depth = 0
    for m in _CSS_JOIN_TOKENS.finditer(body):
        token = m.group(0)
        if token == "(":
            depth += 1
        elif token == ")":
            depth = max(0, depth - 1)
        elif token.startswith("/*"):
            closed = len(token) >= 4 and token.endswith("*/")
            in_comment = not closed and m.end() == n
            comment_ends_text = closed and m.end() == n
        elif token[0] in "\"'" and m.end() == n and not (m.group("dq") or m.group("sq")):
            quote = token[0]
    if not (lone_backslash or in_comment or quote or depth):
        if not body or body[-1] in _CSS_JOIN_SAFE_END or comment_ends_text:
            return text  # already ends between tokens
    out = body
    if in_comment:
        out += "*/"
    if quote:
        out += quote
    return out + ")" * depth + "/**/"


def _style_text(text: str, rep: SanitizeReport, ctx: SanitizeContext) -> str:
    """One ``<style>`` text node's CSS: sanitized, and closed so no neighbour can join it."""
    return _css_join_safe(_css_sanitize(text, rep, _Css(ctx)))


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
_MEDIA_TAGS: Final = frozenset({"video", "audio", "track", "source"})
_SVG_IMAGE_TAGS: Final = frozenset({"image", "use", "feimage"})
NESTED_FRAME_SANDBOX: Final = "allow-same-origin"
"""``sandbox`` forced onto nested frames: scripts stay off even if the outer
sandbox were misconfigured; same-origin keeps the replayer able to fill them."""
_PLACEHOLDER_KEEP: Final = frozenset({"id", "class", "style", "title", "width", "height"})


def _norm_name(name: str) -> tuple[str, str]:
    lower = name.lower()
    return lower, lower.rsplit(":", 1)[-1]


@functools.lru_cache(maxsize=2048)
def _attr_name(name: str) -> tuple[str, str] | None:
    """``_norm_name`` of a well-formed attribute name; None for one that is not. A page uses a
    few dozen names over and over: each was matched and lowered again for every attribute of
    every node of every snapshot. Bounded, so a page inventing names costs only misses."""
    if not _ATTR_NAME_RE.fullmatch(name):
        return None
    return _norm_name(name)


@functools.lru_cache(maxsize=2048)
def _tag_name(raw: str) -> tuple[str, str] | None:
    """A tag name lowered and its local part (after any ``prefix:``); None if not well-formed."""
    tag = raw.lower()
    if not _TAG_RE.fullmatch(tag):
        return None
    return tag, tag.rsplit(":", 1)[-1]


def _resource_kind(tag: str | None, local: str) -> AssetKind | str | None:
    """What the mirror would load an attribute as (``None``: it loads nothing)."""
    if local in ("poster", "background", "lowsrc", "dynsrc"):
        return AssetKind.IMAGE
    if local == "src":
        if tag in _MEDIA_TAGS:
            return _MEDIA
        return AssetKind.IMAGE  # img, input type=image, or an element we do not know
    if local == "href":
        if tag in _SVG_IMAGE_TAGS:
            return AssetKind.IMAGE
        if tag == "link":
            return AssetKind.STYLE
    return None


def _sanitize_attr(
    name: str,
    value: Any,
    tag: str | None,
    report: SanitizeReport,
    ctx: SanitizeContext,
) -> tuple[bool, Any]:
    """Decide one attribute. Returns ``(keep, new_value)``. ``tag`` is ``None`` when the
    element is unknown (attribute mutations on an element the context does not track)."""
    names = _attr_name(name)
    if names is None:
        report.add(R_ATTR_NAME)
        return False, None
    lower, local = names
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
    if local == "src" and (tag in _FRAME_TAGS or (tag is None and not ctx.seen_snapshot)):
        # A frame's document is never loaded by the mirror (it arrives as events, if at all).
        report.add(R_IFRAME)
        return False, None
    if tag in _PLUGIN_TAGS and (local in _URL_ATTRS or local in ("code", "srcset")):
        report.add(R_EMBED)
        return False, None
    if isinstance(value, dict):  # styleOMValue from an attribute mutation
        if lower != "style":
            report.add(R_ATTR_NAME)
            return False, None
        return True, _sanitize_style_om(value, report, ctx)
    if not isinstance(value, str):
        return True, value
    if lower == "rr_dataurl":
        if _DATA_IMAGE.match(value.lstrip()):
            return True, value
        report.add(R_DATAURL)
        return False, None
    if lower in ("srcset", "imagesrcset"):
        return True, _sanitize_srcset(value, ctx, report)
    if lower in _URL_ATTRS or local in _URL_ATTRS:
        kind = _resource_kind(tag, local)
        if kind is None:
            return True, sanitize_url(value, report)
        return True, _resource_url(value, kind, ctx, report)
    if lower in _CSS_ATTRS:
        prop = None if lower in ("style", "_csstext") else lower
        return True, _css_sanitize(value, report, _Css(ctx, prop))
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


def _sanitize_style_om(
    value: dict[str, Any], report: SanitizeReport, ctx: SanitizeContext
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop, pv in value.items():
        env = _Css(ctx, str(prop).lower())
        if isinstance(pv, str):
            out[prop] = _css_sanitize(pv, report, env)
        elif isinstance(pv, list):
            out[prop] = [_css_sanitize(p, report, env) if isinstance(p, str) else p for p in pv]
        else:
            out[prop] = pv
    return out


def _sanitize_attr_map(
    attrs: dict[str, Any], tag: str | None, report: SanitizeReport, ctx: SanitizeContext
) -> None:
    for name in list(attrs):
        keep, new = _sanitize_attr(name, attrs[name], tag, report, ctx)
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


def _sanitize_element(node: dict[str, Any], report: SanitizeReport, ctx: SanitizeContext) -> str:
    """Sanitise one element in place (not its children). Returns its local tag name."""
    raw_tag = node.get("tagName")
    names = _tag_name(raw_tag) if isinstance(raw_tag, str) else None
    if names is None:
        report.add(R_TAG)
        names = ("div", "div")
    tag, local = names
    node["tagName"] = tag
    node_id = node.get("id")
    if isinstance(node_id, int):
        if local in _TRACKED_TAGS:
            ctx.tags[node_id] = local
        else:
            ctx.tags.pop(node_id, None)
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
    _sanitize_attr_map(attrs, local, report, ctx)
    return local


def _join_style_children(children: list[Any], report: SanitizeReport, ctx: SanitizeContext) -> None:
    """A ``<style>``'s text is what its text children say together: sanitize the whole and
    put it in the first text child, leaving the others empty (their ids stay)."""
    texts = [c for c in children if isinstance(c, dict) and c.get("type") == NodeType.TEXT]
    for t in texts:
        if isinstance(t.get("id"), int):
            ctx.style_text_ids.add(t["id"])
    parts = [t.get("textContent") for t in texts]
    if not texts or not all(isinstance(p, str) for p in parts):
        for t in texts:
            if not isinstance(t.get("textContent"), str):
                t["textContent"] = ""
        return
    whole = "".join(str(p) for p in parts)
    clean = _style_text(whole, report, ctx)
    if len(texts) == 1 and clean == whole:
        return
    texts[0]["textContent"] = clean
    for t in texts[1:]:
        t["textContent"] = ""


def sanitize_node(
    root: dict[str, Any],
    report: SanitizeReport | None = None,
    *,
    parent_is_style: bool | None = False,
    context: SanitizeContext | None = None,
) -> SanitizeReport:
    """Sanitise a serialized node and its subtree **in place**.

    ``parent_is_style`` says whether ``root``'s parent is a ``<style>`` element;
    ``None`` means unknown (a mutation add whose parent is elsewhere), in which
    case a root text node is treated as possibly CSS. A ``Document`` node below the root
    is removed: only an iframe's document added by a mutation may be one, and rebuilding a
    document inside an element throws, blanking the whole mirror.
    """
    rep = report if report is not None else SanitizeReport()
    ctx = context if context is not None else SanitizeContext()
    stack: list[tuple[dict[str, Any], bool | None]] = [(root, parent_is_style)]
    while stack:
        node, in_style = stack.pop()
        ntype = node.get("type")
        if ntype == NODE_ELEMENT or ntype == NODE_DOCUMENT:
            local = _sanitize_element(node, rep, ctx) if ntype == NODE_ELEMENT else ""
            children = node.get("childNodes")
            if isinstance(children, list):
                kept = [c for c in children if not (isinstance(c, dict) and c.get("type") == 0)]
                if len(kept) != len(children):
                    rep.add(R_NESTED_DOC, len(children) - len(kept))
                    children[:] = kept
                if local == "style":
                    _join_style_children(children, rep, ctx)  # its text, as one whole
                    stack.extend(
                        (c, False)
                        for c in children
                        if isinstance(c, dict) and c.get("type") != NodeType.TEXT
                    )
                    continue
                stack.extend((c, False) for c in children if isinstance(c, dict))
        elif ntype == NodeType.TEXT:
            text = node.get("textContent")
            if not isinstance(text, str):
                continue
            if in_style:
                if isinstance(node.get("id"), int):
                    ctx.style_text_ids.add(node["id"])
                node["textContent"] = _style_text(text, rep, ctx)
            elif in_style is None or node.get("isStyle"):
                node["textContent"] = _css_sanitize(text, rep, _Css(ctx))
    return rep


# ============================================================================ events


def _sanitize_mutation(data: dict[str, Any], rep: SanitizeReport, ctx: SanitizeContext) -> None:
    adds = [a for a in data.get("adds") or () if isinstance(a, dict)]
    added = [a for a in adds if isinstance(a.get("node"), dict)]
    # Elements first, so a text node added into a <style> of the same batch finds it.
    for add in added:
        if add["node"].get("type") != NodeType.TEXT:
            sanitize_node(add["node"], rep, parent_is_style=None, context=ctx)
    for add in added:
        node = add["node"]
        if node.get("type") == NodeType.TEXT:
            in_style = ctx.is_style(add.get("parentId"))
            sanitize_node(node, rep, parent_is_style=in_style, context=ctx)
    for change in data.get("attributes") or ():
        if isinstance(change, dict) and isinstance(change.get("attributes"), dict):
            node_id = change.get("id")
            tag = ctx.tags.get(node_id) if isinstance(node_id, int) else None
            _sanitize_attr_map(change["attributes"], tag, rep, ctx)
    for t in data.get("texts") or ():
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            continue
        if t.get("id") in ctx.style_text_ids:
            t["value"] = _style_text(t["value"], rep, ctx)
        elif not ctx.seen_snapshot:
            # The parent of a text mutation is unknown here; it may be a <style>.
            t["value"] = _css_sanitize(t["value"], rep, _Css(ctx))


def _sanitize_rules(rules: object, rep: SanitizeReport, ctx: SanitizeContext) -> None:
    if not isinstance(rules, list):
        return
    for r in rules:
        if isinstance(r, dict) and isinstance(r.get("rule"), str):
            r["rule"] = _css_sanitize(r["rule"], rep, _Css(ctx))


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


# Plain ints, as ``types.EVENT_META`` and its kin: every event of every batch passes these
# comparisons (most fall through all of them).
_STYLE_SHEET_RULE: Final = int(IncrementalSource.STYLE_SHEET_RULE)
_ADOPTED_STYLE_SHEET: Final = int(IncrementalSource.ADOPTED_STYLE_SHEET)
_STYLE_DECLARATION: Final = int(IncrementalSource.STYLE_DECLARATION)
_FONT: Final = int(IncrementalSource.FONT)
_CANVAS_MUTATION: Final = int(IncrementalSource.CANVAS_MUTATION)
_CARRIES_NO_MARKUP: Final = frozenset(
    int(source)
    for source in (
        IncrementalSource.MOUSE_MOVE,
        IncrementalSource.MOUSE_INTERACTION,
        IncrementalSource.SCROLL,
        IncrementalSource.VIEWPORT_RESIZE,
        IncrementalSource.INPUT,
        IncrementalSource.TOUCH_MOVE,
        IncrementalSource.MEDIA_INTERACTION,
        IncrementalSource.DRAG,
        IncrementalSource.SELECTION,
    )
)
"""Incremental sources ``sanitize_event`` leaves as they are: positions, ids, typed values
and selections, no markup, style or URL (the events a live stream is mostly made of)."""


def sanitize_event(
    event: Event, report: SanitizeReport | None = None, *, context: SanitizeContext | None = None
) -> SanitizeReport:
    """Sanitise one validated event **in place** (``context``: the session's, see
    :class:`SanitizeContext`; without one, a fresh one that knows nothing)."""
    rep = report if report is not None else SanitizeReport()
    ctx = context if context is not None else SanitizeContext()
    etype = event.get("type")
    data = event.get("data")
    if not isinstance(data, dict):
        return rep
    if etype == EVENT_FULL_SNAPSHOT:
        if isinstance(data.get("node"), dict):
            ctx.reset()
            sanitize_node(data["node"], rep, context=ctx)
    elif etype == EVENT_META:
        if isinstance(data.get("href"), str):
            data["href"] = sanitize_url(data["href"], rep, allow_data_image=False)
            ctx.base_url = resolve_url(data["href"], None)
    elif etype == EVENT_INCREMENTAL:
        source = data.get("source")
        if source == SOURCE_MUTATION:
            _sanitize_mutation(data, rep, ctx)
        elif source == _STYLE_SHEET_RULE:
            _sanitize_rules(data.get("adds"), rep, ctx)
            for key in ("replace", "replaceSync"):
                if isinstance(data.get(key), str):
                    data[key] = _css_sanitize(data[key], rep, _Css(ctx))
        elif source == _ADOPTED_STYLE_SHEET:
            for style in data.get("styles") or ():
                if isinstance(style, dict):
                    _sanitize_rules(style.get("rules"), rep, ctx)
        elif source == _STYLE_DECLARATION:
            s = data.get("set")
            if isinstance(s, dict) and isinstance(s.get("value"), str):
                prop = s.get("property")
                env = _Css(ctx, prop.lower() if isinstance(prop, str) else None)
                s["value"] = _css_sanitize(s["value"], rep, env)
        elif source == _FONT:
            # A non-buffer fontSource is CSS `src` text: FontFace would fetch it.
            if not data.get("buffer") and isinstance(data.get("fontSource"), str):
                data["fontSource"] = _css_sanitize(data["fontSource"], rep, _Css(ctx, "src"))
        elif source == _CANVAS_MUTATION:
            _sanitize_canvas_args(data.get("commands"), rep)
            _sanitize_canvas_args(data.get("args"), rep)
    return rep


def sanitize_batch(
    events: list[Event],
    report: SanitizeReport | None = None,
    *,
    context: SanitizeContext | None = None,
) -> SanitizeReport:
    """Sanitise a validated batch **in place**; returns the counts of removals. Pass the
    session's :class:`SanitizeContext` so that batches are judged with what came before."""
    rep = report if report is not None else SanitizeReport()
    ctx = context if context is not None else SanitizeContext()
    for ev in events:
        if ev.get("type") == EVENT_INCREMENTAL:
            data = ev.get("data")
            if type(data) is dict and data.get("source") in _CARRIES_NO_MARKUP:
                continue  # most events of a live stream: not even a call for them
        sanitize_event(ev, rep, context=ctx)
    return rep
