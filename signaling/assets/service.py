"""The co-browse asset route, ``GET /cobrowse/assets/{token}`` (ADR 0001's proxy).

The sanitizer rewrites every resource URL of a mirrored page to this route (``asset_tokens``), so
the agent's replay loads images, fonts and stylesheets from Tandem's origin only. Serving one:

1. the token must be ours, unexpired, and name a session (ticket) that exists;
2. the cache: what the customer's browser supplied for this session, else what the server
   fetched for anyone (by URL, so 1,000 customers on one page cost one fetch);
3. a server fetch (``asset_fetch``), only from the site's origins and listed asset hosts;
4. where the server cannot or must not fetch it (cookies, an unlisted CDN, a host it cannot
   reach), the customer's browser is asked (``cobrowse.assets.needed``); it sends the bytes
   (``cobrowse.assets.supply``), which pass the same type checks and enter the cache for this
   session only. The request waits a few seconds for them.

A stylesheet is sanitized and its own URLs rewritten (relative to the stylesheet) for the session
that asks, on the way out. Everything is served with ``nosniff``, the content type the bytes
show, a CSP that forbids everything (``sandbox`` too) and ``Cross-Origin-Resource-Policy``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp import web

from cobrowse import AssetKind, SanitizeContext, sanitize_css
from signaling.assets.cache import AssetCache, CachedAsset
from signaling.assets.fetch import (
    CSS_TYPE,
    FONT_TYPES,
    FetchLimits,
    FetchRefused,
    client_session,
    fetch_asset,
    served_type,
)
from signaling.assets.tokens import ASSET_PATH, AssetSigner, AssetTokenError, SessionAssetRewriter
from signaling.auth.accounts import origin_of
from signaling.store import SiteRecord, TicketStore

ASSET_HOSTS_SETTING: Final = "assetHosts"
"""``SiteRecord.settings`` key: origins besides the site's own that serve its assets (CDNs)."""
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

AskBrowser = Callable[[str, list[tuple[str, str]]], Awaitable[None]]
"""``(ticket_id, [(id, url), ...])``: ask the customer's snippet for these assets."""


@dataclass(frozen=True, slots=True)
class AssetPolicy:
    browser_wait: float = 8.0
    """Seconds a request waits for the customer's browser to supply an asset."""
    refusal_ttl: float = 60.0
    """Seconds a failed fetch (server or browser) is remembered instead of retried."""
    max_browser_bytes: int = 8 * 1024 * 1024
    cache_control: str = "private, max-age=3600"


def allowed_origins(site: SiteRecord) -> frozenset[str]:
    """Where the server may fetch a site's assets: its origins and its listed asset hosts."""
    hosts = site.settings.get(ASSET_HOSTS_SETTING) or []
    extra = {origin_of(h) for h in hosts if isinstance(h, str)}
    return frozenset(site.origins) | extra


def _fits(content_type: str, kind: AssetKind) -> bool:
    if kind == AssetKind.STYLE:
        return content_type == CSS_TYPE
    if content_type == CSS_TYPE:
        return False
    return kind == AssetKind.RESOURCE or content_type not in FONT_TYPES


def _decode_css(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


@dataclass
class _Upload:
    parts: list[bytes | None]
    size: int = 0


@dataclass
class _Ask:
    url: str
    kind: AssetKind
    future: asyncio.Future[CachedAsset | None]
    upload: _Upload | None = None


@dataclass
class _Tally:
    """Distinct assets a session got, by where they came from (for the ticket's timeline)."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def add(self, source: str, url: str) -> None:
        self.seen.setdefault(source, set()).add(url)

    def counts(self) -> dict[str, int]:
        return {source: len(urls) for source, urls in sorted(self.seen.items())}


class AssetService:
    def __init__(
        self,
        secret: str,
        store: TicketStore,
        cache: AssetCache,
        limits: FetchLimits | None = None,
        policy: AssetPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.signer = AssetSigner(secret)
        self.store = store
        self.cache = cache
        self.limits = limits or FetchLimits()
        self.policy = policy or AssetPolicy()
        self.clock = clock
        self.http: aiohttp.ClientSession | None = None
        """The fetch client, opened by ``fetch_client_ctx``."""
        self.ask_browser: AskBrowser | None = None
        """Set by the co-browse hub: emits ``cobrowse.assets.needed`` to the customer."""
        self.sharing: Callable[[str], bool] = lambda _ticket_id: False
        """Set by the co-browse hub: whether a session's customer is sharing right now."""
        self._inflight: dict[str, asyncio.Task[CachedAsset]] = {}
        self._refused: dict[str, tuple[float, FetchRefused]] = {}
        self._asks: dict[str, dict[str, _Ask]] = {}
        self._batch: dict[str, list[tuple[str, str]]] = {}
        self._tally: dict[str, _Tally] = {}
        self._css: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def rewriter(self, ticket_id: str) -> SessionAssetRewriter:
        return self.signer.rewriter(ticket_id)

    def counts(self, ticket_id: str) -> dict[str, int]:
        """Distinct assets served to a session so far, by source (``server``, ``browser``,
        ``refused``)."""
        tally = self._tally.get(ticket_id)
        return tally.counts() if tally else {}

    def take_counts(self, ticket_id: str) -> dict[str, int]:
        """Assets served to a session by source (``server``, ``browser``, ``refused``); resets."""
        tally = self._tally.pop(ticket_id, None)
        self._asks.pop(ticket_id, None)
        return tally.counts() if tally else {}

    # ------------------------------------------------------------------ the route

    async def serve(self, token: str) -> web.Response:
        try:
            claim = self.signer.verify(token)
        except AssetTokenError as exc:
            status = web.HTTPGone if exc.reason == "expired" else web.HTTPForbidden
            raise _refuse(status, exc.reason) from None
        ticket = await self.store.ticket(claim.session_id)
        site = await self.store.site(ticket.site_id) if ticket is not None else None
        if ticket is None or site is None:
            raise _refuse(web.HTTPForbidden, "unknown session")
        allowed = allowed_origins(site)
        asset, source = await self._find(ticket.id, claim.url, claim.kind, allowed)
        tally = self._tally.setdefault(ticket.id, _Tally())
        if asset is None or not _fits(asset.content_type, claim.kind):
            tally.add("refused", claim.url)
            raise _refuse(web.HTTPNotFound, f"asset unavailable ({source})")
        tally.add(source, claim.url)
        body = asset.body
        content_type = asset.content_type
        if content_type == CSS_TYPE:
            body = await self._css_for(ticket.id, asset)
            content_type = "text/css; charset=utf-8"
        headers = {
            "Content-Type": content_type,
            "Cache-Control": self.policy.cache_control,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": _CSP,
            "Cross-Origin-Resource-Policy": "same-origin",
        }
        if content_type.startswith("image/svg"):
            headers["Content-Disposition"] = "attachment"  # never a document of ours
        return web.Response(body=body, headers=headers)

    async def _find(
        self, ticket_id: str, url: str, kind: AssetKind, allowed: frozenset[str]
    ) -> tuple[CachedAsset | None, str]:
        supplied = await self.cache.get(_browser_key(ticket_id, kind, url))
        if supplied is not None:
            return supplied, "browser"
        try:
            return await self._server_fetch(url, kind, allowed), "server"
        except FetchRefused as exc:
            reason = exc.reason
            if not exc.browser or not self.sharing(ticket_id):
                return None, reason
        got = await self._from_browser(ticket_id, url, kind)
        return got, "browser" if got is not None else reason

    async def _server_fetch(
        self, url: str, kind: AssetKind, allowed: frozenset[str]
    ) -> CachedAsset:
        if origin_of(url) not in allowed:
            raise FetchRefused("host_not_allowed", browser=True)
        scope = hashlib.sha256("\n".join(sorted(allowed)).encode()).hexdigest()[:16]
        key = f"s:{kind.value}:{scope}:{url}"
        cached = await self.cache.get(key)
        if cached is not None:
            return cached
        refused = self._refused.get(key)
        if refused is not None and refused[0] > self.clock():
            raise refused[1]
        running = self._inflight.get(key)
        if running is None:
            # A task of its own: the fetch goes on for the others if the first asker leaves.
            running = asyncio.get_running_loop().create_task(self._fetch(key, url, kind, allowed))
            self._inflight[key] = running
            running.add_done_callback(lambda t: self._fetched(key, t))
        return await asyncio.shield(running)

    def _fetched(self, key: str, task: asyncio.Task[CachedAsset]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every asker may have left

    async def _fetch(
        self, key: str, url: str, kind: AssetKind, allowed: frozenset[str]
    ) -> CachedAsset:
        try:
            if self.http is None:
                raise FetchRefused("not_ready", browser=True)
            fetched = await fetch_asset(self.http, url, kind, allowed, self.limits)
        except FetchRefused as exc:
            self._remember_refusal(key, exc)
            raise
        await self.cache.put(key, fetched.content_type, fetched.body, fetched.url)
        return CachedAsset(fetched.content_type, fetched.body, fetched.url)

    def _remember_refusal(self, key: str, exc: FetchRefused) -> None:
        now = self.clock()
        if len(self._refused) > 10_000:
            self._refused = {k: v for k, v in self._refused.items() if v[0] > now}
        self._refused[key] = (now + self.policy.refusal_ttl, exc)

    async def _css_for(self, ticket_id: str, asset: CachedAsset) -> bytes:
        """A stylesheet for one session: sanitized, its URLs rewritten to this session's tokens."""
        key = (ticket_id, hashlib.sha256(asset.body).hexdigest() + asset.url)
        done = self._css.get(key)
        if done is None:
            context = SanitizeContext(assets=self.rewriter(ticket_id), base_url=asset.url)
            text = _decode_css(asset.body)
            done = (await asyncio.to_thread(sanitize_css, text, context=context)).encode()
            self._css[key] = done
            while len(self._css) > 64:
                self._css.popitem(last=False)
        self._css.move_to_end(key)
        return done

    # ------------------------------------------------------------------ the browser path

    async def _from_browser(self, ticket_id: str, url: str, kind: AssetKind) -> CachedAsset | None:
        refusal_key = f"b:{ticket_id}:{kind.value}:{url}"
        refused = self._refused.get(refusal_key)
        if refused is not None and refused[0] > self.clock():
            return None
        ask_id = hashlib.sha256(f"{kind.value}\n{url}".encode()).hexdigest()[:24]
        asks = self._asks.setdefault(ticket_id, {})
        ask = asks.get(ask_id)
        if ask is None:
            if self.ask_browser is None:
                return None
            ask = _Ask(url, kind, asyncio.get_running_loop().create_future())
            asks[ask_id] = ask
            self._queue_ask(ticket_id, ask_id, url)
        try:
            return await asyncio.wait_for(asyncio.shield(ask.future), self.policy.browser_wait)
        except TimeoutError:
            self._settle(ticket_id, ask_id, None)
            return None

    def _queue_ask(self, ticket_id: str, ask_id: str, url: str) -> None:
        """Ask in batches: the images of one page arrive within milliseconds of each other."""
        batch = self._batch.get(ticket_id)
        if batch is not None:
            batch.append((ask_id, url))
            return
        self._batch[ticket_id] = [(ask_id, url)]

        async def send() -> None:
            await asyncio.sleep(0.02)
            wanted = self._batch.pop(ticket_id, [])
            if wanted and self.ask_browser is not None:
                await self.ask_browser(ticket_id, wanted)

        task = asyncio.get_running_loop().create_task(send())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _settle(self, ticket_id: str, ask_id: str, asset: CachedAsset | None) -> None:
        ask = self._asks.get(ticket_id, {}).pop(ask_id, None)
        if ask is None:
            return
        if asset is None:
            key = f"b:{ticket_id}:{ask.kind.value}:{ask.url}"
            self._remember_refusal(key, FetchRefused("browser_failed", browser=False))
        if not ask.future.done():
            ask.future.set_result(asset)

    async def supply(self, ticket_id: str, chunks: list[dict[str, Any]]) -> int:
        """Bytes (or a failure) from the customer's browser for assets we asked it for.
        Anything not asked for is ignored. Returns how many assets completed."""
        completed = 0
        for chunk in chunks:
            ask_id = str(chunk.get("id"))
            ask = self._asks.get(ticket_id, {}).get(ask_id)
            if ask is None:
                continue
            if chunk.get("error"):
                self._settle(ticket_id, ask_id, None)
                continue
            body = self._assemble(ask, chunk)
            if body is None:
                if ask.upload is None:  # refused while assembling
                    self._settle(ticket_id, ask_id, None)
                continue
            declared = str(chunk.get("content_type") or "").split(";")[0].strip().lower()
            content_type = served_type(body, declared, ask.kind)
            if content_type is None:
                self._settle(ticket_id, ask_id, None)
                continue
            source_url = chunk.get("url") if isinstance(chunk.get("url"), str) else None
            base = source_url if source_url and origin_of(source_url) else ask.url
            await self.cache.put(
                _browser_key(ticket_id, ask.kind, ask.url), content_type, body, base
            )
            self._settle(ticket_id, ask_id, CachedAsset(content_type, body, base))
            completed += 1
        return completed

    def _assemble(self, ask: _Ask, chunk: dict[str, Any]) -> bytes | None:
        """The whole body once its last part arrived; ``None`` while parts are missing, or
        (with ``ask.upload`` cleared) when the parts are refused."""
        part, parts = int(chunk.get("part") or 0), int(chunk.get("parts") or 1)
        try:
            data = base64.b64decode(str(chunk.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            ask.upload = None
            return None
        if ask.upload is None or len(ask.upload.parts) != parts:
            ask.upload = _Upload([None] * parts)
        upload = ask.upload
        if not 0 <= part < parts or upload.parts[part] is not None:
            ask.upload = None
            return None
        upload.parts[part] = data
        upload.size += len(data)
        if upload.size > self.policy.max_browser_bytes:
            ask.upload = None
            return None
        if any(p is None for p in upload.parts):
            return None  # more parts to come (``ask.upload`` stays set)
        ask.upload = None
        return b"".join(p or b"" for p in upload.parts)


def _browser_key(ticket_id: str, kind: AssetKind, url: str) -> str:
    return f"b:{ticket_id}:{kind.value}:{url}"


def _refuse(exc: type[web.HTTPException], reason: str) -> web.HTTPException:
    return exc(text=reason, headers={"Cache-Control": "no-store"})


asset_service_key = web.AppKey("cobrowse_assets", AssetService)


async def _serve(request: web.Request) -> web.StreamResponse:
    return await request.app[asset_service_key].serve(request.match_info["token"])


asset_routes = [web.get(ASSET_PATH + "{token}", _serve)]


async def fetch_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the asset fetcher's HTTP client, for the app's lifetime."""
    service = app[asset_service_key]
    async with client_session(service.limits) as http:
        service.http = http
        yield
        service.http = None
