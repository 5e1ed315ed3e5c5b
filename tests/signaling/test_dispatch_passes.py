"""Push routing's passes (``Router.dispatch``): calls made in one turn of the event loop share
one pass, each caller's change is routed by the time its call returns, and a pass while no
agent could take a session reads none of the waiting sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.routing import ENTRY, Agents
from signaling.desk.offers import Router, RoutingConfig
from signaling.live import MemoryLiveState
from signaling.protocol import Message


class CountingLive(MemoryLiveState):
    def __init__(self) -> None:
        super().__init__()
        self.passes = 0
        self.routing_reads = 0

    async def acquire(self, name: str, seconds: float) -> str | None:
        self.passes += 1
        return await super().acquire(name, seconds)

    async def routing_of(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        self.routing_reads += sum(1 for key in keys if key.startswith("tk"))
        return await super().routing_of(keys)


async def router_with(agents: int, waiting: int) -> tuple[Router, CountingLive, list[str]]:
    live = CountingLive()
    offered: list[str] = []

    async def emit(event: Message, rooms: list[str]) -> None:
        if event.wire().get("type") == "session.offered":
            offered.extend(rooms)

    router = Router(
        live,
        Agents(agents),  # type: ignore[arg-type]
        emit,
        RoutingConfig(capacity=1, wrap_up_seconds=0),
        time.time,
    )
    for i in range(agents):
        await live.agent_online(f"a{i}", f"s{i}")
        await live.choose_status(f"a{i}", "available", None, time.time())
    for i in range(waiting):
        await enqueue(live, f"tk{i}")
    return router, live, offered


async def enqueue(live: MemoryLiveState, ticket_id: str) -> None:
    now = time.time()
    await live.enqueue(ticket_id, now, {"ticketId": ticket_id, **ENTRY})
    await live.set_routing(ticket_id, {"queue": "s:q", "skills": [], "priority": 0, "since": now})


async def test_calls_in_one_turn_share_one_pass_and_each_change_is_routed_on_return() -> None:
    router, live, offered = await router_with(agents=5, waiting=0)
    for i in range(5):
        await enqueue(live, f"tk{i}")
    made = await asyncio.gather(*(router.dispatch() for _ in range(5)))
    # One pass for the five calls, and it offered all five sessions (one per agent).
    assert live.passes == 1
    assert made == [5] * 5
    assert sorted(offered) == [f"agent:a{i}" for i in range(5)]
    assert len(await live.offers()) == 5
    # A later call gets a pass of its own.
    await router.dispatch()
    assert live.passes == 2


async def test_a_call_during_a_pass_gets_the_next_pass() -> None:
    """A pass that has read the queue does not route what came after: a call made then waits
    for the next pass, which starts once the first has ended."""
    router, live, offered = await router_with(agents=2, waiting=1)
    inside, gate = asyncio.Event(), asyncio.Event()
    emit = router._emit

    async def held_emit(event: Message, rooms: list[str]) -> None:
        inside.set()
        await gate.wait()  # the first pass stops here, after its reads
        await emit(event, rooms)

    router._emit = held_emit
    first = asyncio.ensure_future(router.dispatch())
    await inside.wait()
    await enqueue(live, "tk_late")
    second = asyncio.ensure_future(router.dispatch())
    await asyncio.sleep(0)
    assert live.passes == 1  # the second pass waits for the first
    gate.set()
    assert await first == 1
    assert await second == 1  # the late ticket went to the other agent, in a pass of its own
    assert live.passes == 2
    assert sorted(offered) == ["agent:a0", "agent:a1"]


async def test_a_pass_while_no_agent_has_room_reads_no_waiting_session() -> None:
    router, live, offered = await router_with(agents=3, waiting=200)
    assert await router.dispatch() == 3  # each agent rings for one
    for offer in await live.offers():
        await live.join(offer.ticket_id, offer.agent_id)  # accepted: at capacity (1)
        await live.take_offer(offer.ticket_id)
        await live.dequeue(offer.ticket_id)
    live.routing_reads = 0
    assert await router.dispatch() == 0
    assert live.routing_reads == 0
    # One of them frees a slot: the next pass reads the queue and offers the oldest waiting.
    await live.leave(next(iter(await live.sessions_of("a0"))), "a0")
    assert await router.dispatch() == 1
    assert live.routing_reads > 0
    assert offered[-1] == "agent:a0"


async def test_a_ticket_whose_routing_changed_is_routed_by_what_it_is_now() -> None:
    """What a pass made of a waiting ticket is kept for the next only while its routing facts
    are the same: a ticket raised to a higher priority (a transfer back to the queue, say)
    is served first by the next pass."""
    router, live, _offered = await router_with(agents=1, waiting=2)
    assert await router.dispatch() == 1
    (offer,) = await live.offers()
    assert offer.ticket_id == "tk0"  # the older one, at the same priority
    await live.take_offer("tk0")
    info = (await live.routing_of(["tk1"]))["tk1"]
    await live.set_routing("tk1", info | {"priority": 10})
    assert await router.dispatch() == 1
    (offer,) = await live.offers()
    assert offer.ticket_id == "tk1"
    await live.take_offer("tk1")
    # Changed in place too (the same dict, its priority lowered again).
    info = (await live.routing_of(["tk1"]))["tk1"]
    info["priority"] = 0
    assert await router.dispatch() == 1
    (offer,) = await live.offers()
    assert offer.ticket_id == "tk0"
