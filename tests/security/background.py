"""The real server on 127.0.0.1, on its own event loop in a background thread.

Hypothesis and schemathesis drive synchronous tests; they hand coroutines to this loop (the
server's and its socket.io clients') and wait for the result. One server serves a whole module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import Running, running_server

PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"

T = TypeVar("T")


NO_LIMITS: dict[str, Any] = {
    "rate_per_second": 100_000.0,
    "max_customer_sockets_per_address": 100_000,
    "max_open_tickets_per_address": 100_000,
    "max_open_tickets_per_customer": 100_000,
    "login_account_burst": 100_000,
    "login_address_burst": 100_000,
}
"""Rate and per-address limits have their own tests; here every client is 127.0.0.1, and the
limits would only keep requests from the code under test."""


class BackgroundServer:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._context = running_server(data_dir, **overrides)
        self.server: Running = self.run(self._context.__aenter__())

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.run(self._context.__aexit__(None, None, None))
            self.run(_cancel_the_rest())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _cancel_the_rest() -> None:
    """Stop what the clients left running (engine.io ping tasks) before the loop closes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def database(backend: str) -> Iterator[dict[str, Any]]:
    """Server settings for a store on ``backend``: SQLite in the data dir, or a PostgreSQL
    database of its own (created here, dropped after). Where PostgreSQL does not answer the test
    skips, except under ``TANDEM_REQUIRE_POSTGRES=1`` (CI), where it fails."""
    if backend == "sqlite":
        yield {}
        return
    import asyncpg

    name = f"tandem_fuzz_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f"CREATE DATABASE {name}"))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
        if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield {"database_url": PG_URL.rsplit("/", 1)[0] + f"/{name}"}
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
