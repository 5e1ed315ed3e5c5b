"""engine.io's websocket loop without a task and a timer per frame (``signaling.edge.eio_socket``):
packets keep their order whichever way they are written, a silent client is still dropped, and
a client that does not read holds up only its own queue."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from signaling.edge.eio_socket import DIRECT_WRITE_MAX_CHARS, DirectSocket
from signaling.edge.socketserver import FrameLimits, GuardedServer


@contextlib.asynccontextmanager
async def serving(
    in_reader: frozenset[str] = frozenset(), **options: Any
) -> AsyncIterator[tuple[GuardedServer, str]]:
    sio = GuardedServer(
        FrameLimits(
            bytes_per_second=1e9,
            burst_bytes=1e9,
            max_event_bytes=lambda _: 1 << 20,
            in_reader=in_reader.__contains__,
        ),
        async_mode="aiohttp",
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
        **options,
    )
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield sio, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def raw_connect(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    """An engine.io + socket.io handshake by hand, then nothing more is read or answered."""
    ws = await http.ws_connect(
        url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket", max_msg_size=0
    )
    assert (await ws.receive_str(timeout=5)).startswith("0{")
    await ws.send_str("40")
    assert (await ws.receive_str(timeout=5)).startswith("40{")
    return ws


async def test_packets_keep_their_order_written_directly_or_queued() -> None:
    """Small packets are written directly, large ones through the writer task, from several
    tasks at once: the client gets them all, in the order they were sent."""
    async with serving() as (sio, url):
        connected = asyncio.Event()

        async def on_connect(sid: str, environ: dict[str, Any]) -> None:
            connected.set()

        sio.on("connect", on_connect)

        got: list[int] = []
        done = asyncio.Event()
        client = socketio.AsyncClient()

        async def on_n(data: dict[str, Any]) -> None:
            got.append(data["i"])
            if len(got) == 600:
                done.set()

        client.on("n", on_n)

        await client.connect(url, transports=["websocket"])
        try:
            await asyncio.wait_for(connected.wait(), 5)
            (eio_sid,) = sio.eio.sockets
            assert type(sio.eio.sockets[eio_sid]) is DirectSocket
            big = "x" * (DIRECT_WRITE_MAX_CHARS + 1)
            order: list[int] = []

            async def emit(start: int) -> None:
                for i in range(start, start + 200):
                    order.append(i)  # sends start in this order (emit runs until it queues)
                    await sio.emit("n", {"i": i, "pad": big if i % 7 == 0 else ""})

            await asyncio.gather(emit(0), emit(1000), emit(2000))
            await asyncio.wait_for(done.wait(), 20)
            assert got == order
            assert sorted(got) == sorted([*range(200), *range(1000, 1200), *range(2000, 2200)])
        finally:
            await client.disconnect()


async def test_a_silent_client_is_dropped_and_an_answering_one_kept() -> None:
    """With engine.io's client monitor off, only the reading loop's deadline can notice a client
    that answers no ping: it is dropped after ping_interval + ping_timeout; one that answers
    stays."""
    async with serving(ping_interval=0.2, ping_timeout=0.2, monitor_clients=False) as (sio, url):
        gone: list[str] = []

        async def on_disconnect(sid: str, *reason: Any) -> None:
            gone.append(sid)

        sio.on("disconnect", on_disconnect)

        async with aiohttp.ClientSession() as http:
            silent = await raw_connect(http, url)
            answering = await raw_connect(http, url)
            assert len(sio.eio.sockets) == 2

            async def answer() -> None:
                async for msg in answering:
                    if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                        await answering.send_str("3")

            answerer = asyncio.get_running_loop().create_task(answer())
            try:
                async with asyncio.timeout(10):
                    while not gone:
                        await asyncio.sleep(0.05)
                await asyncio.sleep(1)  # 2.5 deadlines more: the answering client stays
                assert len(gone) == 1 and len(sio.eio.sockets) == 1
                assert not answering.closed
                # The silent client's websocket is closed by the server.
                async with asyncio.timeout(15):
                    while not silent.closed:
                        msg = await silent.receive()
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                            break
            finally:
                answerer.cancel()
                await silent.close()
                await answering.close()


async def test_a_client_that_does_not_read_holds_up_only_its_own_queue() -> None:
    """An emit to a room of two, one of whom reads nothing: the emits do not wait for that
    client (its packets queue on its own socket), and the other gets every packet in order."""
    async with serving() as (sio, url):
        async with aiohttp.ClientSession() as http:
            stalled = await raw_connect(http, url)  # never read from here on
            reader = await raw_connect(http, url)
            for sid in list(sio.manager.get_participants("/", None)):
                await sio.enter_room(sid[0], "room")
            got: list[int] = []
            done = asyncio.Event()

            async def read() -> None:
                async for msg in reader:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    if msg.data == "2":
                        await reader.send_str("3")
                    elif msg.data.startswith("42"):
                        got.append(json.loads(msg.data[2:])[1]["i"])
                        if len(got) == 3000:
                            done.set()

            reading = asyncio.get_running_loop().create_task(read())
            try:
                pad = "y" * 8000
                async with asyncio.timeout(30):  # 24 MB to each: far past any socket buffer
                    for i in range(3000):
                        await sio.emit("n", {"i": i, "pad": pad}, room="room")
                    await done.wait()
                assert got == list(range(3000))
                # The stalled client's packets wait in its own writer, the reader's in nobody's.
                behind = sorted(
                    s._transport.get_write_buffer_size() + s.queue.qsize()
                    for s in sio.eio.sockets.values()
                )
                assert behind[0] == 0 and behind[1] > 0
            finally:
                reading.cancel()
                await stalled.close()
                await reader.close()


async def test_a_server_side_disconnect_closes_the_client_once_and_waits_for_nothing() -> None:
    """``disconnect`` from the server (a revoked sign-in, say) waits for its CLOSE packet to be
    written: it returns, the client hears it, and the server's handler runs once."""
    async with serving() as (sio, url):
        gone: list[str] = []
        joined: list[str] = []

        async def on_connect(sid: str, environ: dict[str, Any]) -> None:
            joined.append(sid)

        async def on_disconnect(sid: str, *reason: Any) -> None:
            gone.append(sid)

        sio.on("connect", on_connect)
        sio.on("disconnect", on_disconnect)
        client = socketio.AsyncClient(reconnection=False)
        left = asyncio.Event()

        async def on_client_disconnect(*reason: Any) -> None:
            left.set()

        client.on("disconnect", on_client_disconnect)
        await client.connect(url, transports=["websocket"])
        try:
            async with asyncio.timeout(10):
                while not joined:
                    await asyncio.sleep(0.01)
                await sio.emit("n", {"i": 1})  # a packet written directly first
                await sio.disconnect(joined[0])
                await left.wait()
                while sio.eio.sockets:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert gone == joined
        finally:
            await client.disconnect()


class _GatedSocket:
    """An aiohttp websocket's send methods, each frame kept in order; writes wait on ``gate``."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send_str(self, frame: str) -> None:
        await self.gate.wait()
        self.frames.append(frame)

    async def send_bytes(self, frame: bytes) -> None:
        raise AssertionError("no binary frame is sent")


class _EngineWebSocket:
    """engine.io's aiohttp wrapper: ``_sock`` is aiohttp's websocket."""

    def __init__(self, sock: _GatedSocket) -> None:
        self._sock = sock

    async def send(self, frame: str) -> None:
        await self._sock.send_str(frame)


class _IdleTransport:
    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_send_cannot_overtake_packets_the_writer_holds_while_a_direct_write_ends() -> None:
    """The writer task waits for a direct write in progress before it writes what is queued. A
    send made in the moment after that write ends, before the writer has run again, queues
    behind them (it was written at once, first, while the writer held them out of the queue)."""
    from engineio import packet

    from signaling.edge.eio_socket import EngineServer, _frame_writer

    server = EngineServer(async_mode="aiohttp", transports=["websocket"], logger=False)
    sock = DirectSocket(server, "s1")
    gated = _GatedSocket()
    ws = _EngineWebSocket(gated)
    sock._transport = _IdleTransport()  # type: ignore[assignment]
    sock._ws = ws
    sock._direct = _frame_writer(ws)

    gated.gate.clear()
    first = asyncio.get_running_loop().create_task(sock.send(packet.Packet(packet.MESSAGE, "1")))
    await asyncio.sleep(0)  # the direct write of "1" is under way, waiting for the transport
    await sock.send(packet.Packet(packet.MESSAGE, "2"))  # queued: a write is in progress
    await asyncio.sleep(0)  # the writer task starts and waits for the direct write
    assert sock._writer is not None
    # The direct write ends and, in the same turn of the loop (before the writer, woken by its
    # end, runs again), another task sends a packet.
    go = asyncio.Event()

    async def send_third() -> None:
        await go.wait()
        await sock.send(packet.Packet(packet.MESSAGE, "3"))

    third = asyncio.get_running_loop().create_task(send_third())
    await asyncio.sleep(0)
    gated.gate.set()  # wakes the direct write first,
    go.set()  # then the third send, both ahead of the writer
    await first
    await third
    async with asyncio.timeout(5):
        while sock._writer is not None:
            await asyncio.sleep(0)
    assert gated.frames == ["41", "42", "43"]


async def test_an_idle_socket_holds_no_writer_task_and_no_ping_task() -> None:
    """Once connected and quiet, a socket holds timers, not tasks: no writer task (started only
    while something is queued) and no task sleeping until the next ping. Each idle task held
    coroutines and futures that every full garbage collection walked, per socket."""
    async with serving(ping_interval=30, ping_timeout=30) as (sio, url):
        async with aiohttp.ClientSession() as http:
            first = await raw_connect(http, url)  # the server's own tasks start with it
            before = len(asyncio.all_tasks())
            second = await raw_connect(http, url)
            try:
                for sock in sio.eio.sockets.values():
                    assert isinstance(sock, DirectSocket)
                    assert sock._writer is None and sock._ping_timer is not None
                # aiohttp's connection and request handler (which runs the reading loop).
                assert len(asyncio.all_tasks()) - before == 2
            finally:
                await first.close()
                await second.close()


async def test_an_event_handled_in_the_reader_holds_up_its_own_sockets_next_frames_only() -> None:
    """``in_reader`` events run in their socket's reader: the socket's next frame is read once
    the handler is done (so a stream keeps its order with no task per frame), while other
    events still run in tasks of their own, side by side, and other sockets are not held up."""
    async with serving(in_reader=frozenset({"stream"})) as (sio, url):
        release = asyncio.Event()
        seen: list[str] = []

        async def on_stream(sid: str, data: dict[str, Any]) -> str:
            seen.append(f"stream {data['i']} from {sid[:4]}")
            if data["i"] == 0:
                await release.wait()
            return "ok"

        async def on_other(sid: str, data: dict[str, Any]) -> str:
            seen.append(f"other {data['i']} from {sid[:4]}")
            return "ok"

        sio.on("stream", on_stream)
        sio.on("other", on_other)
        first, second = socketio.AsyncClient(), socketio.AsyncClient()
        await first.connect(url, transports=["websocket"])
        await second.connect(url, transports=["websocket"])
        try:
            a, b = first.get_sid()[:4], second.get_sid()[:4]
            held = asyncio.ensure_future(first.call("stream", {"i": 0}, timeout=5))
            while not seen:
                await asyncio.sleep(0.01)
            behind = [
                asyncio.ensure_future(first.call("stream", {"i": 1}, timeout=5)),
                asyncio.ensure_future(first.call("other", {"i": 2}, timeout=5)),
            ]
            # Another socket is served meanwhile, in the reader and in tasks.
            assert await second.call("stream", {"i": 3}, timeout=5) == "ok"
            assert await second.call("other", {"i": 4}, timeout=5) == "ok"
            await asyncio.sleep(0.1)
            assert seen == [f"stream 0 from {a}", f"stream 3 from {b}", f"other 4 from {b}"]
            release.set()
            assert await asyncio.gather(held, *behind) == ["ok", "ok", "ok"]
            assert seen[3:] == [f"stream 1 from {a}", f"other 2 from {a}"]
        finally:
            await first.disconnect()
            await second.disconnect()


async def test_events_not_handled_in_the_reader_run_side_by_side() -> None:
    """The default: each event in a task of its own, so a slow handler does not hold up the
    frames behind it on the same socket."""
    async with serving() as (sio, url):
        release = asyncio.Event()
        seen: list[int] = []

        async def on_stream(sid: str, data: dict[str, Any]) -> str:
            seen.append(data["i"])
            if data["i"] == 0:
                await release.wait()
            return "ok"

        sio.on("stream", on_stream)
        client = socketio.AsyncClient()
        await client.connect(url, transports=["websocket"])
        try:
            held = asyncio.ensure_future(client.call("stream", {"i": 0}, timeout=5))
            while not seen:
                await asyncio.sleep(0.01)
            assert await client.call("stream", {"i": 1}, timeout=5) == "ok"
            assert seen == [0, 1]
            release.set()
            assert await held == "ok"
        finally:
            await client.disconnect()


async def test_an_event_handled_in_the_reader_is_decoded_as_socketio_would() -> None:
    """The reader decodes its own events (``GuardedServer._in_reader``): the handler gets what
    socket.io's decoder would give it and the ack goes back with the packet's id; a name that
    the header spells with an escape goes socket.io's way (the same handler, in a task), and a
    payload that is not JSON is answered ``malformed`` with nothing run."""
    async with serving(in_reader=frozenset({"stream"})) as (sio, url):
        seen: list[Any] = []

        async def on_stream(sid: str, *args: Any) -> Any:
            seen.append(list(args))
            return {"ok": True, "n": len(seen)}

        sio.on("stream", on_stream)
        async with aiohttp.ClientSession() as http:
            ws = await raw_connect(http, url)
            try:
                await ws.send_str('421["stream",{"i":"caf\\u00e9"},[1]]')
                assert await ws.receive_str(timeout=5) == '431[{"ok":true,"n":1}]'
                await ws.send_str('422["str\\u0065am",{"i":2}]')
                assert await ws.receive_str(timeout=5) == '432[{"ok":true,"n":2}]'
                await ws.send_str('423["stream",{"i":')
                reply = json.loads((await ws.receive_str(timeout=5))[3:])
                assert reply[0]["error"]["code"] == "malformed"
                await ws.send_str('42["stream"]')  # no ack asked: handled, nothing sent back
                await ws.send_str('424["stream",4]')
                assert await ws.receive_str(timeout=5) == '434[{"ok":true,"n":4}]'
            finally:
                await ws.close()
        assert seen == [[{"i": "café"}, [1]], [{"i": 2}], [], [4]]


async def test_a_ping_due_as_the_socket_closes_goes_nowhere_quietly() -> None:
    """A ping's timer fires and the socket closes before the ping's task runs (its client left
    just then): the ping is dropped, and nothing is left for asyncio to report as an exception
    never retrieved (a bench saw one per socket closing at that moment, logged as errors)."""
    async with serving(ping_interval=30, ping_timeout=30) as (sio, url):
        loop = asyncio.get_running_loop()
        unretrieved: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
        try:
            async with aiohttp.ClientSession() as http:
                ws = await raw_connect(http, url)
                (sock,) = sio.eio.sockets.values()
                assert isinstance(sock, DirectSocket)
                sock._ping_due()  # the timer fires: the ping's task is started...
                sock.closed = True  # ...and the socket is closed before it runs
                await asyncio.sleep(0.05)
                await ws.close()
            gc.collect()  # a task's unretrieved exception is reported when it is collected
            await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(None)
        assert unretrieved == []
