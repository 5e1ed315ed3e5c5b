"""The home-node lease: taken once, renewed by its holder only, moved with a larger epoch when it
lapses, released only by its holder. The same behaviour in memory (one node, an injected clock)
and in Redis (two nodes sharing one server, short leases so nothing sleeps long)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from signaling.live.placement import MemoryPlacement, RedisPlacement

SHORT_MS = 300


async def lapse() -> None:
    """Wait past a short lease (Redis expires keys on its own clock)."""
    await asyncio.sleep(SHORT_MS / 1000 + 0.2)


async def test_redis_lease_is_taken_once_and_renewed_by_its_holder(
    redis: aioredis.Redis, prefix: str
) -> None:
    one = RedisPlacement(redis, "n1", prefix, lease_ms=SHORT_MS)
    two = RedisPlacement(redis, "n2", prefix, lease_ms=SHORT_MS)
    first = await one.claim("tk_1")
    assert (first.node, first.epoch, first.taken) == ("n1", 1, True)
    seen = await two.claim("tk_1")
    assert (seen.node, seen.epoch, seen.taken) == ("n1", 1, False)
    assert await two.current("tk_1") == seen
    assert [lease.ticket_id for lease in one.held()] == ["tk_1"]
    assert two.held() == []
    # Renewing keeps it past its first expiry; a lease that is not yours cannot be renewed.
    for _ in range(3):
        await asyncio.sleep(SHORT_MS / 3000)
        assert await one.renew(first)
    assert not await two.renew(seen.__class__("tk_1", "n2", 1))
    assert (await two.claim("tk_1")).node == "n1"


async def test_redis_lease_moves_with_a_larger_epoch_when_it_lapses(
    redis: aioredis.Redis, prefix: str
) -> None:
    lost: list[str] = []
    one = RedisPlacement(redis, "n1", prefix, lease_ms=SHORT_MS)
    two = RedisPlacement(redis, "n2", prefix, lease_ms=SHORT_MS)

    async def on_lost(ticket_id: str) -> None:
        lost.append(ticket_id)

    one.on_lost(on_lost)
    stale = await one.claim("tk_2")
    await lapse()  # n1 froze: no renewal
    moved = await two.claim("tk_2")
    assert (moved.node, moved.epoch, moved.taken) == ("n2", 2, True)
    # The woken node's renewal is refused, its handlers run, and it cannot release n2's lease.
    assert await one.renew_all() == ["tk_2"]
    assert lost == ["tk_2"]
    assert one.held() == []
    assert not await one.release(stale)
    assert await one.current("tk_2") == moved.__class__("tk_2", "n2", 2)
    # The holder releases; the next claim takes it with the next epoch.
    assert await two.release(moved)
    assert await two.current("tk_2") is None
    again = await one.claim("tk_2")
    assert (again.node, again.epoch) == ("n1", 3)


async def test_redis_epoch_starts_above_the_stores(redis: aioredis.Redis, prefix: str) -> None:
    """If the epoch counter was lost (Redis restarted empty), the store's epoch is the floor."""
    one = RedisPlacement(redis, "n1", prefix, lease_ms=SHORT_MS)
    lease = await one.claim("tk_3", floor=7)
    assert lease.epoch == 8


async def test_redis_take_over_only_from_the_dead_holder(
    redis: aioredis.Redis, prefix: str
) -> None:
    one = RedisPlacement(redis, "n1", prefix)
    two = RedisPlacement(redis, "n2", prefix)
    three = RedisPlacement(redis, "n3", prefix)
    dead = await one.claim("tk_4")
    assert await three.leases_of("n1") == [dead]
    taken = await two.take_over(dead)
    assert taken is not None and (taken.node, taken.epoch) == ("n2", 2)
    # A second node that also saw n1 dead does not take n2's lease.
    assert await three.take_over(dead) is None
    assert (await three.current("tk_4")) == taken.__class__("tk_4", "n2", 2)
    # Each node's set of sessions follows: the dead node's is empty, the taker's has it.
    assert await three.leases_of("n1") == []
    assert await three.leases_of("n2") == [taken]
    assert await two.release(taken)
    assert await three.leases_of("n2") == []


async def test_redis_a_lapsed_lease_of_a_dead_node_is_still_its_to_adopt(
    redis: aioredis.Redis, prefix: str
) -> None:
    """A lease shorter than a node record's life lapses before its dead holder is noticed:
    the session is still listed as that node's, and taken over at the next epoch."""
    one = RedisPlacement(redis, "n1", prefix, lease_ms=SHORT_MS)
    two = RedisPlacement(redis, "n2", prefix)
    held = await one.claim("tk_6")
    await lapse()
    assert await two.current("tk_6") is None
    assert await two.leases_of("n1") == [held]
    taken = await two.take_over(held)
    assert taken is not None and (taken.node, taken.epoch) == ("n2", 2)
    assert await two.leases_of("n1") == []


async def test_redis_leases_renew_on_their_own_and_release_on_close(
    redis: aioredis.Redis, prefix: str
) -> None:
    one = RedisPlacement(redis, "n1", prefix, lease_ms=SHORT_MS, renew_seconds=SHORT_MS / 4000)
    one.start()
    try:
        await one.claim("tk_5")
        await lapse()
        await lapse()
        assert (await one.current("tk_5")) is not None
        await one.release_all()
        assert (await one.current("tk_5")) is None
    finally:
        await one.close()


async def test_memory_placement_expires_on_its_clock() -> None:
    now = [100.0]
    one = MemoryPlacement("solo", lease_ms=15_000, clock=lambda: now[0])
    lease = await one.claim("tk_m")
    assert (lease.epoch, lease.taken) == (1, True)
    assert (await one.claim("tk_m")).taken is False
    now[0] += 14
    assert await one.renew(lease)
    now[0] += 16
    assert not await one.renew(lease)
    assert await one.renew_all() == ["tk_m"]
    again = await one.claim("tk_m")
    assert (again.epoch, again.taken) == (2, True)
    assert not await one.release(lease)
    assert await one.release(again)


@pytest.mark.parametrize("epochs", [3])
async def test_memory_take_over_and_floor(epochs: int) -> None:
    one = MemoryPlacement("solo")
    lease = await one.claim("tk_f", floor=epochs)
    assert lease.epoch == epochs + 1
    assert (await one.take_over(lease)) is not None
