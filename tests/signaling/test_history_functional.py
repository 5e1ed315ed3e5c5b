"""Around the conversation, over real sockets: the ticket keeps every page the customer visited
(the page of the request first and marked; navigating to checkout no longer loses the product
asked about), the agents hear each new page as a numbered session event that a resume replays,
and the waiting queue shows the start of the customer's first message, in the queue feed and
in offers. Runs on SQLite and, with ``TANDEM_TEST_STORE=postgres TANDEM_TEST_LIVE=redis``, on
PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from signaling import keys
from signaling.protocol import FIRST_MESSAGE_PREVIEW
from signaling.store import MAX_PAGES
from tests.support import CONTEXT, Client, Running

CHECKOUT = {
    "url": "http://shop.test/checkout",
    "title": "Checkout - Demo shop",
    "app": {"cart": {"items": 1, "total": 120}},
}


async def console(server: Running, name: str) -> Client:
    """An agent's console of protocol v2 (``queue.changed``)."""
    client = Client()
    await client.connect(
        server.base_url, {"v": 2, "role": "agent", "token": await server.token(name)}
    )
    server.clients.append(client)
    return client


async def ask(server: Running) -> tuple[Client, str]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    return customer, str(ack["ticket"]["id"])


async def pages_of(server: Running, ticket_id: str) -> list[dict[str, Any]]:
    status, detail = await server.get(f"/api/tickets/{ticket_id}", await server.token("sam"))
    assert status == 200, detail
    pages: list[dict[str, Any]] = detail["pages"]
    return pages


async def test_the_ticket_keeps_every_page_with_the_request_first(server: Running) -> None:
    alice = await console(server, "alice")
    customer, ticket_id = await ask(server)
    state = await alice.call("session.accept", {"ticketId": ticket_id})
    assert state["ok"], state
    before = state["seq"]

    # The customer goes to checkout: the context now names no product, the history still does.
    assert (await customer.call("context.update", {"context": CHECKOUT}))["ok"]
    visited = await alice.wait_for("page.visited")
    assert visited["ticketId"] == ticket_id and isinstance(visited["seq"], int)
    assert visited["page"]["url"] == CHECKOUT["url"]
    assert visited["page"]["title"] == "Checkout - Demo shop"
    assert visited["page"]["app"] == {"cart": {"items": 1, "total": 120}}
    assert visited["page"]["request"] is False

    # The same page again (a reload) adds nothing; a change of geo alone is no page.
    assert (await customer.call("context.update", {"context": CHECKOUT}))["ok"]
    geo = {"geo": {"latitude": 51.5, "longitude": -0.1, "accuracy": 20}}
    assert (await customer.call("context.update", {"context": geo}))["ok"]
    # Back to the product: a page again (consecutive repeats only are folded).
    back = {"url": CONTEXT["url"], "title": CONTEXT["title"], "app": CONTEXT["app"]}
    assert (await customer.call("context.update", {"context": back}))["ok"]
    await alice.wait_for("page.visited", lambda e: e["page"]["url"] == CONTEXT["url"])

    pages = await pages_of(server, ticket_id)
    assert [(p["url"], p["request"]) for p in pages] == [
        (CONTEXT["url"], True),
        (CHECKOUT["url"], False),
        (CONTEXT["url"], False),
    ]
    request_page = pages[0]
    assert request_page["title"] == CONTEXT["title"]
    assert request_page["app"]["product"]["name"] == "Trail Runner 2"
    assert [p["id"] for p in pages] == sorted(p["id"] for p in pages)
    assert len(alice.events["page.visited"]) == 2

    # A console that lost its socket gets the pages it missed replayed, in order.
    replay = await alice.call("session.resume", {"ticketId": ticket_id, "afterSeq": before})
    assert replay["ok"] and replay.get("events") is not None, replay
    replayed = [e["page"]["url"] for e in replay["events"] if e["type"] == "page.visited"]
    assert replayed == [CHECKOUT["url"], CONTEXT["url"]]

    # The customer is never told their own history.
    await asyncio.sleep(0.1)
    assert customer.events["page.visited"] == []


async def test_the_history_is_bounded_and_keeps_the_request_page(server: Running) -> None:
    _customer, ticket_id = await ask(server)
    store = server.app[keys.store]
    for n in range(MAX_PAGES + 10):
        page = await store.add_page(ticket_id, f"http://shop.test/p/{n}", f"P{n}", {}, 1000.0 + n)
        assert page is not None
    # The page the history ends with, again: not stored.
    last = MAX_PAGES + 9
    assert await store.add_page(ticket_id, f"http://shop.test/p/{last}", f"P{last}", {}, 0) is None
    pages = await pages_of(server, ticket_id)
    assert len(pages) == MAX_PAGES
    assert pages[0]["request"] and pages[0]["url"] == CONTEXT["url"]
    # The oldest later pages went; the newest are all there, in order.
    assert [p["title"] for p in pages[1:]] == [f"P{n}" for n in range(11, MAX_PAGES + 10)]
    assert await store.add_page("tk_nope", "http://shop.test/", "", {}, 0) is None


async def test_a_bad_context_update_adds_no_page(server: Running) -> None:
    customer, ticket_id = await ask(server)
    ack = await customer.call("context.update", {"context": {"url": "x" * 3000}})
    assert ack["ok"] is False and ack["error"]["code"] == "malformed"
    assert [p["url"] for p in await pages_of(server, ticket_id)] == [CONTEXT["url"]]


async def test_the_queue_shows_the_customers_first_message(server: Running) -> None:
    # Nobody online: the ticket waits, offered to no one yet.
    customer, ticket_id = await ask(server)
    long_text = "My   order\n\nwas charged twice " + "and the tracking number is wrong " * 8
    sent = await customer.call("chat.send", {"clientMsgId": "c1", "text": long_text})
    assert sent["ok"], sent
    assert (await customer.call("chat.send", {"clientMsgId": "c2", "text": "Hello?"}))["ok"]
    expected = " ".join(long_text.split())[: FIRST_MESSAGE_PREVIEW - 1].rstrip() + "…"

    # An agent who comes online: the queue and the offer carry the preview.
    sam = await console(server, "sam")
    queue = await sam.call("queue.list")
    assert [e.get("firstMessage") for e in queue["entries"]] == [expected]
    assert len(expected) == FIRST_MESSAGE_PREVIEW
    offered = await sam.wait_for("session.offered", lambda e: e["ticketId"] == ticket_id)
    assert offered["entry"]["firstMessage"] == expected

    # A customer who writes while an agent already watches the queue: an update to that entry.
    other, other_id = await ask(server)
    added = await sam.wait_for(
        "queue.changed", lambda e: any(a["ticketId"] == other_id for a in e["added"])
    )
    assert all("firstMessage" not in a for a in added["added"])
    assert (await other.call("chat.send", {"clientMsgId": "o1", "text": " Where is\tit? "}))["ok"]
    changed = await sam.wait_for("queue.changed", lambda e: bool(e.get("updated")))
    assert [(e["ticketId"], e["firstMessage"]) for e in changed["updated"]] == [
        (other_id, "Where is it?")
    ]
    # Only the first message: a second one changes nothing.
    assert (await other.call("chat.send", {"clientMsgId": "o2", "text": "hello"}))["ok"]
    await asyncio.sleep(0.3)
    updates = [e for e in sam.events["queue.changed"] if e.get("updated")]
    assert len(updates) == 1
    entries = {e["ticketId"]: e for e in (await sam.call("queue.list"))["entries"]}
    assert entries[other_id]["firstMessage"] == "Where is it?"

    # An accepted session leaves the queue; a message then is no queue change.
    assert (await sam.call("session.accept", {"ticketId": ticket_id}))["ok"]
    assert (await customer.call("chat.send", {"clientMsgId": "c3", "text": "thanks"}))["ok"]
    await asyncio.sleep(0.3)
    assert len([e for e in sam.events["queue.changed"] if e.get("updated")]) == 1


async def test_a_rebuilt_queue_keeps_the_preview(server: Running) -> None:
    customer, ticket_id = await ask(server)
    assert (await customer.call("chat.send", {"clientMsgId": "c1", "text": "Refund?"}))["ok"]
    desk = server.app[keys.desk]
    # The live entry lost (a Redis that restarted empty): repaired from the store, preview too.
    await desk.live.dequeue(ticket_id)
    assert await desk.reconcile_live_state() >= 1
    entries = {e.ticket_id: e for e in (await desk.queue())[0]}
    assert entries[ticket_id].first_message == "Refund?"
