"""engine.io's websocket loop, without a task and a timer per frame (issue 10, item 5).

python-engineio serves a websocket with two loops per socket:

- a reader that, for every frame the client sends, starts a task to read it and wraps that
  task in ``asyncio.wait_for`` (a timer and one more future): the read's timeout is how a
  client that went silent is noticed;
- a writer task fed by a queue: every packet the server sends is queued, the writer wakes,
  and (through ``poll``, again in ``wait_for``, a task and a timer) takes it and writes it.

That bookkeeping cost more than the frame: with it, Tandem's chat round trip spent more of the
server's CPU in engine.io than in Tandem. ``DirectSocket`` keeps engine.io's protocol and
changes only how the loops are driven:

- **reading**: frames are read in the handler's own task. A client that sends nothing (not even
  the pong every ping asks for) for ``ping_interval + ping_timeout`` is still dropped, as
  before, by one deadline per socket that is moved forward lazily: the timer fires at the
  deadline of the last frame seen by when it was set, and sets itself again if a frame came
  since, so a busy socket costs no timer operation per frame.
- **writing**: a packet is written to the websocket at once, in the sender's task, when
  nothing is being written and nothing is queued ahead of it, the transport has nothing
  buffered (the client is keeping up) and the packet is small. Otherwise it is queued for the
  writer task, as before, so packets keep their order, and a client that does not read (a slow
  phone) holds up only its own queue, never the task that emits to a room of many.

Installed by ``EngineServer`` on each socket as it connects (its class is switched before any
packet of the application is sent). Long-polling is untouched: Tandem serves websocket only,
and an upgrade from polling runs engine.io's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
from aiohttp import WSMsgType
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

__all__ = ["DIRECT_WRITE_MAX_CHARS", "DirectSocket", "EngineServer", "TextFrame"]

DIRECT_WRITE_MAX_CHARS = 32 * 1024
"""A packet longer than this goes through the writer task: a write that large could fill the
transport's buffer and make the sender wait for the client to read it."""


class TextFrame(packet.Packet):  # type: ignore[misc]
    """An engine.io message whose whole frame is made already, as UTF-8: written as a text
    frame as it is. Made as text, a co-browse relay was copied three times more (spliced, given
    engine.io's type, encoded for the websocket), a tenth of its time from frame to frame."""

    def __init__(self, frame: bytes) -> None:
        super().__init__(packet.MESSAGE)
        self.frame = frame
        self.data = frame  # what ``DirectSocket.send`` measures
        self.binary = False

    def encode(self, b64: bool = False) -> str:
        # For engine.io's own loops (long-polling, an upgrade): the same frame as text.
        return self.frame.decode()


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    """An engine.io socket whose websocket is read and written without a task per frame."""

    connected: bool
    upgraded: bool
    closing: bool
    closed: bool
    last_ping: float | None

    _direct: Callable[[packet.Packet], Awaitable[None]] | None = None
    """Writes a frame to the websocket, while packets may be written directly (not before the
    handler runs, nor once the socket is closing)."""
    _ws: Any = None
    """The websocket, while the writer task may be started for it."""
    _writer: asyncio.Task[None] | None = None
    """The writer task, while it runs (only while packets are queued)."""
    _ping_timer: asyncio.TimerHandle | None = None
    _last_seen = 0.0
    """When the client's last frame came (the event loop's clock)."""
    _deadline: asyncio.TimerHandle
    """When to look again whether the client went silent (moved forward lazily)."""
    _transport: asyncio.Transport | None = None
    _writing = False
    """A packet is being written (directly or by the writer task): the next one queues."""
    _written: asyncio.Future[None] | None = None
    """The writer task waits on this for a direct write in progress to end."""

    async def receive(self, pkt: packet.Packet) -> None:
        if pkt.packet_type == packet.MESSAGE:
            # Straight to the message handler (socket.io's), in this task: engine.io's
            # ``_trigger_event`` asked ``inspect`` whether it is a coroutine function and made a
            # closure to run it, for every frame.
            handler = self.server.handlers.get("message")
            if handler is not None:
                try:
                    await handler(self.sid, pkt.data)
                except asyncio.CancelledError:
                    pass  # as engine.io's own path: the reader sees the server stop next
                except Exception:
                    self.server.logger.exception("message async handler error")
                return
        await super().receive(pkt)

    async def send(self, pkt: packet.Packet) -> None:
        if not await self.check_ping_timeout():
            return
        write = self._direct
        if (
            write is None
            or self._writing
            or not self.queue.empty()
            or len(pkt.data or "") > DIRECT_WRITE_MAX_CHARS
            or not self._keeping_up()
        ):
            self._enqueue(pkt)
            return
        self._writing = True
        try:
            await write(pkt)
        except Exception:
            # The connection is gone: the reader sees it too and closes the socket.
            self._direct = None
        finally:
            self._writing = False
            written, self._written = self._written, None
            if written is not None and not written.done():
                written.set_result(None)

    def _enqueue(self, pkt: packet.Packet) -> None:
        """Queue a packet for the writer task, started if it is not running: most sockets never
        queue anything once connected, and an idle writer task held a task, its coroutines and
        a future per socket, all walked by every full garbage collection."""
        self.queue.put_nowait(pkt)
        ws = self._ws
        if self._writer is None and ws is not None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued(ws))

    def schedule_ping(self) -> None:
        # engine.io starts a task per ping that sleeps for the interval: a task, two coroutines
        # and a future held by every idle socket. A timer does the same wait.
        if self.last_ping:
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._ping_timer = None
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.server.start_background_task(self._ping)

    async def _ping(self) -> None:
        # The socket may close between the timer and this task (its client leaving just then):
        # the ping then goes nowhere, which is no error (it was logged as a task's unretrieved
        # exception, one per socket closing at that moment).
        with contextlib.suppress(exceptions.SocketIsClosedError):
            await self.send(packet.Packet(packet.PING))

    def _keeping_up(self) -> bool:
        transport = self._transport
        return (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    async def _websocket_handler(self, ws: Any) -> Any:
        request = getattr(ws, "environ", {}).get("aiohttp.request")
        transport: asyncio.Transport | None = getattr(request, "transport", None)
        if self.connected or transport is None:
            # An upgrade from long-polling (not served by Tandem), or a server not on aiohttp:
            # engine.io's own loop.
            return await super()._websocket_handler(ws)
        self.connected = True
        self.upgraded = True
        server = self.server
        silence = server.ping_interval + server.ping_timeout
        loop = asyncio.get_running_loop()
        self._transport = transport
        self._ws = ws
        if not self.queue.empty():  # the OPEN packet, queued before the handler ran
            self._writer = loop.create_task(self._write_queued(ws))
        self._direct = _frame_writer(ws)
        self._last_seen = loop.time()
        self._deadline = loop.call_at(self._last_seen + silence, self._check_silence)
        cancelled = False
        try:
            while True:
                try:
                    data = await ws.wait()
                except asyncio.CancelledError:
                    cancelled = True  # the server is stopping: the socket is closed first
                    break
                except Exception:
                    break  # the connection is gone, or the frame was not text or binary
                if data is None or len(data) > server.max_http_buffer_size:
                    break
                self._last_seen = loop.time()
                try:
                    await self.receive(_decoded(data))
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    break
                except Exception:
                    server.logger.exception("%s: receive error", self.sid)
                if self.closed:
                    # Closed by the server while handling this frame (an unreadable packet):
                    # the connection goes too, or a client could keep a socket that counts
                    # nowhere open for ever by sending frames that reach nobody.
                    break
        finally:
            self._deadline.cancel()
            if self._ping_timer is not None:
                self._ping_timer.cancel()
            self._direct = None
            self._ws = None  # what is queued from now on is not written
        if self._writer is not None:
            await self._writer  # it writes what was queued before, then stops
        with contextlib.suppress(Exception):
            await ws.close()
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    def _check_silence(self) -> None:
        # Methods and attributes, not a closure: a closure held a cell per variable it read,
        # per socket, for the socket's life (objects every full garbage collection walks).
        loop = asyncio.get_running_loop()
        silence = self.server.ping_interval + self.server.ping_timeout
        if loop.time() - self._last_seen >= silence:
            # Gone quiet past every ping: the connection is dropped, not closed with a
            # handshake the client would never answer (that waited 10 s more).
            self.server.logger.info("%s: silent for %.0f s, dropped", self.sid, silence)
            if self._transport is not None:
                self._transport.abort()
        else:
            self._deadline = loop.call_at(self._last_seen + silence, self._check_silence)

    async def _write_queued(self, ws: Any) -> None:
        """The writer task: what could not be written directly, in the order it was sent. It
        ends once the queue is empty (``_enqueue`` starts it again)."""
        write = _frame_writer(ws)
        try:
            while not self.queue.empty():
                while self._writing:
                    # A direct write began before these were queued (it saw an empty queue,
                    # then had to wait for the transport): it goes first. What is queued stays
                    # in the queue meanwhile, so that no send after it can be written first.
                    self._written = asyncio.get_running_loop().create_future()
                    await self._written
                self._writing = True
                batch = []
                while not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                    self.queue.task_done()
                try:
                    for pkt in batch:
                        await write(pkt)
                except Exception:
                    # The connection is gone: nothing more is written (the reader closes it).
                    self._ws = None
                    self._direct = None
                    return
                finally:
                    self._writing = False
        finally:
            self._writer = None


def _decoded(frame: str | bytes) -> packet.Packet:
    """The engine.io packet of a websocket frame. A message (``4`` and a socket.io packet) is
    taken as it is: engine.io's decoder first tries the text as JSON, which a socket.io packet
    (it starts with its type's digit) always fails, an exception raised and caught per frame."""
    if type(frame) is str and frame[:1] == "4":
        return packet.Packet(packet.MESSAGE, frame[1:])
    return packet.Packet(encoded_packet=frame)


def _frame_writer(ws: Any) -> Callable[[packet.Packet], Awaitable[None]]:
    """Writes a packet to engine.io's aiohttp websocket, by aiohttp directly: engine.io's own
    ``send`` asks ``inspect`` whether the method is a coroutine on every frame."""
    sock = getattr(ws, "_sock", None)
    send_str = getattr(sock, "send_str", None)
    send_bytes = getattr(sock, "send_bytes", None)
    send_frame = getattr(sock, "send_frame", None)
    if send_str is None or send_bytes is None:

        def send(pkt: packet.Packet) -> Awaitable[None]:
            sent: Awaitable[None] = ws.send(pkt.encode())
            return sent

        return send

    def write(pkt: packet.Packet) -> Awaitable[None]:
        sent: Awaitable[None]
        if send_frame is not None and type(pkt) is TextFrame:
            sent = send_frame(pkt.frame, WSMsgType.TEXT)
            return sent
        frame = pkt.encode()
        sent = send_bytes(frame) if isinstance(frame, bytes) else send_str(frame)
        return sent

    return write


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, with each new socket a ``DirectSocket``."""

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            # ``_handle_connect`` has just made the socket (it queued only the OPEN packet) and
            # runs the websocket loop after this event: switching the class here is the one
            # place between the two.
            sock = self.sockets.get(args[0])
            if type(sock) is AsyncSocket:
                sock.__class__ = DirectSocket
        elif event == "message":
            # Decoded and guarded in the reader's own task: socket.io starts a task for each
            # event's handler anyway (``async_handlers``), and a second one here, per frame,
            # only added a pass of the event loop before it (measured: 20-40 us of latency a
            # frame, and a task's CPU).
            kwargs["run_async"] = False
        return await super()._trigger_event(event, *args, **kwargs)
