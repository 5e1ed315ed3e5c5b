"""Benchmark the forwarding relay (media.MediaRoom) against aiortc's stock MediaRelay.

    .venv/bin/python bench/media.py            # a few minutes
    .venv/bin/python bench/media.py --quick    # about a minute

One client process (this one) holds a 1280x720 30 fps VP8 publisher and K receiving agents;
the relay runs in a separate process so its CPU use (getrusage) is its own. Every frame carries
its counter in its pixels, so each decoded frame at an agent maps back to the moment it was
created: latency = creation (before encoding) -> decoded at the agent. "Added" latency subtracts
the same percentile of a direct publisher -> receiver connection measured first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.mediastreams import (  # noqa: E402
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from av.video.frame import VideoFrame  # noqa: E402

from media import MediaRoom  # noqa: E402
from media.forwarding import host_addresses  # noqa: E402

LOOPBACK = ["127.0.0.1"]
WIDTH, HEIGHT = 1280, 720
BITS = 20


# --- synthetic video with a counter in its pixels --------------------------------------------


class CounterTrack(VideoStreamTrack):
    """30 fps frames showing their counter as a row of black/white blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.sent: dict[int, float] = {}
        self._block = WIDTH // (BITS + 4)
        self._chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
        self._base = bytes([96]) * (WIDTH * HEIGHT)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        counter, self.counter = self.counter, self.counter + 1
        luma = bytearray(self._base)
        block = self._block
        top = block // 2
        for index, bit in enumerate([1, 0] + [(counter >> i) & 1 for i in range(BITS)]):
            x0 = (index + 1) * block
            row = bytes([235 if bit else 16]) * block
            for y in range(top, top + block):
                luma[y * WIDTH + x0 : y * WIDTH + x0 + block] = row
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts, frame.time_base = pts, time_base
        self.sent[counter] = time.monotonic()
        return frame


def read_counter(frame: VideoFrame) -> int | None:
    plane = frame.planes[0]
    luma, stride = bytes(plane), plane.line_size
    block = frame.width // (BITS + 4)
    y = block // 2 + block // 2
    bits = []
    for index in range(BITS + 2):
        value = luma[y * stride + (index + 1) * block + block // 2]
        bits.append(1 if value > 128 else 0)
    if bits[:2] != [1, 0]:
        return None
    return sum(bit << i for i, bit in enumerate(bits[2:]))


class Receiver:
    def __init__(self, track: MediaStreamTrack) -> None:
        self.frames: list[tuple[int, float]] = []
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                counter = read_counter(frame)
                if counter is not None:
                    self.frames.append((counter, time.monotonic()))


# --- the relay process -------------------------------------------------------------------------


class Line:
    """JSON lines over a stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")
        await self.writer.drain()

    async def recv(self) -> dict[str, Any] | None:
        line = await self.reader.readline()
        return json.loads(line) if line else None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve_relay(mode: str, port_file: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = Line(reader, writer)

        async def send_signal(participant_id: str, message: dict[str, Any]) -> None:
            with contextlib.suppress(ConnectionError):
                await line.send({"op": "signal", "pid": participant_id, "msg": message})

        room = MediaRoom("bench", [], send_signal, LOOPBACK)
        stock_relay = MediaRelay()
        stock_source: list[MediaStreamTrack] = []
        stock_pcs: list[RTCPeerConnection] = []

        async def stock_offer(role: str, sdp: str) -> str:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            stock_pcs.append(pc)
            pc.on("track", stock_source.append)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if role == "agent":
                pc.addTrack(stock_relay.subscribe(stock_source[0], buffered=False))
            with host_addresses(LOOPBACK):
                await pc.setLocalDescription(await pc.createAnswer())
            answer: str = pc.localDescription.sdp
            return answer

        while (message := await _recv_or_none(line)) is not None:
            op = message["op"]
            reply: dict[str, Any] = {"op": "reply", "id": message.get("id")}
            if op == "offer":
                if mode == "forward":
                    reply["sdp"] = await room.handle_offer(
                        message["pid"], message["role"], message["sdp"]
                    )
                else:
                    reply["sdp"] = await stock_offer(message["role"], message["sdp"])
            elif op == "answer":
                await room.handle_answer(message["pid"], message["sdp"])
            elif op == "cpu":
                reply["seconds"] = cpu_seconds()
            with contextlib.suppress(ConnectionError):
                await line.send(reply)
        await room.close()
        for pc in stock_pcs:
            await pc.close()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await asyncio.to_thread(Path(port_file).write_text, str(port))
    async with server:
        await done.wait()


async def _recv_or_none(line: Line) -> dict[str, Any] | None:
    try:
        return await line.recv()
    except ConnectionError:
        return None


def _read_port(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    if not text:
        return None
    path.unlink()
    return int(text)


class RelayClient:
    def __init__(self, line: Line, process: asyncio.subprocess.Process) -> None:
        self.line = line
        self.process = process
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, mode: str, workdir: Path) -> RelayClient:
        port_file = workdir / f"relay-{mode}-{os.getpid()}-{time.monotonic_ns()}.port"
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--relay", mode, "--port-file", str(port_file)
        )
        deadline = time.monotonic() + 30
        while (port := await asyncio.to_thread(_read_port, port_file)) is None:
            if time.monotonic() > deadline or process.returncode is not None:
                raise RuntimeError("relay process did not start")
            await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(Line(reader, writer), process)

    async def _read(self) -> None:
        while (message := await self.line.recv()) is not None:
            if message["op"] == "reply":
                future = self._replies.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message["op"] == "signal":
                handler = self.handlers.get(message["pid"])
                if handler is not None:
                    task = asyncio.ensure_future(handler(message["msg"]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def call(self, **message: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next] = future
        await self.line.send({**message, "id": self._next})
        async with asyncio.timeout(30):
            return await future

    async def stop(self) -> None:
        self.line.writer.close()
        self._reader.cancel()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# --- client side ------------------------------------------------------------------------------


@dataclass
class Result:
    relay: str
    agents: int
    fps_min: float
    fps_mean: float
    p50_ms: float
    p95_ms: float
    cores: float | None


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def local_offer(pc: RTCPeerConnection) -> str:
    with host_addresses(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    return sdp


def vp8_only(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")
        ]
    )


async def measure(
    receivers: list[Receiver], camera: CounterTrack, warmup: float, duration: float
) -> tuple[list[float], list[float], float]:
    await asyncio.sleep(warmup)
    marks = [len(r.frames) for r in receivers]
    started = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - started
    fps: list[float] = []
    delays: list[float] = []
    for receiver, mark in zip(receivers, marks, strict=True):
        window = receiver.frames[mark:]
        fps.append(len(window) / elapsed)
        delays += [(at - camera.sent[c]) * 1000 for c, at in window if c in camera.sent]
    return fps, delays, elapsed


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_direct(warmup: float, duration: float) -> Result:
    camera = CounterTrack()
    publisher, viewer = new_pc(), new_pc()
    vp8_only(publisher, camera)
    receivers: list[Receiver] = []
    viewer.on("track", lambda track: receivers.append(Receiver(track)))
    await viewer.setRemoteDescription(
        RTCSessionDescription(sdp=await local_offer(publisher), type="offer")
    )
    with host_addresses(LOOPBACK):
        await viewer.setLocalDescription(await viewer.createAnswer())
    await publisher.setRemoteDescription(viewer.localDescription)
    try:
        await wait_receiving(receivers, 1)
        fps, delays, _ = await measure(receivers, camera, warmup, duration)
    finally:
        for r in receivers:
            r.task.cancel()
        await publisher.close()
        await viewer.close()
    return Result(
        "direct",
        1,
        min(fps),
        statistics.mean(fps),
        percentile(delays, 0.5),
        percentile(delays, 0.95),
        None,
    )


async def wait_receiving(receivers: list[Receiver], count: int, within: float = 30) -> None:
    async with asyncio.timeout(within):
        while len(receivers) < count or any(len(r.frames) < 5 for r in receivers):
            await asyncio.sleep(0.05)


async def run_relay(
    mode: str, agents: int, warmup: float, duration: float, workdir: Path
) -> Result:
    relay = await RelayClient.start(mode, workdir)
    camera = CounterTrack()
    pcs: list[RTCPeerConnection] = []
    receivers: list[Receiver] = []
    try:
        publisher = new_pc()
        pcs.append(publisher)
        vp8_only(publisher, camera)
        reply = await relay.call(
            op="offer", pid="customer", role="customer", sdp=await local_offer(publisher)
        )
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        await asyncio.sleep(0.5)

        for index in range(agents):
            pid = f"agent{index}"
            pc = new_pc()
            pcs.append(pc)
            pc.addTransceiver("video", direction="recvonly")
            pc.on("track", lambda track: receivers.append(Receiver(track)))

            async def on_signal(
                message: dict[str, Any], pc: RTCPeerConnection = pc, pid: str = pid
            ) -> None:
                if message["type"] != "rtc.offer":
                    return
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp=message["sdp"], type="offer")
                )
                with host_addresses(LOOPBACK):
                    await pc.setLocalDescription(await pc.createAnswer())
                await relay.call(op="answer", pid=pid, sdp=pc.localDescription.sdp)

            relay.handlers[pid] = on_signal
            reply = await relay.call(op="offer", pid=pid, role="agent", sdp=await local_offer(pc))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

        # In stock mode the agents' placeholder transceiver gets the track; in forward mode it
        # stays empty and a server offer adds the real one: count only tracks with frames.
        async with asyncio.timeout(30):
            while sum(1 for r in receivers if len(r.frames) >= 5) < agents:
                await asyncio.sleep(0.05)
        live = [r for r in receivers if r.frames]
        await asyncio.sleep(warmup)
        cpu0 = (await relay.call(op="cpu"))["seconds"]
        fps, delays, elapsed = await measure(live, camera, 0, duration)
        cpu1 = (await relay.call(op="cpu"))["seconds"]
    finally:
        for r in receivers:
            r.task.cancel()
        for pc in pcs:
            await pc.close()
        await relay.stop()
    return Result(
        mode,
        agents,
        min(fps),
        statistics.mean(fps),
        percentile(delays, 0.5),
        percentile(delays, 0.95),
        (cpu1 - cpu0) / elapsed,
    )


def table(results: list[Result]) -> str:
    direct = next(r for r in results if r.relay == "direct")
    names = {
        "direct": "direct (no relay)",
        "forward": "media.MediaRoom (forwarding)",
        "stock": "aiortc MediaRelay (decode+encode)",
    }
    lines = [
        "| relay | K agents | fps per agent min / mean | latency p50 / p95 ms "
        "| added p50 / p95 ms | relay cores | cores per extra agent |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = next((x for x in results if x.relay == r.relay and x.agents == 1), None)
        per_agent = (
            f"{(r.cores - base.cores) / (r.agents - 1):.4f}"
            if r.cores is not None and base is not None and base.cores is not None and r.agents > 1
            else "-"
        )
        added = (
            "-"
            if r.relay == "direct"
            else f"{r.p50_ms - direct.p50_ms:+.0f} / {r.p95_ms - direct.p95_ms:+.0f}"
        )
        cores = "-" if r.cores is None else f"{r.cores:.3f}"
        lines.append(
            f"| {names[r.relay]} | {r.agents} | {r.fps_min:.1f} / {r.fps_mean:.1f} | "
            f"{r.p50_ms:.0f} / {r.p95_ms:.0f} | {added} | {cores} | {per_agent} |"
        )
    return "\n".join(lines)


async def main_async(quick: bool, modes: list[str], agent_counts: list[int]) -> None:
    warmup, duration = (2.0, 4.0) if quick else (3.0, 10.0)
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    results = [await run_direct(warmup, duration)]
    print(f"direct: {results[-1]}", file=sys.stderr)
    for mode in modes:
        for agents in agent_counts:
            results.append(await run_relay(mode, agents, warmup, duration, workdir))
            print(f"{mode} K={agents}: {results[-1]}", file=sys.stderr)
    print()
    print(
        f"720p30 VP8, {duration:.0f} s measured after {warmup:.0f} s warm-up per row, "
        f"{os.cpu_count()} cores, relay in its own process"
    )
    print(table(results))
    forward = [r for r in results if r.relay == "forward"]
    if forward:
        worst = min(r.fps_min for r in forward)
        top = max(forward, key=lambda r: r.agents)
        one = next((r for r in forward if r.agents == 1), None)
        slope = (
            ((top.cores or 0) - (one.cores or 0)) / (top.agents - 1)
            if one and top.agents > 1
            else 0
        )
        print(
            f"\nforwarding: slowest agent {worst:.1f} fps (target >= 29 at K={top.agents}); "
            f"{slope:.4f} core per extra agent (target <= 0.01)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short warm-up and measurement")
    parser.add_argument("--agents", default="1,2,4,8", help="comma separated K values")
    parser.add_argument("--modes", default="forward,stock", help="forward and/or stock")
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.relay:
        asyncio.run(serve_relay(args.relay, args.port_file))
        return
    asyncio.run(
        main_async(
            args.quick,
            [m for m in args.modes.split(",") if m],
            [int(k) for k in args.agents.split(",")],
        )
    )


if __name__ == "__main__":
    main()
