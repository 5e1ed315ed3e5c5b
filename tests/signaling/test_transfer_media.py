"""A warm transfer of a session with a live call and a live co-browse, with aiortc peers: the
customer's video keeps arriving at the new agent with no new offer from the customer, the new
agent's mirror catches up to the current page, the transcript and the notes arrive, the old
agent hears nothing more."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.media.media_support import CounterVideoTrack, wait_for
from tests.nodes.test_nodes import RECORDER, meta, scroll, snapshot
from tests.signaling.test_calls_functional import peer
from tests.support import CONTEXT, running_server


async def test_warm_transfer_moves_call_and_cobrowse(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, media_host_addresses=("127.0.0.1",), wrap_up_seconds=0
    ) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        customer = await server.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        ticket = str(ack["ticket"]["id"])
        assert (await alice.call("session.accept", {"ticketId": ticket}))["ok"]
        assert (await customer.call("chat.send", {"clientMsgId": "m1", "text": "see my cart"}))[
            "ok"
        ]
        offers: list[str] = []
        call: Callable[..., Awaitable[Any]] = customer.call

        async def counting(event: str, data: Any = None, **kw: Any) -> Any:
            if event == "rtc.offer":
                offers.append(event)
            return await call(event, data, **kw)

        customer.call = counting  # type: ignore[method-assign,assignment]
        # Co-browse: the customer shares, the page scrolls.
        assert (await alice.call("cobrowse.request", {"ticketId": ticket}))["ok"]
        await customer.wait_for("cobrowse.requested")
        assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
        events = [meta(1), snapshot(2), scroll(3, 100)]
        assert (await customer.call("cobrowse.events", {"data": json.dumps(events)}))["ok"]
        await alice.wait_for("cobrowse.events")
        # The call: the customer's camera reaches alice.
        assert (await customer.call("rtc.join", {}))["ok"]
        assert (await alice.call("rtc.join", {"ticketId": ticket}))["ok"]
        publisher = peer(customer, ticket, "customer")
        camera = CounterVideoTrack(320, 240)
        publisher.add_track(camera)
        await publisher.negotiate(lambda: {camera.id: "camera"})
        alices = peer(alice, ticket, "agent")
        alices.pc.addTransceiver("audio", direction="recvonly")
        await alices.negotiate()
        bobs = peer(bob, ticket, "agent")
        try:
            await wait_for(lambda: bool(alices.video), 10, "alice to receive the camera")
            offers_before = len(offers)
            noted = await alice.call("note.add", {"ticketId": ticket, "text": "refund approved"})
            assert noted["ok"], noted
            moved = await alice.call(
                "session.transfer",
                {"ticketId": ticket, "to": {"agentId": server.agents["bob"].id}, "note": "cart"},
            )
            assert moved["ok"], moved
            await bob.wait_for("session.offered", lambda o: o.get("transfer"))
            state = await bob.call("session.accept", {"ticketId": ticket})
            assert state["ok"], state
            assert [m["text"] for m in state["messages"]] == ["see my cart"]
            # The notes: alice's, and the transfer's own, filed as one.
            assert [n["text"] for n in state["notes"]] == ["refund approved", "cart"]
            # The mirror: bob catches up to the current page.
            view = await bob.call("cobrowse.join", {"ticketId": ticket})
            assert view["sharing"], view
            assert [e["type"] for e in view["events"][:2]] == [4, 2]
            assert view["events"][-1]["data"]["y"] == 100
            # The call: bob joins the room and receives the camera; the customer sent no offer.
            assert (await bob.call("rtc.join", {"ticketId": ticket}))["ok"]
            bobs.pc.addTransceiver("audio", direction="recvonly")
            await bobs.negotiate()
            await wait_for(lambda: bool(bobs.video), 10, "bob to receive the camera")
            sink = next(iter(bobs.video.values()))
            await sink.wait_frames(10, within=10)
            assert len(offers) == offers_before
            # Alice hears nothing more: new page events and chat go to bob only.
            heard = {k: len(v) for k, v in alice.events.items()}
            more = [scroll(10, 300)]
            assert (await customer.call("cobrowse.events", {"data": json.dumps(more)}))["ok"]
            assert (await customer.call("chat.send", {"clientMsgId": "m2", "text": "hi Bob"}))["ok"]
            await bob.wait_for("chat.message", lambda m: m["message"]["text"] == "hi Bob")
            await bob.wait_for(
                "cobrowse.events", lambda e: any(x.get("timestamp") == 10 for x in e["events"])
            )
            assert (await alice.call("queue.list", {"limit": 1}))["ok"]
            for name in ("chat.message", "cobrowse.events"):
                assert len(alice.events[name]) == heard.get(name, 0), name
        finally:
            await publisher.close()
            await alices.close()
            await bobs.close()
