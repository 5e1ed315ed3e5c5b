"""A session's home node across two real nodes: the customer on one, the agent on the other,
the call's media on the home node only, requests forwarded to it; and when the home node stops
answering, the other node takes the session over (epoch + 1), the call is re-offered and comes
back, and the old home's writes are refused."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from signaling import keys
from signaling.app import drain
from signaling.store import StaleEpoch
from tests.home.nodes_support import Node, nodes, store_of
from tests.media.media_support import CounterVideoTrack, wait_for
from tests.signaling.test_calls_functional import peer
from tests.support import CONTEXT, Client


async def open_session(customer_node: Node, agent_node: Node) -> tuple[Client, Client, str, str]:
    customer = await customer_node.running.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id = ack["ticket"]["id"]
    alice = await agent_node.running.agent("alice")
    accepted = await alice.call("session.accept", {"ticketId": ticket_id})
    assert accepted["ok"], accepted
    return customer, alice, ticket_id, ack["token"]


async def test_a_call_whose_customer_and_agent_sit_on_different_nodes(
    tmp_path: Path, redis: aioredis.Redis, prefix: str
) -> None:
    async with nodes(tmp_path, prefix) as (one, two):
        customer, alice, ticket_id, _ = await open_session(one, two)
        assert (await customer.call("rtc.join", {}))["ok"]
        assert (await alice.call("rtc.join", {"ticketId": ticket_id}))["ok"]
        publisher = peer(customer, ticket_id, "customer")
        camera = CounterVideoTrack(320, 240)
        publisher.add_track(camera)
        viewer = peer(alice, ticket_id, "agent")
        try:
            await publisher.negotiate(lambda: {camera.id: "camera"})
            # The customer's offer reached node one first: it is the home node.
            lease = await one.home.placement.current(ticket_id)
            assert lease is not None and lease.node == one.home.node and lease.epoch == 1
            assert await redis.get(f"{prefix}own:{ticket_id}") == f"{lease.node}:1".encode()
            # The agent's offer, answer and candidates go from node two to node one; the
            # server's offers and track lists come back through the socket.io rooms.
            viewer.pc.addTransceiver("audio", direction="recvonly")
            await viewer.negotiate()
            await wait_for(lambda: bool(viewer.video), 15, "the agent to receive the camera")
            sink = next(iter(viewer.video.values()))
            await sink.wait_frames(10, within=15)
            assert two.home.placement.held() == []
            track_id = next(iter(viewer.video))
            shot = await alice.call("capture.still", {"ticketId": ticket_id, "trackId": track_id})
            assert shot["ok"], shot
            assert shot["attachment"]["kind"] == "screenshot"
            # A refusal on the home node comes back as itself.
            missing = await alice.call("capture.still", {"ticketId": ticket_id, "trackId": "nope"})
            assert missing["error"]["code"] == "not_found"
            timeline = await store_of(two).timeline(ticket_id)
            joined = [e.data["participant"] for e in timeline if e.type == "call.joined"]
            assert joined == ["customer", f"agent:{two.running.agents['alice'].id}"]
            # Ending the session on node two closes the room on node one and frees the lease.
            await alice.call("session.end", {"ticketId": ticket_id})
            await wait_for(
                lambda: viewer.pc.connectionState in ("closed", "failed"),
                15,
                "the call to close with the session",
            )
            assert await one.home.placement.current(ticket_id) is None
        finally:
            await publisher.close()
            await viewer.close()


async def test_the_other_node_takes_over_when_the_home_node_stops_answering(
    tmp_path: Path, redis: aioredis.Redis, prefix: str
) -> None:
    async with nodes(tmp_path, prefix) as (one, two):
        customer, alice, ticket_id, token = await open_session(one, two)
        assert (await customer.call("rtc.join", {}))["ok"]
        assert (await alice.call("rtc.join", {"ticketId": ticket_id}))["ok"]
        publisher = peer(customer, ticket_id, "customer")
        camera = CounterVideoTrack(320, 240)
        publisher.add_track(camera)
        viewer = peer(alice, ticket_id, "agent")
        viewer.pc.addTransceiver("audio", direction="recvonly")
        peers = [publisher, viewer]
        try:
            await publisher.negotiate(lambda: {camera.id: "camera"})
            await viewer.negotiate()
            await wait_for(lambda: bool(viewer.video), 15, "the agent to receive the camera")
            stale = await one.home.placement.current(ticket_id)
            assert stale is not None and stale.node == one.home.node

            # Node one freezes: it stops renewing, serving requests and advertising itself
            # (its node record is gone as after NODE_TTL_SECONDS), but holds its lease.
            await one.home.placement.close()
            await one.home.rpc.close()
            await one.home.nodes.close()
            await redis.delete(f"{prefix}n:{one.home.node}")
            two.home.rpc.timeout = 1.0

            # The customer comes back on node two; the agent's next offer takes the session.
            back = await two.running.customer(token=token)
            moved = peer(alice, ticket_id, "agent")
            peers.append(moved)
            moved.pc.addTransceiver("video", direction="recvonly")
            await moved.negotiate()
            lease = await two.home.placement.current(ticket_id)
            assert lease is not None and lease.node == two.home.node and lease.epoch == 2
            assert await store_of(two).owner_epoch(ticket_id) == 2
            notice = await back.wait_for("call.reoffer", timeout=10)
            # Numbered (seq) like every session event, so a reconnecting client gets it too.
            assert {k: v for k, v in notice.items() if k != "seq"} == {
                "type": "call.reoffer",
                "ticketId": ticket_id,
                "reason": "home_moved",
            }
            assert isinstance(notice["seq"], int)

            # The customer re-offers to the new home and the agent sees the camera again.
            republisher = peer(back, ticket_id, "customer")
            peers.append(republisher)
            camera_again = CounterVideoTrack(320, 240)
            republisher.add_track(camera_again)
            assert (await back.call("rtc.join", {}))["ok"]
            await republisher.negotiate(lambda: {camera_again.id: "camera"})
            await wait_for(lambda: bool(moved.video), 15, "the camera through the new home")
            await next(iter(moved.video.values())).wait_frames(5, within=15)

            # The old home wakes. A write it still had on its way is refused by the store; a
            # request it serves before its renewal runs finds its epoch refused too, and it
            # lets the room go; its renewal then has nothing left to lose.
            ticket = await store_of(one).ticket(ticket_id)
            with pytest.raises(StaleEpoch):
                await one.app[keys.desk].timeline(ticket, "call.left", {}, stale.epoch)
            assert ticket_id in one.app[keys.calls]._rooms
            shots = len(await store_of(one).attachments(ticket_id))
            woken = await one.running.agent("alice")
            track_id = next(iter(viewer.video))
            refused = await woken.call(
                "capture.still", {"ticketId": ticket_id, "trackId": track_id}
            )
            assert refused["error"]["code"] == "invalid_state", refused
            assert "moved" in refused["error"]["message"]
            assert ticket_id not in one.app[keys.calls]._rooms
            assert one.home.placement.held() == []
            assert len(await store_of(one).attachments(ticket_id)) == shots
            assert await one.home.placement.renew_all() == []
            types = [e.type for e in await store_of(two).timeline(ticket_id)]
            assert "call.moved" in types and "call.left" not in types
        finally:
            for each in peers:
                with contextlib.suppress(Exception):
                    await each.close()
            await asyncio.sleep(0)


async def test_a_dead_home_nodes_call_is_adopted_without_waiting_for_a_request(
    tmp_path: Path, redis: aioredis.Redis, prefix: str
) -> None:
    """kill -9 of the home node, in process: it stops everything at once and its node record
    expires; another node finds the orphaned lease and re-offers the call by itself."""
    async with nodes(tmp_path, prefix) as (one, two):
        customer, alice, ticket_id, _ = await open_session(two, two)
        assert (await customer.call("rtc.join", {}))["ok"]
        publisher = peer(customer, ticket_id, "customer")
        camera = CounterVideoTrack(320, 240)
        publisher.add_track(camera)
        try:
            # The customer's offer went to node one (through node two): one is home.
            await one.home.lease(await store_of(one).ticket(ticket_id))
            await publisher.negotiate(lambda: {camera.id: "camera"})
            assert ticket_id in one.app[keys.calls]._rooms
            assert await two.home.adopt_orphans() == []  # node one is alive: nothing to do

            await one.home.close()
            await one.home.placement.close()
            await one.home.rpc.close()
            await one.home.nodes.close()
            await redis.delete(f"{prefix}n:{one.home.node}")
            assert await two.home.adopt_orphans() == [ticket_id]
            lease = await two.home.placement.current(ticket_id)
            assert lease is not None and (lease.node, lease.epoch) == (two.home.node, 2)
            await customer.wait_for("call.reoffer", timeout=10)
            await alice.wait_for("call.reoffer", timeout=10)
            assert await two.home.adopt_orphans() == []
        finally:
            await publisher.close()


async def test_a_draining_home_files_the_running_clip_and_the_adopter_reoffers(
    tmp_path: Path, redis: aioredis.Redis, prefix: str
) -> None:
    async with nodes(tmp_path, prefix) as (one, two):
        customer, alice, ticket_id, _ = await open_session(one, two)
        assert (await customer.call("rtc.join", {}))["ok"]
        assert (await alice.call("rtc.join", {"ticketId": ticket_id}))["ok"]
        publisher = peer(customer, ticket_id, "customer")
        camera = CounterVideoTrack(320, 240)
        publisher.add_track(camera)
        viewer = peer(alice, ticket_id, "agent")
        viewer.pc.addTransceiver("audio", direction="recvonly")
        try:
            await publisher.negotiate(lambda: {camera.id: "camera"})
            await viewer.negotiate()
            await wait_for(lambda: bool(viewer.video), 15, "the agent to receive the camera")
            track_id = next(iter(viewer.video))
            started = await alice.call(
                "capture.clip.start", {"ticketId": ticket_id, "trackId": track_id}
            )
            assert started["ok"], started
            await next(iter(viewer.video.values())).wait_frames(30, within=15)

            await drain(one.app)
            moved = await two.home.placement.current(ticket_id)
            assert moved is not None and (moved.node, moved.epoch) == (two.home.node, 2)
            await customer.wait_for("call.reoffer", timeout=10)
            await alice.wait_for("call.reoffer", timeout=10)
            clips = [a for a in await store_of(two).attachments(ticket_id) if a.kind == "clip"]
            assert len(clips) == 1
            assert clips[0].meta["by"] == "system" and clips[0].meta["frames"] > 0
            assert two.home.placement.held() == [moved]
            assert one.home.placement.held() == []
        finally:
            await publisher.close()
            await viewer.close()
