"""Queues and routing rules over real sockets: a rule sends a checkout ticket to the billing
queue, which only agents with the skill are offered and see; priority and ageing order the
offers; the customer hears an estimated wait; and the customer is told when nobody can serve
(no agent online, outside the site's hours, queue full) while the ticket waits all the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signaling import keys
from signaling.auth.accounts import add_agent
from signaling.routing import site_config
from tests.support import CONTEXT, PASSWORD, Client, Running, running_server

CHECKOUT = {**CONTEXT, "url": "http://shop.test/checkout/pay?step=2"}
MONDAY_3AM = datetime(2026, 11, 30, 3, 0, tzinfo=UTC).timestamp()
MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def use_clock(server: Running, now: float) -> Clock:
    """The routing clock (ticket times, ageing, hours, handle times), set by the test."""
    clock = Clock(now)
    router = server.app[keys.desk].router
    assert router is not None
    router.clock = clock
    return clock


async def configure(server: Running, *changes: Any) -> None:
    """Apply site_config changes to the Shop site's settings, as ``tandem queue|route`` does."""
    store = server.app[keys.store]
    site = await store.site(server.site.id)
    assert site is not None
    settings = dict(site.settings)
    for change in changes:
        settings = change(settings)
    await store.set_site_settings(site.id, settings)


def billing_and_general(settings: dict[str, Any]) -> dict[str, Any]:
    settings = site_config.with_queue(settings, "general", [], 0)
    settings = site_config.with_queue(settings, "billing", ["billing"], 2)
    return site_config.with_rule(settings, "billing", "*/checkout*", {}, None)


async def console(server: Running, name: str) -> Client:
    """An agent's console of protocol v2 (coalesced ``queue.changed``, filtered by skills)."""
    client = Client()
    await client.connect(
        server.base_url, {"v": 2, "role": "agent", "token": await server.token(name)}
    )
    server.clients.append(client)
    return client


async def hire(server: Running, name: str, skills: list[str]) -> Client:
    store = server.app[keys.store]
    server.agents[name] = await add_agent(
        store, f"{name}@tandem.test", name.title(), PASSWORD, "agent", skills
    )
    return await console(server, name)


async def ask(server: Running, context: dict[str, Any] = CONTEXT) -> tuple[Client, Any]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": context})
    assert ack["ok"], ack
    return customer, ack


async def settled(server: Running, *clients: Client) -> None:
    """A routing pass and a queue flush done, and what they sent to these clients arrived."""
    desk = server.app[keys.desk]
    assert desk.router is not None
    await desk.router.tick()
    await desk.queue_feed.flush()
    for client in clients:
        assert (await client.call("queue.list", {"limit": 1}))["ok"]


def offered(client: Client) -> list[str]:
    return [o["ticketId"] for o in client.events["session.offered"]]


def seen_added(client: Client) -> set[str]:
    return {e["ticketId"] for c in client.events["queue.changed"] for e in c["added"]}


async def listed(client: Client) -> dict[str, Any]:
    ack = await client.call("queue.list", {})
    assert ack["ok"], ack
    return {e["ticketId"]: e for e in ack["entries"]}


async def test_a_rule_sends_checkout_to_billing_which_only_billing_agents_see_and_are_offered(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        await configure(server, billing_and_general)
        ann = await hire(server, "ann", ["billing"])
        ben = await hire(server, "ben", [])
        sam = await console(server, "sam")  # a supervisor sees every queue
        await sam.call("agent.status", {"status": "away", "reason": "watching"})
        await settled(server, ann, ben, sam)
        _, ack = await ask(server, CHECKOUT)
        assert ack["availability"] == "open"
        ticket = ack["ticket"]["id"]
        offer = await ann.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        assert (offer["entry"]["queue"], offer["entry"]["priority"]) == ("billing", 2)
        await settled(server, ann, ben, sam)
        assert ticket not in offered(ben)
        assert ticket in seen_added(ann) and ticket in seen_added(sam)
        assert ticket not in seen_added(ben)
        assert ticket in await listed(ann) and ticket in await listed(sam)
        assert ticket not in await listed(ben)
        assert (await ben.call("queue.list", {}))["waiting"] == 0
        # A ticket from another page goes to the default queue, which needs no skill.
        await ann.call("agent.status", {"status": "away", "reason": "lunch"})
        _, ack = await ask(server)
        general = ack["ticket"]["id"]
        offer = await ben.wait_for("session.offered", lambda o: o["ticketId"] == general)
        assert offer["entry"]["queue"] == "general"
        await settled(server, ann, ben, sam)
        assert general in seen_added(ben) and general in seen_added(ann)
        assert general in await listed(ben)
        # The queue is stored with the ticket: its first timeline entry names it.
        timeline = await server.app[keys.store].timeline(ticket)
        assert timeline[0].data["queue"] == "billing" and timeline[0].data["priority"] == 2


async def test_priority_then_ageing_order_the_offers(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        await configure(server, billing_and_general)
        clock = use_clock(server, MONDAY_10AM)
        # Without ageing: the checkout ticket, asked later, has the higher priority.
        _, ack = await ask(server)
        low = ack["ticket"]["id"]
        clock.now += 30
        _, ack = await ask(server, CHECKOUT)
        high = ack["ticket"]["id"]
        ann = await hire(server, "ann", ["billing"])
        offer = await ann.wait_for("session.offered")
        assert offer["ticketId"] == high
        assert (await ann.call("session.accept", {"ticketId": high}))["ok"]
        offer = await ann.wait_for("session.offered", lambda o: o["ticketId"] != high)
        assert offer["ticketId"] == low
        assert (await ann.call("session.accept", {"ticketId": low}))["ok"]
        # With ageing: a low-priority ticket that waited five minutes goes first.
        clock.now += 60
        _, ack = await ask(server)
        old_low = ack["ticket"]["id"]
        clock.now += 300
        _, ack = await ask(server, CHECKOUT)
        new_high = ack["ticket"]["id"]
        await ann.call("agent.status", {"status": "away", "reason": "break"})
        for ticket in (high, low):
            assert (await ann.call("session.end", {"ticketId": ticket}))["ok"]
        await settled(server, ann)
        await ann.call("agent.status", {"status": "available"})
        offer = await ann.wait_for(
            "session.offered", lambda o: o["ticketId"] in (old_low, new_high)
        )
        assert offer["ticketId"] == old_low


async def test_the_customer_hears_an_estimated_wait_from_recent_handle_times(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0, agent_capacity=1) as server:
        await configure(server, billing_and_general)
        clock = use_clock(server, MONDAY_10AM)
        ann = await hire(server, "ann", ["billing"])
        _, ack = await ask(server, CHECKOUT)
        first = ack["ticket"]["id"]
        await ann.wait_for("session.offered", lambda o: o["ticketId"] == first)
        assert (await ann.call("session.accept", {"ticketId": first}))["ok"]
        clock.now += 120  # handled for two minutes
        assert (await ann.call("session.end", {"ticketId": first}))["ok"]
        _, ack = await ask(server, CHECKOUT)
        second = ack["ticket"]["id"]
        await ann.wait_for("session.offered", lambda o: o["ticketId"] == second)
        assert (await ann.call("session.accept", {"ticketId": second}))["ok"]
        # Ann is at capacity: the next customer waits for her session to end, which is half
        # done on average: one minute.
        customer, ack = await ask(server, CHECKOUT)
        third = ack["ticket"]["id"]
        position = await customer.wait_for(
            "queue.position", lambda p: p.get("estimatedWaitSeconds") is not None
        )
        assert position == {
            "type": "queue.position",
            "ticketId": third,
            "position": 1,
            "estimatedWaitSeconds": 60,
        }


async def test_no_agent_online_says_so_and_the_ticket_waits_for_one_with_the_skill(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        await configure(server, billing_and_general)
        ben = await hire(server, "ben", [])  # online, but without the billing skill
        await settled(server, ben)
        customer, ack = await ask(server, CHECKOUT)
        assert ack["availability"] == "no_agents"
        ticket = ack["ticket"]["id"]
        assert ack["ticket"]["status"] == "queued"
        # The customer leaves a message and an address while waiting.
        sent = await customer.call(
            "chat.send", {"text": "Card declined twice", "clientMsgId": "m1"}
        )
        assert sent["ok"], sent
        _, ack = await ask(server)  # the default queue needs no skill: ben serves it
        assert ack["availability"] == "open"
        await settled(server, ben)
        assert ticket not in offered(ben)
        ann = await hire(server, "ann", ["billing"])
        offer = await ann.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        assert offer["entry"]["queue"] == "billing"
        state = await ann.call("session.accept", {"ticketId": ticket})
        assert [m["text"] for m in state["messages"]] == ["Card declined twice"]


async def test_outside_business_hours_is_closed_and_inside_open(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        hours = site_config.parse_hours("UTC", ["mon-fri 09:00-17:00"])
        await configure(server, lambda s: site_config.with_hours(s, hours))
        await hire(server, "ann", [])
        clock = use_clock(server, MONDAY_3AM)
        _, ack = await ask(server)
        assert ack["availability"] == "closed"
        assert ack["ticket"]["status"] == "queued"
        clock.now = MONDAY_10AM
        _, ack = await ask(server)
        assert ack["availability"] == "open"


async def test_a_queue_over_its_length_is_full(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        await configure(server, lambda s: site_config.with_max_waiting(s, 1))
        ann = await hire(server, "ann", [])
        await ann.call("agent.status", {"status": "available"})
        _, first = await ask(server)
        assert first["availability"] == "open"
        _, second = await ask(server)
        assert second["availability"] == "full"
        assert second["ticket"]["status"] == "queued"
