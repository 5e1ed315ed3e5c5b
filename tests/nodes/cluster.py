"""Several real Tandem nodes on loopback: a redis-server of their own, a fresh PostgreSQL schema,
three ``python -m signaling serve`` processes and HAProxy in front (websocket only, no
stickiness), as a deployment would run them (docs/architecture.md, "Several nodes")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import PASSWORD, PG_URL, Client, free_port

ROOT = Path(__file__).resolve().parents[2]
"""The checkout under test: the nodes run its code, not the installed one."""
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SECRET = "nodes-test-secret-shared-by-every-node"
ORIGIN = "http://shop.test"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    for name in list(env):
        if name.startswith("TANDEM_") or name in ("DATABASE_URL", "REDIS_URL"):
            del env[name]
    return env


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout} s")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(self.ping, f"redis-server on {self.port}")

    def ping(self) -> bool:
        return self.cli("PING") == "PONG"

    def cli(self, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *command],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return done.stdout.strip()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class Node:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    redis: RedisServer
    database_url: str
    nodes: list[Node]
    proxy_url: str
    site_key: str
    work: Path
    node_args: tuple[str, ...] = ()
    clients: list[Client] = field(default_factory=list)

    async def token(self, email: str, node: int = 0) -> str:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{self.nodes[node].url}/api/auth/login",
                json={"email": email, "password": PASSWORD},
            )
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])

    async def agent(self, who: str, node: int | None, token: str | None = None) -> Client:
        """An agent's socket on node ``node`` (0-based), or through HAProxy when None."""
        token = token or await self.token(f"{who}@tandem.test", node or 0)
        client = Client()
        await client.connect(self._url(node), {"v": 2, "role": "agent", "token": token})
        self.clients.append(client)
        return client

    async def customer(self, node: int | None, token: str | None = None) -> Client:
        client = Client()
        hello: dict[str, Any] = {"v": 2, "role": "customer", "site": self.site_key}
        if token:
            hello["token"] = token
        await client.connect(self._url(node), hello, origin=ORIGIN)
        self.clients.append(client)
        return client

    def _url(self, node: int | None) -> str:
        return self.proxy_url if node is None else self.nodes[node].url

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients = []

    def kill(self, index: int) -> None:
        """``kill -9``: the node dies mid-whatever, running no clean-up."""
        process = self.nodes[index].process
        process.kill()
        process.wait()

    def freeze(self, index: int) -> None:
        self.nodes[index].process.send_signal(signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        self.nodes[index].process.send_signal(signal.SIGCONT)

    def restart(self, index: int) -> None:
        """Start a dead node again on its address (HAProxy's configuration names it)."""
        old = self.nodes[index]
        assert old.process.poll() is not None, f"{old.name} still runs"
        node = _start_node(
            old.name, self.work, self.database_url, self.redis.url, old.port, self.node_args
        )
        self.nodes[index] = node
        _wait(partial(_answers, f"{node.url}/healthz"), node.name)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log.read_text()[-3000:]}" for n in self.nodes)


def _cli(database_url: str, work: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--database-url", database_url,
         "--data-dir", str(work / "cli")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def _provision(database_url: str, work: Path) -> str:
    out = _cli(database_url, work, "site", "add", "Shop", "--origin", ORIGIN)
    found = re.search(r"public key:\s*(\S+)", out)
    assert found, out
    for who, role in (("alice", "agent"), ("bob", "agent"), ("sam", "supervisor")):
        _cli(database_url, work, "agent", "add", f"{who}@tandem.test", "--name",
             who.title(), "--role", role, "--password", PASSWORD)  # fmt: skip
    return found.group(1)


def _start_node(
    name: str,
    work: Path,
    database_url: str,
    redis_url: str,
    port: int | None = None,
    extra: tuple[str, ...] = (),
) -> Node:
    port = port or free_port()
    log = work / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--port", str(port),
         "--database-url", database_url, "--redis-url", redis_url, "--redis-prefix", "tandem",
         "--secret", SECRET, "--data-dir", str(work / name),
         "--rate-per-second", "1000", "--media-hosts", "127.0.0.1",
         "--max-customer-sockets-per-address", "10000",
         "--max-open-tickets-per-address", "10000",
         "--max-open-tickets-per-customer", "10000", *extra],
        cwd=ROOT, env=_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return Node(name, port, log, process)


SHIPPED_HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
"""The configuration compose.yaml and docs/deploy.md ship: the tests run behind exactly it."""


def _start_haproxy(work: Path, nodes: list[Node]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # The shipped file names three nodes; a smaller cluster repeats its last node.
    addresses = [f"127.0.0.1:{n.port}" for n in nodes]
    addresses += addresses[-1:] * (3 - len(addresses))
    env = {
        **os.environ,
        "TANDEM_LB_BIND": f"127.0.0.1:{port}",
        **{f"TANDEM_NODE{i}": address for i, address in enumerate(addresses[:3], start=1)},
    }
    process = subprocess.Popen(
        [HAPROXY, "-f", str(SHIPPED_HAPROXY_CONFIG), "-db"],
        env=env,
        stdout=(work / "haproxy.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _answers(f"{url}/healthz"), "HAProxy")
    return process, url


async def _schema(create: bool, schema: str) -> None:
    conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
    try:
        if create:
            await conn.execute(f"CREATE SCHEMA {schema}")
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@contextlib.contextmanager
def running_cluster(
    work: Path, nodes: int = 3, node_args: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """``node_args``: more ``tandem serve`` flags for every node (a short home lease, say)."""
    for binary, package in ((REDIS_SERVER, "redis-server"), (HAPROXY, "haproxy")):
        if not Path(binary).exists():
            missing = f"{package} is not installed (scripts/setup --test installs it)"
            if os.environ.get("TANDEM_REQUIRE_REDIS") == "1":
                pytest.fail(missing)
            pytest.skip(missing)
    schema = f"n_{secrets.token_hex(6)}"
    try:
        asyncio.run(_schema(True, schema))
    except Exception as exc:
        if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL not reachable: {exc!r}")
        pytest.skip(f"PostgreSQL not reachable: {exc!r}")
    separator = "&" if "?" in PG_URL else "?"
    database_url = f"{PG_URL}{separator}search_path={schema}"
    redis = RedisServer(free_port())
    started: list[Node] = []
    proxy: subprocess.Popen[bytes] | None = None
    try:
        redis.start()
        site_key = _provision(database_url, work)
        started = [
            _start_node(f"node{i + 1}", work, database_url, redis.url, None, node_args)
            for i in range(nodes)
        ]
        for node in started:
            _wait(partial(_answers, f"{node.url}/healthz"), node.name)
        proxy, proxy_url = _start_haproxy(work, started)
        yield Cluster(redis, database_url, started, proxy_url, site_key, work, node_args)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for node in started:
            node.process.send_signal(signal.SIGCONT)  # a test that froze one and failed
            node.process.send_signal(signal.SIGTERM)
        for node in started:
            try:
                node.process.wait(15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        redis.kill()
        asyncio.run(_schema(False, schema))
