"""Call invitations (``call.invite``, ``call.accept``, ``call.decline``) and the end of a media leg
whose socket went, over real sockets (and, with TANDEM_TEST_STORE/TANDEM_TEST_LIVE, on
PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signaling import keys
from tests.media.media_support import CounterVideoTrack, ToneAudioTrack, wait_for
from tests.signaling.test_calls_functional import peer, session
from tests.support import Running, running_server


@pytest.fixture
async def call_server(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(
        tmp_path, media_host_addresses=("127.0.0.1",), call_invite_seconds=1.0
    ) as running:
        yield running


def code(ack: dict[str, Any]) -> str:
    assert not ack["ok"], ack
    return str(ack["error"]["code"])


async def timeline_types(server: Running, ticket_id: str) -> list[str]:
    status, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    assert status == 200
    return [entry["type"] for entry in ticket["timeline"]]


async def test_invite_rings_the_invited_party_who_alone_answers(call_server: Running) -> None:
    server = call_server
    alice, customer, ticket_id, _ = await session(server)
    bob = await server.agent("bob")

    # Only agents in the session invite; a customer only asks for a call.
    refused = await bob.call("call.invite", {"ticketId": ticket_id, "ask": "voice"})
    assert code(refused) == "forbidden"
    assert code(await customer.call("call.invite", {"ask": "camera"})) == "forbidden"
    assert code(await alice.call("call.invite", {"ticketId": ticket_id, "ask": "dance"})) == (
        "malformed"
    )

    ack = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "voice"})
    assert ack["ok"], ack
    invite = ack["invite"]
    assert invite["from"] == "agent" and invite["agent"]["name"] == "Alice"
    rung = await customer.wait_for("call.invite")
    assert rung["invite"] == invite and rung["seq"] >= 1  # numbered: replayed on a resume
    await alice.wait_for("call.invite")

    # One ringing at a time; only the invited party answers, the id must be the ringing one.
    again = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "camera"})
    assert code(again) == "invalid_state" and "already ringing" in again["error"]["message"]
    own = await alice.call("call.decline", {"ticketId": ticket_id, "inviteId": invite["id"]})
    assert code(own) == "forbidden"
    stranger = await bob.call("call.decline", {"ticketId": ticket_id, "inviteId": invite["id"]})
    assert code(stranger) == "forbidden"
    assert code(await customer.call("call.decline", {"inviteId": "ci_nope"})) == "not_found"

    # The customer declines: the agent hears it at once, once.
    assert (await customer.call("call.decline", {"inviteId": invite["id"]}))["ok"]
    ended = await alice.wait_for("call.invite.ended")
    assert ended["inviteId"] == invite["id"] and ended["reason"] == "declined"
    assert code(await customer.call("call.decline", {"inviteId": invite["id"]})) == "not_found"
    assert code(await customer.call("call.accept", {"inviteId": invite["id"]})) == "not_found"
    # An answered invitation leaves nothing behind in live state (in Redis, the routing hash).
    live = call_server.app[keys.desk].live
    assert await live.routing_of([f"call-invite:{ticket_id}"]) == {}

    # The customer asks for a call: the agents ring; the customer cannot answer their own.
    request = await customer.call("call.invite", {})
    assert request["ok"] and request["invite"]["from"] == "customer"
    rung = await alice.wait_for("call.invite", lambda e: e["invite"]["from"] == "customer")
    mine = await customer.call("call.accept", {"inviteId": request["invite"]["id"]})
    assert code(mine) == "forbidden"
    taken = await alice.call(
        "call.accept", {"ticketId": ticket_id, "inviteId": request["invite"]["id"]}
    )
    assert taken["ok"], taken
    accepted = await customer.wait_for("call.invite.ended", lambda e: e["reason"] == "accepted")
    assert accepted["by"]["name"] == "Alice"

    # Unanswered, an invitation expires (here after 1 s) and both sides hear it.
    ack = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "screen"})
    expired = await customer.wait_for(
        "call.invite.ended", lambda e: e["inviteId"] == ack["invite"]["id"], timeout=10
    )
    assert expired["reason"] == "expired"
    late = await customer.call("call.accept", {"inviteId": ack["invite"]["id"]})
    assert code(late) == "not_found"

    types = await timeline_types(server, ticket_id)
    assert types.count("call.invited") == 3 and types.count("call.invite.ended") == 3

    await alice.call("session.end", {"ticketId": ticket_id})
    after = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "voice"})
    assert code(after) == "invalid_state"


async def test_an_invite_for_a_running_call_is_refused(call_server: Running) -> None:
    server = call_server
    alice, customer, ticket_id, _ = await session(server)
    await customer.call("rtc.join", {})
    publisher = peer(customer, ticket_id, "customer")
    mic = ToneAudioTrack(440)
    publisher.add_track(mic)
    await publisher.negotiate(lambda: {mic.id: "microphone"})
    viewer = peer(alice, ticket_id, "agent")
    viewer.pc.addTransceiver("audio", direction="recvonly")
    await viewer.negotiate()
    try:
        await wait_for(lambda: bool(viewer.audio), 10, "the agent to hear the customer")
        voice = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "voice"})
        assert code(voice) == "invalid_state"
        assert voice["error"]["message"] == (
            "a call is already running: the customer is in it with their microphone"
        )
        request = await customer.call("call.invite", {"ask": "voice"})
        assert code(request) == "invalid_state" and "already running" in request["error"]["message"]
        # Asking for what the customer does not send yet is an invitation like any.
        camera = await alice.call("call.invite", {"ticketId": ticket_id, "ask": "camera"})
        assert camera["ok"], camera
    finally:
        await publisher.close()
        await viewer.close()


async def test_the_customers_leg_ends_when_their_socket_goes(call_server: Running) -> None:
    """A reload: the page's socket goes and a new one resumes the session. The customer's media
    leg ends at once (the agent sees the tracks go and ``call.left``, reason ``disconnected``);
    another socket of the same session going does not end it."""
    server = call_server
    alice, customer, ticket_id, token = await session(server)
    await customer.call("rtc.join", {})
    publisher = peer(customer, ticket_id, "customer")
    camera = CounterVideoTrack(320, 240)
    publisher.add_track(camera)
    await publisher.negotiate(lambda: {camera.id: "camera"})
    viewer = peer(alice, ticket_id, "agent")
    viewer.pc.addTransceiver("audio", direction="recvonly")
    await viewer.negotiate()
    try:
        await wait_for(lambda: bool(viewer.video), 10, "the agent to receive the camera")
        sink = next(iter(viewer.video.values()))
        await sink.wait_frames(5, within=10)

        # Another tab of the session comes and goes: the call goes on.
        other_tab = await server.customer(token=token)
        assert (await other_tab.call("session.resume", {}))["ok"]
        await other_tab.close()
        frames = len(sink.counters())
        await wait_for(lambda: len(sink.counters()) > frames + 10, 10, "frames to keep coming")

        # The page that holds the call reloads: its socket goes, a new one resumes.
        await customer.close()
        reloaded = await server.customer(token=token)
        assert (await reloaded.call("session.resume", {}))["ok"]
        left = await alice.wait_for(
            "ticket.timeline",
            lambda e: (
                e["entry"]["type"] == "call.left"
                and e["entry"]["data"] == {"participant": "customer", "reason": "disconnected"}
            ),
            timeout=10,
        )
        assert left["seq"] >= 1
        await wait_for(
            lambda: (
                bool(viewer.track_lists)
                and not any(t["participantId"] == "customer" for t in viewer.track_lists[-1])
            ),
            10,
            "the customer's tracks to go",
        )
        types = await timeline_types(server, ticket_id)
        assert types.count("call.left") == 1

        # An agent's console socket going ends the agent's leg the same way.
        agent_id = server.agents["alice"].id
        await alice.close()

        async def agent_left() -> bool:
            status, ticket = await server.get(
                f"/api/tickets/{ticket_id}", await server.token("alice")
            )
            assert status == 200
            return any(
                e["type"] == "call.left"
                and e["data"] == {"participant": f"agent:{agent_id}", "reason": "disconnected"}
                for e in ticket["timeline"]
            )

        for _ in range(100):
            if await agent_left():
                break
            await asyncio.sleep(0.1)
        assert await agent_left()
    finally:
        await publisher.close()
        await viewer.close()
