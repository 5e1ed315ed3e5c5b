"""Loopback test helpers: synthetic media with a frame counter, and aiortc client peers.

Video frames carry their counter in a row of black/white blocks (one block per bit, with a
white/black sync pair in front), which survives VP8/H.264 compression at any bitrate we use.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.mediastreams import VideoStreamTrack as _VideoStreamTrack
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from PIL import Image

from media import MediaRoom
from media.forwarding import host_addresses

LOOPBACK = ["127.0.0.1"]
BITS = 20
_WHITE = 235
_BLACK = 16


def _layout(width: int) -> tuple[int, int]:
    """Block size and top margin of the counter row for a frame ``width`` pixels wide."""
    block = width // (BITS + 4)
    return block, block // 2


class CounterVideoTrack(_VideoStreamTrack):
    """30 fps synthetic video whose frames show their counter; remembers send times."""

    def __init__(self, width: int = 640, height: int = 480, start: int = 0) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.counter = start
        self.sent: dict[int, float] = {}
        block, top = _layout(width)
        self._block = block
        self._top = top
        self._chroma = bytes([128]) * ((width // 2) * (height // 2))
        self._background = bytearray([96]) * (width * height)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        counter = self.counter
        self.counter += 1
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma = bytearray(self._background)
        bits = [1, 0] + [(counter >> i) & 1 for i in range(BITS)]
        block, top, width = self._block, self._top, self.width
        for index, bit in enumerate(bits):
            x0 = (index + 1) * block
            row = bytes([_WHITE if bit else _BLACK]) * block
            for y in range(top, top + block):
                start = y * width + x0
                luma[start : start + block] = row
        _fill(frame.planes[0], bytes(luma), width, self.height)
        _fill(frame.planes[1], self._chroma, width // 2, self.height // 2)
        _fill(frame.planes[2], self._chroma, width // 2, self.height // 2)
        frame.pts = pts
        frame.time_base = time_base
        self.sent[counter] = time.monotonic()
        return frame


def _fill(plane: Any, data: bytes, width: int, height: int) -> None:
    if plane.line_size == width:
        plane.update(data)
        return
    padded = bytearray(plane.line_size * height)
    for y in range(height):
        padded[y * plane.line_size : y * plane.line_size + width] = data[
            y * width : (y + 1) * width
        ]
    plane.update(bytes(padded))


def decode_counter_luma(luma: bytes, stride: int, width: int) -> int | None:
    """Read the counter from a luma plane; None if the sync blocks are not there."""
    block, top = _layout(width)
    y = top + block // 2

    def bit(index: int) -> int | None:
        x = (index + 1) * block + block // 2
        samples = [luma[(y + dy) * stride + x + dx] for dy in (-2, 0, 2) for dx in (-2, 0, 2)]
        value = sum(samples) / len(samples)
        if value > 175:
            return 1
        if value < 56:
            return 0
        return None

    if bit(0) != 1 or bit(1) != 0:
        return None
    counter = 0
    for i in range(BITS):
        b = bit(i + 2)
        if b is None:
            return None
        counter |= b << i
    return counter


def decode_counter_frame(frame: VideoFrame) -> int | None:
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    return decode_counter_luma(bytes(plane), plane.line_size, frame.width)


def decode_counter_image(image: Image.Image) -> int | None:
    gray = image.convert("L")
    return decode_counter_luma(gray.tobytes(), gray.width, gray.width)


class ToneAudioTrack(AudioStreamTrack):
    """48 kHz mono sine tone in 20 ms frames."""

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._frequency = frequency
        self._samples = 0
        self._began: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        rate, count = 48000, 960
        if self._began is None:
            self._began = time.monotonic()
        else:
            wait = self._began + self._samples / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        samples = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * self._frequency * (self._samples + i) / rate))
                for i in range(count)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._samples
        frame.sample_rate = rate
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += count
        return frame


class VideoSink:
    """Consumes a received video track, decoding counters as they arrive."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.received: list[tuple[int, float]] = []
        self.sizes: set[tuple[int, int]] = set()
        self.first_frame_at: float | None = None
        self.undecodable = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                assert isinstance(frame, VideoFrame)
                now = time.monotonic()
                if self.first_frame_at is None:
                    self.first_frame_at = now
                self.sizes.add((frame.width, frame.height))
                counter = decode_counter_frame(frame)
                if counter is None:
                    self.undecodable += 1
                else:
                    self.received.append((counter, now))

    async def wait_frames(self, count: int, within: float = 10.0) -> None:
        start = len(self.received)
        async with asyncio.timeout(within):
            while len(self.received) < start + count:
                await asyncio.sleep(0.02)

    def counters(self) -> set[int]:
        return {c for c, _ in self.received}


class AudioSink:
    """Consumes a received audio track and measures its loudness."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.loud_frames = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                assert isinstance(frame, AudioFrame)
                samples = array.array("h", bytes(frame.planes[0]))
                rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
                self.frames += 1
                if rms > 1000:
                    self.loud_frames += 1

    async def wait_loud(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while self.loud_frames < count:
                await asyncio.sleep(0.02)


class Client:
    """A browser stand-in: one aiortc peer connection to the room, perfect-ish negotiation."""

    def __init__(self, room: MediaRoom, participant_id: str, role: str) -> None:
        self.room = room
        self.id = participant_id
        self.role = role
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video: dict[str, VideoSink] = {}
        "Received video by server track id."
        self.audio: dict[str, AudioSink] = {}
        self.offers: list[dict[str, Any]] = []
        self.offer_received_at: list[float] = []
        self.track_lists: list[list[dict[str, Any]]] = []
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[MediaStreamTrack, RTCRtpTransceiver] = {}
        self._worker = asyncio.ensure_future(self._process())
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                self._pending[track] = transceiver

    def _bind_tracks(self, tracks: list[dict[str, Any]]) -> None:
        by_mid = {t["mid"]: t for t in tracks}
        for track, transceiver in list(self._pending.items()):
            info = by_mid.get(transceiver.mid)
            if info is None:
                continue
            del self._pending[track]
            if track.kind == "video":
                self.video[info["trackId"]] = VideoSink(track)
            else:
                self.audio[info["trackId"]] = AudioSink(track)

    async def deliver(self, message: dict[str, Any]) -> None:
        self._inbox.put_nowait(message)

    async def _process(self) -> None:
        while True:
            message = await self._inbox.get()
            if message["type"] == "rtc.offer":
                self.offer_received_at.append(time.monotonic())
                self.offers.append(message)
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=message["sdp"], type="offer")
                )
                with host_addresses(LOOPBACK):
                    await self.pc.setLocalDescription(await self.pc.createAnswer())
                self._bind_tracks(message["tracks"])
                await self.room.handle_answer(self.id, self.pc.localDescription.sdp)
            elif message["type"] == "media.tracks":
                self.track_lists.append(message["tracks"])

    def add_track(self, track: MediaStreamTrack, codec: str | None = None) -> RTCRtpTransceiver:
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if codec is not None:
            capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
            transceiver.setCodecPreferences(
                [c for c in capabilities if c.mimeType.lower() in (codec, f"{track.kind}/rtx")]
            )
        return transceiver

    async def negotiate(self, labels: Callable[[], dict[str, str]] | None = None) -> None:
        """Offer to the room (first connection or renegotiation) and apply its answer."""
        with host_addresses(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.room.handle_offer(
            self.id,
            self.role,  # type: ignore[arg-type]
            self.pc.localDescription.sdp,
            labels() if labels else None,
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        self._worker.cancel()
        for task in [s.task for s in self.video.values()] + [s.task for s in self.audio.values()]:
            task.cancel()
        await self.pc.close()


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {within}s waiting for {what}") from None


class Hub:
    """Routes ``send_signal`` messages to test clients, in order per participant."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}

    async def send_signal(self, participant_id: str, message: dict[str, Any]) -> None:
        client = self.clients.get(participant_id)
        if client is not None:
            await client.deliver(message)

    def client(self, room: MediaRoom, participant_id: str, role: str) -> Client:
        client = Client(room, participant_id, role)
        self.clients[participant_id] = client
        return client


def count_decoded_clip(path: str) -> tuple[list[int | None], float]:
    """Counters of every frame in a clip file, and its container duration."""
    counters: list[int | None] = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            counters.append(decode_counter_frame(frame))
        duration = (container.duration or 0) / av.time_base
    return counters, duration


def subscribed(client: Client, track_id: str) -> bool:
    """Whether a client receives a track (a predicate for ``wait_for``)."""
    return track_id in client.video


def hears(client: Client, count: int) -> bool:
    """Whether a client receives ``count`` audio tracks."""
    return len(client.audio) == count
