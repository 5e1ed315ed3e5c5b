"""Several real Tandem nodes on loopback: a redis-server of their own, a fresh PostgreSQL schema,
three ``python -m signaling serve`` processes and HAProxy in front (websocket only, no
stickiness), as a deployment would run them (docs/architecture.md, "Several nodes").

The launcher is ``bench/_cluster.py``, shared with the multi-node bench (``bench/nodes.py``);
this module adds the tests' view: provisioned accounts, clients and pytest's skip/fail."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bench._cluster import (
    NODE_LIMITS,
    Node,
    RedisServer,
    Unavailable,
    answers,
    cli,
    launch,
    start_node,
    wait_until,
)
from tests.support import PASSWORD, PG_URL, Client

ORIGIN = "http://shop.test"


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
        node = start_node(
            old.name,
            self.work,
            self.database_url,
            self.redis.url,
            limits=(*NODE_LIMITS, *self.node_args),
            port=old.port,
        )
        self.nodes[index] = node
        wait_until(partial(answers, f"{node.url}/healthz"), node.name)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {n.name}\n{n.log.read_text()[-tail:]}" for n in self.nodes)


def _provision(database_url: str, work: Path) -> str:
    out = cli(database_url, work, "site", "add", "Shop", "--origin", ORIGIN)
    found = re.search(r"public key:\s*(\S+)", out)
    assert found, out
    for who, role in (("alice", "agent"), ("bob", "agent"), ("sam", "supervisor")):
        cli(database_url, work, "agent", "add", f"{who}@tandem.test", "--name",
             who.title(), "--role", role, "--password", PASSWORD)  # fmt: skip
    return found.group(1)


@contextlib.contextmanager
def running_cluster(
    work: Path, nodes: int = 3, node_args: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """``node_args``: more ``tandem serve`` flags for every node (a short home lease, say)."""
    limits = (*NODE_LIMITS, *node_args)
    try:
        with launch(
            work, nodes, partial(_provision, work=work), pg_url=PG_URL, limits=limits
        ) as up:
            assert up.redis is not None
            yield Cluster(
                up.redis, up.database_url, up.nodes, up.proxy_url, up.provisioned, work, node_args
            )
    except Unavailable as exc:
        required = "TANDEM_REQUIRE_POSTGRES" if "PostgreSQL" in str(exc) else "TANDEM_REQUIRE_REDIS"
        if os.environ.get(required) == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
