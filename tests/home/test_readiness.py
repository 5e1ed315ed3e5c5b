"""``/healthz`` of a node that shares state over Redis: ready while its Redis answers, 503 (and
which part failed) while it does not, ready again once Redis is back. The Redis here is a
redis-server of the test's own, so stopping it disturbs nobody else."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from signaling.app import create_app
from signaling.settings import Settings
from tests.support import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextlib.contextmanager
def own_redis(port: int, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


async def until_ready(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(100):
            with contextlib.suppress(Exception):
                if await client.ping():
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def node(data_dir: Path, redis_url: str) -> AsyncIterator[str]:
    port = free_port()
    client = aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
    app = create_app(Settings(data_dir=data_dir, port=port), redis=client)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await client.aclose()


async def health(base: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
        return response.status, await response.json()


async def test_healthz_follows_redis(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with own_redis(port, tmp_path) as first:
        await until_ready(url)
        async with node(tmp_path, url) as base:
            status, body = await health(base)
            assert (status, body["redis"], body["store"], body["state"]) == (
                200, True, True, "serving"
            )  # fmt: skip
            first.terminate()
            first.wait(10)
            status, body = await health(base)
            assert (status, body["status"], body["redis"], body["store"]) == (
                503, "unavailable", False, True
            )  # fmt: skip
            with own_redis(port, tmp_path):
                await until_ready(url)
                status, body = await health(base)
                assert (status, body["redis"]) == (200, True)
