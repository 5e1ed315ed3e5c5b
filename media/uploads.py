"""Validate and sanitize a customer's photo or video upload while it streams in.

:func:`receive_upload` enforces, in this order:

1. the declared Content-Type is in the allowlist (PNG, JPEG, WebP, MP4, WebM);
2. the size cap, while streaming: reading stops at the first chunk that crosses it, and at
   most ``max_bytes`` are ever written;
3. the magic bytes match the declared type (checked on the first 4 KiB);
4. after the last chunk, off the event loop: images are opened by the one Pillow plugin the
   type allows, rejected above ``max_pixels`` (a decompression bomb), fully decoded, and
   re-saved without GPS/location metadata (EXIF GPS IFD, XMP, comments; orientation and ICC
   profile kept). Re-saving also drops anything appended after the image data (polyglots).
   Videos are opened by the one demuxer the type allows, must contain a decodable video
   stream, and are remuxed (no re-encoding) without container metadata (where phones put
   location) or data streams.

Failures raise :class:`~media.exceptions.UploadError` subclasses whose ``code`` and
``http_status`` the server maps to its reply: ``too_large`` 413, ``unsupported_type`` and
``type_mismatch`` 415, ``image_bomb`` and ``corrupt`` 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import uuid
import warnings
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
from av.video.frame import VideoFrame
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .exceptions import (
    CorruptUpload,
    ImageBomb,
    TypeMismatch,
    UnsupportedType,
    UploadError,
    UploadTooLarge,
)

MAX_PIXELS = 40_000_000
"Largest accepted image (width x height); Pillow's own default limit is about 89 MP."

SNIFF_BYTES = 4096
THUMBNAIL_SIZE = (320, 320)


@dataclass(frozen=True, slots=True)
class _Kind:
    content_type: str
    extension: str
    pillow_format: str | None = None
    demuxer: str | None = None


ALLOWED: dict[str, _Kind] = {
    "image/png": _Kind("image/png", ".png", pillow_format="PNG"),
    "image/jpeg": _Kind("image/jpeg", ".jpg", pillow_format="JPEG"),
    "image/webp": _Kind("image/webp", ".webp", pillow_format="WEBP"),
    "video/mp4": _Kind("video/mp4", ".mp4", demuxer="mp4"),
    "video/webm": _Kind("video/webm", ".webm", demuxer="webm"),
}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}

# ISO/IEC 14496-12 "ftyp" major brands of MP4 files (not QuickTime "qt  ", not HEIF).
_MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"dash",
    b"MSNV",
    b"mmp4",
}


@dataclass(frozen=True, slots=True)
class ValidatedUpload:
    """A stored, sanitized upload."""

    upload_id: str
    path: Path
    "The sanitized file, named ``<upload_id><ext>`` in ``dest_dir``."
    content_type: str
    size: int
    "Bytes of the stored (sanitized) file."
    sha256: str
    "Hex digest of the stored file."
    original_size: int
    original_sha256: str
    "Hex digest of the bytes as received."
    width: int
    height: int
    duration_s: float | None
    "Videos only."
    thumbnail_png: bytes | None
    removed_metadata: tuple[str, ...]
    'What sanitizing removed, e.g. ``("gps", "xmp")``.'


def normalize_content_type(declared: str) -> str:
    """``"Image/JPG; charset=x"`` -> ``"image/jpeg"``."""
    base = declared.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff(head: bytes) -> str | None:
    """The content type the leading bytes prove, a ``"unsupported:<what>"`` marker for
    recognised but disallowed formats, or None if unrecognised."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4" if head[8:12] in _MP4_BRANDS else "unsupported:iso-bmff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        doctype = _ebml_doctype(head)
        return "video/webm" if doctype == b"webm" else "unsupported:matroska"
    for magic, name in (
        (b"GIF87a", "gif"),
        (b"GIF89a", "gif"),
        (b"%PDF-", "pdf"),
        (b"BM", "bmp"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"PK\x03\x04", "zip"),
        (b"<", "markup"),
    ):
        if head.startswith(magic):
            return f"unsupported:{name}"
    return None


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType of an EBML header (RFC 8794 section 11.2.6, element id 0x4282)."""
    pos = head.find(b"\x42\x82", 4)
    if pos == -1 or pos + 2 >= len(head):
        return None
    size_byte = head[pos + 2]
    length = 8 - size_byte.bit_length() + 1  # EBML variable-size integer width
    if not 1 <= length <= 8:
        return None
    size = size_byte & (0xFF >> length)
    for byte in head[pos + 3 : pos + 2 + length]:
        size = (size << 8) | byte
    start = pos + 2 + length
    return head[start : start + size].rstrip(b"\x00")


def _check_type(head: bytes, expected: str) -> None:
    found = sniff(head)
    if found is None or found.startswith("unsupported:"):
        raise UnsupportedType(f"content is not an allowed type ({found or 'unknown'})")
    if found != expected:
        raise TypeMismatch(f"declared {expected} but content is {found}")


async def receive_upload(
    chunks: AsyncIterable[bytes],
    declared_type: str,
    max_bytes: int,
    dest_dir: Path,
    *,
    max_pixels: int = MAX_PIXELS,
) -> ValidatedUpload:
    """Stream an upload to ``dest_dir``, validate and sanitize it.

    Never holds more than one chunk in memory and never writes more than ``max_bytes``.
    On any failure the partial file is deleted and the chunk iterator is closed.
    """
    content_type = normalize_content_type(declared_type)
    kind = ALLOWED.get(content_type)
    if kind is None:
        raise UnsupportedType(f"{declared_type!r} is not an allowed upload type")
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")

    await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
    upload_id = uuid.uuid4().hex
    partial = dest_dir / f".{upload_id}.part"
    final = dest_dir / f"{upload_id}{kind.extension}"
    handle: IO[bytes] = await asyncio.to_thread(open, partial, "xb")
    hasher = hashlib.sha256()
    size = 0
    head = b""
    sniffed = False
    try:
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(f"upload exceeds {max_bytes} bytes")
                if not sniffed:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        _check_type(head, content_type)
                        sniffed = True
                hasher.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await _aclose(chunks)
            await asyncio.to_thread(handle.close)
        if size == 0:
            raise CorruptUpload("upload is empty")
        if not sniffed:
            _check_type(head, content_type)
        return await asyncio.to_thread(
            _finish,
            partial,
            final,
            kind,
            upload_id,
            size,
            hasher.hexdigest(),
            max_pixels,
        )
    except BaseException:
        for path in (partial, final):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)
        raise


async def _aclose(chunks: AsyncIterable[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _finish(
    partial: Path,
    final: Path,
    kind: _Kind,
    upload_id: str,
    original_size: int,
    original_sha256: str,
    max_pixels: int,
) -> ValidatedUpload:
    thumbnail: bytes | None
    duration: float | None = None
    if kind.pillow_format is not None:
        width, height, thumbnail, removed = _sanitize_image(partial, final, kind, max_pixels)
    else:
        width, height, duration, thumbnail, removed = _sanitize_video(
            partial, final, kind, max_pixels
        )
    partial.unlink()
    digest = hashlib.sha256()
    with final.open("rb") as stored:
        for block in iter(lambda: stored.read(1 << 20), b""):
            digest.update(block)
    return ValidatedUpload(
        upload_id=upload_id,
        path=final,
        content_type=kind.content_type,
        size=final.stat().st_size,
        sha256=digest.hexdigest(),
        original_size=original_size,
        original_sha256=original_sha256,
        width=width,
        height=height,
        duration_s=duration,
        thumbnail_png=thumbnail,
        removed_metadata=removed,
    )


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail(THUMBNAIL_SIZE)
    if thumb.mode not in ("RGB", "RGBA", "L", "LA"):
        thumb = thumb.convert("RGBA" if "A" in thumb.getbands() else "RGB")
    out = io.BytesIO()
    thumb.save(out, format="PNG")
    return out.getvalue()


def _sanitize_image(
    source: Path, dest: Path, kind: _Kind, max_pixels: int
) -> tuple[int, int, bytes, tuple[str, ...]]:
    pillow_format = kind.pillow_format
    assert pillow_format is not None
    # Not thread-safe before Python 3.14 (warnings filters are global), but the explicit
    # pixel check below catches bombs first anyway; this also covers Pillow's own check.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(source, formats=[pillow_format]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageBomb(f"{width}x{height} exceeds {max_pixels} pixels")
                if pillow_format != "JPEG" and getattr(image, "is_animated", False):
                    raise UnsupportedType("animated images are not accepted")
                image.load()
                return _resave(image, dest, pillow_format)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageBomb(str(exc)) from exc
        except UploadError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise CorruptUpload(f"image does not decode: {exc}") from exc


def _resave(
    image: Image.Image, dest: Path, pillow_format: str
) -> tuple[int, int, bytes, tuple[str, ...]]:
    removed: list[str] = []
    exif = image.getexif()
    if ExifTags.IFD.GPSInfo in exif:
        del exif[ExifTags.IFD.GPSInfo]
        removed.append("gps")
    if image.info.get("xmp") or image.info.get("XML:com.adobe.xmp"):
        removed.append("xmp")
    if image.info.get("comment"):
        removed.append("comment")
    options: dict[str, Any] = {"exif": exif.tobytes()}
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc
    if pillow_format == "JPEG":
        options.update(quality="keep", subsampling="keep", comment=b"")
    elif pillow_format == "WEBP":
        options.update(quality=90, method=4)
    # Write to a sibling temp name first so a failed save never leaves a half file behind.
    tmp = dest.with_name(dest.name + ".tmp")
    image.save(tmp, format=pillow_format, **options)
    os.replace(tmp, dest)
    thumbnail = _thumbnail(ImageOps.exif_transpose(image))
    return image.width, image.height, thumbnail, tuple(removed)


def _sanitize_video(
    source: Path, dest: Path, kind: _Kind, max_pixels: int
) -> tuple[int, int, float | None, bytes | None, tuple[str, ...]]:
    assert kind.demuxer is not None
    try:
        with av.open(str(source), format=kind.demuxer) as container:
            if not container.streams.video:
                raise CorruptUpload("no video stream")
            video = container.streams.video[0]
            removed = ("metadata",) if container.metadata else ()
            first: VideoFrame | None = None
            for frame in container.decode(video):
                first = frame
                break
            if first is None:
                raise CorruptUpload("video does not decode")
            if first.width * first.height > max_pixels:
                raise ImageBomb(f"{first.width}x{first.height} video exceeds {max_pixels}")
            duration = container.duration / av.time_base if container.duration is not None else None
            thumbnail = _thumbnail(first.to_image())  # type: ignore[no-untyped-call]
        _remux(source, dest, kind.demuxer)
        return first.width, first.height, duration, thumbnail, removed
    except UploadError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise CorruptUpload(f"video does not decode: {exc}") from exc


def _remux(source: Path, dest: Path, fmt: str) -> None:
    """Copy audio/video packets into a fresh container: no metadata, no data streams."""
    tmp = dest.with_name(dest.name + ".tmp")
    with av.open(str(source), format=fmt) as inp, av.open(str(tmp), "w", format=fmt) as out:
        mapping = {}
        for stream in inp.streams:
            if stream.type in ("video", "audio"):
                mapping[stream.index] = out.add_stream_from_template(stream)
        for packet in inp.demux(*[inp.streams[i] for i in mapping]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    os.replace(tmp, dest)
