"""python-socketio's server with the frame-level guards Tandem's protocol needs.

python-socketio hands every client packet to the application after decoding it in full, and it
lets a client name any event, including the reserved ``connect`` and ``disconnect`` (which then
reach those handlers with a client-made ``environ`` and auth) and ``*`` (which reaches the
catch-all with its arguments shifted). It also buffers the binary attachments of a packet until
all of them have arrived, with no bound. This subclass checks each engine.io message *before*
it is decoded:

- a per-socket byte budget (token bucket), so a flood of large frames costs one ``len()`` each;
- a per-event size limit, read from the packet header and the event name at its start;
- binary packets (not part of Tandem's protocol) are refused with an error ack and their
  attachments dropped as they arrive, never held;
- a packet that does not decode (bad JSON, nesting past the JSON decoder's limit) is answered
  with an error ack instead of a traceback;
- reserved event names never reach a handler.

Everything else is python-socketio's own path. The methods overridden here are private ones of
python-socketio 5.x; ``tests/security/test_socket_frames.py`` pins the behaviour relied on, and
``tests/signaling/test_eio_socket.py`` that of the engine.io socket (``eio_socket.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from signaling.edge.eio_socket import EngineServer
from signaling.edge.packet_json import PacketJson
from signaling.edge.ratelimit import TokenBucket
from signaling.edge.room_index import RoomIndex
from signaling.edge.text_emits import TextEmits
from signaling.protocol import ErrorAck, ErrorBody, ErrorCode

log = logging.getLogger("tandem.sockets")

RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "message", "*"})
"""Names a client may not use: the server's own lifecycle events and the catch-all."""

# "<type>[<attachments>-][/<namespace>,][<id>]" then the JSON array whose first item is the
# event name. Only the header and the name are read here; nothing else of the frame.
_HEADER = re.compile(r"(\d)(?:(\d{1,10})-)?(?:(/[^,]*),)?(\d{1,20})?")
_EVENT_NAME = re.compile(r'\["((?:[^"\\]|\\.){0,200})"')


@dataclass(frozen=True)
class FrameLimits:
    bytes_per_second: float
    """Sustained bytes per second one socket may send."""
    burst_bytes: float
    """Bytes one socket may send at once."""
    max_event_bytes: Callable[[str], int]
    """The largest frame allowed for an event name."""
    in_reader: Callable[[str], bool] = lambda _event: False
    """Whether an event is handled in the socket's reader rather than in a task of its own."""


def error_ack(code: ErrorCode, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    return ErrorAck(error=ErrorBody(code=code, message=message, details=details)).wire()


class TextPacket(packet.Packet):  # type: ignore[misc]
    """A socket.io packet that is never binary. python-socketio walks every outgoing payload,
    recursively, to find bytes in it; Tandem sends none (and refuses them coming in), and the
    walk cost as much as encoding a co-browse batch."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        return False


class DirectManager(TextEmits, RoomIndex, socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's one-node client manager, sending without a task per recipient.

    ``AsyncManager.emit`` wraps each recipient's send in a task and waits for them all; a send
    is only a put on the socket's unbounded queue (its writer task does the I/O), so the tasks
    cost more than the sends (a fifth of pairing's CPU when measured). Here the packet is
    encoded once and put on each recipient's queue in turn, in the same order and with the
    same result: a recipient that has gone is skipped, as the tasks' errors were ignored."""

    def reaches_nobody(self, rooms: list[str], namespace: str = "/") -> bool:
        """Whether no socket is in any of the rooms (this manager serves one node, so an event
        for them need not even be built)."""
        ns = self.rooms.get(namespace)
        if not ns:
            return True
        return not any(ns.get(room) for room in rooms)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None or namespace not in self.rooms:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [
            eio_sid
            for sid, eio_sid in self.get_participants(namespace, to or room)
            if sid not in skip
        ]
        if not recipients:
            return
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        frames = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        eio = self.server.eio
        for eio_sid in recipients:
            for frame in frames:
                try:
                    await eio.send_packet(eio_sid, frame)
                except Exception:  # the socket closed meanwhile: as with a failed task
                    log.debug("emit %s to %s failed", event, eio_sid, exc_info=True)
                    break


class GuardedServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, limits: FrameLimits, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", TextPacket)
        kwargs.setdefault("json", PacketJson)
        kwargs.setdefault("client_manager", DirectManager())
        super().__init__(**kwargs)
        self.frame_limits = limits
        self._budgets: dict[str, TokenBucket] = {}
        self._discarding: dict[str, int] = {}
        """Binary attachments still to drop, per engine.io session."""

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        if isinstance(data, bytes):
            # An attachment of a binary packet that was already refused, or a stray frame.
            left = self._discarding.get(eio_sid, 0) - 1
            if left > 0:
                self._discarding[eio_sid] = left
            else:
                self._discarding.pop(eio_sid, None)
            return
        header = _HEADER.match(data)
        if header is None:
            await self._disconnect_eio(eio_sid, "unreadable packet")
            return
        kind, attachments, namespace, raw_id = header.groups()
        ack_id = int(raw_id) if raw_id else None
        packet_type = int(kind)
        if packet_type in (packet.BINARY_EVENT, packet.BINARY_ACK):
            self._discarding[eio_sid] = int(attachments or 0)
            await self._ack(eio_sid, namespace, ack_id, "malformed", "binary payloads are refused")
            return
        if packet_type == packet.EVENT:
            name_match = _EVENT_NAME.match(data, header.end())
            name = name_match.group(1) if name_match else ""
            budget = self._budget(eio_sid)
            if not budget.take(len(data)):
                await self._ack(
                    eio_sid, namespace, ack_id, "rate_limited", "too many bytes; slow down"
                )
                return
            limit = self.frame_limits.max_event_bytes(name)
            if len(data) > limit:
                await self._ack(eio_sid, namespace, ack_id, "too_large", f"exceeds {limit} bytes")
                return
        try:
            if (
                packet_type == packet.EVENT
                and namespace is None
                and self.frame_limits.in_reader(name)
            ):
                await self._in_reader(eio_sid, name, ack_id, data, header.end())
                return
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError) as exc:
            # The JSON did not decode (or nests past the decoder's limit): nothing was run.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
            await self._ack(eio_sid, namespace, ack_id, "malformed", f"payload is {reason}")

    async def _in_reader(
        self, eio_sid: str, name: str, ack_id: int | None, data: str, start: int
    ) -> None:
        """An event handled in the socket's reader (``FrameLimits.in_reader``): decoded and run
        here, in the reader's task. python-socketio starts a task per event (``async_handlers``),
        so that a slow handler does not hold up the frames behind it; these run here instead,
        and the socket's next frame is read once they are done (the stream keeps its order
        anyway). The task, the event loop's pass before it, and python-socketio's way to the
        handler (a packet object and two calls before ``_handle_event_internal``, which runs it
        and sends its ack) were a third of a co-browse batch's time before its relay.

        Its payload is what socket.io would decode (the JSON after the packet's header); one
        whose name is not the one the header said (an escape in it) goes socket.io's way."""
        payload = PacketJson.loads(data[start:])
        if type(payload) is not list or not payload or payload[0] != name:
            await super()._handle_eio_message(eio_sid, data)
            return
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not self.manager.is_connected(sid, "/"):
            return
        await self._handle_event_internal(self, sid, eio_sid, payload, "/", ack_id)

    async def _handle_event_internal(
        self,
        server: socketio.AsyncServer,
        sid: str,
        eio_sid: str,
        data: list[Any],
        namespace: str,
        id: int | None,
    ) -> None:
        name = data[0] if data else None
        if not isinstance(name, str) or name in RESERVED_EVENTS:
            await self._ack(eio_sid, namespace, id, "unknown_event", f"event {name!r} is reserved")
            return
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._budgets.pop(eio_sid, None)
        self._discarding.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)

    def penalize(self, sid: str, cost_bytes: float) -> None:
        """Charge a socket for work it wasted (an invalid co-browse batch, say)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            self._budget(eio_sid).take_up_to(cost_bytes)

    def _budget(self, eio_sid: str) -> TokenBucket:
        budget = self._budgets.get(eio_sid)
        if budget is None:
            limits = self.frame_limits
            budget = TokenBucket(limits.bytes_per_second, limits.burst_bytes)
            self._budgets[eio_sid] = budget
        return budget

    async def _ack(
        self,
        eio_sid: str,
        namespace: str | None,
        ack_id: int | None,
        code: ErrorCode,
        message: str,
    ) -> None:
        if ack_id is None:
            return
        reply = self.packet_class(
            packet.ACK, namespace=namespace or "/", id=ack_id, data=[error_ack(code, message)]
        )
        await self._send_packet(eio_sid, reply)

    async def _disconnect_eio(self, eio_sid: str, why: str) -> None:
        log.info("closing socket %s: %s", eio_sid, why)
        await self.eio.disconnect(eio_sid)
