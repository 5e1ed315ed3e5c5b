"""The co-browse asset cache: bytes a mirrored page needs, fetched once for every session.

Bytes live in a content-addressed ``FileStore`` of their own (never the attachments store, since
entries are evicted); this index maps a key to ``(sha256, content type, base URL)`` with a TTL and
a total size bound, evicting the least recently used entries first. Keys are chosen by the caller:
what the server fetched (no cookies, the same for everyone) is keyed by URL and shared by every
session; what a customer's browser supplied (possibly behind their cookies) is keyed by session
and URL and is never served to another session.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from signaling.store import FileStore


@dataclass(frozen=True, slots=True)
class CachedAsset:
    content_type: str
    body: bytes
    url: str
    """Where the bytes came from (a stylesheet's URLs are resolved against it)."""


@dataclass(slots=True)
class _Entry:
    sha256: str
    size: int
    content_type: str
    url: str
    expires: float


class AssetCache:
    def __init__(
        self,
        files: FileStore,
        max_bytes: int = 256 * 1024 * 1024,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self._index: OrderedDict[str, _Entry] = OrderedDict()
        self._refs: Counter[str] = Counter()
        self.size = 0
        """Bytes of all entries (an entry shared by two keys counts twice: a safe overestimate)."""

    def __len__(self) -> int:
        return len(self._index)

    async def get(self, key: str) -> CachedAsset | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            await self._drop(key)
            return None
        try:
            body = await self.files.read(entry.sha256)
        except FileNotFoundError:
            await self._drop(key)
            return None
        self._index.move_to_end(key)
        return CachedAsset(entry.content_type, body, entry.url)

    async def put(self, key: str, content_type: str, body: bytes, url: str) -> None:
        if len(body) > self.max_bytes:
            return
        if key in self._index:
            await self._drop(key)
        sha, size = await self.files.put_bytes(body)
        self._index[key] = _Entry(sha, size, content_type, url, self.clock() + self.ttl)
        self._refs[sha] += 1
        self.size += size
        while self.size > self.max_bytes and self._index:
            await self._drop(next(iter(self._index)))

    async def _drop(self, key: str) -> None:
        entry = self._index.pop(key, None)
        if entry is None:
            return
        self.size -= entry.size
        self._refs[entry.sha256] -= 1
        if self._refs[entry.sha256] <= 0:
            del self._refs[entry.sha256]
            await self.files.delete(entry.sha256)
