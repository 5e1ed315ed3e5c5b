"""The socket.io edge: authenticate the handshake, validate each event, call the desk, ack.

Handlers are thin on purpose: everything that decides anything lives in ``desk.py``. Every event
is answered with an ack, ``{"ok": true, ...}`` or ``{"ok": false, "error": {code, message}}``,
and a refused event changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import socketio
from pydantic import ValidationError

from signaling import agent_sessions, auth
from signaling.accounts import origin_of
from signaling.calls import CallHub
from signaling.clientaddr import client_address
from signaling.cobrowse_hub import CobrowseHub
from signaling.desk import (
    AGENTS_ROOM,
    AgentCaller,
    Caller,
    CustomerCaller,
    Desk,
    DeskError,
    agent_room,
    customer_room,
)
from signaling.protocol import (
    CLIENT_EVENTS,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    AttachmentAck,
    CaptureStill,
    ChatAck,
    ChatSend,
    ChatTyping,
    ClipStart,
    ClipStarted,
    ClipStop,
    CobrowseAccept,
    CobrowseAssetsSupply,
    CobrowseDecline,
    CobrowseEvents,
    CobrowseJoin,
    CobrowsePointer,
    CobrowseRequest,
    CobrowseStop,
    ConnectAuth,
    ContextUpdate,
    ControlActionRequest,
    ControlDeny,
    ControlGrantMsg,
    ControlRequest,
    ControlRevoke,
    ErrorCode,
    HelpRequest,
    Message,
    OkAck,
    QueueList,
    QueueSnapshot,
    RtcAnswer,
    RtcAnswerAck,
    RtcCandidate,
    RtcJoin,
    RtcJoined,
    RtcLeave,
    RtcOffer,
    ServerRestarting,
    SessionAccept,
    SessionEnd,
    SessionJoin,
    SessionList,
    SessionListAck,
    SessionResume,
    TrackUpdate,
    UploadRequest,
)
from signaling.ratelimit import TokenBucket
from signaling.settings import Settings
from signaling.socketserver import GuardedServer, error_ack
from signaling.store import TicketStore

log = logging.getLogger("tandem.sockets")

MAX_EVENT_JSON = 64 * 1024
"""Largest frame of an ordinary event (chat, context); bigger ones are refused unread."""
_MAX_JSON = {"cobrowse.events": 1_001_000, "cobrowse.assets.supply": 1_001_000}
"""Events allowed to be larger (co-browse batches have their own caps and rate limit)."""
_COST = {"cobrowse.events": 0.25, "cobrowse.pointer": 0.25, "rtc.candidate": 0.25}
"""Events that weigh less on the per-socket bucket than one ordinary event."""
MAX_NESTING = 32
"""Deepest JSON nesting of an event payload (co-browse batches travel as one string)."""


def max_frame_bytes(event: str) -> int:
    """The largest socket.io frame accepted for an event, checked before it is decoded."""
    return _MAX_JSON.get(event, MAX_EVENT_JSON)


@dataclass
class Connection:
    """What this node knows about one of its sockets (kept in the socket.io session)."""

    caller: Caller
    bucket: TokenBucket


Handler = Callable[[str, Connection, Any], Awaitable[Message]]


class SocketBroadcaster:
    """``Broadcaster`` over socket.io rooms (through the client manager, so every node)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def emit(self, event: Message, rooms: list[str], skip_sid: str | None = None) -> None:
        # python-socketio treats an empty recipient list as "everyone": a session with no
        # agent yet must reach nobody, not every socket on the server.
        if not rooms:
            return
        name = type(event).model_fields["type"].default
        await self._sio.emit(name, event.wire(), to=rooms, skip_sid=skip_sid)

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
        customer: dict[str, Handler] = {
            "help.request": self.help_request,
            "context.update": self.context_update,
            "cobrowse.accept": self.cobrowse_accept,
            "cobrowse.decline": self.cobrowse_decline,
            "cobrowse.events": self.cobrowse_events,
            "cobrowse.stop": self.cobrowse_stop,
            "cobrowse.assets.supply": self.cobrowse_assets_supply,
            "control.grant": self.control_grant,
            "control.deny": self.control_deny,
        }
        both: dict[str, Handler] = {
            "session.resume": self.session_resume,
            "chat.send": self.chat_send,
            "chat.typing": self.chat_typing,
            "session.end": self.session_end,
            "control.revoke": self.control_revoke,
            "rtc.join": self.rtc_join,
            "rtc.offer": self.rtc_offer,
            "rtc.answer": self.rtc_answer,
            "rtc.candidate": self.rtc_candidate,
            "rtc.leave": self.rtc_leave,
            "media.track.update": self.track_update,
        }
        agent: dict[str, Handler] = {
            "queue.list": self.queue_list,
            "session.accept": self.session_accept,
            "session.join": self.session_join,
            "session.list": self.session_list,
            "cobrowse.request": self.cobrowse_request,
            "cobrowse.join": self.cobrowse_join,
            "cobrowse.pointer": self.cobrowse_pointer,
            "control.request": self.control_request,
            "control.action": self.control_action,
            "capture.still": self.capture_still,
            "capture.clip.start": self.clip_start,
            "capture.clip.stop": self.clip_stop,
            "upload.request": self.upload_request,
        }
        self.customer_handlers = customer | both
        self.agent_handlers = agent | both
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("*", self.dispatch)

    # ------------------------------------------------------------------ handshake

    async def connect(self, sid: str, environ: dict[str, Any], raw_auth: Any) -> None:
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
        await self.sio.save_session(sid, {"conn": Connection(caller=caller, bucket=bucket)})
        if isinstance(caller, AgentCaller):
            await self.sio.enter_room(sid, AGENTS_ROOM)
            await self.sio.enter_room(sid, agent_room(caller.agent.id))
            await self.desk.live.agent_online(caller.agent.id, sid)
        elif caller.ticket_id:
            await self.sio.enter_room(sid, customer_room(caller.ticket_id))

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
        conn: Connection | None = session.get("conn")
        self.cobrowse.forget_socket(sid)
        if conn is not None and isinstance(conn.caller, AgentCaller):
            await self.desk.live.agent_offline(conn.caller.agent.id, sid)
        elif conn is not None and isinstance(conn.caller, CustomerCaller):
            await self.desk.live.drop_customer_socket(conn.caller.address, sid)

    # ------------------------------------------------------------------ dispatch

    async def dispatch(self, event: str, sid: str, *args: Any) -> Any:
        session = await self.sio.get_session(sid)
        conn: Connection | None = session.get("conn")
        if conn is None:
            return error_ack("unauthorized", "not connected")
        if not conn.bucket.take(_COST.get(event, 1.0)):
            return error_ack("rate_limited", "too many events; slow down")
        model = CLIENT_EVENTS.get(event)
        handlers = (
            self.agent_handlers if isinstance(conn.caller, AgentCaller) else self.customer_handlers
        )
        if model is None:
            return error_ack("unknown_event", f"unknown event {event!r}")
        handler = handlers.get(event)
        if handler is None:
            return error_ack("forbidden", f"{event} is not for this role")
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
            return (await handler(sid, conn, message)).wire()
        except DeskError as exc:
            return error_ack(exc.code, exc.message)
        except Exception:
            log.exception("event %s failed", event)
            # Not "nothing was changed": the fault may have come after a change.
            return error_ack(
                "internal", "internal error; it may have taken effect: resume to see the state"
            )

    # ------------------------------------------------------------------ handlers

    async def help_request(self, sid: str, conn: Connection, msg: HelpRequest) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        state, caller = await self.desk.request_help(conn.caller, msg)
        if caller.ticket_id != conn.caller.ticket_id:
            # The desk has put the socket in the new session's room already.
            if conn.caller.ticket_id:
                await self.sio.leave_room(sid, customer_room(conn.caller.ticket_id))
            conn.caller = caller
        return state

    async def context_update(self, sid: str, conn: Connection, msg: ContextUpdate) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.desk.update_context(conn.caller, msg.context)
        return OkAck()

    async def session_resume(self, sid: str, conn: Connection, msg: SessionResume) -> Message:
        return await self.desk.resume(conn.caller, msg.ticket_id, msg.after_message_id)

    async def chat_send(self, sid: str, conn: Connection, msg: ChatSend) -> Message:
        message, new = await self.desk.chat(conn.caller, msg.ticket_id, msg.client_msg_id, msg.text)
        return ChatAck(message=message, duplicate=not new)

    async def chat_typing(self, sid: str, conn: Connection, msg: ChatTyping) -> Message:
        await self.desk.typing(conn.caller, msg.ticket_id, msg.typing)
        return OkAck()

    async def session_end(self, sid: str, conn: Connection, msg: SessionEnd) -> Message:
        await self.desk.end(conn.caller, msg.ticket_id)
        return OkAck()

    async def queue_list(self, sid: str, conn: Connection, msg: QueueList) -> Message:
        return QueueSnapshot(entries=await self.desk.queue())

    async def session_accept(self, sid: str, conn: Connection, msg: SessionAccept) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return await self.desk.accept(conn.caller, msg.ticket_id)

    async def session_join(self, sid: str, conn: Connection, msg: SessionJoin) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return await self.desk.join(conn.caller, msg.ticket_id)

    async def session_list(self, sid: str, conn: Connection, msg: SessionList) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return SessionListAck(sessions=await self.desk.sessions(conn.caller))

    # ------------------------------------------------------------------ co-browse

    async def cobrowse_request(self, sid: str, conn: Connection, msg: CobrowseRequest) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        await self.cobrowse.request(conn.caller, msg.ticket_id)
        return OkAck()

    async def cobrowse_accept(self, sid: str, conn: Connection, msg: CobrowseAccept) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.accept(conn.caller, msg.v, msg.recorder)
        return OkAck()

    async def cobrowse_decline(self, sid: str, conn: Connection, msg: CobrowseDecline) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.decline(conn.caller)
        return OkAck()

    async def cobrowse_events(self, sid: str, conn: Connection, msg: CobrowseEvents) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        try:
            await self.cobrowse.ingest(
                conn.caller, sid, msg.data, msg.batch_id, msg.part, msg.parts
            )
        except DeskError:
            # A refused batch was read and parsed for nothing: it costs the sender ten times
            # its size, so a stream of invalid batches is throttled at the frame, unread.
            self.sio.penalize(sid, 10 * len(msg.data))
            raise
        return OkAck()

    async def cobrowse_assets_supply(
        self, sid: str, conn: Connection, msg: CobrowseAssetsSupply
    ) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.supply_assets(conn.caller, msg.assets)
        return OkAck()

    async def cobrowse_stop(self, sid: str, conn: Connection, msg: CobrowseStop) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.stop_by_customer(conn.caller)
        return OkAck()

    async def cobrowse_join(self, sid: str, conn: Connection, msg: CobrowseJoin) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return await self.cobrowse.join(conn.caller, msg.ticket_id)

    async def cobrowse_pointer(self, sid: str, conn: Connection, msg: CobrowsePointer) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        await self.cobrowse.pointer(conn.caller, msg.ticket_id, msg.x, msg.y, msg.mode)
        return OkAck()

    async def control_request(self, sid: str, conn: Connection, msg: ControlRequest) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        await self.cobrowse.control_request(conn.caller, msg.ticket_id)
        return OkAck()

    async def control_grant(self, sid: str, conn: Connection, msg: ControlGrantMsg) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.control_grant(conn.caller, True)
        return OkAck()

    async def control_deny(self, sid: str, conn: Connection, msg: ControlDeny) -> Message:
        assert isinstance(conn.caller, CustomerCaller)
        await self.cobrowse.control_grant(conn.caller, False)
        return OkAck()

    async def control_revoke(self, sid: str, conn: Connection, msg: ControlRevoke) -> Message:
        await self.cobrowse.control_revoke(conn.caller, msg.ticket_id)
        return OkAck()

    async def control_action(
        self, sid: str, conn: Connection, msg: ControlActionRequest
    ) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        await self.cobrowse.control_action(conn.caller, msg.ticket_id, msg.action)
        return OkAck()

    # ------------------------------------------------------------------ calls and captures

    async def rtc_join(self, sid: str, conn: Connection, msg: RtcJoin) -> Message:
        pid, servers = await self.calls.join(conn.caller, msg.ticket_id)
        return RtcJoined(ice_servers=servers, participant_id=pid)

    async def rtc_offer(self, sid: str, conn: Connection, msg: RtcOffer) -> Message:
        answer = await self.calls.offer(conn.caller, msg.ticket_id, msg.sdp, msg.labels)
        return RtcAnswerAck(sdp=answer)

    async def rtc_answer(self, sid: str, conn: Connection, msg: RtcAnswer) -> Message:
        await self.calls.answer(conn.caller, msg.ticket_id, msg.sdp)
        return OkAck()

    async def rtc_candidate(self, sid: str, conn: Connection, msg: RtcCandidate) -> Message:
        await self.calls.candidate(conn.caller, msg.ticket_id, msg.candidate)
        return OkAck()

    async def rtc_leave(self, sid: str, conn: Connection, msg: RtcLeave) -> Message:
        await self.calls.leave(conn.caller, msg.ticket_id)
        return OkAck()

    async def track_update(self, sid: str, conn: Connection, msg: TrackUpdate) -> Message:
        await self.calls.update_track(conn.caller, msg.ticket_id, msg.ref, msg.source, msg.muted)
        return OkAck()

    async def capture_still(self, sid: str, conn: Connection, msg: CaptureStill) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return AttachmentAck(
            attachment=await self.calls.still(conn.caller, msg.ticket_id, msg.track_id)
        )

    async def clip_start(self, sid: str, conn: Connection, msg: ClipStart) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return ClipStarted(
            clip_id=await self.calls.clip_start(conn.caller, msg.ticket_id, msg.track_id)
        )

    async def clip_stop(self, sid: str, conn: Connection, msg: ClipStop) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        return AttachmentAck(
            attachment=await self.calls.clip_stop(conn.caller, msg.ticket_id, msg.clip_id)
        )

    async def upload_request(self, sid: str, conn: Connection, msg: UploadRequest) -> Message:
        assert isinstance(conn.caller, AgentCaller)
        await self.calls.request_upload(conn.caller, msg.ticket_id, msg.note)
        return OkAck()

    # ------------------------------------------------------------------ sign-in sessions

    async def close_auth_session(self, session_id: str) -> None:
        """Close this node's sockets of an ended sign-in session."""
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
            conn: Connection | None = (await self.sio.get_session(sid)).get("conn")
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
