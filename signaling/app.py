"""The application factory: one aiohttp app with socket.io attached.

Resources are opened in ``cleanup_ctx`` (closed only if they opened), in dependency order:
store -> blob stores -> Redis (several nodes only) -> bus -> session event log -> live state
-> desk -> socket API.

With ``redis_url`` the node is one of several: the live state, the co-browse mirror and the
login throttle are kept in Redis, and socket.io emits reach every node through ``NodeBus``.
Without it everything live is in this process, as before.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import socketio
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

import cobrowse
from signaling import background, keys
from signaling.assets.cache import AssetCache
from signaling.assets.service import AssetService, asset_routes, asset_service_key, fetch_client_ctx
from signaling.auth.redis_throttle import RedisLoginThrottle
from signaling.auth.throttle import Allowance, LoginThrottle
from signaling.desk import Desk
from signaling.desk.offers import Router, RoutingConfig
from signaling.edge.http_errors import api_errors
from signaling.edge.redis_bus import NodeBus
from signaling.edge.rest import routes as rest_routes
from signaling.edge.rest_desk import routes as desk_rest_routes
from signaling.edge.sockets import (
    SocketApi,
    SocketBroadcaster,
    handled_in_reader,
    max_frame_bytes,
)
from signaling.edge.socketserver import FrameLimits, GuardedServer
from signaling.edge.webfiles import public_host_for, security_headers, web_routes
from signaling.hubs.calls import CallHub
from signaling.hubs.cobrowse import CobrowseHub
from signaling.hubs.home import Home
from signaling.live import (
    EventLog,
    LiveState,
    MemoryEventLog,
    MemoryLiveState,
    OpenTicketLimits,
    RedisEventLog,
)
from signaling.live.mirror_store import RedisMirrorStore
from signaling.live.nodes import LocalNodes, RedisNodes
from signaling.live.placement import MemoryPlacement, Placement, RedisPlacement
from signaling.live.redis_state import RedisLiveState
from signaling.live.rpc import LoopbackRpc, RedisRpc, Rpc
from signaling.settings import Settings, load_secret
from signaling.store import FileStore, TicketStore, open_file_store, open_store

log = logging.getLogger("tandem")

sio_key = web.AppKey("sio", socketio.AsyncServer)
socket_api_key = keys.socket_api
cobrowse_hub_key = web.AppKey("cobrowse_hub", CobrowseHub)
asset_files_key = web.AppKey("asset_files", FileStore)
redis_key = web.AppKey("redis", Redis)
node_id_key = web.AppKey("node_id", str)
bus_key = web.AppKey("bus", NodeBus)

REDIS_CONNECTIONS = 32
"""Connections one node opens to Redis at most (besides the bus's)."""
RECONCILE_SECONDS = 5.0
"""How often a node of several makes the shared queue match the store (Redis may have lost it)."""
home_key = web.AppKey("home", Home)


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
    app[keys.login_throttle] = LoginThrottle(*_login_allowances(settings))
    app[node_id_key] = (
        f"{settings.node_name or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )
    several: dict[str, object] = {}
    if settings.redis_url:
        bus = NodeBus(settings.redis_url, channel=f"{settings.redis_prefix}:bus")
        app[bus_key] = bus
        several["client_manager"] = bus
    elif client_manager is not None:
        several["client_manager"] = client_manager
    if redis is not None:
        if settings.redis_url:
            raise ValueError("a Redis client is handed in and REDIS_URL is set: choose one")
        app[redis_key] = redis
    sio = GuardedServer(
        FrameLimits(
            bytes_per_second=settings.socket_bytes_per_second,
            burst_bytes=max(settings.socket_burst_bytes, settings.max_event_bytes * 2),
            max_event_bytes=max_frame_bytes,
            in_reader=handled_in_reader,
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
        **several,
    )
    sio.attach(app)
    app[sio_key] = sio
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_files_ctx)
    if settings.redis_url:
        app.cleanup_ctx.append(_redis_ctx)
        app.cleanup_ctx.append(_bus_ctx)
    app.cleanup_ctx.append(_event_log_ctx)
    app.cleanup_ctx.append(_home_ctx)
    app.cleanup_ctx.append(_desk_ctx)
    app.cleanup_ctx.append(fetch_client_ctx)
    app.on_startup.append(_freeze_startup_objects)
    app.on_shutdown.append(_announce_shutdown)
    app.router.add_routes(rest_routes)
    app.router.add_routes(desk_rest_routes)
    app.router.add_routes(asset_routes)
    app.router.add_routes(web_routes(settings.web_dir / "dist"))
    return app


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700).
Each event a server handles makes and drops thousands of objects, nearly all freed by their
reference count at once; collecting every 700 spent a fifth of the server's CPU under load
and promoted objects about to die into the older generations, whose collections walk every
socket (pauses of 100 ms and more with a thousand sessions)."""

GC_MIDDLE_THRESHOLD = 3
"""Young collections between two collections of the middle generation (CPython's default: 10).
With young collections 70 times rarer than CPython's, the middle generation holds what
survived up to ten of them, 500,000 objects in a burst of connections (3,000 customers and
their agents connecting at once, as after a node dies): collecting that paused the loop for
210-250 ms. After three, the pause is 90-100 ms, for 5-10% more collector time over such a
burst (``bench/signaling.py --pairs 3000``, both measured twice)."""


async def _freeze_startup_objects(app: web.Application) -> None:
    """What start-up made (modules, models, schemas, settings) lives as long as the process:
    it is moved out of the garbage collector's sight, so a full collection during a busy
    co-browse stream walks only what the stream made (a pause on the loop otherwise). The
    garbage is collected first, so nothing dead is kept."""
    gc.collect()
    gc.freeze()
    _, _, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, oldest)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    store = await open_store(
        settings.database_url, settings.sqlite_path, several_nodes=bool(settings.redis_url)
    )
    app[keys.store] = store
    yield
    await store.close()


async def _files_ctx(app: web.Application) -> AsyncIterator[None]:
    """Attachments (recordings too) and the co-browse asset cache, in a directory or a bucket."""
    settings = app[keys.settings]
    opened: list[FileStore] = []
    try:
        for name, key in (("attachments", keys.files), ("asset-cache", asset_files_key)):
            files = await open_file_store(
                name,
                directory=settings.files_root,
                url=settings.files_url,
                scratch=settings.scratch_dir,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
            )
            opened.append(files)
            app[key] = files
        yield
    finally:
        for files in opened:
            await files.close()


def _login_allowances(settings: Settings) -> tuple[Allowance, Allowance]:
    return (
        Allowance(settings.login_account_burst, settings.login_account_interval),
        Allowance(settings.login_address_burst, settings.login_address_interval),
    )


def redis_retry() -> Retry:
    """How a node's Redis clients meet a broken connection: try again, a few times, on a fresh
    one. Without it (redis-py's default for a pool made from a URL) every connection pooled
    before a Redis restart fails one command each, a customer's connect among them. Not for the
    bus's subscription (``NodeBus``): that one must see the break, to tell its sockets to
    resync."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis client this node's live state, mirror and login throttle share."""
    settings = app[keys.settings]
    assert settings.redis_url is not None
    # A bounded pool that makes callers wait for a connection (the default one fails with
    # "Too many connections" under a burst of requests).
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_CONNECTIONS,
        timeout=10,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=10,
        retry=redis_retry(),
    )
    redis = Redis(connection_pool=pool)
    try:
        await redis.ping()
    except Exception as exc:
        await redis.aclose()
        raise RuntimeError(f"Redis at REDIS_URL does not answer: {exc}") from exc
    app[redis_key] = redis
    app[keys.login_throttle] = RedisLoginThrottle(
        redis, *_login_allowances(settings), prefix=settings.redis_prefix
    )
    yield
    await redis.aclose()


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    """The socket.io manager's subscription and canary start with the first socket; they
    stop here."""
    yield
    await app[bus_key].close()


async def _event_log_ctx(app: web.Application) -> AsyncIterator[None]:
    """Session events, numbered: in Redis when several nodes share one (a client resumes on
    any node), else in this process."""
    settings = app[keys.settings]
    # A session still open in the store may hold numbers of a log that is gone (this process
    # before a restart, or a Redis that lost its data): the new log's lines then start beyond
    # them (signaling/live/eventlog.py).
    genesis = not await _sessions_open(app[keys.store])
    if not settings.redis_url:
        log_: EventLog = MemoryEventLog(floor=0 if genesis else int(time.time() * 1000))
        app[keys.event_log] = log_
        yield
        await log_.close()
        return
    # A client of its own: the log reads text (decoded replies), the shared client bytes.
    # A blocking pool: a burst of appends waits for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=32,
        timeout=10,
        decode_responses=True,
        retry=redis_retry(),
    )
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
        app[keys.event_log] = RedisEventLog(
            client, prefix=settings.redis_key_prefix, genesis=genesis
        )
        yield
    finally:
        await client.aclose()
        await pool.disconnect()


async def _sessions_open(store: TicketStore) -> bool:
    for status in ("active", "queued"):
        if await store.tickets(status=status, limit=1):
            return True
    return False


async def _home_ctx(app: web.Application) -> AsyncIterator[None]:
    """Where this node stands among the nodes: its leases of sessions, its request channel,
    its node record (in Redis when shared, in memory for an embedded node)."""
    settings = app[keys.settings]
    node = app[node_id_key]
    renew_seconds = settings.home_lease_ms / 3000
    redis = app.get(redis_key)
    opened = None
    if settings.redis_url:
        # A client of its own: the request channel's BLPOP holds a connection for 5 s, which
        # the shared client's pool and socket timeout are not made for.
        opened = redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=2, retry=redis_retry()
        )
    placement: Placement
    rpc: Rpc
    nodes: RedisNodes | LocalNodes
    if redis is not None:
        prefix = settings.redis_key_prefix
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
    redis = app.get(redis_key)
    live: LiveState
    mirror: cobrowse.MirrorStore
    if redis is not None:
        live = RedisLiveState(redis, prefix=settings.redis_prefix, node=app[node_id_key])
        mirror = RedisMirrorStore(redis, prefix=settings.redis_prefix)
    else:
        live, mirror = MemoryLiveState(), cobrowse.InMemoryMirrorStore()
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
        events=app[keys.event_log],
    )
    router = Router(
        live,
        app[keys.store],
        desk.broadcaster.emit,
        RoutingConfig(
            push=settings.routing == "push",
            capacity=settings.agent_capacity,
            offer_seconds=settings.offer_seconds,
            wrap_up_seconds=settings.wrap_up_seconds,
            call_weight=settings.call_weight,
            control_weight=settings.control_weight,
        ),
    )
    desk.router = router
    desk.queue_feed.estimate = router.estimates
    desk.queue_feed.views = router.views
    tasks: list[asyncio.Task[None]] = []
    if redis is not None:
        # The queue lives on in Redis while nodes come and go: repaired, not refilled.
        await desk.reconcile_live_state()
        tasks.append(asyncio.get_running_loop().create_task(_reconcile(desk)))
    else:
        await desk.rebuild_live_state()
    desk.queue_feed.start()
    router.start()
    app[keys.desk] = desk
    limits = cobrowse.RateLimits(
        events_per_second=settings.cobrowse_events_per_second,
        event_burst=settings.cobrowse_events_per_second * 10,
        bytes_per_second=settings.cobrowse_bytes_per_second,
    )
    # Co-browse assets have their own evicting store: never the attachments' one.
    assets = AssetService(app[keys.secret], app[keys.store], AssetCache(app[asset_files_key]))
    app[asset_service_key] = assets
    home = app[home_key]
    hub = CobrowseHub(desk, mirror, settings.data_dir / "recordings", home, limits, assets)
    app[cobrowse_hub_key] = hub
    calls = CallHub(desk, settings, home)
    hub.on_stopped.append(calls.end_cobrowse_channel)
    desk.on_close.append(home.ticket_closed)
    # Requests from other nodes are served once every hub has registered its work.
    home.rpc.start()
    home.start()
    app[keys.calls] = calls
    api = SocketApi(sio, desk, hub, calls, app[keys.store], settings, app[keys.secret])
    app[socket_api_key] = api
    tasks.append(asyncio.get_running_loop().create_task(_sweep_auth_sessions(api)))
    yield
    await background.stop(*tasks)
    await router.close()
    await desk.queue_feed.close()
    await calls.close()
    await hub.close()
    await live.close()


async def _reconcile(desk: Desk) -> None:
    while True:
        await asyncio.sleep(RECONCILE_SECONDS)
        try:
            repaired = await desk.reconcile_live_state(patient=True)
        except Exception as exc:
            log.warning("live state reconcile failed: %s", exc)
            continue
        if repaired:
            log.warning("repaired %d live state entries from the store", repaired)


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


async def drain_and_wait(app: web.Application, grace: float) -> int:
    """``drain``, then wait until this node's sockets have left (at most ``grace`` seconds);
    how many were still connected then.

    Run before aiohttp's own shutdown, which stops reading every connection the moment it
    starts: a client's frame sent after that (its close handshake, a message written before
    the notice reached it) went unread, and each socket held the node up until aiohttp's
    shutdown timeout cancelled its handler."""
    await drain(app)
    sockets = app[sio_key].eio.sockets
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    # Polled: engine.io tells of each socket that leaves, not of the last one, and this runs
    # once, for a few seconds at most, as the node stops.
    while sockets and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return len(sockets)


async def _announce_shutdown(app: web.Application) -> None:
    await drain(app)
