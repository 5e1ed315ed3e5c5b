"""The offer loop across nodes: two routers (two nodes) over one live state in Redis, with an
injected clock. One decides at a time; an offer outlives the node that made it (its expiry is
in live state), and the other node re-offers it when it rings out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.routing import ENTRY
from signaling.auth.accounts import add_agent, add_site
from signaling.desk.offers import Router, RoutingConfig, queue_of
from signaling.live import LiveState, MemoryLiveState
from signaling.live.redis_state import RedisLiveState
from signaling.protocol import Message
from signaling.store import TicketRecord, TicketStore, open_store
from tests.support import redis_or_skip, unique_prefix


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Sent:
    """What a node's router sent, and to which rooms."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object], list[str]]] = []

    async def __call__(self, event: Message, rooms: list[str]) -> None:
        self.events.append((type(event).model_fields["type"].default, event.wire(), rooms))

    def of(self, name: str) -> list[tuple[dict[str, object], list[str]]]:
        return [(data, rooms) for event, data, rooms in self.events if event == name]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TicketStore]:
    opened = await open_store(None, tmp_path / "tandem.sqlite3")
    yield opened
    await opened.close()


async def two_nodes(kind: str) -> AsyncIterator[tuple[LiveState, LiveState]]:
    if kind == "memory":
        shared = MemoryLiveState()
        yield shared, shared
        return
    async with redis_or_skip() as client:
        prefix = unique_prefix()
        one = RedisLiveState(client, prefix=prefix, node="n1")
        two = RedisLiveState(client, prefix=prefix, node="n2")
        yield one, two
        await one.close()
        await two.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_an_offer_outlives_its_node_and_rings_on_elsewhere(
    kind: str, store: TicketStore
) -> None:
    site = await add_site(store, "Shop", ["http://shop.test"])
    ann = await add_agent(store, "ann@t.test", "Ann", "pw-pw-pw-pw", "agent", [])
    ben = await add_agent(store, "ben@t.test", "Ben", "pw-pw-pw-pw", "agent", [])
    clock = Clock()
    config = RoutingConfig(offer_seconds=20.0, wrap_up_seconds=0)
    async for live_one, live_two in two_nodes(kind):
        sent_one, sent_two = Sent(), Sent()
        node_one = Router(live_one, store, sent_one, config, clock)
        node_two = Router(live_two, store, sent_two, config, clock)
        await node_one.connected(ann.id, "s-ann")  # Ann's socket is on node one
        await node_two.connected(ben.id, "s-ben")  # Ben's on node two
        ticket = TicketRecord(
            "tk_1", site.id, "queued", clock.now, None, {"id": "c1"}, {"url": "http://x"}, (), None
        )
        await store.create_ticket(ticket)
        entry = {"ticketId": "tk_1", **ENTRY}
        await live_one.enqueue("tk_1", clock.now, entry)
        # Both nodes route at once: one offer is made, for one agent.
        made = await asyncio.gather(
            node_one.queued("tk_1", site, queue_of(site, {}, False), clock.now),
            node_two.dispatch(),
            node_two.dispatch(),
        )
        offers = await live_two.offers()
        assert len(offers) == 1, (made, offers)
        first = offers[0].agent_id
        offered = sent_one.of("session.offered") + sent_two.of("session.offered")
        assert [rooms for _, rooms in offered] == [[f"agent:{first}"]]
        # The node that decided is gone; node two's tick before the expiry changes nothing...
        deciding = node_one if sent_one.of("session.offered") else node_two
        other = node_two if deciding is node_one else node_one
        sent_other = sent_two if other is node_two else sent_one
        clock.now += 19.0
        await other.tick()
        assert await live_two.offers() == offers
        # ...after it, the offer goes to the next agent, and the silent one is Away.
        clock.now += 2.0
        await other.tick()
        (again,) = await live_two.offers()
        assert again.agent_id != first and again.expires_at == clock.now + 20.0
        assert [rooms for _, rooms in sent_other.of("session.offered")][-1] == [
            f"agent:{again.agent_id}"
        ]
        presence = await live_two.agent_presence(first)
        assert (presence.chosen, presence.reason) == ("away", "missed offer")
        away = [d for d, _ in sent_other.of("agent.status") if d["status"] == "away"]
        assert [d["agent"] for d in away] == [
            {"id": first, "name": "Ann" if first == ann.id else "Ben"}
        ]
