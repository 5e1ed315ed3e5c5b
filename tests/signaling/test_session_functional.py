"""The support-session lifecycle through the real server with real socket.io clients."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support import CONTEXT, Client, Running, running_server


async def ask_for_help(server: Running, **extra: object) -> tuple[Client, dict[str, Any]]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT, **extra})
    assert ack["ok"], ack
    return customer, ack


async def test_whole_lifecycle(server: Running) -> None:
    alice = await server.agent("alice")
    customer = await server.customer()
    ack = await customer.call(
        "help.request",
        {"context": CONTEXT, "identity": {"id": "u-42", "name": "Dana", "email": "d@x.test"}},
    )
    assert ack["ok"] and ack["ticket"]["status"] == "queued" and ack["position"] == 1
    ticket_id = ack["ticket"]["id"]
    assert ack["token"]
    assert ack["ticket"]["context"]["app"]["product"]["name"] == "Trail Runner 2"
    device = ack["ticket"]["context"]["device"]
    assert (device["os"], device["type"], device["browser"]) == ("iOS", "mobile", "Safari")

    # The agent sees the request live, with a preview of the context.
    added = await alice.wait_for("queue.added", lambda e: e["entry"]["ticketId"] == ticket_id)
    assert added["entry"]["context"]["app"]["product"]["id"] == "trail-runner-2"
    assert added["entry"]["customer"] == {
        "id": "u-42",
        "verified": False,
        "name": "Dana",
        "email": "d@x.test",
    }
    queue = await alice.call("queue.list")
    assert [e["ticketId"] for e in queue["entries"]] == [ticket_id]

    state = await alice.call("session.accept", {"ticketId": ticket_id})
    assert state["ok"] and state["ticket"]["status"] == "active"
    accepted = await customer.wait_for("session.accepted")
    assert accepted["agent"]["name"] == "Alice"
    await alice.wait_for("queue.removed", lambda e: e["ticketId"] == ticket_id)

    # Chat both ways, acknowledged, ordered, persisted.
    sent = await customer.call("chat.send", {"clientMsgId": "c1", "text": "My order is late"})
    assert sent["ok"] and not sent["duplicate"] and sent["message"]["from"] == "customer"
    got = await alice.wait_for("chat.message", lambda e: e["message"]["text"] == "My order is late")
    assert got["message"]["ticketId"] == ticket_id
    reply = await alice.call(
        "chat.send", {"ticketId": ticket_id, "clientMsgId": "a1", "text": "Let me check"}
    )
    assert reply["ok"]
    await customer.wait_for("chat.message", lambda e: e["message"]["text"] == "Let me check")
    assert reply["message"]["id"] > sent["message"]["id"]

    # A resend with the same client id never duplicates.
    again = await customer.call("chat.send", {"clientMsgId": "c1", "text": "My order is late"})
    assert again["duplicate"] and again["message"]["id"] == sent["message"]["id"]

    # Typing reaches the other side only.
    assert (await customer.call("chat.typing", {"typing": True}))["ok"]
    typing = await alice.wait_for("chat.typing")
    assert typing == {
        "type": "chat.typing",
        "ticketId": ticket_id,
        "from": "customer",
        "name": "Dana",
        "typing": True,
    }
    await asyncio.sleep(0.1)
    assert customer.events["chat.typing"] == []

    assert (await alice.call("session.end", {"ticketId": ticket_id}))["ok"]
    ended = await customer.wait_for("session.ended")
    assert ended["by"] == "agent"
    refused = await customer.call("chat.send", {"clientMsgId": "c2", "text": "hello?"})
    assert refused["error"]["code"] == "invalid_state"

    status, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    assert status == 200
    assert ticket["status"] == "closed" and ticket["closedAt"]
    assert [(m["from"], m["text"]) for m in ticket["transcript"]] == [
        ("customer", "My order is late"),
        ("agent", "Let me check"),
    ]
    assert ticket["customer"]["id"] == "u-42"
    assert ticket["context"]["url"] == CONTEXT["url"]
    types = [entry["type"] for entry in ticket["timeline"]]
    assert types == ["ticket.created", "session.accepted", "session.ended"]
    # Search finds it for those who may read it: not for Bob, who was never in it.
    found = (await server.get("/api/tickets?q=late", await server.token("sam")))[1]["tickets"]
    assert [t["id"] for t in found] == [ticket_id]
    assert (await server.get("/api/tickets?q=late", await server.token("bob")))[1]["tickets"] == []


async def test_customer_resumes_after_reload(server: Running) -> None:
    alice = await server.agent("alice")
    customer, ack = await ask_for_help(server)
    ticket_id, token = ack["ticket"]["id"], ack["token"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    first = await customer.call("chat.send", {"clientMsgId": "m1", "text": "one"})
    await customer.close()

    # While the customer is away the agent writes; nothing is lost.
    await alice.call("chat.send", {"ticketId": ticket_id, "clientMsgId": "a1", "text": "two"})
    back = await server.customer(token=token)
    state = await back.call("session.resume", {})
    assert state["ok"] and state["ticket"]["id"] == ticket_id
    assert [m["text"] for m in state["messages"]] == ["one", "two"]
    assert state["ticket"]["agents"] == [{"id": server.agents["alice"].id, "name": "Alice"}]
    newer = await back.call("session.resume", {"afterMessageId": first["message"]["id"]})
    assert [m["text"] for m in newer["messages"]] == ["two"]

    # The resumed socket is in the session again: live messages reach it.
    await alice.call("chat.send", {"ticketId": ticket_id, "clientMsgId": "a2", "text": "three"})
    await back.wait_for("chat.message", lambda e: e["message"]["text"] == "three")
    # Asking for help again while the session is open returns the same session.
    same = await back.call("help.request", {"context": CONTEXT})
    assert same["ticket"]["id"] == ticket_id


async def test_agent_reconnects_to_their_sessions(server: Running) -> None:
    alice = await server.agent("alice")
    customer, ack = await ask_for_help(server)
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    await alice.close()
    await customer.call("chat.send", {"clientMsgId": "m1", "text": "still there?"})

    again = await server.agent("alice")
    sessions = await again.call("session.list")
    assert [s["id"] for s in sessions["sessions"]] == [ticket_id]
    state = await again.call("session.resume", {"ticketId": ticket_id})
    assert [m["text"] for m in state["messages"]] == ["still there?"]
    await customer.call("chat.send", {"clientMsgId": "m2", "text": "hello"})
    await again.wait_for("chat.message", lambda e: e["message"]["text"] == "hello")


async def test_two_agents_race_to_accept(server: Running) -> None:
    alice, bob = await server.agent("alice"), await server.agent("bob")
    _customer, ack = await ask_for_help(server)
    ticket_id = ack["ticket"]["id"]
    results = await asyncio.gather(
        alice.call("session.accept", {"ticketId": ticket_id}),
        bob.call("session.accept", {"ticketId": ticket_id}),
    )
    winners = [r for r in results if r["ok"]]
    losers = [r for r in results if not r["ok"]]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0]["error"]["code"] == "already_taken"
    removed = await bob.wait_for("queue.removed", lambda e: e["ticketId"] == ticket_id)
    assert removed["reason"] == "accepted"
    assert (await bob.call("queue.list"))["entries"] == []


async def test_queue_positions_follow_the_queue(server: Running) -> None:
    alice = await server.agent("alice")
    _first, ack1 = await ask_for_help(server)
    second, ack2 = await ask_for_help(server)
    assert (ack1["position"], ack2["position"]) == (1, 2)
    await alice.call("session.accept", {"ticketId": ack1["ticket"]["id"]})
    moved = await second.wait_for("queue.position", lambda e: e["position"] == 1)
    assert moved["ticketId"] == ack2["ticket"]["id"]
    # A queued customer who gives up leaves the queue.
    assert (await second.call("session.end", {}))["ok"]
    removed = await alice.wait_for("queue.removed", lambda e: e["ticketId"] == ack2["ticket"]["id"])
    assert removed["reason"] == "ended"


async def test_returning_customer_starts_a_linked_ticket(server: Running) -> None:
    customer, ack = await ask_for_help(server)
    old_id, token = ack["ticket"]["id"], ack["token"]
    await customer.call("session.end", {})
    await customer.close()

    later = await server.customer(token=token)
    closed = await later.call("session.resume", {})
    assert closed["ticket"]["status"] == "closed"
    new = await later.call("help.request", {"context": CONTEXT})
    assert new["ok"] and new["ticket"]["id"] != old_id
    assert new["ticket"]["previousTicketId"] == old_id
    assert new["ticket"]["customer"]["id"] == ack["ticket"]["customer"]["id"]

    # Also from a fresh anonymous socket holding only the old token.
    fresh = await server.customer()
    linked = await fresh.call("help.request", {"context": CONTEXT, "previousToken": token})
    assert linked["ticket"]["previousTicketId"] == old_id


async def test_context_updates_go_on_the_timeline(server: Running) -> None:
    alice = await server.agent("alice")
    customer, ack = await ask_for_help(server)
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    patch = {"url": "http://shop.test/cart", "title": "Cart", "app": {"cart": {"items": 2}}}
    assert (await customer.call("context.update", {"context": patch}))["ok"]
    changed = await alice.wait_for("context.changed")
    assert changed["context"]["url"] == "http://shop.test/cart"
    assert changed["context"]["device"]["os"] == "iOS"
    entry = await alice.wait_for(
        "ticket.timeline", lambda e: e["entry"]["type"] == "context.updated"
    )
    assert entry["entry"]["data"]["url"] == "http://shop.test/cart"
    _status, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    assert ticket["context"]["title"] == "Cart"


async def test_verified_identity(server: Running) -> None:
    from signaling.auth import identity_signature

    good = identity_signature(server.site.secret, "u-7")
    _c, ack = await ask_for_help(server, identity={"id": "u-7", "name": "Kim", "signature": good})
    assert ack["ticket"]["customer"]["verified"] is True
    forged = identity_signature(server.other_site.secret, "u-7")
    _c, ack = await ask_for_help(server, identity={"id": "u-7", "name": "Kim", "signature": forged})
    assert ack["ticket"]["customer"]["verified"] is False


async def test_supervisor_joins_and_sees_chat(server: Running) -> None:
    alice, sam = await server.agent("alice"), await server.agent("sam")
    customer, ack = await ask_for_help(server)
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    joined = await sam.call("session.join", {"ticketId": ticket_id})
    assert joined["ok"] and len(joined["ticket"]["agents"]) == 2
    await customer.wait_for("session.joined")
    await customer.call("chat.send", {"clientMsgId": "x", "text": "hi all"})
    await sam.wait_for("chat.message", lambda e: e["message"]["text"] == "hi all")
    await alice.wait_for("chat.message", lambda e: e["message"]["text"] == "hi all")


async def test_customers_hear_nothing_of_other_sessions(server: Running) -> None:
    """Regression: events of a session with no agent yet went to every socket."""
    first, _ack1 = await ask_for_help(server)
    second, ack2 = await ask_for_help(server)
    await second.call("context.update", {"context": {"url": "http://shop.test/secret-page"}})
    await second.call("chat.send", {"clientMsgId": "s1", "text": "my address is 1 Main St"})
    alice = await server.agent("alice")
    await alice.call("session.accept", {"ticketId": ack2["ticket"]["id"]})
    await alice.call(
        "chat.send", {"ticketId": ack2["ticket"]["id"], "clientMsgId": "a", "text": "hello second"}
    )
    await second.wait_for("chat.message", lambda e: e["message"]["text"] == "hello second")
    await asyncio.sleep(0.2)
    seen = repr(dict(first.events))
    assert ack2["ticket"]["id"] not in seen
    assert "secret-page" not in seen and "Main St" not in seen
    assert set(first.events) <= {"queue.position"}


async def test_many_customers_at_once(tmp_path: Path) -> None:
    """Everything concurrent, as under load (regression: SQLite statements and commits of
    different handlers interleaved on one connection, and a third of these requests failed).
    Pull routing: one agent takes all thirty (push routing would stop them at capacity)."""
    async with running_server(tmp_path, routing="pull") as server:
        await _many_customers_at_once(server)


async def _many_customers_at_once(server: Running) -> None:
    customers = [await server.customer() for _ in range(30)]
    acks = await asyncio.gather(*(c.call("help.request", {"context": CONTEXT}) for c in customers))
    assert [a["ok"] for a in acks] == [True] * 30, [a for a in acks if not a["ok"]][:1]
    alice = await server.agent("alice")
    accepted = await asyncio.gather(
        *(alice.call("session.accept", {"ticketId": a["ticket"]["id"]}) for a in acks)
    )
    assert [a["ok"] for a in accepted] == [True] * 30, [a for a in accepted if not a["ok"]][:1]
    sent = await asyncio.gather(
        *(c.call("chat.send", {"clientMsgId": "m", "text": "hi"}) for c in customers)
    )
    assert [s["ok"] for s in sent] == [True] * 30
