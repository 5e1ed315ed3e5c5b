"""The blob stores behind ``FileStore``: a directory and an S3-compatible bucket (a real moto
server), the same tests for both."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from signaling.settings import Settings
from signaling.store import FileStore, open_file_store
from tests.blobs import blob_settings, blob_store, s3_server

__all__ = ["blob_settings", "blob_store", "s3_server"]


async def gather(store: FileStore, sha: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.chunks(sha, start, end)])


async def test_bytes_go_in_once_and_come_out_whole(blob_store: FileStore) -> None:
    data = os.urandom(70_000)
    sha, size = await blob_store.put_bytes(data)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert await blob_store.put_bytes(data) == (sha, size)
    assert await blob_store.read(sha) == data
    assert await blob_store.size(sha) == len(data)
    assert await gather(blob_store, sha) == data
    assert await gather(blob_store, sha, 5, 1000) == data[5:1000]
    assert await gather(blob_store, sha, len(data) - 10) == data[-10:]
    empty, _ = await blob_store.put_bytes(b"")
    assert await blob_store.read(empty) == b"" and await gather(blob_store, empty) == b""

    await blob_store.delete(sha)
    assert await blob_store.size(sha) is None
    with pytest.raises(FileNotFoundError):
        await blob_store.read(sha)
    with pytest.raises(ValueError):
        await blob_store.size("../../etc/passwd")


async def test_a_large_file_is_streamed_in_and_out(blob_store: FileStore) -> None:
    """48 MiB in and out without holding it in memory (multipart on S3)."""
    source = blob_store.temp_dir() / "clip.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with source.open("wb") as handle:
        for i in range(48):
            piece = block[i:] + block[:i]
            digest.update(piece)
            handle.write(piece)
    boundary = (8 << 20) - 3  # across the first part's end (S3 parts are 8 MiB)
    with source.open("rb") as handle:
        handle.seek(boundary)
        across = handle.read(6)
    tracemalloc.start()
    try:
        sha, size = await blob_store.put_file(source)
        assert (sha, size) == (digest.hexdigest(), 48 << 20)
        assert not source.exists()  # moved or uploaded: the store owns it now
        back = hashlib.sha256()
        async for chunk in blob_store.chunks(sha):
            back.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert back.hexdigest() == sha
    assert peak < 32 << 20, f"peak {peak >> 20} MiB for a 48 MiB file"
    assert await gather(blob_store, sha, boundary, boundary + 6) == across
    # Filing the same bytes again keeps one copy and consumes the new file.
    again = blob_store.temp_dir() / "again.bin"
    await asyncio.to_thread(again.write_bytes, b"")
    assert (await blob_store.put_file(again))[1] == 0 and not again.exists()


def test_s3_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    assert Settings(files_url="s3://bucket/prefix").refusals() == []
    assert Settings(files_url="https://bucket").refusals()
    assert Settings(files_url="s3://b", files_dir=tmp_path).refusals()
    assert Settings(s3_endpoint_url="http://minio:9000").refusals()  # an S3 setting alone


async def test_what_one_node_stores_another_reads(
    blob_settings: dict[str, Any], tmp_path: Path
) -> None:
    """Two nodes' stores opened on the same settings (a shared directory, or one bucket)."""

    async def node(name: str) -> FileStore:
        return await open_file_store(
            "attachments",
            directory=blob_settings.get("files_dir", tmp_path / "shared"),
            url=blob_settings.get("files_url"),
            scratch=tmp_path / name / "scratch",
            endpoint_url=blob_settings.get("s3_endpoint_url"),
            region=blob_settings.get("s3_region"),
            access_key_id=blob_settings.get("s3_access_key_id"),
            secret_access_key=blob_settings.get("s3_secret_access_key"),
        )

    one, two = await node("one"), await node("two")
    try:
        clip = one.temp_dir() / "clip.webm"
        clip.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(50_000))
        expected = clip.read_bytes()
        sha, _ = await one.put_file(clip)
        assert await two.read(sha) == expected
        await two.delete(sha)
        assert await one.size(sha) is None
    finally:
        await one.close()
        await two.close()


async def test_a_bucket_that_cannot_be_read_stops_the_start(s3_server: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot be read"):
        await open_file_store(
            "attachments",
            directory=tmp_path,
            url="s3://no-such-bucket/tandem",
            scratch=tmp_path,
            endpoint_url=s3_server,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
        )
