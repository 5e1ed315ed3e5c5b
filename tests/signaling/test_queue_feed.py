"""Queue fan-out (issue 10, item 4): queue changes coalesced per tick to v2 agents, positions
on a tick to customers, an accept O(1) in queue length, the agents' queue view paged."""

from __future__ import annotations

import asyncio
from typing import Any

from signaling import keys
from signaling.desk.queue_feed import EXACT_POSITIONS, QueueFeed, worth_telling
from signaling.protocol import Message
from tests.support import CONTEXT, Client, Running


async def v2_agent(server: Running, who: str = "alice") -> Client:
    client = Client()
    await client.connect(
        server.base_url, {"v": 2, "role": "agent", "token": await server.token(who)}
    )
    server.clients.append(client)
    return client


async def waiting_customers(server: Running, count: int) -> list[tuple[Client, str]]:
    out = []
    for _ in range(count):
        customer = await server.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        out.append((customer, ack["ticket"]["id"]))
    return out


async def test_v2_agents_get_changes_coalesced(server: Running) -> None:
    await server.app[keys.desk].queue_feed.close()  # its ticks are driven by hand here
    agent = await v2_agent(server)
    v1 = await server.agent("bob")
    customers = await waiting_customers(server, 20)
    feed = server.app[keys.desk].queue_feed
    for _ in range(3):  # the requests above arrived within three ticks
        await feed.flush()
    async with asyncio.timeout(5):
        while sum(len(e["added"]) for e in agent.events["queue.changed"]) < 20:
            await agent.wait_for("queue.changed")
            await asyncio.sleep(0.05)
    changes = agent.events["queue.changed"]
    assert len(changes) < 20  # fewer events than changes
    assert {e["ticketId"] for c in changes for e in c["added"]} == {t for _, t in customers}
    assert changes[-1]["waiting"] == 20
    assert "queue.added" not in agent.events  # v2 agents get no per-change events
    await v1.wait_for("queue.added", lambda e: e["entry"]["ticketId"] == customers[-1][1])

    ticket = customers[0][1]
    assert (await agent.call("session.accept", {"ticketId": ticket}))["ok"]
    await server.app[keys.desk].queue_feed.flush()
    removed = await agent.wait_for(
        "queue.changed", lambda e: any(r["ticketId"] == ticket for r in e["removed"])
    )
    assert removed["waiting"] == 19


class Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    async def emit(self, event: Message, rooms: list[str]) -> None:
        self.sent.append((type(event).model_fields["type"].default, rooms))


async def test_accept_cost_does_not_grow_with_the_queue(server: Running) -> None:
    desk = server.app[keys.desk]
    await desk.queue_feed.close()  # its ticks are driven by hand here
    alice = await server.agent("alice")
    counts = []
    for waiting in (5, 60):
        customers = await waiting_customers(server, waiting)
        await desk.queue_feed.flush()
        await desk.queue_feed.announce_positions()
        recording = Recording()
        real = desk.queue_feed
        desk.queue_feed = QueueFeed(recording.emit, desk.live)
        try:
            assert (await alice.call("session.accept", {"ticketId": customers[0][1]}))["ok"]
        finally:
            desk.queue_feed = real
        counts.append(len(recording.sent))
        for customer, _ in customers[1:]:
            await customer.call("session.end", {})
    assert counts[0] == counts[1] <= 2  # the v1 event now, the coalesced one at the next tick


async def test_positions_follow_on_the_tick(server: Running) -> None:
    desk = server.app[keys.desk]
    await desk.queue_feed.close()  # its ticks are driven by hand here
    alice = await server.agent("alice")
    customers = await waiting_customers(server, 6)
    assert (await alice.call("session.accept", {"ticketId": customers[0][1]}))["ok"]
    assert (await alice.call("session.accept", {"ticketId": customers[3][1]}))["ok"]
    # Customers 1, 2, 4 and 5 all moved up; nobody was told anything at the accepts.
    assert all("queue.position" not in c.events for c, _ in customers)
    assert await desk.queue_feed.announce_positions() == 4
    expected = {customers[1][1]: 1, customers[2][1]: 2, customers[4][1]: 3, customers[5][1]: 4}
    for customer, ticket in customers:
        if ticket in expected:
            told: dict[str, Any] = await customer.wait_for("queue.position", timeout=5)
            assert (told["ticketId"], told["position"]) == (ticket, expected[ticket])
    assert await desk.queue_feed.announce_positions() == 0  # nothing changed since


async def test_queue_list_is_paged(server: Running) -> None:
    agent = await v2_agent(server)
    tickets = [t for _, t in await waiting_customers(server, 7)]
    first = await agent.call("queue.list", {"limit": 3})
    assert [e["ticketId"] for e in first["entries"]] == tickets[:3] and first["waiting"] == 7
    second = await agent.call("queue.list", {"limit": 3, "after": tickets[2]})
    assert [e["ticketId"] for e in second["entries"]] == tickets[3:6]
    whole = await agent.call("queue.list")
    assert [e["ticketId"] for e in whole["entries"]] == tickets


async def test_a_burst_of_changes_goes_in_bounded_events() -> None:
    """Thousands of tickets added within one tick reach the agents in several queue.changed of
    at most MAX_CHANGES_PER_EVENT entries each (one frame of them all grew past what a
    client's websocket accepts), together holding every change once."""
    from signaling.desk.queue_feed import MAX_CHANGES_PER_EVENT
    from signaling.desk.rooms import QUEUE_ROOM
    from signaling.desk.useragent import parse_user_agent
    from signaling.live import MemoryLiveState
    from signaling.protocol import QueueEntry, StoredContext

    sent: list[tuple[Message, list[str]]] = []

    async def emit(event: Message, rooms: list[str]) -> None:
        sent.append((event, rooms))

    live = MemoryLiveState()
    feed = QueueFeed(emit, live)
    context = StoredContext.model_validate(
        {**CONTEXT, "device": parse_user_agent(str(CONTEXT["userAgent"])).wire()}
    )
    count = 2 * MAX_CHANGES_PER_EVENT + 7
    for index in range(count):
        entry = QueueEntry(
            ticket_id=f"tk_{index}",
            site="Shop",
            customer={"id": f"c_{index}", "verified": False},
            context=context,
            created_at="2026-01-01T00:00:00.000Z",
        )
        await live.enqueue(entry.ticket_id, float(index), entry.wire())
        await feed.added(entry)
    for index in range(5):
        await live.dequeue(f"tk_{index}")
    await feed.flush()
    changes = [event.wire() for event, rooms in sent if rooms == [QUEUE_ROOM]]
    assert [len(c["added"]) for c in changes] == [MAX_CHANGES_PER_EVENT, MAX_CHANGES_PER_EVENT, 7]
    assert [e["ticketId"] for c in changes for e in c["added"]] == [f"tk_{i}" for i in range(count)]
    assert {c["waiting"] for c in changes} == {count - 5}


async def test_on_several_nodes_each_customer_hears_its_position_once_from_its_own_node() -> None:
    """Two nodes over one queue, a customer on each: the dequeue made on one node moves the
    other node's customer, who hears it once, from the node holding their socket (every node
    working out and announcing every position through the bus told each customer once per
    node)."""
    from signaling.desk.rooms import customer_room
    from signaling.live import MemoryLiveState

    live = MemoryLiveState()
    sent: dict[str, list[tuple[str, int]]] = {"one": [], "two": []}
    sockets = {"one": {customer_room("tk_a")}, "two": {customer_room("tk_b")}}

    def node(name: str) -> QueueFeed:
        async def everywhere(event: Message, rooms: list[str]) -> None:
            raise AssertionError(f"positions go to this node's sockets only, not to {rooms}")

        async def here(event: Message, rooms: list[str]) -> None:
            wire = event.wire()
            assert set(rooms) <= sockets[name]
            sent[name].append((str(wire["ticketId"]), int(wire["position"])))

        return QueueFeed(everywhere, live, here=(here, lambda room: room in sockets[name]))

    one, two = node("one"), node("two")
    for index, ticket_id in enumerate(("tk_0", "tk_a", "tk_b")):
        await live.enqueue(ticket_id, float(index), {"ticketId": ticket_id})
    assert await one.announce_positions() == 1 and await two.announce_positions() == 1
    assert sent == {"one": [("tk_a", 2)], "two": [("tk_b", 3)]}
    await live.dequeue("tk_0")  # accepted on node one: node two's customer moves up too
    await one.announce_positions()
    await two.announce_positions()
    await one.announce_positions()
    await two.announce_positions()
    assert sent == {"one": [("tk_a", 2), ("tk_a", 1)], "two": [("tk_b", 3), ("tk_b", 2)]}


async def test_a_first_message_before_the_tick_goes_out_as_added(server: Running) -> None:
    """A customer who asks and writes within one tick: agents hear of the ticket once, with its
    first message, not as an entry added and then updated."""
    desk = server.app[keys.desk]
    await desk.queue_feed.close()  # its ticks are driven by hand here
    agent = await v2_agent(server)
    ((customer, ticket_id),) = await waiting_customers(server, 1)
    assert (await customer.call("chat.send", {"clientMsgId": "c1", "text": "Hi there"}))["ok"]
    await desk.queue_feed.flush()
    changed = await agent.wait_for("queue.changed", lambda e: bool(e["added"]))
    assert [(e["ticketId"], e["firstMessage"]) for e in changed["added"]] == [
        (ticket_id, "Hi there")
    ]
    assert "updated" not in changed


async def test_views_count_by_skills_and_read_routing_once_per_ticket() -> None:
    """Each skill view hears the waiting count of the tickets it can serve; a flush reads the
    routing only of tickets it has not seen (the whole queue's, every 50 ms, made an accept's
    cost grow with the queue), and forgets what it kept with each position tick, so a change
    made on another node shows within a second."""
    from signaling.desk.rooms import QUEUE_ROOM, queue_view_room
    from signaling.desk.useragent import parse_user_agent
    from signaling.live import MemoryLiveState
    from signaling.protocol import QueueEntry, StoredContext

    sent: list[tuple[Message, list[str]]] = []

    async def emit(event: Message, rooms: list[str]) -> None:
        sent.append((event, rooms))

    class CountingLive(MemoryLiveState):
        asked: list[str] = []

        async def routing_of(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
            self.asked.extend(ticket_ids)
            return await super().routing_of(ticket_ids)

    live = CountingLive()
    feed = QueueFeed(emit, live)
    billing, french = frozenset({"billing"}), frozenset({"billing", "fr"})

    async def views() -> set[frozenset[str]]:
        return {frozenset(), billing, french}

    feed.views = views
    context = StoredContext.model_validate(
        {**CONTEXT, "device": parse_user_agent(str(CONTEXT["userAgent"])).wire()}
    )
    needs = [frozenset(), billing, french, billing, frozenset()]
    for index, skills in enumerate(needs):
        ticket_id = f"tk_{index}"
        entry = QueueEntry(
            ticket_id=ticket_id,
            site="Shop",
            customer={"id": f"c_{index}", "verified": False},
            context=context,
            created_at="2026-01-01T00:00:00.000Z",
        )
        await live.enqueue(ticket_id, float(index), entry.wire())
        await live.set_routing(ticket_id, {"skills": sorted(skills)})
        await feed.added(entry)

    def counts() -> dict[str, int]:
        out = {}
        for event, rooms in sent:
            wire = event.wire()
            if wire["type"] == "queue.changed":  # not the v1 room's queue.added
                out[rooms[0]] = wire["waiting"]
        return out

    await feed.flush()
    assert live.asked.count("tk_0") == 1
    assert counts() == {
        QUEUE_ROOM: 5,
        queue_view_room(frozenset()): 2,
        queue_view_room(billing): 4,
        queue_view_room(french): 5,
    }

    # A second change: routing is read for the new ticket only.
    live.asked.clear()
    await live.dequeue("tk_1")
    await feed.removed("tk_1", "accepted")
    await feed.flush()
    assert live.asked == []
    assert counts()[queue_view_room(billing)] == 3

    # Another node re-routes a waiting ticket (this node hears nothing): after the next
    # position tick its new skills count.
    await live.set_routing("tk_0", {"skills": ["fr"]})
    await feed.announce_positions()
    await live.dequeue("tk_4")
    await feed.removed("tk_4", "accepted")
    await feed.flush()
    assert counts()[queue_view_room(frozenset())] == 0
    assert counts()[queue_view_room(french)] == 3


async def test_a_change_schedules_one_flush_and_a_quiet_queue_none() -> None:
    """A quiet queue leaves no flush timer running (a 50 ms loop woke an idle node 20 times a
    second); the first change schedules one flush a tick later, which carries every change of
    that tick, and a change after it schedules the next."""
    from signaling.desk.useragent import parse_user_agent
    from signaling.live import MemoryLiveState
    from signaling.protocol import QueueEntry, StoredContext

    sent: list[dict[str, Any]] = []
    flushed = asyncio.Event()

    async def emit(event: Message, rooms: list[str]) -> None:
        wire = event.wire()
        if wire["type"] == "queue.changed":
            sent.append(wire)
            flushed.set()

    live = MemoryLiveState()
    feed = QueueFeed(emit, live, tick=0.02, position_tick=3600)
    context = StoredContext.model_validate(
        {**CONTEXT, "device": parse_user_agent(str(CONTEXT["userAgent"])).wire()}
    )

    def entry(index: int) -> QueueEntry:
        return QueueEntry(
            ticket_id=f"tk_{index}",
            site="Shop",
            customer={"id": f"c_{index}", "verified": False},
            context=context,
            created_at="2026-01-01T00:00:00.000Z",
        )

    feed.start()
    try:
        await asyncio.sleep(0.1)  # five ticks of a quiet queue
        assert sent == [] and feed._flush_due is None
        for index in (1, 2):
            await live.enqueue(f"tk_{index}", float(index), entry(index).wire())
            await feed.added(entry(index))
        due = feed._flush_due
        assert due is not None
        await asyncio.wait_for(flushed.wait(), 5)
        assert [[e["ticketId"] for e in wire["added"]] for wire in sent] == [["tk_1", "tk_2"]]
        await asyncio.sleep(0.1)
        assert len(sent) == 1 and feed._flush_due is None and due.done()

        flushed.clear()
        await live.dequeue("tk_1")
        await feed.removed("tk_1", "accepted")
        await asyncio.wait_for(flushed.wait(), 5)
        assert [e["ticketId"] for e in sent[-1]["removed"]] == ["tk_1"]
        assert sent[-1]["waiting"] == 1
    finally:
        await feed.close()
    assert feed._flush_due is None


async def test_far_back_a_place_is_told_once_it_moved_by_a_tenth(server: Running) -> None:
    """The front ``EXACT_POSITIONS`` hear every change; behind them a customer hears once their
    place moved by a tenth of what they were last told, so a tick sends O(front), not O(queue)."""
    desk = server.app[keys.desk]
    await desk.queue_feed.close()  # its ticks are driven by hand here
    alice = await server.agent("alice")
    customers = await waiting_customers(server, EXACT_POSITIONS + 10)  # places 1..30
    assert (await alice.call("session.accept", {"ticketId": customers[0][1]}))["ok"]
    # Places 2..21 became 1..20 and are told; 22..30 became 21..29, a move of one: not told.
    assert await desk.queue_feed.announce_positions() == EXACT_POSITIONS
    for customer, _ in customers[1 : EXACT_POSITIONS + 1]:
        await customer.wait_for("queue.position", timeout=5)
    assert all("queue.position" not in c.events for c, _ in customers[EXACT_POSITIONS + 1 :])
    await customers[0][0].call("session.end", {})  # alice's capacity is kept for the next
    for customer, ticket in customers[1:4]:
        assert (await alice.call("session.accept", {"ticketId": ticket}))["ok"]
        await customer.call("session.end", {})
    # Four places in all from where the back was told (22..30): a tenth of 30 or less.
    assert await desk.queue_feed.announce_positions() == len(customers) - 4
    last, ticket = customers[-1]
    told = await last.wait_for("queue.position", timeout=5)
    assert (told["ticketId"], told["position"]) == (ticket, len(customers) - 4)


def test_worth_telling() -> None:
    assert worth_telling(None, 500, None)
    assert not worth_telling((500, 600), 500, 600)
    assert worth_telling((20, None), 19, None) and worth_telling((10, 60), 10, 59)
    assert not worth_telling((500, 600), 451, 600)  # under a tenth, both
    assert worth_telling((500, 600), 450, 600)
    assert worth_telling((500, 600), 550, 600)  # pushed back by a higher priority, too
    assert not worth_telling((500, 600), 499, 541) and worth_telling((500, 600), 499, 540)
    assert worth_telling((500, None), 499, 600) and worth_telling((500, 600), 499, None)
