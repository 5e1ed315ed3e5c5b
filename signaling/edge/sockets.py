"""The socket.io edge: authenticate the handshake, validate each event, call the desk, ack.

Handlers are thin on purpose: everything that decides anything lives in ``desk.py``. Every event
is answered with an ack, ``{"ok": true, ...}`` or ``{"ok": false, "error": {code, message}}``,
and a refused event changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any
from urllib.parse import urlsplit

import socketio
from pydantic import ValidationError

from signaling import auth
from signaling.auth import sessions as agent_sessions
from signaling.auth.accounts import origin_of
from signaling.desk import (
    AgentCaller,
    Caller,
    CustomerCaller,
    Desk,
    DeskError,
)
from signaling.desk.rooms import (
    AGENTS_ROOM,
    QUEUE_ROOM,
    QUEUE_V1_ROOM,
    SUPERVISORS_ROOM,
    agent_room,
    customer_room,
    queue_view_room,
)
from signaling.edge.clientaddr import client_address
from signaling.edge.handlers import Connection, Hubs, routes
from signaling.edge.ratelimit import TokenBucket
from signaling.edge.redis_bus import NodeBus
from signaling.edge.socketserver import DirectManager, GuardedServer, error_ack
from signaling.hubs.calls import CallHub
from signaling.hubs.cobrowse import CobrowseHub
from signaling.protocol import (
    CLIENT_EVENTS,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    ClientEvent,
    ConnectAuth,
    ErrorCode,
    Message,
    OkAck,
    Sender,
    ServerRestarting,
)
from signaling.protocol.base import event_name
from signaling.settings import Settings
from signaling.store import TicketStore

log = logging.getLogger("tandem.sockets")

MAX_NESTING = 32
"""Deepest JSON nesting of an event payload (co-browse batches travel as one string)."""


AUTH_SESSION_ENDED = "auth_session.ended"
"""Node message: close your sockets of this sign-in session."""


def max_frame_bytes(event: str) -> int:
    """The largest socket.io frame accepted for an event, checked before it is decoded."""
    model = CLIENT_EVENTS.get(event)
    return model.max_frame if model is not None else ClientEvent.max_frame


def handled_in_reader(event: str) -> bool:
    """Whether an event is handled in its socket's reader (``ClientEvent.in_reader``)."""
    model = CLIENT_EVENTS.get(event)
    return model is not None and model.in_reader


class SocketBroadcaster:
    """``Broadcaster`` over socket.io rooms (through the client manager, so every node)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def emit(self, event: Message, rooms: list[str], skip_sid: str | None = None) -> None:
        # python-socketio treats an empty recipient list as "everyone": a session with no
        # agent yet must reach nobody, not every socket on the server.
        if not rooms:
            return
        manager = self._sio.manager
        name = event_name(type(event))
        if isinstance(manager, DirectManager):
            if manager.reaches_nobody(rooms):
                return  # one node and nobody listening (a v1 queue room, a session with no agent)
            text = event.wire_json()
            if text is not None:
                await manager.emit_json(name, text, rooms, skip_sid)
                return
        await self._sio.emit(name, event.wire(), to=rooms, skip_sid=skip_sid)

    async def emit_each(self, emits: Sequence[tuple[Message, list[str]]]) -> None:
        """``emit`` of each event to its rooms; on several nodes the ones whose JSON is made
        already (numbered session events) travel in one publish and are not encoded again."""
        manager = self._sio.manager
        if isinstance(manager, NodeBus):
            texts: list[tuple[str, str, list[str]]] = []
            for event, rooms in emits:
                text = event.wire_json()
                if text is None:
                    await self.emit(event, rooms)
                elif rooms:
                    if isinstance(text, bytes):
                        text = text.decode()
                    texts.append((event_name(type(event)), text, rooms))
            if texts:
                await manager.emit_texts(texts)
            return
        for event, rooms in emits:
            await self.emit(event, rooms)

    async def emit_here(self, event: Message, rooms: list[str]) -> None:
        if not rooms:
            return
        if isinstance(self._sio.manager, DirectManager):
            await self.emit(event, rooms)  # one node: here is everywhere
            return
        name = event_name(type(event))
        await self._sio.emit(name, event.wire(), to=rooms, ignore_queue=True)

    def listening_here(self, room: str) -> bool:
        return bool(self._sio.manager.rooms.get("/", {}).get(room))

    async def enter_room(self, sid: str, room: str) -> bool:
        if not self._sio.manager.is_connected(sid, "/"):
            return False
        try:
            await self._sio.enter_room(sid, room)
        except (KeyError, ValueError):  # disconnected between the check and the call
            return False
        return True


class SocketApi:
    def __init__(
        self,
        sio: GuardedServer,
        desk: Desk,
        cobrowse: CobrowseHub,
        calls: CallHub,
        store: TicketStore,
        settings: Settings,
        secret: str,
    ) -> None:
        self.sio = sio
        self.desk = desk
        self.cobrowse = cobrowse
        self.calls = calls
        self.store = store
        self.settings = settings
        self.secret = secret
        self._pending: set[asyncio.Task[None]] = set()
        self.draining = False
        """Set when the node drains: new sockets are refused (they go to another node)."""
        self.routes = routes(Hubs(desk=desk, cobrowse=cobrowse, calls=calls, sio=sio))
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("*", self.dispatch)
        if isinstance(sio.manager, NodeBus):
            sio.manager.on_node_message(AUTH_SESSION_ENDED, self._auth_session_ended)

    # ------------------------------------------------------------------ handshake

    async def connect(self, sid: str, environ: dict[str, Any], raw_auth: Any) -> None:
        if self.draining:
            raise _refuse("invalid_state", "this node is draining; connect again (to another)")
        try:
            hello = ConnectAuth.model_validate(raw_auth or {})
        except ValidationError as exc:
            raise _refuse("malformed", f"bad auth payload: {_first_error(exc)}") from None
        if not MIN_PROTOCOL_VERSION <= hello.v <= PROTOCOL_VERSION:
            raise _refuse(
                "unsupported_version",
                f"protocol v{hello.v} not supported (server speaks "
                f"v{MIN_PROTOCOL_VERSION}..v{PROTOCOL_VERSION})",
            )
        origin = environ.get("HTTP_ORIGIN")
        caller: Caller
        if hello.role == "customer":
            request = environ.get("aiohttp.request")
            address = client_address(
                request.remote if request is not None else None,
                environ.get("HTTP_X_FORWARDED_FOR"),
                self.settings.trusted_proxies,
            )
            caller = await self._customer(sid, hello, origin, address)
            # Counted last, once everything else has passed: a refused handshake holds nothing.
            limit = self.settings.max_customer_sockets_per_address
            if not await self.desk.live.add_customer_socket(address, sid, limit):
                raise _refuse(
                    "rate_limited", f"too many connections from your address (limit {limit})"
                )
        else:
            caller = await self._agent(sid, hello, origin, environ.get("HTTP_HOST"))
        bucket = TokenBucket(self.settings.rate_per_second, self.settings.rate_per_second * 2)
        await self.sio.save_session(sid, {"conn": Connection[Caller](caller=caller, bucket=bucket)})
        if isinstance(caller, AgentCaller):
            await self.sio.enter_room(sid, AGENTS_ROOM)
            # v2 consoles take the queue's changes coalesced, agents only those of the queues
            # they can serve; v1 clients one event per change (the whole queue).
            if hello.v < 2:
                await self.sio.enter_room(sid, QUEUE_V1_ROOM)
            elif caller.oversees:
                await self.sio.enter_room(sid, QUEUE_ROOM)
            else:
                await self.sio.enter_room(sid, queue_view_room(frozenset(caller.agent.skills)))
            await self.sio.enter_room(sid, agent_room(caller.agent.id))
            if caller.oversees:
                await self.sio.enter_room(sid, SUPERVISORS_ROOM)
            await self.desk.agent_connected(caller, sid)
            # Started last: it runs once this handler has returned and the handshake is
            # answered (a socket may be sent nothing before that).
            self._later(self.desk.agent_arrived(caller, sid))
        elif caller.ticket_id:
            await self.sio.enter_room(sid, customer_room(caller.ticket_id))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("after-connect work failed: %r", task.exception())

    async def _customer(
        self, sid: str, hello: ConnectAuth, origin: str | None, address: str
    ) -> CustomerCaller:
        if not hello.site:
            raise _refuse("unauthorized", "customer sockets must carry the site key")
        site = await self.store.site_by_key(hello.site)
        if site is None:
            raise _refuse("unauthorized", "unknown site key")
        if origin is None or origin_of(origin) not in site.origins:
            raise _refuse("forbidden", f"origin {origin!r} is not allowed for this site")
        if not hello.token:
            return CustomerCaller(site=site, sid=sid, address=address)
        try:
            claims = auth.read_customer_token(self.secret, hello.token)
        except auth.TokenError as exc:
            raise _refuse("unauthorized", f"session token refused: {exc.reason}") from None
        if claims.site_id != site.id:
            raise _refuse("forbidden", "session token belongs to another site")
        return CustomerCaller(
            site=site,
            customer_id=claims.customer_id,
            ticket_id=claims.ticket_id,
            sid=sid,
            address=address,
        )

    async def _agent(
        self, sid: str, hello: ConnectAuth, origin: str | None, host: str | None
    ) -> AgentCaller:
        # Agent tokens are bearer tokens, not cookies, so a foreign page cannot ride on them;
        # still, a browser socket must come from the console's own origin.
        if origin is not None and urlsplit(origin).netloc != host:
            raise _refuse("forbidden", "agent sockets are accepted from the console's origin only")
        if not hello.token:
            raise _refuse("unauthorized", "agent sockets must carry a token")
        try:
            agent, claims = await agent_sessions.authenticate(
                self.store, self.secret, hello.token, self.settings.agent_session_max_age
            )
        except auth.TokenError as exc:
            raise _refuse("unauthorized", f"token refused: {exc.reason}") from None
        return AgentCaller(agent=agent, sid=sid, auth_session_id=claims.session_id)

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.sio.get_session(sid)
        conn: Connection[Caller] | None = session.get("conn")
        self.cobrowse.forget_socket(sid)
        if conn is not None and not self.draining:
            # A draining node's clients reconnect elsewhere and keep their calls.
            await self.calls.socket_gone(conn.caller)
        if conn is not None and isinstance(conn.caller, AgentCaller):
            await self.desk.agent_disconnected(conn.caller, sid)
        elif conn is not None and isinstance(conn.caller, CustomerCaller):
            await self.desk.live.drop_customer_socket(conn.caller.address, sid)

    # ------------------------------------------------------------------ dispatch

    async def _connection(self, sid: str) -> Connection[Caller] | None:
        """The socket's connection, or None: not connected yet, or gone already (a socket can
        close between the frame of an event and the start of its handler's task; nothing can
        answer it then)."""
        try:
            session = await self.sio.get_session(sid)
        except KeyError:
            return None
        conn: Connection[Caller] | None = session.get("conn")
        return conn

    async def dispatch(self, event: str, sid: str, *args: Any) -> Any:
        conn = await self._connection(sid)
        if conn is None:
            return error_ack("unauthorized", "not connected")
        model = CLIENT_EVENTS.get(event)
        if not conn.bucket.take(model.cost if model is not None else 1.0):
            return error_ack("rate_limited", "too many events; slow down")
        if model is None:
            return error_ack("unknown_event", f"unknown event {event!r}")
        role: Sender = "agent" if isinstance(conn.caller, AgentCaller) else "customer"
        route = self.routes[role].get(event)
        if route is None:
            return error_ack("forbidden", f"{event} is not for {role}s")
        handler = route[1]
        payload = args[0] if args else {}
        if nesting_exceeds(payload, MAX_NESTING):
            return error_ack("malformed", f"payload nests deeper than {MAX_NESTING} levels")
        try:
            message = model.model_validate(payload)
        except ValidationError as exc:
            details = [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
            ]
            return error_ack("malformed", f"invalid {event}: {_first_error(exc)}", details)
        try:
            ack = await handler(conn, message)
        except DeskError as exc:
            return error_ack(exc.code, exc.message)
        except Exception:
            log.exception("event %s failed", event)
            # Not "nothing was changed": the fault may have come after a change.
            return error_ack(
                "internal", "internal error; it may have taken effect: resume to see the state"
            )
        return (ack or OkAck()).wire()

    # ------------------------------------------------------------------ sign-in sessions

    async def close_auth_session(self, session_id: str) -> None:
        """Close the sockets of an ended sign-in session, on every node."""
        if isinstance(self.sio.manager, NodeBus):
            await self.sio.manager.tell_nodes(AUTH_SESSION_ENDED, {"sessionId": session_id})
        else:
            await self._close_auth_session_here(session_id)

    async def _auth_session_ended(self, data: dict[str, Any]) -> None:
        session_id = data.get("sessionId")
        if isinstance(session_id, str):
            await self._close_auth_session_here(session_id)

    async def _close_auth_session_here(self, session_id: str) -> None:
        for sid, auth_session_id in await self._agent_sockets():
            if auth_session_id == session_id:
                await self.sio.disconnect(sid)

    async def sweep_auth_sessions(self) -> int:
        """Close this node's agent sockets whose sign-in session has ended (a password change
        or removal made by ``tandem agent`` in another process); how many were closed."""
        closed = 0
        for sid, session_id in await self._agent_sockets():
            session = await self.store.auth_session(session_id)
            if session is None or session.revoked_at is not None:
                await self.sio.disconnect(sid)
                closed += 1
        return closed

    async def _agent_sockets(self) -> list[tuple[str, str]]:
        """(socket id, sign-in session id) of the agent sockets connected to this node."""
        found = []
        for sid, _eio_sid in list(self.sio.manager.get_participants("/", AGENTS_ROOM)):
            conn = await self._connection(sid)
            if conn is not None and isinstance(conn.caller, AgentCaller):
                found.append((sid, conn.caller.auth_session_id))
        return found

    # ------------------------------------------------------------------ shutdown

    async def announce_restart(self) -> None:
        """Tell this node's sockets to reconnect (with the same token) shortly."""
        notice = ServerRestarting(reconnect_after_ms=self.settings.shutdown_reconnect_ms).wire()
        sids = [sid for sid, _ in self.sio.manager.get_participants("/", None)]
        for sid in sids:
            await self.sio.emit("server.restarting", notice, to=sid)


def _refuse(code: ErrorCode, message: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
