"""The ``LiveState`` contract, run against both implementations: in memory (one node) and in
Redis (several nodes; the shared redis-server, under a key prefix of this test's own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from signaling.live import LiveState, MemoryLiveState, OpenTicketLimits, RingingOffer
from signaling.live.redis_state import RedisLiveState
from tests.support import REDIS_URL, redis_or_skip, unique_prefix


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with redis_or_skip() as client:
        yield client


@pytest.fixture(params=["memory", "redis"])
async def live(request: pytest.FixtureRequest) -> AsyncIterator[LiveState]:
    if request.param == "memory":
        yield MemoryLiveState()
        return
    async with redis_or_skip() as client:
        state = RedisLiveState(client, prefix=unique_prefix(), node="n1")
        yield state
        await state.close()


def entry(ticket_id: str) -> dict[str, Any]:
    return {"ticketId": ticket_id}


async def test_queue_keeps_waiting_order_and_pages(live: LiveState) -> None:
    assert await live.enqueue("t2", 2.0, entry("t2")) == 1
    assert await live.enqueue("t3", 3.0, entry("t3")) == 2
    # One that arrives out of order takes its place by creation time.
    assert await live.enqueue("t1", 1.0, entry("t1")) == 1
    assert await live.queued_ids() == ["t1", "t2", "t3"]
    assert await live.queue() == [entry("t1"), entry("t2"), entry("t3")]
    assert await live.position("t3") == 3
    assert await live.position("nope") is None
    assert await live.queue_page(2, None) == ([entry("t1"), entry("t2")], 3)
    assert await live.queue_page(2, "t2") == ([entry("t3")], 3)
    assert await live.queue_page(5, "unknown") == ([entry("t1"), entry("t2"), entry("t3")], 3)


async def test_queue_entries_are_those_still_waiting(live: LiveState) -> None:
    """What a routing pass reads of the tickets it offers: their entries, and none for a
    ticket gone from the queue meanwhile or never in it."""
    await live.enqueue("t1", 1.0, entry("t1"))
    await live.enqueue("t2", 2.0, entry("t2"))
    await live.dequeue("t1")
    assert await live.queue_entries(["t1", "t2", "nope"]) == {"t2": entry("t2")}
    assert await live.queue_entries([]) == {}


async def test_dequeue_has_one_winner(live: LiveState) -> None:
    await live.enqueue("t1", 1.0, entry("t1"))
    results = await asyncio.gather(*(live.dequeue("t1") for _ in range(20)))
    assert results.count(True) == 1
    assert await live.queued_ids() == []
    assert await live.position("t1") is None


async def test_a_queue_entry_is_patched_once_and_only_while_waiting(live: LiveState) -> None:
    await live.enqueue("t1", 1.0, entry("t1"))

    def first(text: str) -> Any:
        def patch(held: dict[str, Any]) -> dict[str, Any] | None:
            return None if "firstMessage" in held else {**held, "firstMessage": text}

        return patch

    # Patches at once (two nodes' first messages): each sees the other's, one lands.
    results = await asyncio.gather(
        *(live.patch_queue_entry("t1", first(f"m{n}")) for n in range(10))
    )
    landed = [r for r in results if r is not None]
    assert len(landed) == 1
    assert await live.queue() == [landed[0]]
    assert await live.patch_queue_entry("t1", first("again")) is None
    await live.dequeue("t1")
    assert await live.patch_queue_entry("t1", first("gone")) is None
    assert await live.queue() == []


async def test_members_and_sessions(live: LiveState) -> None:
    await live.enqueue("t1", 1.0, entry("t1"))
    await live.join("t1", "alice")
    await live.join("t1", "sam")
    await live.join("t2", "alice")
    assert await live.members("t1") == {"alice", "sam"}
    assert await live.sessions_of("alice") == {"t1", "t2"}
    await live.leave("t1", "sam")
    assert await live.members("t1") == {"alice"}
    assert await live.sessions_of("sam") == set()
    await live.drop_session("t1")
    assert await live.members("t1") == set()
    assert await live.sessions_of("alice") == {"t2"}
    assert await live.queued_ids() == []


async def test_presence_counts_sockets(live: LiveState) -> None:
    await live.agent_online("alice", "s1")
    await live.agent_online("alice", "s2")
    await live.agent_online("bob", "s3")
    assert await live.online_agents() == {"alice", "bob"}
    assert await live.agent_offline("alice", "s1") == 1
    assert await live.agent_offline("alice", "s2") == 0
    assert await live.online_agents() == {"bob"}


async def test_customer_sockets_per_address(live: LiveState) -> None:
    assert await live.add_customer_socket("10.0.0.1", "a", 2)
    assert await live.add_customer_socket("10.0.0.1", "b", 2)
    assert not await live.add_customer_socket("10.0.0.1", "c", 2)
    assert await live.add_customer_socket("10.0.0.2", "d", 2)
    await live.drop_customer_socket("10.0.0.1", "a")
    assert await live.add_customer_socket("10.0.0.1", "c", 2)


async def test_open_ticket_holds(live: LiveState) -> None:
    limits = OpenTicketLimits(per_address=2, per_customer=1)
    assert await live.hold_ticket("t1", "10.0.0.1", "c1", limits) is None
    assert await live.hold_ticket("t2", "10.0.0.1", "c1", limits) == "customer"
    assert await live.hold_ticket("t2", "10.0.0.1", None, limits) is None
    assert await live.hold_ticket("t3", "10.0.0.1", "c2", limits) == "address"
    await live.release_ticket("t2")
    await live.release_ticket("t2")  # twice is harmless
    assert await live.hold_ticket("t3", "10.0.0.1", "c2", limits) is None
    # Dropping a session releases its hold.
    await live.drop_session("t1")
    assert await live.hold_ticket("t4", "10.0.0.1", "c1", limits) is None


async def test_upload_counter(live: LiveState) -> None:
    assert await live.uploads_arriving("t1") == 0
    assert await live.begin_upload("t1", 2)
    assert await live.begin_upload("t1", 2)
    assert not await live.begin_upload("t1", 2)
    assert await live.uploads_arriving("t1") == 2  # the refused one is not counted
    await live.end_upload("t1")
    assert await live.uploads_arriving("t1") == 1
    assert await live.begin_upload("t1", 2)
    await live.end_upload("t1")
    await live.end_upload("t1")
    assert await live.uploads_arriving("t1") == 0
    assert await live.begin_upload("t1", 1)


# ---------------------------------------------------------------------- Redis across nodes


async def test_dequeue_race_across_nodes_has_one_winner(redis: Redis) -> None:
    prefix = unique_prefix()
    nodes = [
        RedisLiveState(Redis.from_url(REDIS_URL), prefix=prefix, node=f"n{i}") for i in range(4)
    ]
    try:
        for round_ in range(25):
            ticket = f"t{round_}"
            await nodes[0].enqueue(ticket, float(round_), entry(ticket))
            results = await asyncio.gather(
                *(node.dequeue(ticket) for node in nodes for _ in range(5))
            )
            assert results.count(True) == 1, ticket
        assert await nodes[1].queued_ids() == []
    finally:
        for node in nodes:
            await node.close()
            await node.redis.aclose()


async def test_a_dead_nodes_sockets_expire(redis: Redis) -> None:
    clock = Clock()
    prefix = unique_prefix()
    dead = RedisLiveState(redis, prefix=prefix, node="dead", clock=clock, presence_ttl=15)
    alive = RedisLiveState(redis, prefix=prefix, node="alive", clock=clock, presence_ttl=15)
    await dead.agent_online("alice", "s1")
    await alive.agent_online("bob", "s2")
    assert await dead.add_customer_socket("10.0.0.1", "c1", 1)
    assert await alive.online_agents() == {"alice", "bob"}
    assert not await alive.add_customer_socket("10.0.0.1", "c2", 1)
    # The dead node stops refreshing; the live one goes on.
    clock.now += 10
    await alive.refresh_presence()
    clock.now += 10
    assert await alive.online_agents() == {"bob"}
    assert await alive.add_customer_socket("10.0.0.1", "c2", 1)
    # Alice's socket on the dead node no longer counts when she connects elsewhere.
    await alive.agent_online("alice", "s3")
    assert await alive.agent_offline("alice", "s3") == 0
    await alive.close()


async def test_the_same_facts_seen_from_two_nodes(redis: Redis) -> None:
    prefix = unique_prefix()
    one = RedisLiveState(redis, prefix=prefix, node="n1")
    two = RedisLiveState(redis, prefix=prefix, node="n2")
    await one.enqueue("t1", 1.0, entry("t1"))
    await one.join("t0", "alice")
    await one.agent_online("alice", "s1")
    await two.agent_online("alice", "s1")  # the same sid on another node is another socket
    assert await two.queued_ids() == ["t1"]
    assert await two.members("t0") == {"alice"}
    assert await one.agent_offline("alice", "s1") == 1
    assert await two.online_agents() == {"alice"}
    await one.close()
    await two.close()


# -- routing: status, offers, declines, the lock -------------------------------------------------


async def test_an_agents_status_is_chosen_timed_and_announced_once(live: LiveState) -> None:
    fresh = await live.agent_presence("a1")
    assert (fresh.chosen, fresh.reason, fresh.wrap_until, fresh.told) == ("available", None, 0, "")
    await live.choose_status("a1", "away", "lunch", 10.0)
    await live.start_wrap_up("a1", 50.0, 20.0)
    presence = await live.agent_presence("a1")
    assert (presence.chosen, presence.reason) == ("away", "lunch")
    assert (presence.wrap_until, presence.idle_since) == (50.0, 20.0)
    await live.choose_status("a1", "available", None, 30.0)
    back = await live.agent_presence("a1")
    assert (back.chosen, back.reason, back.idle_since) == ("available", None, 30.0)
    # Each change is announced by one caller only, however many see it.
    told = await asyncio.gather(*(live.tell_status("a1", "away") for _ in range(5)))
    assert sorted(told) == [False] * 4 + [True]
    assert await live.tell_status("a1", "away") is False
    assert await live.tell_status("a1", "available") is True
    assert (await live.agent_presence("a2")).chosen == "available"


async def test_many_agents_presence_and_sessions_read_at_once(live: LiveState) -> None:
    await live.choose_status("a1", "away", "lunch", 10.0)
    await live.join("t1", "a2")
    await live.join("t2", "a2")
    facts = await live.agents_routing(["a1", "a2", "a3"])
    assert {agent: (p.chosen, p.reason, s) for agent, (p, s) in facts.items()} == {
        "a1": ("away", "lunch", set()),
        "a2": ("available", None, {"t1", "t2"}),
        "a3": ("available", None, set()),
    }
    for agent_id in ("a1", "a2", "a3"):
        assert facts[agent_id] == (
            await live.agent_presence(agent_id),
            await live.sessions_of(agent_id),
        )
    assert await live.agents_routing([]) == {}


async def test_a_ticket_rings_for_one_agent_and_one_caller_ends_the_offer(live: LiveState) -> None:

    assert await live.put_offer(RingingOffer("t1", "a1", 120.5))
    assert not await live.put_offer(RingingOffer("t1", "a2", 130.0))
    assert await live.put_offer(RingingOffer("t2", "a2", 130.0))
    assert sorted(await live.offers(), key=lambda o: o.ticket_id) == [
        RingingOffer("t1", "a1", 120.5),
        RingingOffer("t2", "a2", 130.0),
    ]
    assert await live.take_offer("t1", "a2") is None  # not ringing for a2
    taken = await asyncio.gather(*(live.take_offer("t1", "a1") for _ in range(4)))
    assert [t for t in taken if t is not None] == [RingingOffer("t1", "a1", 120.5)]
    assert await live.take_offer("t2") == RingingOffer("t2", "a2", 130.0)
    assert await live.offers() == []


async def test_declines_and_routing_info_go_with_the_session(live: LiveState) -> None:
    from signaling.live import RingingOffer

    await live.enqueue("t1", 1.0, entry("t1"))
    await live.add_declined("t1", "a1")
    await live.add_declined("t1", "a2")
    await live.set_routing("t1", {"queue": "q", "skills": ["fr"], "since": 1.0})
    await live.put_offer(RingingOffer("t1", "a3", 5.0))
    assert await live.declined(["t1", "t2"]) == {"t1": {"a1", "a2"}}
    assert await live.routing_of(["t1", "t2"]) == {
        "t1": {"queue": "q", "skills": ["fr"], "since": 1.0}
    }
    await live.drop_session("t1")
    assert await live.declined(["t1"]) == {}
    assert await live.routing_of(["t1"]) == {}
    assert await live.offers() == []


async def test_one_holder_of_a_lock_at_a_time(live: LiveState) -> None:
    tokens = await asyncio.gather(*(live.acquire("routing", 5.0) for _ in range(5)))
    held = [t for t in tokens if t is not None]
    assert len(held) == 1
    await live.release("routing", "not-the-token")
    assert await live.acquire("routing", 5.0) is None
    await live.release("routing", held[0])
    again = await live.acquire("routing", 0.05)
    assert again is not None
    await asyncio.sleep(0.1)  # a holder that died: the lock lapses
    assert await live.acquire("routing", 5.0) is not None


async def test_an_offer_fenced_by_a_lock_is_made_only_while_that_lock_is_held(
    live: LiveState,
) -> None:
    token = await live.acquire("routing", 0.05)
    assert token is not None
    assert await live.put_offer(RingingOffer("t1", "a1", 10.0), ("routing", token))
    assert not await live.put_offer(RingingOffer("t2", "a2", 10.0), ("routing", "other"))
    await asyncio.sleep(0.1)  # the pass stalled past its lock, which lapsed
    newer = await live.acquire("routing", 5.0)
    assert newer is not None
    assert not await live.put_offer(RingingOffer("t2", "a2", 10.0), ("routing", token))
    assert await live.put_offer(RingingOffer("t2", "a2", 10.0), ("routing", newer))
    await live.release("routing", newer)
    assert not await live.put_offer(RingingOffer("t3", "a3", 10.0), ("routing", newer))
    assert await live.put_offer(RingingOffer("t3", "a3", 10.0))  # unfenced (a transfer's)
    assert {o.ticket_id for o in await live.offers()} == {"t1", "t2", "t3"}


async def test_recent_handle_times_per_queue_newest_first_and_bounded(live: LiveState) -> None:
    for seconds in (30.0, 90.5, 120.0):
        await live.add_handle_time("site_1/billing", seconds, keep=2)
    await live.add_handle_time("site_1/general", 10.0, keep=2)
    assert await live.handle_times("site_1/billing") == [120.0, 90.5]
    assert await live.handle_times("site_1/general") == [10.0]
    assert await live.handle_times("site_1/none") == []
