"""A published track: fan-out of encoded frames to subscribers, captures and keyframes.

A :class:`Publication` receives complete encoded frames from the publisher's receiver
(through :func:`media.forwarding.tap_receiver`) and hands the same :class:`av.Packet` to every
subscriber's :class:`~media.forwarding.ForwardedTrack`. Nothing here decodes. For captures it
keeps the frames since the last keyframe (a decoder needs all of them) and lets clip writers
observe the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .bitstream import is_keyframe
from .forwarding import ForwardedTrack, RtpFrame, make_packet
from .types import Kind, Role, Source, TrackInfo

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL_S = 0.3
"Minimum spacing of keyframe requests sent upstream; later requests are coalesced."

ACTIVE_WINDOW_S = 2.0
"A track counts as active if media arrived within this window."

GOP_MAX_FRAMES = 300
GOP_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A forwarded frame with an unwrapped timestamp."""

    data: bytes
    pts: int
    "RTP timestamp unwrapped to 64 bits, starting at 0, in units of ``clock_rate``."
    keyframe: bool
    received_at: float
    "``time.monotonic()`` on arrival."


class FrameObserver:
    """Something that watches a publication's frames (clip writers)."""

    def on_frame(self, frame: EncodedFrame) -> None:
        raise NotImplementedError

    def on_end(self) -> None:
        """The publication ended; no more frames will come."""


class _TimestampUnwrapper:
    """Turns 32-bit RTP timestamps (RFC 3550 section 5.1) into a monotonic 64-bit count."""

    def __init__(self) -> None:
        self._origin: int | None = None
        self._last = 0
        self._cycles = 0

    def unwrap(self, timestamp: int) -> int:
        if self._origin is None:
            self._origin = timestamp
        elif timestamp < self._last and self._last - timestamp > 0x80000000:
            self._cycles += 1 << 32
        elif timestamp > self._last and timestamp - self._last > 0x80000000:
            # a reordered packet from before the last wrap
            return timestamp + self._cycles - (1 << 32) - self._origin
        self._last = timestamp
        return timestamp + self._cycles - self._origin


class Publication:
    """One track published by one participant, forwarded to any number of subscribers."""

    def __init__(
        self,
        *,
        track_id: str,
        participant_id: str,
        role: Role,
        kind: Kind,
        source: Source,
        mid: str,
        codec_mime: str,
        codec_parameters: dict[str, object],
        clock_rate: int,
        payload_types: frozenset[int],
        send_pli: Callable[[int], Awaitable[None]],
        element: int | None = None,
    ) -> None:
        self.track_id = track_id
        self.element = element
        self.participant_id = participant_id
        self.role: Role = role
        self.kind: Kind = kind
        self.source: Source = source
        self.mid = mid
        self.codec_mime = codec_mime
        self.codec_parameters = codec_parameters
        self.clock_rate = clock_rate
        self.muted = False
        self.ended = False
        self.frames_received = 0
        self.keyframes_received = 0
        self.keyframe_requests_sent = 0
        self.last_frame_at: float | None = None
        self._payload_types = payload_types
        self._send_pli = send_pli
        self._ssrc: int | None = None
        self._unwrapper = _TimestampUnwrapper()
        self._subscribers: set[ForwardedTrack] = set()
        self._observers: set[FrameObserver] = set()
        self._gop: list[EncodedFrame] = []
        self._gop_bytes = 0
        self._gop_valid = False
        self._keyframe_waiters: list[asyncio.Future[EncodedFrame]] = []
        self._last_pli_at = -1e9
        self._pli_pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    # -- state -------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return (
            self.last_frame_at is not None
            and time.monotonic() - self.last_frame_at < ACTIVE_WINDOW_S
        )

    def info(self) -> TrackInfo:
        return TrackInfo(
            track_id=self.track_id,
            participant_id=self.participant_id,
            role=self.role,
            kind=self.kind,
            source=self.source,
            mid=self.mid,
            codec=self.codec_mime,
            muted=self.muted,
            active=self.active,
            element=self.element,
        )

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self) -> ForwardedTrack:
        track = ForwardedTrack(self.kind, on_keyframe_needed=self.request_keyframe)
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: ForwardedTrack) -> None:
        self._subscribers.discard(track)
        track.end()

    def add_observer(self, observer: FrameObserver) -> None:
        self._observers.add(observer)

    def remove_observer(self, observer: FrameObserver) -> None:
        self._observers.discard(observer)

    def end(self) -> None:
        """The publisher stopped sending: end every subscriber and observer."""
        if self.ended:
            return
        self.ended = True
        for track in self._subscribers:
            track.end()
        self._subscribers.clear()
        for observer in list(self._observers):
            observer.on_end()
        self._observers.clear()
        for waiter in self._keyframe_waiters:
            if not waiter.done():
                waiter.cancel()
        self._keyframe_waiters.clear()
        if self._pli_pending is not None:
            self._pli_pending.cancel()
        self._gop.clear()

    # -- frames ------------------------------------------------------------------------

    def on_rtp_frame(self, rtp: RtpFrame) -> None:
        """Sink for :func:`media.forwarding.tap_receiver`; runs on the event loop."""
        if self.ended:
            return
        if rtp.payload_type not in self._payload_types:
            logger.warning(
                "track %s: dropping payload type %d (forwarding %s)",
                self.track_id,
                rtp.payload_type,
                self.codec_mime,
            )
            return
        self._ssrc = rtp.ssrc
        keyframe = is_keyframe(self.codec_mime, rtp.data)
        frame = EncodedFrame(
            data=rtp.data,
            pts=self._unwrapper.unwrap(rtp.timestamp),
            keyframe=keyframe,
            received_at=time.monotonic(),
        )
        self.frames_received += 1
        self.last_frame_at = frame.received_at

        if self._subscribers:
            packet = make_packet(frame.data, frame.pts, self.clock_rate)
            for track in self._subscribers:
                track.push(packet, keyframe)

        if self.kind == "video":
            self._remember(frame)
        for observer in list(self._observers):
            observer.on_frame(frame)

    def _remember(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self.keyframes_received += 1
            self._gop = [frame]
            self._gop_bytes = len(frame.data)
            self._gop_valid = True
            waiters, self._keyframe_waiters = self._keyframe_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(frame)
            return
        if not self._gop_valid:
            return
        self._gop.append(frame)
        self._gop_bytes += len(frame.data)
        if len(self._gop) > GOP_MAX_FRAMES or self._gop_bytes > GOP_MAX_BYTES:
            # Too long since the last keyframe to keep: captures will ask for a new one.
            self._gop = []
            self._gop_bytes = 0
            self._gop_valid = False

    def frames_since_keyframe(self) -> list[EncodedFrame]:
        """Every frame since the last keyframe (empty if not kept), oldest first."""
        return list(self._gop) if self._gop_valid else []

    async def next_keyframe(self, wait_s: float) -> EncodedFrame:
        """Request a keyframe and wait up to ``wait_s`` for it; raises ``TimeoutError``."""
        waiter: asyncio.Future[EncodedFrame] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(waiter)
        self.request_keyframe()
        try:
            async with asyncio.timeout(wait_s):
                return await waiter
        finally:
            if waiter in self._keyframe_waiters:
                self._keyframe_waiters.remove(waiter)

    # -- keyframe requests -------------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per 300 ms (later ones coalesce)."""
        if self.ended or self.kind != "video":
            return
        loop = asyncio.get_running_loop()
        wait = self._last_pli_at + KEYFRAME_REQUEST_INTERVAL_S - loop.time()
        if wait <= 0:
            self._send_keyframe_request()
        elif self._pli_pending is None:
            self._pli_pending = loop.call_later(wait, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._pli_pending = None
        if self.ended:
            return
        self._last_pli_at = asyncio.get_running_loop().time()
        if self._ssrc is None:
            # Nothing received yet: the publisher's first frame is a keyframe anyway.
            return
        self.keyframe_requests_sent += 1
        task = asyncio.ensure_future(self._send_pli(self._ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
