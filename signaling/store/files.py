"""Content-addressed attachment bytes: a file's name is its SHA-256, so a capture filed twice is
stored once and a stored file can be checked against its name."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    async def put_bytes(self, data: bytes) -> tuple[str, int]:
        return await asyncio.to_thread(self._put_bytes, data)

    async def put_file(self, source: Path) -> tuple[str, int]:
        """Move a finished temporary file into the store."""
        return await asyncio.to_thread(self._put_file, source)

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.path(sha256).read_bytes)

    async def delete(self, sha256: str) -> None:
        """Remove stored bytes (for stores that evict, like the co-browse asset cache)."""
        await asyncio.to_thread(self.path(sha256).unlink, missing_ok=True)

    def temp_dir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

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
        sha = hashlib.sha256()
        with source.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
        digest = sha.hexdigest()
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        if target.exists():
            source.unlink()
        else:
            os.replace(source, target)
        return digest, size
