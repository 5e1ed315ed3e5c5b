"""Forward encoded media through aiortc without decoding or re-encoding.

aiortc has no supported way to do this (aiortc issues #449, #544, #627, #984), so this module
is the ONE place in Tandem that touches aiortc/aioice internals. Everything else in
:mod:`media` uses public API only. ``tests/media/test_forwarding_pins.py`` fails loudly when a
touch point below changes; re-check them whenever aiortc is upgraded (tested: 1.16.0).

Touch points:

1. Receive: ``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`` is replaced by
   :class:`_TapJitterBuffer`, which hands every complete encoded frame to a sink and returns
   nothing to the receiver, so aiortc's decoder thread stays idle. It reads ``RtpPacket._data``
   (the depayloaded bytes the receiver attaches) and releases a video frame as soon as its
   RTP marker bit arrives (RFC 3550 section 5.1, RFC 7741 section 4.1, RFC 6184 section 5.1)
   instead of waiting for the first packet of the next frame (saves one frame interval).
   Audio packets are released immediately (an Opus RTP packet is a whole frame, RFC 7587).
2. Keyframes upstream: ``RTCRtpReceiver._send_rtcp_pli(ssrc)`` sends a Picture Loss
   Indication (RFC 4585 section 6.3.1) to the publisher.
3. Keyframe requests downstream: ``RTCRtpSender._send_keyframe`` (called when PLI or FIR,
   RFC 5104 section 4.3.1, arrives from a subscriber) is overridden per sender instance.
4. Send: when a track's ``recv()`` returns an :class:`av.Packet`, ``RTCRtpSender`` calls the
   codec's ``Encoder.pack()``, which only re-packetizes (the path ``MediaPlayer(decode=False)``
   uses). :class:`ForwardedTrack` relies on it.
5. ``RTCRtpTransceiver._codecs``: the negotiated codecs of a transceiver; with
   ``_headerExtensions``, also what a renumbered server offer carries
   (:func:`set_offered_parameters`, see :mod:`media.numbering`).
6. ICE: ``aioice.ice.get_host_addresses`` is wrapped so that :func:`host_addresses` can pin
   the host candidates gathered inside a ``with`` block (aioice has no option for it, and it
   skips 127.0.0.1, which loopback tests need).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aioice.ice
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_gt
from av.packet import Packet

__all__ = [
    "ForwardedTrack",
    "RtpFrame",
    "host_addresses",
    "negotiated_codecs",
    "on_keyframe_request",
    "request_keyframe",
    "set_offered_parameters",
    "tap_receiver",
]

logger = logging.getLogger(__name__)

TESTED_AIORTC = "1.16.0"

_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"


@dataclass(frozen=True, slots=True)
class RtpFrame:
    """One complete encoded frame as it came off the wire, before any decoding."""

    data: bytes
    "Depayloaded frame: VP8 frame, H.264 Annex B access unit, or one Opus packet."
    timestamp: int
    "32-bit RTP timestamp (wraps)."
    ssrc: int
    "Media SSRC it arrived on (after RTX unwrapping)."
    payload_type: int
    "RTP payload type."


FrameSink = Callable[[RtpFrame], None]


class _TapJitterBuffer(JitterBuffer):
    """A jitter buffer that diverts complete frames to ``sink`` instead of the decoder."""

    def __init__(self, kind: str, sink: FrameSink) -> None:
        if kind == "video":
            super().__init__(capacity=512, is_video=True)
        else:
            super().__init__(capacity=16)
        self.kind = kind
        self.sink = sink
        self.ssrc: int | None = None
        self._last_audio_seq: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.ssrc = packet.ssrc
        if self.kind != "video":
            # Forward in arrival order and let the subscriber's jitter buffer reorder by
            # timestamp; only duplicates and stale packets are dropped.
            last = self._last_audio_seq
            if last is None or uint16_gt(packet.sequence_number, last):
                self._last_audio_seq = packet.sequence_number
                self._deliver(packet._data, packet)  # type: ignore[attr-defined]
            return False, None

        pli_flag, frame = super().add(packet)
        if frame is not None:
            # Completed the stock way (next frame started before a marker was seen).
            self._deliver(frame.data, packet, frame.timestamp)
        self._release_marked_frames(packet)
        return pli_flag, None

    def _release_marked_frames(self, packet: RtpPacket) -> None:
        """Release every frame at the head of the buffer whose marker packet is present."""
        while self._origin is not None:
            first = self._packets[self._origin % self._capacity]
            if first is None:
                return
            parts: list[bytes] = []
            for count in range(self._capacity):
                current = self._packets[(self._origin + count) % self._capacity]
                if current is None or current.timestamp != first.timestamp:
                    return
                parts.append(current._data)  # type: ignore[attr-defined]
                if current.marker:
                    self.remove(count + 1)
                    self._deliver(b"".join(parts), packet, first.timestamp)
                    break
            else:
                return

    def _deliver(self, data: bytes, packet: RtpPacket, timestamp: int | None = None) -> None:
        if not data:
            return
        frame = RtpFrame(
            data=data,
            timestamp=packet.timestamp if timestamp is None else timestamp,
            ssrc=packet.ssrc,
            payload_type=packet.payload_type,
        )
        try:
            self.sink(frame)
        except Exception:  # a bad sink must not kill aiortc's RTP handling
            logger.exception("media frame sink failed")


def tap_receiver(receiver: RTCRtpReceiver, kind: str, sink: FrameSink) -> None:
    """Divert ``receiver``'s encoded frames to ``sink``; calling it again swaps the sink.

    Must run before media flows on the receiver (right after ``setRemoteDescription``).
    """
    current = getattr(receiver, _JITTER_BUFFER_ATTR)
    if isinstance(current, _TapJitterBuffer):
        current.sink = sink
        return
    setattr(receiver, _JITTER_BUFFER_ATTR, _TapJitterBuffer(kind, sink))


def is_tapped(receiver: RTCRtpReceiver) -> bool:
    """Whether :func:`tap_receiver` was applied to ``receiver``."""
    return isinstance(getattr(receiver, _JITTER_BUFFER_ATTR, None), _TapJitterBuffer)


async def request_keyframe(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """Ask the remote sender of ``ssrc`` for a keyframe with an RTCP PLI (RFC 4585 6.3.1)."""
    await receiver._send_rtcp_pli(ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote end of ``sender`` sends PLI or FIR.

    Replaces aiortc's behaviour (forcing its own encoder to emit a keyframe), which is
    meaningless for forwarded packets: ``Encoder.pack()`` cannot make keyframes.
    """
    setattr(sender, "_send_keyframe", callback)  # noqa: B010 - instance override on purpose


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs negotiated for ``transceiver``, preferred first (RTX included)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return list(codecs)


def set_offered_parameters(
    transceiver: RTCRtpTransceiver,
    codecs: list[RTCRtpCodecParameters],
    extensions: list[RTCRtpHeaderExtensionParameters],
) -> None:
    """Make ``transceiver`` hold the codecs and header extensions of a server offer that was
    renumbered after ``createOffer`` (which set them from aiortc's own tables), so it agrees
    with the description it is about to apply until the answer sets them again."""
    transceiver._codecs = list(codecs)
    transceiver._headerExtensions = list(extensions)


class ForwardedTrack(MediaStreamTrack):
    """A track whose ``recv()`` yields already encoded :class:`av.Packet` objects.

    ``RTCRtpSender`` re-packetizes them with ``Encoder.pack()`` (touch point 4). Video starts
    at a keyframe; if the queue overflows (a stalled sender) it is flushed and forwarding
    resumes at the next keyframe, which is requested through ``on_keyframe_needed``.
    """

    def __init__(
        self,
        kind: str,
        on_keyframe_needed: Callable[[], None],
        max_queue: int = 90,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._on_keyframe_needed = on_keyframe_needed
        self._queue: asyncio.Queue[Packet[Any] | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._waiting_for_keyframe = kind == "video"
        self._started = False
        self.forwarded = 0
        "Frames handed to the sender so far."

    def push(self, packet: Packet[Any], keyframe: bool) -> None:
        """Queue one encoded frame (called on the event loop by the publication)."""
        if self.readyState != "live":
            return
        if self._waiting_for_keyframe:
            if not keyframe:
                return
            self._waiting_for_keyframe = False
        if self._queue.qsize() >= self._max_queue:
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video":
                self._waiting_for_keyframe = not keyframe
                if not keyframe:
                    self._on_keyframe_needed()
                    return
        self._queue.put_nowait(packet)

    def end(self) -> None:
        """Make the sender's pending ``recv()`` fail, which ends its RTP loop."""
        self._queue.put_nowait(None)

    async def recv(self) -> Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            # The sender just started: a late joiner needs a keyframe now.
            self._started = True
            if self._waiting_for_keyframe:
                self._on_keyframe_needed()
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        self.forwarded += 1
        return packet


def make_packet(data: bytes, pts: int, clock_rate: int) -> Packet[Any]:
    """An :class:`av.Packet` that ``Encoder.pack()`` accepts."""
    packet: Packet[Any] = Packet(data)
    packet.pts = pts
    packet.time_base = Fraction(1, clock_rate)
    return packet


# --- ICE host addresses -------------------------------------------------------------------

_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "tandem_media_host_addresses", default=None
)


def _install_host_address_hook() -> Callable[[bool, bool], list[str]]:
    current: Any = aioice.ice.get_host_addresses
    original: Callable[[bool, bool], list[str]] = getattr(current, "_tandem_original", current)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        pinned = _host_addresses.get()
        if pinned is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    get_host_addresses._tandem_original = original  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses
    return original


_original_get_host_addresses = _install_host_address_hook()


@contextlib.contextmanager
def host_addresses(addresses: list[str] | tuple[str, ...] | None) -> Iterator[None]:
    """Gather ICE host candidates only on ``addresses`` within this block (None: all).

    Wrap ``setLocalDescription()``: aiortc gathers there, in tasks that inherit this context.
    """
    token = _host_addresses.set(None if addresses is None else tuple(addresses))
    try:
        yield
    finally:
        _host_addresses.reset(token)
