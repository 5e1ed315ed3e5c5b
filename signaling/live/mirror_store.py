"""The co-browse mirror in Redis, so an agent on any node of a deployment can join late.

It implements ``cobrowse.MirrorStore`` (whose docstring sketched this mapping); it sits here, not
in ``cobrowse``, because that package does no I/O of its own.

The events of a co-browse arrive on one node (the one holding the customer's socket). That
node keeps a :class:`MirrorState` per session for the decisions (when to ask for a snapshot,
the memory cap, the mask index for control) and writes what a late joiner needs through to
Redis; every node reads it back from there. Per session ``s``, under ``prefix``:

* ``{prefix}:cb:{s}:meta`` STRING: the latest Meta event (JSON);
* ``{prefix}:cb:{s}:snap`` STRING: the latest FullSnapshot event;
* ``{prefix}:cb:{s}:tail`` LIST: one JSON event per entry, in order;
* ``{prefix}:cb:{s}:gen`` STRING: the mirror's generation (new snapshot or reset).

A new snapshot (or a reset) rewrites all of them in one ``MULTI``; other batches ``RPUSH``
their tail events. Every key expires ``ttl`` seconds after the last write, so a session whose
node died does not stay for ever. A node that does not ingest a session answers
``target_status`` from a :class:`NodeIndex` rebuilt from the catch-up, cached by generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from cobrowse import AppendResult, Event, EventType, MirrorPolicy, MirrorState, TargetStatus

__all__ = ["RedisMirrorStore"]

MIRROR_TTL_SECONDS = 3600


def _dump(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class RedisMirrorStore:
    """``cobrowse.MirrorStore`` shared by every node through Redis; see the module."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        policy: MirrorPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        ttl: int = MIRROR_TTL_SECONDS,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._policy = policy or MirrorPolicy()
        self._clock = clock
        self._ttl = ttl
        self._writing: dict[str, MirrorState] = {}
        """Sessions whose events arrive on this node."""
        self._behind: set[str] = set()
        """Sessions whose last write to Redis failed (Redis holds less than ``_writing``)."""
        self._read_indexes: dict[str, tuple[int, MirrorState]] = {}
        """Sessions ingested elsewhere: a state rebuilt from Redis, by generation."""

    def _keys(self, session_id: str) -> tuple[str, str, str, str]:
        base = f"{self.prefix}:cb:{session_id}"
        return f"{base}:meta", f"{base}:snap", f"{base}:tail", f"{base}:gen"

    async def append(
        self, session_id: str, events: Sequence[Event], sizes: Sequence[int] | None = None
    ) -> AppendResult:
        state = self._writing.get(session_id)
        if state is None:
            state = self._writing[session_id] = MirrorState(self._policy, self._clock)
        generation, tail_before = state.generation, state.tail_events
        result = state.append(events, sizes)
        meta_key, snap_key, tail_key, gen_key = self._keys(session_id)
        # A write that failed left Redis behind this node's state: the next one rewrites it.
        rewrite = state.generation != generation or session_id in self._behind
        if not rewrite and state.tail_events == tail_before:
            return result
        # Behind until the write is through: any failure from here (reading the generation
        # too) leaves the next write to rewrite the whole mirror.
        self._behind.add(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            if rewrite:
                held = state.catch_up()
                pipe.delete(meta_key, snap_key, tail_key)
                if held:
                    snapshot_at = 1 if held[0].get("type") == EventType.META else 0
                    if snapshot_at:
                        pipe.set(meta_key, _dump(held[0]))
                    pipe.set(snap_key, _dump(held[snapshot_at]))
                    tail = held[snapshot_at + 1 :]
                    if tail:
                        pipe.rpush(tail_key, *(_dump(e) for e in tail))
                pipe.set(gen_key, str(await self._next_generation(gen_key)))
            else:
                added = state.catch_up()[-(state.tail_events - tail_before) :]
                pipe.rpush(tail_key, *(_dump(e) for e in added))
            for key in (meta_key, snap_key, tail_key, gen_key):
                pipe.expire(key, self._ttl)
            await pipe.execute()
        self._behind.discard(session_id)
        return result

    async def _next_generation(self, gen_key: str) -> int:
        # Generations only need to differ between writes of one session; a counter that goes
        # on from what Redis holds survives a change of the writing node.
        held = await self.redis.get(gen_key)
        return int(held or 0) + 1

    async def catch_up(self, session_id: str) -> list[Event]:
        meta_key, snap_key, tail_key, _gen = self._keys(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(meta_key)
            pipe.get(snap_key)
            pipe.lrange(tail_key, 0, -1)
            meta, snapshot, tail = await pipe.execute()
        if snapshot is None:
            return []
        head = [json.loads(meta)] if meta is not None else []
        loaded: list[Any] = [*head, json.loads(snapshot), *(json.loads(e) for e in tail)]
        return loaded

    async def needs_snapshot(self, session_id: str) -> bool:
        state = self._writing.get(session_id)
        if state is not None:
            return state.needs_snapshot()
        return not await self.redis.exists(self._keys(session_id)[1])

    async def has_snapshot(self, session_id: str) -> bool:
        state = self._writing.get(session_id)
        if state is not None and session_id not in self._behind:
            return state.has_snapshot
        # Written here but Redis missed it, or ingested elsewhere: what a joiner reads is Redis.
        return bool(await self.redis.exists(self._keys(session_id)[1]))

    async def target_status(self, session_id: str, node_id: int) -> TargetStatus:
        state = self._writing.get(session_id)
        if state is not None:
            return state.target_status(node_id)
        held = await self.redis.get(self._keys(session_id)[3])
        if held is None:
            return TargetStatus.UNKNOWN
        generation = int(held)
        cached = self._read_indexes.get(session_id)
        if cached is None or cached[0] != generation:
            rebuilt = MirrorState(self._policy, self._clock)
            rebuilt.append(await self.catch_up(session_id))
            cached = self._read_indexes[session_id] = (generation, rebuilt)
        return cached[1].target_status(node_id)

    async def clear(self, session_id: str) -> None:
        self._writing.pop(session_id, None)
        self._behind.discard(session_id)
        self._read_indexes.pop(session_id, None)
        await self.redis.delete(*self._keys(session_id))
