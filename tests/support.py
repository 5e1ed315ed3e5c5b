"""Test support: the real Tandem server on loopback, and real socket.io clients for it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp import web
from redis import asyncio as redis_asyncio

from signaling import keys
from signaling.app import create_app
from signaling.auth import Role, hash_password, new_id
from signaling.auth.accounts import add_site
from signaling.settings import Settings
from signaling.store import AgentRecord, SiteRecord, TicketStore

PASSWORD = "correct horse battery"
CONTEXT = {
    "url": "http://shop.test/products/trail-runner-2?colour=blue",
    "title": "Trail Runner 2 - Demo shop",
    "referrer": "http://shop.test/",
    "userAgent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    ),
    "screen": {"width": 390, "height": 844},
    "viewport": {"width": 390, "height": 664},
    "language": "en-GB",
    "timeZone": "Europe/London",
    "app": {"product": {"id": "trail-runner-2", "name": "Trail Runner 2", "colour": "blue"}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    """A started server with its site and staff."""

    app: web.Application
    runner: web.AppRunner
    base_url: str
    site: SiteRecord
    other_site: SiteRecord
    agents: dict[str, AgentRecord]
    clients: list[Client] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return "http://shop.test"

    def stored_file(self, sha256: str) -> Path:
        """Where a blob lies (the test servers keep blobs in a directory unless told otherwise)."""
        path = self.app[keys.files].local_path(sha256)
        assert path is not None, "this server keeps its blobs in a bucket, not in files"
        return path

    async def token(self, who: str) -> str:
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{self.base_url}/api/auth/login",
                json={"email": self.agents[who].email, "password": PASSWORD},
            )
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])

    async def agent(self, who: str = "alice") -> Client:
        client = Client()
        await client.connect(
            self.base_url, {"v": 1, "role": "agent", "token": await self.token(who)}
        )
        self.clients.append(client)
        return client

    async def customer(
        self, token: str | None = None, site: SiteRecord | None = None, origin: str | None = None
    ) -> Client:
        client = Client()
        hello: dict[str, Any] = {"v": 1, "role": "customer", "site": (site or self.site).public_key}
        if token:
            hello["token"] = token
        await client.connect(self.base_url, hello, origin=origin or self.origin)
        self.clients.append(client)
        return client

    async def get(self, path: str, token: str | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http:
            response = await http.get(f"{self.base_url}{path}", headers=headers)
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()


class Client:
    """A real socket.io client that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: defaultdict[str, list[Any]] = defaultdict(list)
        self._changed = asyncio.Event()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._refused)
        self.refusal: Any = None

    async def _refused(self, data: Any = None) -> None:
        self.refusal = data

    async def _record(self, event: str, data: Any = None) -> None:
        self.events[event].append(data)
        self._changed.set()

    async def connect(self, url: str, auth: dict[str, Any], origin: str | None = None) -> None:
        headers = {"Origin": origin} if origin else {}
        await self.sio.connect(
            url, auth=auth, headers=headers, transports=["websocket"], wait_timeout=5
        )

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, {} if data is None else data, timeout=timeout)

    async def wait_for(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda _data: True,
        timeout: float = 5,
    ) -> Any:
        """The first matching event received so far or within the timeout."""
        async with asyncio.timeout(timeout):
            while True:
                for data in self.events[event]:
                    if where(data):
                        return data
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
_PG_SCHEMAS: dict[Path, str] = {}
"""Under ``TANDEM_TEST_STORE=postgres``: each test server's PostgreSQL schema, by data dir (a
restarted server finds its database again)."""


async def _postgres_url(data_dir: Path) -> str:
    """A fresh schema of the test database for one server (asyncpg passes ``search_path`` in
    the URL on as a server setting)."""
    schema = _PG_SCHEMAS.get(data_dir)
    if schema is None:
        schema = f"t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()
        _PG_SCHEMAS[data_dir] = schema
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}search_path={schema}"


STORES: tuple[str, ...] = (
    ("postgres",) if os.environ.get("TANDEM_TEST_STORE") == "postgres" else ("sqlite", "postgres")
)
"""The stores of tests that start a server on each store themselves (the fuzz modules, the
races). The default pass runs both, with live state in memory. Under ``TANDEM_TEST_STORE=postgres``
(scripts/test's pass as a node of several) "sqlite" would be PostgreSQL as well, as every test
server is there, so that pass runs PostgreSQL once, with live state in Redis, not twice."""


_LIVE_PREFIXES: dict[Path, str] = {}
"""Under ``TANDEM_TEST_LIVE=redis``: each test server's Redis key prefix, by data dir."""


async def drop_test_schemas() -> None:
    if _LIVE_PREFIXES:
        client = redis_asyncio.Redis.from_url(REDIS_URL)
        for prefix in _LIVE_PREFIXES.values():
            async for key in client.scan_iter(match=f"{prefix}:*", count=500):
                await client.delete(key)
        await client.aclose()
        _LIVE_PREFIXES.clear()
    if not _PG_SCHEMAS:
        return
    conn = await asyncpg.connect(PG_URL)
    try:
        for schema in _PG_SCHEMAS.values():
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()
    _PG_SCHEMAS.clear()


async def start_server(
    data_dir: Path, **overrides: Any
) -> tuple[web.Application, web.AppRunner, str]:
    """The real server on 127.0.0.1; its store is SQLite in ``data_dir``, or a PostgreSQL
    schema of its own when ``TANDEM_TEST_STORE=postgres`` (the same suite on both stores).
    ``TANDEM_TEST_LIVE=redis`` (with PostgreSQL) runs it as a node of several: live state in
    the shared Redis, under a key prefix of its own."""
    port = free_port()
    if os.environ.get("TANDEM_TEST_STORE") == "postgres" and "database_url" not in overrides:
        overrides["database_url"] = await _postgres_url(data_dir)
    if os.environ.get("TANDEM_TEST_LIVE") == "redis" and "redis_url" not in overrides:
        prefix = _LIVE_PREFIXES.get(data_dir)
        if prefix is None:
            prefix = _LIVE_PREFIXES[data_dir] = f"tl{secrets.token_hex(5)}"
        overrides.update(redis_url=REDIS_URL, redis_prefix=prefix)
        overrides.setdefault("secret", "test-secret-shared-by-nodes")
    # Every test client connects from 127.0.0.1: the per-address limits would count a whole
    # test's customers as one client. Tests of those limits set them explicitly.
    overrides.setdefault("max_customer_sockets_per_address", 10_000)
    overrides.setdefault("max_open_tickets_per_address", 10_000)
    settings = Settings(data_dir=data_dir, port=port, **overrides)
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return app, runner, f"http://127.0.0.1:{port}"


@functools.cache
def _password_hash() -> str:
    """``PASSWORD``'s scrypt hash, made once per test run: a hash costs ~100 ms of CPU by design
    and nearly every test starts a server of its own with three agents. Logins still check the
    password against it with scrypt; ``add_agent`` itself is tested through the CLI."""
    return hash_password(PASSWORD)


async def _add_staff(
    store: TicketStore, email: str, name: str, role: Role, skills: tuple[str, ...] = ()
) -> AgentRecord:
    """An agent as ``add_agent`` makes one, with the password hash made once."""
    agent = AgentRecord(
        id=new_id("ag"),
        email=email,
        name=name,
        password_hash=_password_hash(),
        role=role,
        skills=skills,
    )
    await store.add_agent(agent)
    return agent


async def provision(app: web.Application) -> tuple[SiteRecord, SiteRecord, dict[str, AgentRecord]]:
    store = app[keys.store]
    site = await add_site(store, "Shop", ["http://shop.test"])
    other = await add_site(store, "Other shop", ["http://other.test"])
    agents = {
        "alice": await _add_staff(store, "alice@tandem.test", "Alice", "agent", ("orders",)),
        "bob": await _add_staff(store, "bob@tandem.test", "Bob", "agent"),
        "sam": await _add_staff(store, "sam@tandem.test", "Sam", "supervisor"),
    }
    return site, other, agents


@contextlib.asynccontextmanager
async def running_server(data_dir: Path, **overrides: Any) -> AsyncIterator[Running]:
    app, runner, base = await start_server(data_dir, **overrides)
    site, other, agents = await provision(app)
    running = Running(app, runner, base, site, other, agents)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await runner.cleanup()


REDIS_URL = os.environ.get("TANDEM_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
"""The shared redis-server: tests use key prefixes of their own there and never flush it."""
_REDIS_PREFIXES: list[str] = []


def unique_prefix() -> str:
    """A key prefix no other test uses (its keys are deleted when ``redis_or_skip`` ends)."""
    prefix = f"tt{secrets.token_hex(5)}"
    _REDIS_PREFIXES.append(prefix)
    return prefix


@contextlib.asynccontextmanager
async def redis_or_skip() -> AsyncIterator[redis_asyncio.Redis]:
    """A client of the shared Redis; the test is skipped if none answers (failed under
    ``TANDEM_REQUIRE_REDIS=1``). The keys of prefixes made meanwhile are deleted at the end."""
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:
        await client.aclose()
        if os.environ.get("TANDEM_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable: {exc!r}")
        pytest.skip(f"Redis not reachable: {exc!r}")
    first = len(_REDIS_PREFIXES)
    try:
        yield client
    finally:
        for prefix in _REDIS_PREFIXES[first:]:
            async for key in client.scan_iter(match=f"{prefix}:*", count=500):
                await client.delete(key)
        await client.aclose()
