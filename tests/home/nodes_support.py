"""Two Tandem nodes in one test process: each a real aiohttp app on its own port, sharing one
Redis (under the test's key prefix, with python-socketio's ``AsyncRedisManager`` carrying
server-to-client traffic between them), one PostgreSQL schema and one data directory (the
shared directory of a deployment of several nodes)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from signaling import keys
from signaling.app import create_app, home_key
from signaling.hubs.home import Home
from signaling.settings import Settings
from tests.home.conftest import REDIS_URL
from tests.support import PG_URL, Running, _postgres_url, free_port, provision


@dataclass
class Node:
    running: Running
    redis: aioredis.Redis

    @property
    def app(self) -> web.Application:
        return self.running.app

    @property
    def home(self) -> Home:
        return self.app[home_key]


async def _require_postgres() -> None:
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
        if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    await conn.close()


@contextlib.asynccontextmanager
async def nodes(
    data_dir: Path, prefix: str, count: int = 2, **overrides: Any
) -> AsyncIterator[list[Node]]:
    await _require_postgres()
    database_url = await _postgres_url(data_dir)
    started: list[Node] = []
    try:
        for index in range(count):
            port = free_port()
            settings = Settings(
                data_dir=data_dir,
                port=port,
                database_url=database_url,
                secret="one secret for the deployment",
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                node_name=f"n{index}",
                media_host_addresses=("127.0.0.1",),
                max_customer_sockets_per_address=10_000,
                max_open_tickets_per_address=10_000,
                **overrides,
            )
            # The node builds its Redis parts itself, as `tandem serve --redis-url` does; the
            # test keeps a client of its own to look into Redis.
            redis = aioredis.Redis.from_url(REDIS_URL)
            app = create_app(settings)
            runner = web.AppRunner(app, shutdown_timeout=2)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            if index == 0:
                site, other, agents = await provision(app)
            running = Running(app, runner, f"http://127.0.0.1:{port}", site, other, agents)
            started.append(Node(running, redis))
        yield started
    finally:
        for node in reversed(started):
            for client in node.running.clients:
                await client.close()
            await node.running.runner.cleanup()
            await node.redis.aclose()


def store_of(node: Node) -> Any:
    return node.app[keys.store]
