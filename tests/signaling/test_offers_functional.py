"""Push routing over real sockets with many agents: agent status, offers to the least-loaded
eligible agent (and to nobody else), accept, decline, ring-out, capacity, skills, status
changes, and a ticket waiting for the first agent to come online."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from signaling import keys
from signaling.auth.accounts import add_agent
from signaling.store import SiteRecord
from tests.support import CONTEXT, PASSWORD, Client, Running, running_server


async def hire(server: Running, name: str, skills: list[str] | None = None) -> None:
    store = server.app[keys.store]
    server.agents[name] = await add_agent(
        store, f"{name}@tandem.test", name.title(), PASSWORD, "agent", skills or []
    )


async def ask(server: Running, site: SiteRecord | None = None, origin: str | None = None) -> str:
    customer = await server.customer(site=site, origin=origin)
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    return str(ack["ticket"]["id"])


def offers_of(client: Client, ticket_id: str) -> list[Any]:
    return [o for o in client.events["session.offered"] if o["ticketId"] == ticket_id]


async def settled(server: Running, *clients: Client) -> None:
    """One routing pass done here, and everything it sent to these clients arrived (the server
    sends a socket's events in order, so an ack after them comes after them)."""
    router = server.app[keys.desk].router
    assert router is not None
    await router.tick()
    for client in clients:
        assert (await client.call("queue.list", {"limit": 1}))["ok"]


async def offered_to(ticket_id: str, clients: dict[str, Client]) -> str:
    """Which of the agents the ticket rings for (waiting for the first offer)."""
    import asyncio

    async def first(name: str, client: Client) -> str:
        await client.wait_for("session.offered", lambda o: o["ticketId"] == ticket_id)
        return name

    tasks = [asyncio.ensure_future(first(n, c)) for n, c in clients.items()]
    done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, f"{ticket_id} was offered to nobody"
    return done.pop().result()


async def test_an_offer_rings_for_the_least_loaded_eligible_agent_only(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        for name in ("ann", "ben", "cat"):
            await hire(server, name)
        ann, ben, cat = [await server.agent(n) for n in ("ann", "ben", "cat")]
        cat_tab = await server.agent("cat")
        sam = await server.agent("sam")  # a supervisor: offered like any agent
        await sam.call("agent.status", {"status": "away", "reason": "watching"})
        agents = {"ann": ann, "ben": ben, "cat": cat}
        # Load them: ann takes two sessions, ben one (by hand: pull stays possible).
        for taker in (ann, ann, ben):
            ticket = await ask(server)
            await offered_to(ticket, agents)
            ack = await taker.call("session.accept", {"ticketId": ticket})
            assert ack["ok"], ack
        await settled(server, ann, ben, cat, cat_tab, sam)
        ticket = await ask(server)
        assert await offered_to(ticket, agents) == "cat"
        await settled(server, ann, ben, cat, cat_tab, sam)
        # Every socket of the chosen agent rings, nobody else's does.
        offer = offers_of(cat, ticket)[0]
        assert offers_of(cat_tab, ticket) == [offer]
        assert offer["entry"]["ticketId"] == ticket and offer["expiresAt"]
        assert offers_of(ann, ticket) == offers_of(ben, ticket) == offers_of(sam, ticket) == []
        ack = await cat.call("session.accept", {"ticketId": ticket})
        assert ack["ok"] and ack["ticket"]["status"] == "active"
        ended = await cat_tab.wait_for("session.offer.ended", lambda e: e["ticketId"] == ticket)
        assert ended["reason"] == "accepted"


async def test_a_declined_offer_goes_to_the_next_agent_and_never_back(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        await hire(server, "ann")
        agents = {"ann": await server.agent("ann"), "bob": await server.agent("bob")}
        ticket = await ask(server)
        first = await offered_to(ticket, agents)
        (second,) = set(agents) - {first}
        ack = await agents[first].call("session.decline", {"ticketId": ticket})
        assert ack["ok"], ack
        ended = await agents[first].wait_for("session.offer.ended")
        assert ended == {"type": "session.offer.ended", "ticketId": ticket, "reason": "declined"}
        await agents[second].wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        # Declining what does not ring for you is refused.
        again = await agents[first].call("session.decline", {"ticketId": ticket})
        assert again["error"]["code"] == "not_found"
        assert (await agents[second].call("session.decline", {"ticketId": ticket}))["ok"]
        # Everyone declined: the ticket waits, offered to nobody; either may still take it.
        await settled(server, *agents.values())
        assert len(offers_of(agents[first], ticket)) == len(offers_of(agents[second], ticket)) == 1
        assert (await agents[first].call("session.accept", {"ticketId": ticket}))["ok"]


async def test_an_offer_that_rings_out_goes_on_and_the_silent_agent_is_away(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, offer_seconds=0.3) as server:
        await hire(server, "ann")
        agents = {"ann": await server.agent("ann"), "bob": await server.agent("bob")}
        sam = await server.agent("sam")
        ticket = await ask(server)
        silent = await offered_to(ticket, agents)
        (other,) = set(agents) - {silent}
        offer = await agents[other].wait_for(
            "session.offered", lambda o: o["ticketId"] == ticket, timeout=10
        )
        assert offer["ticketId"] == ticket
        ended = await agents[silent].wait_for("session.offer.ended")
        assert ended["reason"] == "expired"
        away = await agents[silent].wait_for("agent.status", lambda s: s["status"] == "away")
        assert away["reason"] == "missed offer"
        silent_id = server.agents[silent].id
        seen = await sam.wait_for(
            "agent.status", lambda s: s["status"] == "away" and s["agent"]["id"] == silent_id
        )
        assert seen["reason"] == "missed offer"
        assert (await agents[other].call("session.accept", {"ticketId": ticket}))["ok"]


async def test_no_offer_past_capacity_and_no_accept_either(tmp_path: Path) -> None:
    async with running_server(tmp_path, agent_capacity=1, wrap_up_seconds=0) as server:
        await hire(server, "ann")
        ann = await server.agent("ann")
        first = await ask(server)
        await ann.wait_for("session.offered", lambda o: o["ticketId"] == first)
        assert (await ann.call("session.accept", {"ticketId": first}))["ok"]
        await ann.wait_for("agent.status", lambda s: s["status"] == "busy")
        second = await ask(server)
        await settled(server, ann)
        assert offers_of(ann, second) == []
        refused = await ann.call("session.accept", {"ticketId": second})
        assert refused["error"]["code"] == "invalid_state"
        assert "capacity" in refused["error"]["message"]
        # The session ends: back under capacity, the waiting one rings.
        assert (await ann.call("session.end", {"ticketId": first}))["ok"]
        await ann.wait_for("session.offered", lambda o: o["ticketId"] == second)
        assert (await ann.call("session.accept", {"ticketId": second}))["ok"]


async def test_wrap_up_holds_offers_back(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=3600) as server:
        alice = await server.agent("alice")
        first = await ask(server)
        await alice.wait_for("session.offered", lambda o: o["ticketId"] == first)
        assert (await alice.call("session.accept", {"ticketId": first}))["ok"]
        assert (await alice.call("session.end", {"ticketId": first}))["ok"]
        await alice.wait_for("agent.status", lambda s: s["status"] == "wrap_up")
        second = await ask(server)
        await settled(server, alice)
        assert offers_of(alice, second) == []


async def test_only_agents_with_the_queues_skills_are_offered(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        store = server.app[keys.store]
        billing = SiteRecord(
            "site_billing", "Billing", secrets.token_hex(8), "s", ("http://billing.test",),
            {"skills": ["billing"]},
        )  # fmt: skip
        orders = SiteRecord(
            "site_orders", "Orders", secrets.token_hex(8), "s", ("http://orders.test",),
            {"skills": ["orders"]},
        )  # fmt: skip
        await store.add_site(billing)
        await store.add_site(orders)
        alice, bob = await server.agent("alice"), await server.agent("bob")  # alice: orders
        nobody = await ask(server, billing, "http://billing.test")
        await settled(server, alice, bob)
        assert offers_of(alice, nobody) == offers_of(bob, nobody) == []
        ticket = await ask(server, orders, "http://orders.test")
        await alice.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        await settled(server, alice, bob)
        assert offers_of(bob, ticket) == []


async def test_status_is_one_per_agent_and_away_gets_no_offers(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        alice, alice_tab = await server.agent("alice"), await server.agent("alice")
        sam = await server.agent("sam")
        assert (await sam.call("agent.status", {"status": "offline"}))["ok"]  # watches only
        joined = await alice_tab.wait_for("agent.status")
        assert joined["status"] == "available" and joined["agent"]["name"] == "Alice"
        assert (await alice.call("agent.status", {"status": "away", "reason": "lunch"}))["ok"]
        for client in (alice, alice_tab, sam):
            away = await client.wait_for(
                "agent.status",
                lambda s: s["status"] == "away" and s["agent"]["id"] == server.agents["alice"].id,
            )
            assert away["reason"] == "lunch"
        refused = await alice.call("agent.status", {"status": "busy"})
        assert refused["error"]["code"] == "malformed"
        ticket = await ask(server)
        await settled(server, alice, alice_tab)
        assert offers_of(alice, ticket) == []
        assert (await alice_tab.call("agent.status", {"status": "available"}))["ok"]
        await alice.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        await alice_tab.wait_for("session.offered", lambda o: o["ticketId"] == ticket)


async def test_a_ticket_waits_for_the_first_agent_online(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        ticket = await ask(server)
        bob = await server.agent("bob")
        offer = await bob.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        assert offer["entry"]["context"]["url"] == CONTEXT["url"]
        # The last socket goes: the agent is offline, their offer ends and goes elsewhere.
        alice = await server.agent("alice")
        await bob.close()
        await alice.wait_for("session.offered", lambda o: o["ticketId"] == ticket)


async def test_pull_routing_offers_nothing(tmp_path: Path) -> None:
    async with running_server(tmp_path, routing="pull", agent_capacity=1) as server:
        alice = await server.agent("alice")
        tickets = [await ask(server) for _ in range(2)]
        await settled(server, alice)
        assert alice.events["session.offered"] == []
        for ticket in tickets:  # pull as today: no capacity refusal
            assert (await alice.call("session.accept", {"ticketId": ticket}))["ok"]


def test_routing_flags_and_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from signaling.cli import build_parser, settings_from
    from signaling.settings import Settings

    defaults = settings_from(build_parser().parse_args(["serve"]))
    assert (defaults.routing, defaults.agent_capacity) == ("push", 3)
    assert (defaults.offer_seconds, defaults.wrap_up_seconds) == (20.0, 30.0)
    flags = ["serve", "--routing", "pull", "--agent-capacity", "5", "--offer-seconds", "12"]
    settings = settings_from(build_parser().parse_args([*flags, "--wrap-up-seconds", "0"]))
    assert (settings.routing, settings.agent_capacity) == ("pull", 5)
    assert (settings.offer_seconds, settings.wrap_up_seconds) == (12.0, 0.0)
    monkeypatch.setenv("TANDEM_ROUTING", "pull")
    monkeypatch.setenv("TANDEM_AGENT_CAPACITY", "2")
    monkeypatch.setenv("TANDEM_OFFER_SECONDS", "7.5")
    monkeypatch.setenv("TANDEM_WRAP_UP_SECONDS", "10")
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert (settings.routing, settings.agent_capacity) == ("pull", 2)
    assert (settings.offer_seconds, settings.wrap_up_seconds) == (7.5, 10.0)
    assert Settings(routing="round-robin").refusals()
    assert Settings(agent_capacity=0).refusals()
