"""Stills and clips from forwarded video, decoded or remuxed only on demand.

An idle call decodes nothing. A still decodes the frames since the last keyframe (or a freshly
requested keyframe); a clip remuxes the forwarded packets into WebM (VP8) or MP4 (H.264) with
PyAV, without re-encoding. All of that runs off the event loop: stills in an executor, each
clip in its own writer thread fed through a queue.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from PIL import Image

from .bitstream import H264, VP8
from .exceptions import CaptureError
from .forwarding import make_packet
from .publication import EncodedFrame, FrameObserver

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)

_DECODERS = {VP8: "libvpx", H264: "h264"}
_CONTAINERS = {VP8: ("webm", "video/webm", ".webm"), H264: ("mp4", "video/mp4", ".mp4")}


@dataclass(frozen=True, slots=True)
class Still:
    """A full-resolution picture of a video track."""

    png: bytes
    width: int
    height: int
    taken_at: datetime
    "When the request was made (UTC)."
    track_id: str


@dataclass(frozen=True, slots=True)
class Clip:
    """A recorded stretch of a video track, remuxed without re-encoding."""

    clip_id: str
    track_id: str
    path: Path
    content_type: str
    "``video/webm`` (VP8) or ``video/mp4`` (H.264)."
    duration_s: float
    frames: int
    "Video frames written."
    width: int
    height: int
    thumbnail_png: bytes | None
    "A small PNG of the first frame."
    started_at: datetime
    size_bytes: int


def _decoder(codec_mime: str) -> VideoCodecContext:
    name = _DECODERS.get(codec_mime.lower())
    if name is None:
        raise CaptureError(f"cannot decode {codec_mime}")
    context = av.CodecContext.create(name, "r")
    assert isinstance(context, VideoCodecContext)
    return context


def _png(image: Image.Image, thumbnail: bool = False) -> bytes:
    if thumbnail:
        image = image.copy()
        image.thumbnail(THUMBNAIL_SIZE)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode_still(
    codec_mime: str, frames: Sequence[EncodedFrame], clock_rate: int
) -> tuple[bytes, int, int]:
    """Decode ``frames`` (starting at a keyframe) and return the last picture as PNG.

    Blocking and CPU-bound: run it in an executor.
    """
    decoder = _decoder(codec_mime)
    last: VideoFrame | None = None
    try:
        for frame in frames:
            for decoded in decoder.decode(make_packet(frame.data, frame.pts, clock_rate)):
                if isinstance(decoded, VideoFrame):
                    last = decoded
        for decoded in decoder.decode(None):
            if isinstance(decoded, VideoFrame):
                last = decoded
    except av.FFmpegError as exc:
        if last is None:
            raise CaptureError(f"decoding failed: {exc}") from exc
    if last is None:
        raise CaptureError("no picture decoded")
    image = last.to_image()  # type: ignore[no-untyped-call]
    return _png(image), last.width, last.height


class ClipWriter(FrameObserver):
    """Remuxes one track's forwarded frames into a file, in a thread of its own."""

    def __init__(
        self,
        *,
        clip_id: str,
        track_id: str,
        codec_mime: str,
        clock_rate: int,
        directory: Path,
        started_at: datetime,
        max_duration_s: float,
    ) -> None:
        mime = codec_mime.lower()
        if mime not in _CONTAINERS:
            raise CaptureError(f"cannot record {codec_mime}")
        self.clip_id = clip_id
        self.track_id = track_id
        self.started_at = started_at
        self._mime = mime
        self._format, self.content_type, suffix = _CONTAINERS[mime]
        self.path = directory / f"{clip_id}{suffix}"
        self._clock_rate = clock_rate
        self._max_pts = int(max_duration_s * clock_rate)
        self._first_pts: int | None = None
        self._queue: queue.SimpleQueue[EncodedFrame | None] = queue.SimpleQueue()
        self._closed = False
        self._done: asyncio.Future[Clip] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(
            target=self._run,
            args=(asyncio.get_running_loop(),),
            name=f"clip-{clip_id}",
            daemon=True,
        )
        self._thread.start()

    # FrameObserver, on the event loop: cheap.
    def on_frame(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if self._first_pts is None:
            if not frame.keyframe:
                return
            self._first_pts = frame.pts
        elif frame.pts - self._first_pts > self._max_pts:
            self.close()
            return
        self._queue.put(frame)

    def on_end(self) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether the first keyframe arrived."""
        return self._first_pts is not None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    async def finish(self) -> Clip:
        """Stop recording and wait for the file to be finalized."""
        self.close()
        return await asyncio.shield(self._done)

    # Writer thread.
    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            result: Clip | BaseException = self._write()
        except Exception as exc:
            logger.exception("clip %s failed", self.clip_id)
            result = exc if isinstance(exc, CaptureError) else CaptureError(str(exc))
        loop.call_soon_threadsafe(self._resolve, result)

    def _resolve(self, result: Clip | BaseException) -> None:
        if self._done.done():
            return
        if isinstance(result, BaseException):
            self._done.set_exception(result)
        else:
            self._done.set_result(result)

    def _write(self) -> Clip:
        first = self._queue.get()
        if first is None:
            raise CaptureError("no keyframe arrived while recording")
        # Decode the first keyframe once: it gives the dimensions and the thumbnail.
        decoder = _decoder(self._mime)
        pictures = [
            f
            for f in decoder.decode(make_packet(first.data, first.pts, self._clock_rate))
            if isinstance(f, VideoFrame)
        ]
        if not pictures:
            raise CaptureError("first keyframe did not decode")
        width, height = pictures[0].width, pictures[0].height
        thumbnail = _png(pictures[0].to_image(), thumbnail=True)  # type: ignore[no-untyped-call]
        del decoder

        time_base = Fraction(1, self._clock_rate)
        frames = 0
        last_pts = first.pts
        with av.open(str(self.path), "w", format=self._format) as container:
            stream = container.add_mux_stream(
                "vp8" if self._mime == VP8 else "h264", width=width, height=height
            )
            stream.time_base = time_base
            frame: EncodedFrame | None = first
            while frame is not None:
                packet = make_packet(frame.data, frame.pts - first.pts, self._clock_rate)
                packet.dts = packet.pts
                packet.is_keyframe = frame.keyframe
                packet.stream = stream
                container.mux(packet)
                frames += 1
                last_pts = frame.pts
                frame = self._queue.get()
        # Count the last frame as lasting one average frame interval.
        span = (last_pts - first.pts) / self._clock_rate
        duration = span + (span / (frames - 1) if frames > 1 else 0.0)
        return Clip(
            clip_id=self.clip_id,
            track_id=self.track_id,
            path=self.path,
            content_type=self.content_type,
            duration_s=duration,
            frames=frames,
            width=width,
            height=height,
            thumbnail_png=thumbnail,
            started_at=self.started_at,
            size_bytes=self.path.stat().st_size,
        )
