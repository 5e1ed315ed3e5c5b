"""The application factory: one aiohttp app with socket.io attached.

Resources are opened in ``cleanup_ctx`` (closed only if they opened), in dependency order:
store -> live state -> desk -> socket API.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
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
from signaling.hubs.home import Home
from signaling.live import MemoryLiveState, OpenTicketLimits
from signaling.live.nodes import LocalNodes, RedisNodes
from signaling.live.placement import MemoryPlacement, Placement, RedisPlacement
from signaling.live.rpc import LoopbackRpc, RedisRpc, Rpc
from signaling.settings import Settings, load_secret
from signaling.store import FileStore, open_store

log = logging.getLogger("tandem")

sio_key = web.AppKey("sio", socketio.AsyncServer)
socket_api_key = keys.socket_api
cobrowse_hub_key = web.AppKey("cobrowse_hub", CobrowseHub)
home_key = web.AppKey("home", Home)
redis_key = web.AppKey("redis", aioredis.Redis)
"""The Redis client of a node that shares live state (absent on an embedded node)."""


def create_app(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    client_manager: Any = None,
) -> web.Application:
    """The app. ``redis`` and ``client_manager`` hand in the shared-state parts of a node of
    several (a Redis client, a socket.io client manager over it) built by the caller."""
    refusals = settings.refusals()
    if refusals:
        raise ValueError("; ".join(refusals))
    app = web.Application(middlewares=[security_headers, api_errors], client_max_size=1024**2)
    app[keys.settings] = settings
    app[keys.secret] = load_secret(settings.data_dir, settings.secret or None)
    public_host_for(app, settings.public_url)
    if redis is not None:
        app[redis_key] = redis
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
        **({"client_manager": client_manager} if client_manager is not None else {}),
    )
    sio.attach(app)
    app[sio_key] = sio
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_home_ctx)
    app.cleanup_ctx.append(_desk_ctx)
    app.cleanup_ctx.append(fetch_client_ctx)
    app.on_shutdown.append(_announce_shutdown)
    app.router.add_routes(rest_routes)
    app.router.add_routes(asset_routes)
    app.router.add_routes(web_routes(settings.web_dir / "dist"))
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    store = await open_store(settings.database_url, settings.sqlite_path)
    app[keys.store] = store
    app[keys.files] = FileStore(settings.attachments_dir)
    yield
    await store.close()


async def _home_ctx(app: web.Application) -> AsyncIterator[None]:
    """Where this node stands among the nodes: its leases of sessions, its request channel,
    its node record (in Redis when shared, in memory for an embedded node)."""
    settings = app[keys.settings]
    node = f"{settings.node_name or socket.gethostname()}-{secrets.token_hex(3)}"
    renew_seconds = settings.home_lease_ms / 3000
    redis = app.get(redis_key)
    opened = None
    if redis is None and settings.redis_url:
        # The socket timeout outlasts the request channel's 5 s BLPOP.
        opened = redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=2
        )
    placement: Placement
    rpc: Rpc
    nodes: RedisNodes | LocalNodes
    if redis is not None:
        prefix = settings.redis_prefix
        placement = RedisPlacement(redis, node, prefix, settings.home_lease_ms, renew_seconds)
        rpc = RedisRpc(redis, node, prefix)
        nodes = RedisNodes(redis, node, prefix, settings.media_host_addresses)
    else:
        placement = MemoryPlacement(node, settings.home_lease_ms, renew_seconds)
        rpc = LoopbackRpc(node)
        nodes = LocalNodes(node, settings.media_host_addresses)
    nodes.load = lambda: len(placement.held())
    home = Home(placement, rpc, nodes, app[keys.store])
    app[home_key] = home
    app[keys.nodes] = nodes
    placement.start()
    nodes.start()
    yield
    await home.close()
    await nodes.close()
    await rpc.close()
    await placement.close()
    try:
        await placement.release_all()
        await nodes.withdraw()
    except Exception:
        log.exception("could not release this node's leases")
    if opened is not None:
        await opened.aclose()


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
    home = app[home_key]
    hub = CobrowseHub(
        desk,
        cobrowse.InMemoryMirrorStore(),
        settings.data_dir / "recordings",
        home,
        limits,
        assets,
    )
    app[cobrowse_hub_key] = hub
    calls = CallHub(desk, settings, home)
    desk.on_close.append(home.ticket_closed)
    # Requests from other nodes are served once every hub has registered its work.
    home.rpc.start()
    home.start()
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


async def drain(app: web.Application) -> None:
    """Stop taking new work and hand this node's sessions to the others: ``/healthz`` answers
    503 and new sockets are refused from now on, connected clients are told to reconnect
    (elsewhere), and every session this node is home to is handed over (its recording part
    filed, its lease released, a serving node asked to adopt it). Runs once; the node stays
    up (SIGUSR1), or exits after it (SIGTERM, on shutdown)."""
    nodes = app[keys.nodes]
    if nodes.state == "draining":
        return
    nodes.state = "draining"
    api = app.get(socket_api_key)
    if api is not None:
        api.draining = True
    try:
        await nodes.advertise()
    except Exception:
        log.exception("could not advertise draining")
    # Everything a session holds is in the store already; clients only need to know to
    # reconnect (to another node, or to this one when it is back).
    if api is not None:
        await api.announce_restart()
        log.info("told connected clients to reconnect")
    home = app.get(home_key)
    if home is not None:
        handed = await home.hand_over_all()
        log.info("handed %d sessions over", handed)


async def _announce_shutdown(app: web.Application) -> None:
    await drain(app)
