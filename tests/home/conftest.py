"""Redis for the home-node tests: the shared server at 127.0.0.1:6379 (``REDIS_URL``), each test
under a key prefix of its own, and only those keys deleted afterwards (never FLUSHALL: other
suites share the server). Without Redis the Redis cases skip, except under
``TANDEM_REQUIRE_REDIS=1``, where they fail."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> str:
    return f"test:{secrets.token_hex(6)}:"


@pytest.fixture
async def redis(prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        reason = f"Redis not reachable at {REDIS_URL}: {exc!r}"
        if os.environ.get("TANDEM_REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
