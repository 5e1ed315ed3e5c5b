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
from typing import Any

import engineio
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

__all__ = ["DIRECT_WRITE_MAX_CHARS", "DirectSocket", "EngineServer"]

DIRECT_WRITE_MAX_CHARS = 32 * 1024
"""A packet longer than this goes through the writer task: a write that large could fill the
transport's buffer and make the sender wait for the client to read it."""


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    """An engine.io socket whose websocket is read and written without a task per frame."""

    connected: bool
    upgraded: bool

    _direct: Any = None
    """The websocket, while packets may be written to it directly (not before the writer runs,
    nor once the socket is closing)."""
    _transport: asyncio.Transport | None = None
    _writing = False
    """A packet is being written (directly or by the writer task): the next one queues."""
    _written: asyncio.Future[None] | None = None
    """The writer task waits on this for a direct write in progress to end."""

    async def send(self, pkt: packet.Packet) -> None:
        if not await self.check_ping_timeout():
            return
        ws = self._direct
        if (
            ws is None
            or self._writing
            or not self.queue.empty()
            or len(pkt.data or "") > DIRECT_WRITE_MAX_CHARS
            or not self._keeping_up()
        ):
            self.queue.put_nowait(pkt)
            return
        self._writing = True
        try:
            await ws.send(pkt.encode())
        except Exception:
            # The connection is gone: the reader sees it too and closes the socket.
            self._direct = None
        finally:
            self._writing = False
            written, self._written = self._written, None
            if written is not None and not written.done():
                written.set_result(None)

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
        writer = loop.create_task(self._write_queued(ws))
        self._transport = transport
        self._direct = ws
        last_seen = loop.time()
        deadline: asyncio.TimerHandle

        def check_silence() -> None:
            nonlocal deadline
            if loop.time() - last_seen >= silence:
                # Gone quiet past every ping: the connection is dropped, not closed with a
                # handshake the client would never answer (that waited 10 s more).
                server.logger.info("%s: silent for %.0f s, dropped", self.sid, silence)
                transport.abort()
            else:
                deadline = loop.call_at(last_seen + silence, check_silence)

        deadline = loop.call_at(last_seen + silence, check_silence)
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
                last_seen = loop.time()
                try:
                    await self.receive(packet.Packet(encoded_packet=data))
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
            deadline.cancel()
            self._direct = None
            self.queue.put_nowait(None)  # the writer sends what is queued, then stops
        await writer
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    async def _write_queued(self, ws: Any) -> None:
        """The writer task: what could not be written directly, in the order it was sent."""
        while True:
            first = await self.queue.get()
            self.queue.task_done()
            if first is None:
                break
            batch = [first]
            while not self.queue.empty():
                pkt = self.queue.get_nowait()
                self.queue.task_done()
                if pkt is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(pkt)
            while self._writing:
                # A direct write began before these were queued (it saw an empty queue, then
                # had to wait for the transport): it goes first.
                self._written = asyncio.get_running_loop().create_future()
                await self._written
            self._writing = True
            try:
                for pkt in batch:
                    await ws.send(pkt.encode())
            except Exception:
                break
            finally:
                self._writing = False
        self._direct = None
        await ws.close()


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
