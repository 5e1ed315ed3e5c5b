"""The application factory: one aiohttp app with socket.io attached.

Resources are opened in ``cleanup_ctx`` (closed only if they opened), in dependency order:
store -> live state -> desk -> socket API.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

import cobrowse
from signaling import keys
from signaling.assets.cache import AssetCache
from signaling.assets.service import AssetService, asset_routes, asset_service_key, fetch_client_ctx
from signaling.auth.throttle import Allowance, LoginThrottle
from signaling.desk import Desk
from signaling.edge.http_errors import api_errors
from signaling.edge.rest import routes as rest_routes
from signaling.edge.sockets import SocketApi, SocketBroadcaster, max_frame_bytes
from signaling.edge.socketserver import FrameLimits, GuardedServer
from signaling.edge.webfiles import public_host_for, security_headers, web_routes
from signaling.hubs.calls import CallHub
from signaling.hubs.cobrowse import CobrowseHub
from signaling.live import MemoryLiveState, OpenTicketLimits
from signaling.settings import Settings, load_secret
from signaling.store import FileStore, open_store

log = logging.getLogger("tandem")

sio_key = web.AppKey("sio", socketio.AsyncServer)
socket_api_key = keys.socket_api
cobrowse_hub_key = web.AppKey("cobrowse_hub", CobrowseHub)


def create_app(settings: Settings) -> web.Application:
    refusals = settings.refusals()
    if refusals:
        raise ValueError("; ".join(refusals))
    app = web.Application(middlewares=[security_headers, api_errors], client_max_size=1024**2)
    app[keys.settings] = settings
    app[keys.secret] = load_secret(settings.data_dir, settings.secret or None)
    public_host_for(app, settings.public_url)
    app[keys.login_throttle] = LoginThrottle(
        Allowance(settings.login_account_burst, settings.login_account_interval),
        Allowance(settings.login_address_burst, settings.login_address_interval),
    )
    sio = GuardedServer(
        FrameLimits(
            bytes_per_second=settings.socket_bytes_per_second,
            burst_bytes=max(settings.socket_burst_bytes, settings.max_event_bytes * 2),
            max_event_bytes=max_frame_bytes,
        ),
        async_mode="aiohttp",
        # Origins are checked per role in the connect handler (site allowlists), so engine.io's
        # own same-origin check is switched off rather than widened to '*'.
        cors_allowed_origins=[],
        max_http_buffer_size=settings.max_event_bytes,
        # The protocol is websocket only (docs/protocol.md): long-polling would need sticky
        # sessions across nodes and is one more surface to attack, so it is not served at all.
        transports=["websocket"],
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    app[sio_key] = sio
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_desk_ctx)
    app.cleanup_ctx.append(fetch_client_ctx)
    app.on_startup.append(_freeze_startup_objects)
    app.on_shutdown.append(_announce_shutdown)
    app.router.add_routes(rest_routes)
    app.router.add_routes(asset_routes)
    app.router.add_routes(web_routes(settings.web_dir / "dist"))
    return app


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700).
Each event a server handles makes and drops thousands of objects, nearly all freed by their
reference count at once; collecting every 700 spent a fifth of the server's CPU under load
and promoted objects about to die into the older generations, whose collections walk every
socket (pauses of 100 ms and more with a thousand sessions)."""


async def _freeze_startup_objects(app: web.Application) -> None:
    """What start-up made (modules, models, schemas, settings) lives as long as the process:
    it is moved out of the garbage collector's sight, so a full collection during a busy
    co-browse stream walks only what the stream made (a pause on the loop otherwise). The
    garbage is collected first, so nothing dead is kept."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    store = await open_store(settings.database_url, settings.sqlite_path)
    app[keys.store] = store
    app[keys.files] = FileStore(settings.attachments_dir)
    yield
    await store.close()


async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    live = MemoryLiveState()
    app[keys.live] = live
    sio = app[sio_key]
    desk = Desk(
        store=app[keys.store],
        live=live,
        files=app[keys.files],
        broadcaster=SocketBroadcaster(sio),
        secret=app[keys.secret],
        customer_token_ttl=settings.customer_token_ttl,
        ticket_limits=OpenTicketLimits(
            per_address=settings.max_open_tickets_per_address,
            per_customer=settings.max_open_tickets_per_customer,
        ),
    )
    await desk.rebuild_live_state()
    desk.queue_feed.start()
    app[keys.desk] = desk
    limits = cobrowse.RateLimits(
        events_per_second=settings.cobrowse_events_per_second,
        event_burst=settings.cobrowse_events_per_second * 10,
        bytes_per_second=settings.cobrowse_bytes_per_second,
    )
    # Co-browse assets have their own evicting store: never the attachments' one.
    assets = AssetService(
        app[keys.secret], app[keys.store], AssetCache(FileStore(settings.data_dir / "asset-cache"))
    )
    app[asset_service_key] = assets
    hub = CobrowseHub(
        desk, cobrowse.InMemoryMirrorStore(), settings.data_dir / "recordings", limits, assets
    )
    app[cobrowse_hub_key] = hub
    calls = CallHub(desk, settings)
    app[keys.calls] = calls
    api = SocketApi(sio, desk, hub, calls, app[keys.store], settings, app[keys.secret])
    app[socket_api_key] = api
    sweeper = asyncio.get_running_loop().create_task(_sweep_auth_sessions(api))
    yield
    sweeper.cancel()
    await desk.queue_feed.close()
    await calls.close()
    await hub.close()
    await live.close()


AUTH_SWEEP_SECONDS = 30.0
"""How often each node closes agent sockets whose sign-in session ended elsewhere."""


async def _sweep_auth_sessions(api: SocketApi) -> None:
    while True:
        await asyncio.sleep(AUTH_SWEEP_SECONDS)
        try:
            closed = await api.sweep_auth_sessions()
        except Exception:
            log.exception("sign-in session sweep failed")
            continue
        if closed:
            log.info("closed %d agent sockets of ended sign-in sessions", closed)


async def _announce_shutdown(app: web.Application) -> None:
    # Everything a session holds is in the store already; clients only need to know to
    # reconnect (to this node when it is back, or to another one).
    api = app.get(socket_api_key)
    if api is not None:
        await api.announce_restart()
        log.info("told connected clients to reconnect")
