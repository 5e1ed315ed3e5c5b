"""Upload validation: size cap while streaming, magic bytes, bombs, EXIF GPS stripping."""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import io
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest
from PIL import ExifTags, Image

from media import (
    CorruptUpload,
    ImageBomb,
    TypeMismatch,
    UnsupportedType,
    UploadTooLarge,
    receive_upload,
)
from media.uploads import sniff

pytestmark = pytest.mark.timeout(30)


class Chunks:
    """An async chunk source that records how much was pulled from it."""

    def __init__(self, data: bytes, size: int = 1024) -> None:
        self.data = data
        self.size = size
        self.pulled = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        try:
            for start in range(0, len(self.data), self.size):
                chunk = self.data[start : start + self.size]
                self.pulled += len(chunk)
                yield chunk
        finally:
            self.closed = True


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _png_bytes(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (80, 40), "blue")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


async def test_png_passes_with_hash_and_thumbnail(tmp_path: Path) -> None:
    data = _png_bytes((1000, 500))
    upload = await receive_upload(Chunks(data), "image/png", 1 << 20, tmp_path)
    assert upload.content_type == "image/png"
    assert (upload.width, upload.height) == (1000, 500)
    assert upload.original_sha256 == hashlib.sha256(data).hexdigest()
    stored = await asyncio.to_thread(upload.path.read_bytes)
    assert upload.sha256 == hashlib.sha256(stored).hexdigest()
    assert upload.size == len(stored)
    thumb = Image.open(io.BytesIO(upload.thumbnail_png or b""))
    assert max(thumb.size) == 320
    assert _names(tmp_path) == [upload.path.name]


async def test_oversized_upload_stops_reading_early(tmp_path: Path) -> None:
    data = _png_bytes() + b"\x00" * 500_000
    chunks = Chunks(data, size=4096)
    with pytest.raises(UploadTooLarge) as info:
        await receive_upload(chunks, "image/png", 10_000, tmp_path)
    assert info.value.code == "too_large" and info.value.http_status == 413
    assert chunks.pulled <= 10_000 + 4096
    assert chunks.closed
    assert _names(tmp_path) == []


async def test_decompression_bomb_is_rejected(tmp_path: Path) -> None:
    bomb = _png_bomb()
    assert len(bomb) < 200
    with pytest.raises(ImageBomb) as info:
        await receive_upload(Chunks(bomb), "image/png", 1 << 20, tmp_path)
    assert info.value.code == "image_bomb"
    # Just above the 40 MP budget but below Pillow's own limit.
    with pytest.raises(ImageBomb):
        await receive_upload(Chunks(_png_bomb(8000, 5001)), "image/png", 1 << 20, tmp_path)
    assert _names(tmp_path) == []


async def test_mislabelled_png_declared_as_jpeg(tmp_path: Path) -> None:
    with pytest.raises(TypeMismatch) as info:
        await receive_upload(Chunks(_png_bytes()), "image/jpeg", 1 << 20, tmp_path)
    assert info.value.code == "type_mismatch" and info.value.http_status == 415


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (b"GIF89a" + b"\x00" * 100, "image/gif"),
        (b"GIF89a" + b"\x00" * 100, "image/png"),
        (b"%PDF-1.7\n" + b"\x00" * 100, "application/pdf"),
        (b"%PDF-1.7\n" + b"\x00" * 100, "image/jpeg"),
        (b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 100, "video/mp4"),
    ],
)
async def test_unsupported_types(tmp_path: Path, data: bytes, declared: str) -> None:
    with pytest.raises(UnsupportedType) as info:
        await receive_upload(Chunks(data), declared, 1 << 20, tmp_path)
    assert info.value.code == "unsupported_type"


async def test_exif_gps_is_stripped_and_orientation_kept(tmp_path: Path) -> None:
    data = _jpeg_with_gps()
    assert ExifTags.IFD.GPSInfo in Image.open(io.BytesIO(data)).getexif()
    upload = await receive_upload(Chunks(data), "image/jpg", 1 << 20, tmp_path)
    assert upload.content_type == "image/jpeg" and "gps" in upload.removed_metadata
    stored = await asyncio.to_thread(upload.path.read_bytes)
    exif = Image.open(io.BytesIO(stored)).getexif()
    assert ExifTags.IFD.GPSInfo not in exif
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif[ExifTags.Base.Make] == "TestCam"
    assert b"GPS" not in stored
    # The thumbnail honours the orientation (rotated: taller than wide).
    thumb = Image.open(io.BytesIO(upload.thumbnail_png or b""))
    assert thumb.height > thumb.width


async def test_webp_gps_is_stripped(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "S"
    out = io.BytesIO()
    Image.new("RGB", (30, 30), "green").save(out, format="WEBP", exif=exif)
    upload = await receive_upload(Chunks(out.getvalue()), "image/webp", 1 << 20, tmp_path)
    stored = await asyncio.to_thread(upload.path.read_bytes)
    assert ExifTags.IFD.GPSInfo not in Image.open(io.BytesIO(stored)).getexif()


async def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    data = _jpeg_with_gps()
    with pytest.raises(CorruptUpload):
        await receive_upload(Chunks(data[: len(data) // 2]), "image/jpeg", 1 << 20, tmp_path)
    assert _names(tmp_path) == []


def _mp4(path: Path) -> bytes:
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["location"] = "+48.8577+002.2950/"
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(15):
            frame = av.VideoFrame.from_image(  # type: ignore[no-untyped-call]
                Image.new("RGB", (160, 120), (i * 10, 0, 0))
            )
            frame.pts = i
            frame.time_base = fractions.Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


def _probe(path: Path) -> tuple[dict[str, str], int]:
    with av.open(str(path)) as container:
        return dict(container.metadata), sum(1 for _ in container.decode(video=0))


async def test_mp4_video_is_remuxed_without_metadata(tmp_path: Path) -> None:
    data = await asyncio.to_thread(_mp4, tmp_path / "source.mp4")
    dest = tmp_path / "uploads"
    upload = await receive_upload(Chunks(data, 8192), "video/mp4", 1 << 22, dest)
    assert upload.content_type == "video/mp4" and (upload.width, upload.height) == (160, 120)
    assert upload.duration_s is not None and 0.3 < upload.duration_s < 1.0
    assert upload.thumbnail_png and upload.thumbnail_png.startswith(b"\x89PNG")
    metadata, frames = await asyncio.to_thread(_probe, upload.path)
    assert "location" not in metadata and frames == 15
    with pytest.raises(TypeMismatch):
        await receive_upload(Chunks(data), "video/webm", 1 << 22, dest)


def test_sniff_webm_vs_matroska() -> None:
    webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm"
    assert sniff(webm) == "video/webm"
    assert sniff(webm.replace(b"\x84webm", b"\x88matroska")) == "unsupported:matroska"
