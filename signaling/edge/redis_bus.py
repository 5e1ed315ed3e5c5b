"""The bus between nodes: python-socketio's ``AsyncRedisManager``, hardened where it loses
messages silently (``docs/architecture.md``, "Several nodes").

What the stock manager does, and what this one changes:

- It re-subscribes with a backoff growing to 60 s; here the backoff stops at ``max_backoff``
  (2 s), so a node is deaf for seconds, not a minute, after Redis comes back.
- It makes a new Redis client on every reconnect and never closes the old one (python-socketio
  #1569: one socket leaks per reconnect); here one publishing client lives as long as the
  manager, and each subscription is closed before the next is made.
- With no socket timeout a hung Redis connection blocks for ever (Flask-SocketIO #826, #1675);
  here every connection has ``socket_timeout`` and ``health_check_interval``.
- A subscription can die while Redis still answers (``CLIENT KILL TYPE pubsub``, a proxy that
  drops it): nothing fails, events just stop arriving. Here a canary is published every
  ``canary_interval`` and watched for on the node's own subscription, before the manager's
  host filter; when none has come back for ``canary_timeout`` while Redis answers a PING, the
  subscription is made again.

Whenever the subscription was made again, events published meanwhile are gone: every socket of
this node is sent ``server.resync`` and fetches its state again.

Nodes also tell each other things that are no socket.io emit (a sign-in session ended, so each
closes its own sockets of it): ``tell_nodes`` publishes them on the same channel, under a
``method`` the stock manager ignores, and the handlers registered with ``on_node_message`` run on
every node, this one included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal

import socketio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub

from signaling import background
from signaling.edge.room_index import RoomIndex
from signaling.edge.text_emits import TextEmits
from signaling.protocol import ServerResync

log = logging.getLogger("tandem.bus")

CANARY = "tandem.canary"
NODE_MESSAGE = "tandem.node"
EMIT_TEXTS = "tandem.emit"
"""Events whose JSON is made already, each to its rooms (``NodeBus.emit_texts``)."""

PUBLISH_CONNECTIONS = 32
"""The bus client's connections (the subscription holds one): every session event is one
PUBLISH awaited by its sender, and with 8 a burst of chat on two nodes waited for a free one
(p99 ~30 ms a publish, ``bench/nodes.py``)."""

NodeHandler = Callable[[dict[str, Any]], Awaitable[None]]


class NodeBus(TextEmits, RoomIndex, socketio.AsyncRedisManager):  # type: ignore[misc]
    """See the module."""

    name = "tandem-redis"

    def __init__(
        self,
        url: str,
        *,
        channel: str = "tandem",
        canary_interval: float = 2.0,
        canary_timeout: float = 6.0,
        max_backoff: float = 2.0,
        socket_timeout: float = 5.0,
        health_check_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            url,
            channel=channel,
            redis_options={
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_timeout,
                "health_check_interval": health_check_interval,
            },
        )
        self.canary_interval = canary_interval
        self.canary_timeout = canary_timeout
        self.max_backoff = max_backoff
        self._clock = clock
        self._publisher: Redis | None = None
        self._subscription: PubSub | None = None
        self._last_echo = clock()
        self._silent = False
        self._node_handlers: dict[str, NodeHandler] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self.resubscriptions = 0
        """How many times the subscription was made again (for tests and metrics)."""

    # ------------------------------------------------------------------ node messages

    def on_node_message(self, kind: str, handler: NodeHandler) -> None:
        self._node_handlers[kind] = handler

    async def tell_nodes(self, kind: str, data: dict[str, Any]) -> None:
        """Run ``kind``'s handler on every node: here at once, elsewhere through Redis."""
        await self._run_node_handler(kind, data)
        await self._publish(
            {"method": NODE_MESSAGE, "host_id": self.host_id, "kind": kind, "data": data}
        )

    async def _run_node_handler(self, kind: str, data: dict[str, Any]) -> None:
        handler = self._node_handlers.get(kind)
        if handler is None:
            return
        try:
            await handler(data)
        except Exception:
            log.exception("node message %s failed", kind)

    # ------------------------------------------------------------------ events made already

    async def emit_texts(self, emits: Sequence[tuple[str, str, list[str]]]) -> None:
        """Send each ``(event name, its JSON, rooms)`` to every socket in any of its rooms, on
        every node: here at once, elsewhere through ONE publish for them all (a session event
        goes to the customer's and the agents' rooms with a number each). The text is spliced
        into the socket.io packet as it is, on every node (``emit`` would encode it again)."""
        for name, text, rooms in emits:
            await self.emit_json(name, text, rooms)
        await self._publish({"method": EMIT_TEXTS, "host_id": self.host_id, "emits": emits})

    async def _emit_texts_here(self, data: dict[str, Any]) -> None:
        emits = data.get("emits")
        if not isinstance(emits, list):
            return
        for emit in emits:
            try:
                name, text, rooms = emit
                await self.emit_json(str(name), str(text), [str(room) for room in rooms])
            except Exception:
                log.exception("bus emit of %r failed", emit[:1] if isinstance(emit, list) else emit)

    # ------------------------------------------------------------------ connections

    def _client(self) -> Redis:
        if self._publisher is None:
            pool = BlockingConnectionPool.from_url(
                self.redis_url,
                max_connections=PUBLISH_CONNECTIONS,
                timeout=10,
                **self.redis_options,
            )
            self._publisher = Redis(connection_pool=pool)
        return self._publisher

    def _redis_connect(self) -> None:
        # The stock manager calls this to make a new client each time; here the one client is
        # kept (a pool that reconnects by itself), so nothing leaks.
        self.redis = self._client()
        self.connected = True

    async def _publish(self, data: Any) -> Any:
        payload = json.dumps(data, separators=(",", ":"))
        for attempt in range(2):
            try:
                return await self._client().publish(self.channel, payload)
            except Exception as exc:
                if attempt:
                    log.error("cannot publish to Redis, giving up: %s", exc)
                    return None
                log.warning("cannot publish to Redis, retrying: %s", exc)
        return None

    async def _subscribe(self) -> PubSub:
        await self._close_subscription()
        subscription = self._client().pubsub(ignore_subscribe_messages=True)
        self._subscription = subscription
        await subscription.subscribe(self.channel)
        self._last_echo = self._clock()
        self._silent = False
        return subscription

    async def _close_subscription(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.aclose()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ listening

    async def _redis_listen_with_retries(self) -> AsyncIterator[dict[str, Any]]:
        backoff = 0.1
        subscribed_before = False
        while True:
            try:
                silent = self._silent
                subscription = await self._subscribe()
                if subscribed_before:
                    self.resubscriptions += 1
                    await self._resync("bus_silent" if silent else "bus_reconnected")
                subscribed_before = True
                backoff = 0.1
                async for message in subscription.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis subscription failed (%s); again in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self) -> AsyncIterator[Any]:
        channel = self.channel.encode()
        async for message in self._redis_listen_with_retries():
            if message.get("type") != "message" or message.get("channel") != channel:
                continue
            try:
                data = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            if not isinstance(data, dict):
                continue
            method = data.get("method")
            if method == CANARY:
                if data.get("host_id") == self.host_id:
                    self._last_echo = self._clock()
                continue
            if method == EMIT_TEXTS:
                if data.get("host_id") != self.host_id:
                    await self._emit_texts_here(data)
                continue
            if method == NODE_MESSAGE:
                if data.get("host_id") != self.host_id and isinstance(data.get("data"), dict):
                    await self._run_node_handler(str(data.get("kind")), data["data"])
                continue
            yield data

    async def _resync(self, reason: Literal["bus_reconnected", "bus_silent"]) -> None:
        log.warning("Redis subscription made again (%s): telling this node's sockets", reason)
        notice = ServerResync(reason=reason).wire()
        await self.server.emit("server.resync", notice, ignore_queue=True)

    # ------------------------------------------------------------------ the canary

    def initialize(self) -> None:
        super().initialize()
        if not self.write_only:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.canary_interval)
            try:
                await self.check_canary()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("canary failed: %s", exc)

    async def check_canary(self) -> None:
        """Publish a canary; if none came back for ``canary_timeout`` while Redis answers, end
        the subscription (the listener makes it again and tells the sockets to resync)."""
        await self._client().publish(
            self.channel, json.dumps({"method": CANARY, "host_id": self.host_id})
        )
        if self._subscription is None or self._clock() - self._last_echo < self.canary_timeout:
            return
        await self._client().ping()
        log.warning(
            "no canary for %.1f s while Redis answers: subscribing again", self.canary_timeout
        )
        self._silent = True
        self._last_echo = self._clock()
        await self._close_subscription()

    async def close(self) -> None:
        await background.stop(self._watch_task, getattr(self, "thread", None))
        await self._close_subscription()
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
