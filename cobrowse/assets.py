"""Resource URLs in a mirrored page: resolving them, and checking inline SVG images.

The sanitizer never lets a mirrored page load anything from a customer's or a third party's host.
Instead, every resource URL it meets (an ``<img>`` source, a stylesheet, a CSS ``url()``...) is
handed to an :class:`AssetRewriter`, which signaling implements: it returns a URL on Tandem's own
origin (``/cobrowse/assets/<token>``, a signed, expiring token bound to the session) or ``None``
to block it. This module holds the pure parts: the rewriter protocol, URL resolution against the
page's address, and the parser that accepts a ``data:image/svg+xml`` URL only when the SVG can do
nothing but draw (no script, no handler, no ``foreignObject``, no external reference).
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import xml.etree.ElementTree as ET
from typing import Final, Protocol
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

__all__ = [
    "MAX_ASSET_URL",
    "MAX_SVG_DATA_BYTES",
    "AssetKind",
    "AssetRewriter",
    "resolve_url",
    "split_fragment",
    "svg_data_url_ok",
    "svg_document_ok",
]

MAX_ASSET_URL: Final = 2048
"""Longer resource URLs are blocked rather than signed (a token carries the whole URL)."""
MAX_SVG_DATA_BYTES: Final = 64 * 1024
"""Largest decoded inline SVG image accepted."""


class AssetKind(enum.StrEnum):
    """What the mirror will use a resource as; the asset route serves only matching types."""

    IMAGE = "i"
    """``<img>``, ``srcset``, ``poster``, SVG ``<image>``/``<use>``: a raster or SVG image."""
    STYLE = "c"
    """``<link rel=stylesheet>`` and ``@import``: CSS, itself sanitized and rewritten."""
    RESOURCE = "r"
    """A CSS ``url()``: an image, or a font inside ``@font-face``."""


class AssetRewriter(Protocol):
    """Turns an absolute ``http(s)`` URL into a URL on Tandem's origin (or refuses it)."""

    def asset_url(self, url: str, kind: AssetKind) -> str | None:
        """The replacement for ``url`` (absolute, ``http``/``https``, no fragment), or ``None``
        to block it. Must return a URL that :meth:`is_asset_url` accepts."""
        ...

    def is_asset_url(self, url: str) -> bool:
        """Whether ``url`` is one this rewriter issued for this session (so sanitizing twice
        leaves it alone). A fragment after it is allowed."""
        ...


_WS = re.compile(r"[\x00-\x20]+")
_FRAGMENT_SAFE = re.compile(r"[A-Za-z0-9_\-.:]{0,128}")


def split_fragment(url: str) -> tuple[str, str]:
    """``(url without fragment, fragment)``; a fragment with unusual characters is dropped."""
    base, hash_, frag = url.partition("#")
    if not hash_ or not _FRAGMENT_SAFE.fullmatch(frag):
        return base, ""
    return base, frag


def resolve_url(value: str, base: str | None) -> str | None:
    """``value`` as an absolute ``http(s)`` URL (fragment kept), resolved against ``base``;
    ``None`` if it is not one, carries credentials, or is too long."""
    value = _WS.sub("", value.strip())  # browsers drop tabs and newlines inside URLs
    if not value or len(value) > MAX_ASSET_URL:
        return None
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None  # user:pass@host: never sent, never signed
    try:
        _ = parts.port
    except ValueError:
        return None
    if len(absolute) > MAX_ASSET_URL:
        return None
    return absolute


# ============================================================================ inline SVG

_SVG_NS: Final = "http://www.w3.org/2000/svg"
_XLINK_NS: Final = "http://www.w3.org/1999/xlink"
_XML_NS: Final = "http://www.w3.org/XML/1998/namespace"
_SVG_ELEMENTS: Final = frozenset(
    {
        "svg", "g", "defs", "symbol", "use", "path", "rect", "circle", "ellipse", "line",
        "polyline", "polygon", "text", "tspan", "textpath", "title", "desc", "lineargradient",
        "radialgradient", "stop", "pattern", "clippath", "mask", "marker", "filter", "image",
        "style", "switch", "view", "feblend", "fecolormatrix", "fecomponenttransfer",
        "fecomposite", "feconvolvematrix", "fediffuselighting", "fedisplacementmap",
        "fedistantlight", "fedropshadow", "feflood", "fefunca", "fefuncb", "fefuncg",
        "fefuncr", "fegaussianblur", "feimage", "femerge", "femergenode", "femorphology",
        "feoffset", "fepointlight", "fespecularlighting", "fespotlight", "fetile",
        "feturbulence",
    }
)  # fmt: skip
"""Drawing elements only: no ``script``, ``foreignObject``, ``a``, animation or ``iframe``."""
_DATA_HEADER = re.compile(r"data:image/svg\+xml((?:;[^,;]*)*),", re.I)
_OK_PARAMS: Final = frozenset({"", "charset=utf-8", "charset=utf8", "charset=us-ascii", "utf8"})
_RASTER_DATA = re.compile(r"data:image/(?:png|gif|jpe?g|webp|avif|bmp)[;,]", re.I)
_BAD_MARKUP = re.compile(rb"<!doctype|<!entity|<\?xml-stylesheet|<!\[cdata\[", re.I)
_XML_DECL = re.compile(rb"<\?xml[^?]*\?>")
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([^\"']*)[\"']", re.I)
_CSS_URL_ARG = re.compile(r"url\(\s*(['\"]?)([^'\")]*)\1\s*\)", re.I)


def svg_data_url_ok(url: str) -> bool:
    """Whether a ``data:image/svg+xml`` URL is safe to keep where it is rendered as an image.

    The body (percent-encoded or base64, UTF-8 only) must parse as an SVG document of drawing
    elements only, without DTD or entities, event handlers, scripts, ``foreignObject`` or any
    reference outside itself: ``href`` only to ``#fragment`` or an inline raster image, CSS
    ``url()`` only to ``#fragment``, no ``@import``.
    """
    url = url.strip()
    m = _DATA_HEADER.match(url)
    if m is None:
        return False
    params = [p.strip().lower() for p in m.group(1).split(";")[1:]]
    b64 = bool(params) and params[-1] == "base64"
    if b64:
        params = params[:-1]
    if any(p not in _OK_PARAMS for p in params):
        return False
    body = url[m.end() :].split("#", 1)[0]  # browsers end a data URL at '#'
    try:
        raw = base64.b64decode(_WS.sub("", body), validate=True) if b64 else unquote_to_bytes(body)
    except (binascii.Error, ValueError):
        return False
    return svg_document_ok(raw)


def svg_document_ok(raw: bytes) -> bool:
    """Whether SVG bytes are a drawing only (see :func:`svg_data_url_ok`)."""
    if len(raw) > MAX_SVG_DATA_BYTES or _BAD_MARKUP.search(raw):
        return False
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    decl = _XML_DECL.match(raw.lstrip())
    if decl is not None:
        enc = _DECL_ENCODING.search(decl.group(0))
        if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
            return False
    if b"<?" in _XML_DECL.sub(b"", raw, count=1):
        return False  # processing instructions other than the declaration
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, ValueError):
        return False
    if root.tag != f"{{{_SVG_NS}}}svg":
        return False
    return all(_svg_element_ok(el) for el in root.iter())


def _svg_element_ok(el: ET.Element) -> bool:
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith(f"{{{_SVG_NS}}}"):
        return False
    local = tag.rsplit("}", 1)[-1].lower()
    if local not in _SVG_ELEMENTS:
        return False
    for name, value in el.attrib.items():
        ns, _, attr = name[1:].partition("}") if name.startswith("{") else ("", "", name)
        attr = attr.lower()
        if ns not in ("", _XLINK_NS, _XML_NS) or attr.startswith("on") or attr == "base":
            return False
        if attr == "href" and not _svg_href_ok(value):
            return False
        if "url(" in value.lower() or attr == "style":
            if not _svg_css_ok(value):
                return False
    return not (local == "style" and not _svg_css_ok("".join(el.itertext())))


def _svg_href_ok(value: str) -> bool:
    value = value.strip()
    if value.startswith("#"):
        return "(" not in value and "\\" not in value
    return bool(_RASTER_DATA.match(value))


def _svg_css_ok(css: str) -> bool:
    low = css.lower()
    if "@import" in low or "\\" in css or "/*" in css:
        return False  # no escapes or comments to hide a function name behind
    for name in ("image-set(", "image(", "cross-fade(", "element(", "src(", "attr("):
        if name in low:
            return False
    unmatched = low.count("url(") - len(_CSS_URL_ARG.findall(css))
    if unmatched:
        return False
    return all(arg.strip().startswith("#") for _q, arg in _CSS_URL_ARG.findall(css))
