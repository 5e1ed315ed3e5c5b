"""Fetching a mirrored page's images, fonts and stylesheets on the server, without becoming an
SSRF gadget, and checking what anyone (server or customer's browser) hands us as an asset.

Rules for a server fetch (``fetch_asset``):

- only from the site's registered origins and its listed asset hosts, exact ``scheme://host:port``;
- redirects are followed by hand, at most a few, and every hop is checked again;
- a host name is resolved and refused if any address is not public (private, loopback,
  link-local, reserved...); an address is allowed only when the registered origin names that very
  address (``http://127.0.0.1:8080``). Cloud metadata addresses are never allowed. The client's
  resolver refuses the same addresses, so a second lookup (DNS rebinding) cannot change the answer;
- connect and total timeouts, a size cap read as the body streams, no cookies or credentials;
- the content type must be on the allowlist for what the asset is used as, and the bytes must
  look like it (``served_type``); what we serve is the type the bytes show, never the upstream one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from cobrowse import AssetKind, resolve_url
from signaling.auth.accounts import origin_of

_METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})

RASTER_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
     "image/x-icon"}
)  # fmt: skip
SVG_TYPE: Final = "image/svg+xml"
FONT_TYPES: Final = frozenset(
    {"font/woff", "font/woff2", "font/ttf", "font/otf", "font/collection",
     "application/vnd.ms-fontobject"}
)  # fmt: skip
CSS_TYPE: Final = "text/css"
_IMAGE_DECLARED: Final = RASTER_TYPES | {SVG_TYPE, "image/jpg", "image/vnd.microsoft.icon"}
_FONT_DECLARED: Final = FONT_TYPES | frozenset(
    {"font/sfnt", "application/font-woff", "application/font-woff2", "application/x-font-woff",
     "application/x-font-ttf", "application/x-font-truetype", "application/x-font-otf",
     "application/x-font-opentype", "application/font-sfnt", "application/octet-stream",
     "binary/octet-stream", ""}
)  # fmt: skip
_DECLARED_OK: Final = {
    AssetKind.IMAGE: _IMAGE_DECLARED,
    AssetKind.RESOURCE: _IMAGE_DECLARED | _FONT_DECLARED,
    AssetKind.STYLE: frozenset({CSS_TYPE}),
}
"""Content types accepted from upstream per use (fonts are often served as octet-stream)."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_redirects: int = 3
    max_image_bytes: int = 8 * 1024 * 1024
    max_css_bytes: int = 2 * 1024 * 1024

    def max_bytes(self, kind: AssetKind) -> int:
        return self.max_css_bytes if kind == AssetKind.STYLE else self.max_image_bytes


class FetchRefused(Exception):
    """The server did not (or must not) fetch it; ``browser`` says whether the customer's
    browser, which loaded the page, may supply it instead."""

    def __init__(self, reason: str, *, browser: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.browser = browser


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    """Where the bytes finally came from (after redirects): CSS is resolved against it."""
    content_type: str
    """What we serve them as (see ``served_type``)."""
    body: bytes


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and ip not in _METADATA


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the default resolver and refuses names with any non-public address: the
    connection is made to exactly the addresses checked here (no DNS rebinding window)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or not all(_public(ipaddress.ip_address(r["host"])) for r in results):
            raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def client_session(limits: FetchLimits) -> aiohttp.ClientSession:
    """The fetcher's HTTP client: no cookie jar, no proxy from the environment, the guarded
    resolver without a DNS cache (each fetch is checked afresh)."""
    connector = aiohttp.TCPConnector(
        resolver=PublicOnlyResolver(), use_dns_cache=False, limit=32, limit_per_host=6
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(
            total=limits.total_timeout, sock_connect=limits.connect_timeout
        ),
        headers={"User-Agent": "Tandem-cobrowse-assets/1"},
    )


async def _check_address(url: str) -> None:
    """Refuse a URL whose host is, or resolves to, a non-public address, unless the origin
    (already checked to be registered) names that address itself."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if literal in _METADATA or literal.is_multicast or literal.is_unspecified:
            raise FetchRefused("private_address", browser=False)
        return  # the admin registered this address itself
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise FetchRefused("unresolvable", browser=True) from None
    if not infos or not all(_public(ipaddress.ip_address(info[4][0])) for info in infos):
        raise FetchRefused("private_address", browser=True)


def _declared(response: aiohttp.ClientResponse) -> str:
    return (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()


async def fetch_asset(
    http: aiohttp.ClientSession,
    url: str,
    kind: AssetKind,
    allowed: frozenset[str],
    limits: FetchLimits,
) -> Fetched:
    """Fetch ``url`` for use as ``kind`` if every hop stays within ``allowed`` origins."""
    current = url
    cap = limits.max_bytes(kind)
    for _hop in range(limits.max_redirects + 1):
        if origin_of(current) not in allowed:
            raise FetchRefused("host_not_allowed", browser=True)
        await _check_address(current)
        try:
            async with http.get(
                current,
                allow_redirects=False,
                headers={"Accept": "text/css" if kind == AssetKind.STYLE else "image/*,font/*"},
            ) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location", "")
                    nxt = resolve_url(urljoin(current, location), None) if location else None
                    if nxt is None:
                        raise FetchRefused("bad_redirect", browser=True)
                    current = nxt
                    continue
                if response.status != 200:
                    raise FetchRefused(f"status_{response.status}", browser=True)
                declared = _declared(response)
                if response.content_length is not None and response.content_length > cap:
                    raise FetchRefused("too_large", browser=False)
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > cap:
                        raise FetchRefused("too_large", browser=False)
        except (aiohttp.ClientError, TimeoutError, OSError):
            raise FetchRefused("unreachable", browser=True) from None
        served = served_type(bytes(body), declared, kind)
        if served is None:
            raise FetchRefused("bad_type", browser=False)
        return Fetched(current, served, bytes(body))
    raise FetchRefused("too_many_redirects", browser=True)


def _sniff(body: bytes) -> str | None:
    head = body[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "image/avif"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")):
        return "image/x-icon"
    if head.startswith(b"wOFF"):
        return "font/woff"
    if head.startswith(b"wOF2"):
        return "font/woff2"
    if head.startswith((b"\x00\x01\x00\x00", b"true")):
        return "font/ttf"
    if head.startswith(b"OTTO"):
        return "font/otf"
    if head.startswith(b"ttcf"):
        return "font/collection"
    if len(body) > 36 and body[34:36] == b"LP":
        return "application/vnd.ms-fontobject"
    return None


def served_type(body: bytes, declared: str, kind: AssetKind) -> str | None:
    """The content type to serve ``body`` as when used as ``kind``, or ``None`` to refuse it.

    Raster images and fonts must be recognisable from their first bytes; SVG must be declared as
    such and start like one (it is rendered only as an image, where nothing in it runs or loads,
    and served with a CSP that forbids everything and a sandbox, should anyone open it); CSS must
    be declared ``text/css``.
    """
    if declared not in _DECLARED_OK[kind]:
        return None
    if kind == AssetKind.STYLE:
        return CSS_TYPE
    if declared == SVG_TYPE:
        head = body[:4096].lower()
        return SVG_TYPE if b"<svg" in head and b"<!entity" not in body.lower() else None
    sniffed = _sniff(body)
    if sniffed is None:
        return None
    if sniffed in FONT_TYPES and kind != AssetKind.RESOURCE:
        return None
    return sniffed
