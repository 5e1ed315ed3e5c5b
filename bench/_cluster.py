"""Tandem nodes on loopback, as a deployment runs them: the one launcher of the multi-node
tests (``tests/nodes/cluster.py``) and of the multi-node bench (``bench/nodes.py``).

A redis-server of its own on a free port, a fresh PostgreSQL schema, N ``python -m signaling
serve`` processes of this checkout and HAProxy in front with the shipped ``deploy/haproxy.cfg``
(websocket only, no stickiness; docs/architecture.md, "Several nodes"). Without Redis it starts
single nodes with their live state in process (the single-node deployment), on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The checkout under test: the nodes run its code, not the installed one."""
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SECRET = "nodes-test-secret-shared-by-every-node"
SHIPPED_HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
"""The configuration compose.yaml and docs/deploy.md ship: tests and bench run behind exactly
it."""
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Unavailable(Exception):
    """A service the cluster needs (redis-server, HAProxy, PostgreSQL) is missing."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env() -> dict[str, str]:
    """The environment of a node: this checkout first, no settings inherited by accident."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    for name in list(env):
        if name.startswith("TANDEM_") or name in ("DATABASE_URL", "REDIS_URL"):
            del env[name]
    return env


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
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


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, f"redis-server on {self.port}")

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


NODE_LIMITS = (
    "--rate-per-second", "1000",
    "--max-customer-sockets-per-address", "10000",
    "--max-open-tickets-per-address", "10000",
    "--max-open-tickets-per-customer", "10000",
    # The several-nodes suite's agents take many sessions by hand, racing each other: pull.
    # Push offers across nodes are tested in tests/signaling/test_offers_nodes.py.
    "--routing", "pull",
)  # fmt: skip
"""Limits lifted on every node: all the clients come from 127.0.0.1."""


def start_node(
    name: str,
    work: Path,
    database_url: str,
    redis_url: str | None,
    limits: Sequence[str] = NODE_LIMITS,
    port: int | None = None,
) -> Node:
    """A node; ``port`` starts a dead one again on its address (HAProxy's file names it), its
    log appended to."""
    port = port or free_port()
    log = work / f"{name}.log"
    redis = ["--redis-url", redis_url, "--redis-prefix", "tandem"] if redis_url else []
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--port", str(port),
         "--database-url", database_url, *redis,
         "--secret", SECRET, "--data-dir", str(work / name),
         # Media on loopback: every client of the tests and benches runs on this machine.
         "--media-hosts", "127.0.0.1", *limits],
        cwd=ROOT, env=node_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return Node(name, port, log, process)


def start_haproxy(work: Path, nodes: Sequence[Node]) -> tuple[subprocess.Popen[bytes], str]:
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
    wait_until(lambda: answers(f"{url}/healthz"), "HAProxy")
    return process, url


def cli(database_url: str, work: Path, *args: str) -> str:
    """``tandem ARGS`` of this checkout against the cluster's database."""
    done = subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--database-url", database_url,
         "--data-dir", str(work / "cli")],
        cwd=ROOT, env=node_env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


async def _schema(pg_url: str, create: bool, schema: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(pg_url), 5)
    try:
        if create:
            await conn.execute(f"CREATE SCHEMA {schema}")
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@dataclass
class Launched:
    redis: RedisServer | None
    database_url: str
    nodes: list[Node]
    proxy: subprocess.Popen[bytes] | None
    proxy_url: str
    """HAProxy's address; the only node's own when there is no proxy."""
    provisioned: Any
    """What ``provision`` returned (the site key, say)."""


def check_binaries(redis: bool = True, proxy: bool = True) -> None:
    wanted = [(REDIS_SERVER, "redis-server", redis), (HAPROXY, "haproxy", proxy)]
    for binary, package, needed in wanted:
        if needed and not Path(binary).exists():
            raise Unavailable(f"{package} is not installed (scripts/setup --test installs it)")


@contextlib.contextmanager
def launch(
    work: Path,
    nodes: int,
    provision: Callable[[str], Any],
    *,
    pg_url: str | None = None,
    redis: bool = True,
    proxy: bool = True,
    limits: Sequence[str] = NODE_LIMITS,
) -> Iterator[Launched]:
    """Start the cluster; stop everything it started, and drop its schema, on the way out.

    ``provision(database_url)`` runs once the schema exists and before the nodes start (sites
    and agents). Without ``redis`` each node keeps its live state in process: only one then.
    """
    if not redis and nodes != 1:
        raise ValueError("nodes without Redis cannot share sessions: start one")
    check_binaries(redis, proxy)
    pg_url = pg_url or os.environ.get("DATABASE_URL") or DEFAULT_PG_URL
    schema = f"n_{secrets.token_hex(6)}"
    try:
        asyncio.run(_schema(pg_url, True, schema))
    except Exception as exc:
        raise Unavailable(f"PostgreSQL not reachable: {exc!r}") from exc
    separator = "&" if "?" in pg_url else "?"
    database_url = f"{pg_url}{separator}search_path={schema}"
    server = RedisServer(free_port()) if redis else None
    started: list[Node] = []
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        if server is not None:
            server.start()
        provisioned = provision(database_url)
        redis_url = server.url if server is not None else None
        started = [
            start_node(f"node{i + 1}", work, database_url, redis_url, limits) for i in range(nodes)
        ]
        for node in started:
            wait_until(partial(answers, f"{node.url}/healthz"), node.name)
        url = started[0].url
        if proxy:
            haproxy, url = start_haproxy(work, started)
        yield Launched(server, database_url, started, haproxy, url, provisioned)
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for node in started:
            node.process.send_signal(signal.SIGCONT)  # a test that froze one and failed
            node.process.send_signal(signal.SIGTERM)
        for node in started:
            try:
                node.process.wait(15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        if server is not None:
            server.kill()
        asyncio.run(_schema(pg_url, False, schema))
