"""The asset route's parts on their own: the cache (bounded, TTL, LRU, on a real FileStore), the
type checks every asset passes, and the ``--asset-host`` option of ``tandem site add``."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

import pytest

from cobrowse import AssetKind
from signaling.assets.cache import AssetCache
from signaling.assets.fetch import served_type
from signaling.store import FileStore, open_store
from tests.blobs import blob_settings, blob_store, s3_server
from tests.signaling.test_cli import tandem_here

__all__ = ["blob_settings", "blob_store", "s3_server"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)
GIF = b"GIF89a" + bytes(40)
WOFF2 = b"wOF2" + bytes(40)
SVG = b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>"


async def test_cache_is_bounded_lru_with_a_ttl(blob_store: FileStore) -> None:
    """On a directory and on an S3 bucket (``tests/blobs.py``)."""
    clock = Clock()
    cache = AssetCache(blob_store, max_bytes=250, ttl=60, clock=clock)

    def body(n: int) -> bytes:
        return PNG[:8] + bytes([n]) * 92  # 100 bytes each

    async def stored() -> int:
        digests = [hashlib.sha256(body(n)).hexdigest() for n in (1, 2, 3)]
        return sum([await blob_store.size(d) is not None for d in digests])

    await cache.put("a", "image/png", body(1), "https://s.test/a")
    await cache.put("b", "image/png", body(2), "https://s.test/b")
    got = await cache.get("a")  # "a" is now the most recently used
    assert got is not None and got.body == body(1) and got.url == "https://s.test/a"
    await cache.put("c", "image/png", body(3), "https://s.test/c")  # over 250: "b" goes
    assert await cache.get("b") is None
    assert len(cache) == 2 and cache.size == 200 and await stored() == 2
    # Two keys, one content: stored once, and kept while either key needs it.
    await cache.put("c2", "image/png", body(3), "https://s.test/c2")  # evicts "a"
    assert await cache.get("a") is None and await stored() == 1
    clock.t += 30
    assert (await cache.get("c")) is not None
    clock.t += 31  # past the TTL
    assert await cache.get("c") is None and await stored() == 1  # "c2" still holds the bytes
    assert await cache.get("c2") is None and await stored() == 0 and cache.size == 0


@pytest.mark.parametrize(
    ("body", "declared", "kind", "expected"),
    [
        (PNG, "image/png", AssetKind.IMAGE, "image/png"),
        (PNG, "image/jpeg", AssetKind.IMAGE, "image/png"),  # served as what the bytes show
        (GIF, "image/gif", AssetKind.RESOURCE, "image/gif"),
        (WOFF2, "application/octet-stream", AssetKind.RESOURCE, "font/woff2"),
        (WOFF2, "font/woff2", AssetKind.IMAGE, None),  # a font is no image
        (WOFF2, "application/octet-stream", AssetKind.IMAGE, None),
        (SVG, "image/svg+xml", AssetKind.IMAGE, "image/svg+xml"),
        (SVG, "text/xml", AssetKind.IMAGE, None),
        (b"<html><script>1</script>", "image/svg+xml", AssetKind.IMAGE, None),
        (b"<html>hi</html>", "text/html", AssetKind.IMAGE, None),
        (b"<html>hi</html>", "image/png", AssetKind.IMAGE, None),  # claims png, is not
        (b"a{color:red}", "text/css", AssetKind.STYLE, "text/css"),
        (b"a{color:red}", "text/plain", AssetKind.STYLE, None),
        (PNG, "image/png", AssetKind.STYLE, None),
        (b"a{color:red}", "text/css", AssetKind.IMAGE, None),
    ],
)
def test_served_type(body: bytes, declared: str, kind: AssetKind, expected: str | None) -> None:
    assert served_type(body, declared, kind) == expected


async def test_site_add_takes_asset_hosts(tmp_path: Path) -> None:
    async def tandem(*args: str) -> subprocess.CompletedProcess[str]:
        # ``tandem site add`` in this process (in a thread: it runs its own event loop).
        return await asyncio.to_thread(tandem_here, "site", "add", *args, data_dir=tmp_path)

    done = await tandem(
        "Shop",
        "--origin",
        "https://shop.test",
        "--asset-host",
        "https://cdn.test",
        "--asset-host",
        "https://IMG.test:8443/",
    )
    assert done.returncode == 0, done.stderr
    assert "asset hosts: https://cdn.test, https://img.test:8443" in done.stdout
    bad = await tandem("Bad", "--origin", "https://b.test", "--asset-host", "cdn.test")
    assert bad.returncode == 2 and "origin must look like" in bad.stderr
    store = await open_store(None, tmp_path / "tandem.sqlite3")
    try:
        (site,) = await store.sites()
    finally:
        await store.close()
    assert site.settings == {"assetHosts": ["https://cdn.test", "https://img.test:8443"]}
