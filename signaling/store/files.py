"""Content-addressed bytes (attachments, recordings, the co-browse asset cache): a blob's name is
its SHA-256, so a capture filed twice is stored once and stored bytes can be checked against
their name.

Two stores, each a place every node reads: ``DirectoryFileStore`` on a directory (local for one
node; a shared mount such as NFS for several, ``--files-dir``), and ``S3FileStore``
(``s3files.py``) on an S3-compatible bucket (``--files-url s3://bucket/prefix``).
``open_file_stores`` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024
"""Bytes read or sent at a time when a blob is streamed."""


def check_digest(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256 hex digest")
    return sha256


def file_digest(source: Path) -> tuple[str, int]:
    """A file's SHA-256 and size, read in chunks (never whole into memory)."""
    sha = hashlib.sha256()
    size = 0
    with source.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


class FileStore(Protocol):
    """Where blobs live. Every method is safe to call from several nodes at once: a blob is
    written whole under its digest (a reader sees it entire or not at all) and never changes."""

    async def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes; their digest and size."""
        ...

    async def put_file(self, source: Path) -> tuple[str, int]:
        """Move a finished file (made in ``temp_dir()``) into the store; its digest and size."""
        ...

    async def read(self, sha256: str) -> bytes:
        """A whole blob (small ones: cached assets). ``FileNotFoundError`` if absent."""
        ...

    async def size(self, sha256: str) -> int | None:
        """A blob's size, None if absent."""
        ...

    def chunks(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` up to ``end`` (exclusive; None: to the end), a chunk at a time."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file when it is one on this machine (served with sendfile), else None."""
        ...

    async def delete(self, sha256: str) -> None:
        """Remove a blob (for stores that evict, like the co-browse asset cache)."""
        ...

    def temp_dir(self) -> Path:
        """A directory on this machine for files on their way in (uploads, clips)."""
        ...

    async def close(self) -> None: ...


class DirectoryFileStore:
    """Blobs as files under ``root/ab/abcd...``: written to a temporary name in the same
    directory, then renamed, so a reader (on any node sharing the directory) never sees half."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256

    def local_path(self, sha256: str) -> Path | None:
        return self.path(sha256)

    async def put_bytes(self, data: bytes) -> tuple[str, int]:
        return await asyncio.to_thread(self._put_bytes, data)

    async def put_file(self, source: Path) -> tuple[str, int]:
        return await asyncio.to_thread(self._put_file, source)

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.path(sha256).read_bytes)

    async def size(self, sha256: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    async def chunks(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path(sha256).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = await asyncio.to_thread(
                    handle.read, CHUNK if left is None else min(CHUNK, left)
                )
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, sha256: str) -> None:
        await asyncio.to_thread(self.path(sha256).unlink, missing_ok=True)

    def temp_dir(self) -> Path:
        # Beside the blobs, so a finished file is renamed in, not copied.
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    async def close(self) -> None:
        return None

    def _put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        return digest, len(data)

    def _put_file(self, source: Path) -> tuple[str, int]:
        digest, size = file_digest(source)
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            source.unlink()
            return digest, size
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Made on another file system (a recording on local disk, the store on a shared
            # mount): copied to a temporary name beside the target, then renamed.
            fd, tmp = tempfile.mkstemp(dir=target.parent)
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            source.unlink()
        return digest, size


async def open_file_store(
    name: str,
    *,
    directory: Path,
    url: str | None = None,
    scratch: Path,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> FileStore:
    """The blobs called ``name`` (``attachments``, ``asset-cache``): under ``url``
    (``s3://bucket/prefix``) when given, else in ``directory / name``; files on their way into an
    S3 store are made in ``scratch / name``."""
    if url:
        from signaling.store.s3files import S3FileStore

        return await S3FileStore.open(
            f"{url.rstrip('/')}/{name}",
            scratch / name,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    return DirectoryFileStore(directory / name)
