"""Node records: each node says it is alive, where its media is and how busy it is.

``n:{node}`` is a hash ``{media, load, state, at}`` that expires ``NODE_TTL_SECONDS`` after the
last refresh, refreshed every ``REFRESH_SECONDS``: a node that died disappears within seconds,
sooner than its leases lapse, so the others can take its sessions over at once
(``Placement.take_over``). ``state`` is ``serving`` or ``draining``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from signaling import background

log = logging.getLogger("tandem.nodes")

NODE_TTL_SECONDS = 6
REFRESH_SECONDS = 2.0
NodeState = Literal["serving", "draining"]


@dataclass(frozen=True)
class NodeRecord:
    node: str
    media: tuple[str, ...]
    """The addresses this node's peer connections gather candidates on (empty: all)."""
    load: int
    state: str


class Nodes(Protocol):
    node: str
    state: NodeState
    shared: bool
    """Whether nodes share state (Redis); False for an embedded node."""

    async def get(self, node: str) -> NodeRecord | None: ...
    async def serving(self) -> list[NodeRecord]:
        """The live nodes taking new work (this one included if it does), least loaded first."""
        ...

    async def ping(self) -> bool:
        """Whether the shared state (Redis) answers; True for an embedded node."""
        ...

    async def names(self) -> list[str]:
        """Every node known, alive or not (until ``forget``)."""
        ...

    async def forget(self, node: str) -> None:
        """Drop a dead node's name once nothing of it is left to adopt."""
        ...

    async def advertise(self) -> None: ...
    async def withdraw(self) -> None:
        """Stop advertising (a node that leaves)."""
        ...

    def start(self) -> None: ...
    async def close(self) -> None: ...


class _Advertising:
    node: str

    def __init__(self, media: tuple[str, ...], load: Callable[[], int]) -> None:
        self.media = media
        self.load = load
        self.state: NodeState = "serving"
        self._task: asyncio.Task[None] | None = None

    def record(self) -> NodeRecord:
        return NodeRecord(self.node, self.media, self.load(), self.state)

    async def advertise(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.advertise()
            except Exception:
                log.exception("node record refresh failed")
            await asyncio.sleep(REFRESH_SECONDS)

    async def close(self) -> None:
        if self._task is not None:
            await background.stop(self._task)
            self._task = None


class LocalNodes(_Advertising):
    """The embedded node knows only itself."""

    shared = False

    def __init__(
        self, node: str = "local", media: tuple[str, ...] = (), load: Callable[[], int] = int
    ) -> None:
        super().__init__(media, load)
        self.node = node

    async def get(self, node: str) -> NodeRecord | None:
        return self.record() if node == self.node else None

    async def serving(self) -> list[NodeRecord]:
        return [self.record()] if self.state == "serving" else []

    async def ping(self) -> bool:
        return True

    async def names(self) -> list[str]:
        return [self.node]

    async def forget(self, node: str) -> None:
        return None

    async def advertise(self) -> None:
        return None

    async def withdraw(self) -> None:
        return None


class RedisNodes(_Advertising):
    shared = True

    def __init__(
        self,
        redis: Any,
        node: str,
        prefix: str = "",
        media: tuple[str, ...] = (),
        load: Callable[[], int] = int,
    ) -> None:
        super().__init__(media, load)
        self.node = node
        self._redis = redis
        self._prefix = prefix

    def _key(self, node: str) -> str:
        return f"{self._prefix}n:{node}"

    async def advertise(self) -> None:
        record = self.record()
        key = self._key(self.node)
        async with self._redis.pipeline(transaction=True) as pipe:
            # The set of names lets ``serving`` find the records, and the orphan check find
            # the nodes that died (their record expired); it forgets them once adopted.
            pipe.sadd(f"{self._prefix}nodes", self.node)
            pipe.hset(
                key,
                mapping={
                    "media": json.dumps(list(record.media)),
                    "load": record.load,
                    "state": record.state,
                },
            )
            pipe.expire(key, NODE_TTL_SECONDS)
            await pipe.execute()

    async def get(self, node: str) -> NodeRecord | None:
        raw = await self._redis.hgetall(self._key(node))
        if not raw:
            return None
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        return NodeRecord(
            node, tuple(json.loads(fields.get("media", "[]"))), int(fields.get("load", 0)),
            fields.get("state", "serving"),
        )  # fmt: skip

    async def names(self) -> list[str]:
        return sorted(
            n.decode() if isinstance(n, bytes) else str(n)
            for n in await self._redis.smembers(f"{self._prefix}nodes")
        )

    async def forget(self, node: str) -> None:
        await self._redis.srem(f"{self._prefix}nodes", node)

    async def serving(self) -> list[NodeRecord]:
        found = []
        for name in await self.names():
            record = await self.get(name)
            if record is not None and record.state == "serving":
                found.append(record)
        return sorted(found, key=lambda r: r.load)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def withdraw(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(self.node))
            pipe.srem(f"{self._prefix}nodes", self.node)
            await pipe.execute()
