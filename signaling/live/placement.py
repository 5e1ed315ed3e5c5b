"""Placement: which node is a live session's home, held by a lease with fencing.

The home node holds what cannot be shared through Redis or SQL: the media room, the co-browse
recording writer and the control grant. A node becomes home by taking the session's lease
(``claim``); the lease lives ``lease_ms`` unless renewed, and every take gets a fresh, larger
epoch. The epoch is the fencing token: the home node records it in the store when it takes the
lease and passes it with its writes, and the store refuses writes of an older epoch, so a node
that froze and woke after its lease moved cannot write anything stale.

``RedisPlacement`` keeps ``own:{t}`` = ``{node}:{epoch}`` (SET NX PX), the epoch from
``INCR own:{t}:ep``, renews with a compare-and-PEXPIRE and releases with a compare-and-DEL, all
as Lua scripts so each step is one atomic operation on a single Redis primary (redis.io,
"Distributed Locks"). ``MemoryPlacement`` is the embedded, single-node form: the one node owns
everything, with the same epochs and expiry on an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from signaling import background

log = logging.getLogger("tandem.placement")

LEASE_MS = 15_000
"""How long a lease lives without renewal (a dead home node's sessions move after this)."""
RENEW_SECONDS = 5.0
"""How often the home node renews its leases (three chances per lease)."""


@dataclass(frozen=True)
class Lease:
    ticket_id: str
    node: str
    epoch: int
    taken: bool = field(default=False, compare=False)
    """True when this very call took the lease (a new epoch began); not part of its identity."""

    @property
    def value(self) -> str:
        return f"{self.node}:{self.epoch}"


def parse_lease(ticket_id: str, value: str) -> Lease:
    node, _, epoch = value.rpartition(":")
    return Lease(ticket_id, node, int(epoch))


LostHandler = Callable[[str], Awaitable[None]]
"""Called with a ticket id when this node finds it no longer holds that ticket's lease."""


class Placement(Protocol):
    node: str

    async def claim(self, ticket_id: str, floor: int = 0) -> Lease:
        """The session's lease: taken by this node if nobody holds it (a new epoch, above
        ``floor``, the store's last epoch), else the current holder's."""
        ...

    async def current(self, ticket_id: str) -> Lease | None:
        """Who holds the lease now, if anyone."""
        ...

    async def take_over(self, stale: Lease, floor: int = 0) -> Lease | None:
        """Take a lease from a holder known to be dead, only if it is still ``stale``'s."""
        ...

    async def renew(self, lease: Lease) -> bool:
        """Extend a lease this node holds; False if it has moved on (expired, taken)."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give a lease up, only if it is still this one."""
        ...

    def held(self) -> list[Lease]:
        """The leases this node holds (as far as it knows)."""
        ...

    def holding(self, ticket_id: str) -> Lease | None:
        """This node's lease of one session, as far as it knows (no Redis round trip)."""
        ...

    def forget(self, ticket_id: str) -> None:
        """Stop counting a lease as this node's (the store said it moved on)."""
        ...

    async def leases_of(self, node: str) -> list[Lease]:
        """The leases ``node`` holds, or held until they lapsed with nobody taking them since
        (to adopt the sessions of a dead node)."""
        ...

    def on_lost(self, handler: LostHandler) -> None: ...
    async def renew_all(self) -> list[str]:
        """Renew every held lease once (the loop does it every ``renew_seconds``); the tickets
        whose lease was lost, after their lost-lease handlers ran."""
        ...

    async def release_all(self) -> None: ...
    def start(self) -> None: ...
    async def close(self) -> None: ...


class _Renewing:
    """What both implementations share: the held set, the renewal loop, lost-lease callbacks."""

    node: str

    def __init__(self, renew_seconds: float) -> None:
        self._held: dict[str, Lease] = {}
        self._lost: list[LostHandler] = []
        self._renew_seconds = renew_seconds
        self._task: asyncio.Task[None] | None = None

    def held(self) -> list[Lease]:
        return list(self._held.values())

    def holding(self, ticket_id: str) -> Lease | None:
        return self._held.get(ticket_id)

    def forget(self, ticket_id: str) -> None:
        self._held.pop(ticket_id, None)

    def on_lost(self, handler: LostHandler) -> None:
        self._lost.append(handler)

    def _hold(self, lease: Lease) -> Lease:
        if lease.node == self.node:
            self._held[lease.ticket_id] = lease
        elif self._held.get(lease.ticket_id) is not None:
            # Someone else holds it now: ours is gone (noticed on a read, not a renewal).
            self._held.pop(lease.ticket_id, None)
        return lease

    async def renew(self, lease: Lease) -> bool:
        raise NotImplementedError

    async def release(self, lease: Lease) -> bool:
        raise NotImplementedError

    async def renew_all(self) -> list[str]:
        """Renew every held lease once; the tickets whose lease was lost (handlers told)."""
        lost = []
        for lease in list(self._held.values()):
            if await self.renew(lease):
                continue
            if self._held.get(lease.ticket_id) == lease:
                del self._held[lease.ticket_id]
            lost.append(lease.ticket_id)
            log.warning("lease of %s (epoch %d) lost", lease.ticket_id, lease.epoch)
            for handler in self._lost:
                try:
                    await handler(lease.ticket_id)
                except Exception:
                    log.exception("lost-lease handler failed for %s", lease.ticket_id)
        return lost

    async def release_all(self) -> None:
        for lease in list(self._held.values()):
            with contextlib.suppress(Exception):
                await self.release(lease)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                await self.renew_all()
            except Exception:
                # Redis away: the leases may lapse, and the handlers run once a renewal
                # answers "no" (fencing keeps any write meanwhile safe).
                log.exception("lease renewal failed")

    async def close(self) -> None:
        if self._task is not None:
            await background.stop(self._task)
            self._task = None


class MemoryPlacement(_Renewing):
    """One node owns every session; leases still expire on ``clock`` (for tests and symmetry)."""

    def __init__(
        self,
        node: str = "local",
        lease_ms: int = LEASE_MS,
        renew_seconds: float = RENEW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(renew_seconds)
        self.node = node
        self._lease_s = lease_ms / 1000
        self.clock = clock
        """When leases expire (a test moves it on to make a lease lapse)."""
        self._owners: dict[str, tuple[str, float]] = {}
        self._epochs: dict[str, int] = {}

    def _live(self, ticket_id: str) -> str | None:
        owner = self._owners.get(ticket_id)
        if owner is None:
            return None
        if owner[1] <= self.clock():
            del self._owners[ticket_id]
            return None
        return owner[0]

    def _take(self, ticket_id: str, floor: int) -> Lease:
        epoch = max(self._epochs.get(ticket_id, 0), floor) + 1
        self._epochs[ticket_id] = epoch
        lease = Lease(ticket_id, self.node, epoch, taken=True)
        self._owners[ticket_id] = (lease.value, self.clock() + self._lease_s)
        return self._hold(lease)

    async def claim(self, ticket_id: str, floor: int = 0) -> Lease:
        value = self._live(ticket_id)
        if value is None:
            return self._take(ticket_id, floor)
        return self._hold(parse_lease(ticket_id, value))

    async def current(self, ticket_id: str) -> Lease | None:
        value = self._live(ticket_id)
        return None if value is None else parse_lease(ticket_id, value)

    async def take_over(self, stale: Lease, floor: int = 0) -> Lease | None:
        value = self._live(stale.ticket_id)
        if value is not None and value != stale.value:
            return None
        return self._take(stale.ticket_id, floor)

    async def leases_of(self, node: str) -> list[Lease]:
        leases = [parse_lease(t, v) for t in list(self._owners) if (v := self._live(t)) is not None]
        return [lease for lease in leases if lease.node == node]

    async def renew(self, lease: Lease) -> bool:
        if self._live(lease.ticket_id) != lease.value:
            return False
        self._owners[lease.ticket_id] = (lease.value, self.clock() + self._lease_s)
        return True

    async def release(self, lease: Lease) -> bool:
        self._held.pop(lease.ticket_id, None)
        if self._live(lease.ticket_id) != lease.value:
            return False
        del self._owners[lease.ticket_id]
        return True


# KEYS[1] = own:{t}, KEYS[2] = own:{t}:ep, KEYS[3] = owns:{node} (the tickets a node holds);
# ARGV = node, lease ms, floor, epoch key ttl ms, ticket id.
# Take the lease if free (epoch = max(counter, floor) + 1), else return the holder's value.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
redis.call('SADD', KEYS[3], ARGV[5])
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local value = ARGV[1] .. ':' .. epoch
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
"""
# Like _CLAIM, but also when the holder is still ARGV[6] (known dead): compare-and-set; the
# ticket moves from the dead node's set (KEYS[4]) to this one's.
_TAKE_OVER = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[6] then return {0, held} end
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('SREM', KEYS[4], ARGV[5])
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local value = ARGV[1] .. ':' .. epoch
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""

EPOCH_TTL_MS = 7 * 24 * 3600 * 1000
"""The epoch counter outlives any session; the store's epoch is the floor if it ever lapses."""


class RedisPlacement(_Renewing):
    """Leases in Redis, shared by every node (see the module docstring)."""

    def __init__(
        self,
        redis: Any,
        node: str,
        prefix: str = "",
        lease_ms: int = LEASE_MS,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        super().__init__(renew_seconds)
        self.node = node
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._claim = redis.register_script(_CLAIM)
        self._take_over = redis.register_script(_TAKE_OVER)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, ticket_id: str) -> list[str]:
        own = f"{self._prefix}own:{ticket_id}"
        return [own, f"{own}:ep", self._owns(self.node)]

    def _owns(self, node: str) -> str:
        return f"{self._prefix}owns:{node}"

    def _lease(self, ticket_id: str, reply: Any) -> Lease:
        taken, value = cast(list[Any], reply)
        text = value.decode() if isinstance(value, bytes) else str(value)
        lease = parse_lease(ticket_id, text)
        if taken:
            lease = Lease(ticket_id, lease.node, lease.epoch, taken=True)
        return self._hold(lease)

    async def claim(self, ticket_id: str, floor: int = 0) -> Lease:
        args = [self.node, self._lease_ms, floor, EPOCH_TTL_MS, ticket_id]
        return self._lease(ticket_id, await self._claim(keys=self._keys(ticket_id), args=args))

    async def current(self, ticket_id: str) -> Lease | None:
        value = await self._redis.get(self._keys(ticket_id)[0])
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return parse_lease(ticket_id, text)

    async def take_over(self, stale: Lease, floor: int = 0) -> Lease | None:
        args = [self.node, self._lease_ms, floor, EPOCH_TTL_MS, stale.ticket_id, stale.value]
        keys = [*self._keys(stale.ticket_id), self._owns(stale.node)]
        lease = self._lease(stale.ticket_id, await self._take_over(keys=keys, args=args))
        return lease if lease.taken else None

    async def leases_of(self, node: str) -> list[Lease]:
        owns = self._owns(node)
        found = []
        for raw in await self._redis.smembers(owns):
            ticket_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            lease = await self.current(ticket_id)
            if lease is None:
                # Lapsed and nobody took it since: still the dead node's session to adopt (a
                # lease shorter than a node record's life lapses before the node is seen
                # dead). ``take_over`` takes a free lease whatever the stale value.
                epoch = await self._redis.get(self._keys(ticket_id)[1])
                found.append(Lease(ticket_id, node, int(epoch or 0)))
            elif lease.node == node:
                found.append(lease)
            else:  # taken since: no longer this node's
                await self._redis.srem(owns, ticket_id)
        return found

    async def renew(self, lease: Lease) -> bool:
        keys = self._keys(lease.ticket_id)[:1]
        return bool(await self._renew(keys=keys, args=[lease.value, self._lease_ms]))

    async def release(self, lease: Lease) -> bool:
        self._held.pop(lease.ticket_id, None)
        keys = [self._keys(lease.ticket_id)[0], self._owns(lease.node)]
        return bool(await self._release(keys=keys, args=[lease.value, lease.ticket_id]))
