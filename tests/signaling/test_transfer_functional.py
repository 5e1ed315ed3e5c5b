"""Transfer over real sockets: warm to an agent, cold to the queue (keeping the wait time), and
the refusals. The agent-only note never reaches the customer; the agent who handed over hears
nothing more of the session."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path

import pytest

from signaling import keys
from tests.signaling.test_offers_functional import hire
from tests.support import CONTEXT, Client, Running, running_server


async def open_session(server: Running, agent: Client) -> tuple[str, Client]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    ticket = str(ack["ticket"]["id"])
    accepted = await agent.call("session.accept", {"ticketId": ticket})
    assert accepted["ok"], accepted
    return ticket, customer


async def no_pending_transfer(server: Running, ticket: str) -> bool:
    """Nothing is left under ``transfer:{ticket}`` in live state (in Redis, the routing hash)."""
    live = server.app[keys.desk].live
    return await live.routing_of([f"transfer:{ticket}"]) == {}


async def timeline_types(server: Running, ticket: str) -> list[str]:
    return [entry.type for entry in await server.app[keys.store].timeline(ticket)]


async def test_warm_transfer_to_an_agent(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        ticket, customer = await open_session(server, alice)
        sent = await customer.call("chat.send", {"clientMsgId": "m1", "text": "my order is late"})
        assert sent["ok"], sent
        bob_id = server.agents["bob"].id
        ack = await alice.call(
            "session.transfer",
            {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm", "note": "VIP, be kind"},
        )
        assert ack["ok"], ack
        offer = await bob.wait_for(
            "session.offered", lambda o: o["ticketId"] == ticket and o.get("transfer")
        )
        assert offer["transfer"] == {
            "mode": "warm",
            "from": {"id": server.agents["alice"].id, "name": "Alice"},
            "note": "VIP, be kind",
        }
        # Warm: alice is still in the session until bob takes it.
        assert (
            await alice.call(
                "chat.send", {"ticketId": ticket, "clientMsgId": "a1", "text": "one moment"}
            )
        )["ok"]
        state = await bob.call("session.accept", {"ticketId": ticket})
        assert state["ok"], state
        assert [m["text"] for m in state["messages"]] == ["my order is late", "one moment"]
        assert [a["name"] for a in state["ticket"]["agents"]] == ["Bob"]
        told = await customer.wait_for("session.transferred")
        assert told["agent"] == {"id": bob_id, "name": "Bob"} and told["mode"] == "warm"
        left = await alice.wait_for("session.transferred")
        assert left["left"]["id"] == server.agents["alice"].id
        # From now on alice hears nothing and may do nothing; bob hears the customer.
        heard_by_alice = len(alice.events["chat.message"])
        assert (await customer.call("chat.send", {"clientMsgId": "m2", "text": "hello Bob"}))["ok"]
        got = await bob.wait_for("chat.message", lambda m: m["message"]["text"] == "hello Bob")
        assert got["message"]["author"] == "Customer" or got["message"]["text"] == "hello Bob"
        refused = await alice.call(
            "chat.send", {"ticketId": ticket, "clientMsgId": "a2", "text": "x"}
        )
        assert refused["error"]["code"] == "forbidden"
        assert (await bob.call("queue.list", {"limit": 1}))["ok"]
        assert (await alice.call("queue.list", {"limit": 1}))["ok"]
        assert len(alice.events["chat.message"]) == heard_by_alice
        # The note is for agents only: nothing the customer received carries it.
        assert "VIP" not in json.dumps(customer.events)
        types = await timeline_types(server, ticket)
        assert types.index("transfer.requested") < types.index("session.transferred")
        assert "session.left" in types
        # The finished transfer leaves no entry (not even an empty one) in live state.
        assert await no_pending_transfer(server, ticket)
        entries = await server.app[keys.store].timeline(ticket)
        done = next(e for e in entries if e.type == "session.transferred")
        assert done.data["mode"] == "warm" and done.data["note"] == "VIP, be kind"
        assert (
            done.data["from"]["id"] == server.agents["alice"].id and done.data["to"]["id"] == bob_id
        )


async def test_cold_transfer_to_the_queue_keeps_the_wait_time(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice = await server.agent("alice")
        older, customer = await open_session(server, alice)
        newer_customer = await server.customer()
        newer = await newer_customer.call("help.request", {"context": CONTEXT})
        assert newer["ok"]
        ack = await alice.call(
            "session.transfer", {"ticketId": older, "to": {"queue": True}, "mode": "cold"}
        )
        assert ack["ok"], ack
        # Cold: alice left at once; the session waits again, ahead of the newer one.
        left = await alice.wait_for("session.transferred")
        assert left["left"]["id"] == server.agents["alice"].id
        told = await customer.wait_for("session.transferred")
        assert told["queued"] is True and told.get("agent") is None
        live = server.app[keys.desk].live
        assert await live.position(older) == 1
        assert await live.position(str(newer["ticket"]["id"])) == 2
        ticket = await server.app[keys.store].ticket(older)
        assert ticket is not None and ticket.status == "queued" and ticket.agents == ()
        # Whoever takes it next is the customer's new agent.
        bob = await server.agent("bob")
        state = await bob.call("session.accept", {"ticketId": older})
        assert state["ok"], state
        told = await customer.wait_for("session.transferred", lambda e: e.get("agent"))
        assert told["agent"]["name"] == "Bob" and told["mode"] == "cold"
        assert "session.transferred" in await timeline_types(server, older)
        assert await no_pending_transfer(server, older)


async def test_transfer_refusals(tmp_path: Path) -> None:
    async with running_server(tmp_path, agent_capacity=1, wrap_up_seconds=0) as server:
        await hire(server, "cat")  # never connects: offline
        alice, bob = await server.agent("alice"), await server.agent("bob")
        ticket, _customer = await open_session(server, alice)

        async def transfer(by: Client, to: dict[str, object], mode: str = "warm") -> str:
            ack = await by.call("session.transfer", {"ticketId": ticket, "to": to, "mode": mode})
            assert not ack.get("ok"), ack
            return str(ack["error"]["code"])

        assert await transfer(bob, {"queue": True}) == "forbidden"  # not bob's session
        assert await transfer(alice, {"agentId": "ag_nobody"}) == "not_found"
        assert await transfer(alice, {"agentId": server.agents["cat"].id}) == "invalid_state"
        assert await transfer(alice, {"agentId": server.agents["alice"].id}) == "invalid_state"
        await open_session(server, bob)  # bob at capacity (1)
        assert await transfer(alice, {"agentId": server.agents["bob"].id}) == "invalid_state"
        assert await transfer(alice, {}) == "malformed"
        # Nothing changed: alice still has the session.
        stored = await server.app[keys.store].ticket(ticket)
        assert stored is not None and [a["name"] for a in stored.agents] == ["Alice"]


@pytest.mark.parametrize(
    ("mode", "ender"), [("warm", "customer"), ("warm", "sender"), ("cold", "customer")]
)
async def test_a_session_ending_withdraws_its_pending_transfer(
    tmp_path: Path, mode: str, ender: str
) -> None:
    """Bob's offer of a transfer stops in every tab of his once the session ends (whoever ends
    it; his console drops the card on it), nothing of the transfer is left in live state, and
    his accept is refused with the reason."""
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        bob_other_tab = await server.agent("bob")
        ticket, customer = await open_session(server, alice)
        bob_id = server.agents["bob"].id
        ack = await alice.call(
            "session.transfer",
            {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": mode, "note": "VIP"},
        )
        assert ack["ok"], ack
        for tab in (bob, bob_other_tab):
            await tab.wait_for(
                "session.offered", lambda o: o["ticketId"] == ticket and o.get("transfer")
            )
            # Before the transfer's offer came the end of the new session's routing offer, if
            # it rang for Bob ("taken" when Alice accepted): not the one this test waits for.
            tab.events["session.offer.ended"].clear()

        by_customer = ender == "customer"
        ended = await (customer if by_customer else alice).call(
            "session.end", {} if by_customer else {"ticketId": ticket}
        )
        assert ended["ok"], ended

        for tab in (bob, bob_other_tab):
            withdrawn = await tab.wait_for("session.offer.ended", lambda e: e["ticketId"] == ticket)
            assert withdrawn == {
                "type": "session.offer.ended",
                "ticketId": ticket,
                "reason": "ended",
            }
        assert await no_pending_transfer(server, ticket)
        late = await bob.call("session.accept", {"ticketId": ticket})
        assert late["error"] == {"code": "invalid_state", "message": "the session has ended"}
        stored = await server.app[keys.store].ticket(ticket)
        assert stored is not None and stored.status == "closed"
        assert [a["name"] for a in stored.agents] == (["Alice"] if mode == "warm" else [])


async def test_a_transfer_taken_as_the_session_ends_is_refused_and_adds_nobody(
    tmp_path: Path,
) -> None:
    """Bob accepts a warm transfer at the moment the customer ends the session: the session
    ended between the accept's check and Bob's join (made to happen there by closing it inside
    the join's write). Bob is told it ended, and the closed ticket does not list him."""
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        ticket, _customer = await open_session(server, alice)
        ack = await alice.call(
            "session.transfer",
            {"ticketId": ticket, "to": {"agentId": server.agents["bob"].id}, "mode": "warm"},
        )
        assert ack["ok"], ack
        await bob.wait_for("session.offered", lambda o: o["ticketId"] == ticket)

        store = server.app[keys.store]
        joining = store.add_ticket_agent

        async def closed_first(ticket_id: str, agent: dict[str, str]) -> None:
            await store.close_ticket(ticket_id, time.time())
            await joining(ticket_id, agent)

        store.add_ticket_agent = closed_first  # type: ignore[method-assign]
        late = await bob.call("session.accept", {"ticketId": ticket})
        assert late["error"] == {"code": "invalid_state", "message": "the session has ended"}
        stored = await store.ticket(ticket)
        assert stored is not None and stored.status == "closed"
        assert [a["name"] for a in stored.agents] == ["Alice"]


async def test_an_answered_warm_transfer_stops_ringing_in_every_tab(tmp_path: Path) -> None:
    """Bob answers a warm transfer in one tab: its offer ends in his other tab too, declined
    (Alice keeps the session) and then, asked again, accepted."""
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        bob_other_tab = await server.agent("bob")
        ticket, _customer = await open_session(server, alice)
        bob_id = server.agents["bob"].id

        async def offered() -> None:
            for tab in (bob, bob_other_tab):
                tab.events["session.offered"].clear()
            ack = await alice.call(
                "session.transfer",
                {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm"},
            )
            assert ack["ok"], ack
            for tab in (bob, bob_other_tab):
                await tab.wait_for(
                    "session.offered", lambda o: o["ticketId"] == ticket and o.get("transfer")
                )
                # Only the end of this offer counts (not one of the session's routing offer).
                tab.events["session.offer.ended"].clear()

        async def ended_in_the_other_tab() -> str:
            ended = await bob_other_tab.wait_for(
                "session.offer.ended", lambda e: e["ticketId"] == ticket
            )
            return str(ended["reason"])

        await offered()
        assert (await bob.call("session.decline", {"ticketId": ticket}))["ok"]
        assert await ended_in_the_other_tab() == "declined"
        assert await no_pending_transfer(server, ticket)
        stored = await server.app[keys.store].ticket(ticket)
        assert stored is not None and [a["name"] for a in stored.agents] == ["Alice"]

        await offered()
        assert (await bob.call("session.accept", {"ticketId": ticket}))["ok"]
        assert await ended_in_the_other_tab() == "accepted"
        assert await no_pending_transfer(server, ticket)


async def test_a_warm_transfer_is_taken_back_before_it_is_accepted(tmp_path: Path) -> None:
    """Alice takes her warm transfer back: Bob's offer stops in every tab (``cancelled``), his
    accept then takes nothing, Alice keeps the session and may hand it to someone else. Only the
    session's agents (or a supervisor) may, only a warm transfer, only while it is pending."""
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        bob_other_tab = await server.agent("bob")
        ticket, customer = await open_session(server, alice)
        bob_id = server.agents["bob"].id

        async def cancel(by: Client) -> dict[str, object]:
            ack: dict[str, object] = await by.call("transfer.cancel", {"ticketId": ticket})
            return ack

        nothing = await cancel(alice)
        assert nothing["error"] == {
            "code": "invalid_state",
            "message": "no transfer of this session is pending",
        }
        warm = {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm", "note": "VIP"}
        assert (await alice.call("session.transfer", warm))["ok"]
        for tab in (bob, bob_other_tab):
            await tab.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
            tab.events["session.offer.ended"].clear()
        assert (await cancel(bob))["error"]["code"] == "forbidden"  # type: ignore[index]

        assert (await cancel(alice))["ok"]
        for tab in (bob, bob_other_tab):
            ended = await tab.wait_for("session.offer.ended", lambda e: e["ticketId"] == ticket)
            assert ended["reason"] == "cancelled"
        assert await no_pending_transfer(server, ticket)
        late = await bob.call("session.accept", {"ticketId": ticket})
        assert late["error"]["code"] == "already_taken", late
        stored = await server.app[keys.store].ticket(ticket)
        assert stored is not None and [a["name"] for a in stored.agents] == ["Alice"]
        types = await timeline_types(server, ticket)
        assert types[-2:] == ["transfer.requested", "transfer.cancelled"]
        entry = (await server.app[keys.store].timeline(ticket))[-1]
        assert entry.data == {
            "by": {"id": server.agents["alice"].id, "name": "Alice"},
            "agent": {"id": bob_id, "name": "Bob"},
        }
        assert "transfer.cancelled" not in json.dumps(customer.events)  # agents' business
        assert (await cancel(alice))["error"]["code"] == "invalid_state"  # type: ignore[index]

        # The session is Alice's as before: she may transfer it again, and Bob take it.
        assert (await alice.call("session.transfer", warm))["ok"]
        assert (await bob.call("session.accept", {"ticketId": ticket}))["ok"]
        await alice.wait_for("session.transferred", lambda e: e.get("left"))
        # A cold transfer has left its sender (no longer in the session), and even a
        # supervisor does not take it back: the session waits in the queue.
        cold = {"ticketId": ticket, "to": {"queue": True}, "mode": "cold"}
        assert (await bob.call("session.transfer", cold))["ok"]
        assert (await cancel(bob))["error"]["code"] == "forbidden"  # type: ignore[index]
        refused = await cancel(await server.agent("sam"))
        assert refused["error"] == {
            "code": "invalid_state",
            "message": "a cold transfer is not taken back",
        }


def offer_of(ticket: str, offer: dict[str, object]) -> bool:
    return offer["ticketId"] == ticket


async def test_an_accept_and_a_take_back_at_once_have_one_outcome(tmp_path: Path) -> None:
    """Bob accepts while Alice takes the transfer back, many times over: either Bob has the
    session (and Alice's take-back is refused) or Alice keeps it (and Bob's accept is), never
    both, and nothing is left pending."""
    async with running_server(tmp_path, wrap_up_seconds=0, agent_capacity=100) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        bob_id = server.agents["bob"].id
        for _ in range(10):
            ticket, _customer = await open_session(server, alice)
            warm = {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm"}
            assert (await alice.call("session.transfer", warm))["ok"]
            await bob.wait_for("session.offered", functools.partial(offer_of, ticket))
            accepted, cancelled = await asyncio.gather(
                bob.call("session.accept", {"ticketId": ticket}),
                alice.call("transfer.cancel", {"ticketId": ticket}),
            )
            assert bool(accepted.get("ok")) != bool(cancelled.get("ok")), (accepted, cancelled)
            stored = await server.app[keys.store].ticket(ticket)
            assert stored is not None
            holders = [a["name"] for a in stored.agents]
            assert holders == (["Bob"] if accepted.get("ok") else ["Alice"])
            assert await no_pending_transfer(server, ticket)
            await (bob if accepted.get("ok") else alice).call("session.end", {"ticketId": ticket})
