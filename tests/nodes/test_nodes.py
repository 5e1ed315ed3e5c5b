"""Three Tandem nodes sharing Redis and PostgreSQL, HAProxy in front: what one node did must work
whichever node each client holds (issue 11), a call whose customer and agent sit on different
nodes included (its media on the session's home node)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import pytest

from tests.media.media_support import CounterVideoTrack, wait_for
from tests.nodes.cluster import Cluster, running_cluster
from tests.signaling.test_calls_functional import peer
from tests.support import CONTEXT, Client

RECORDER = "rrweb@2.0.0-alpha.20"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("nodes")) as running:
        yield running


@pytest.fixture(autouse=True)
async def clients_closed(cluster: Cluster) -> AsyncIterator[None]:
    yield
    await cluster.close_clients()


def says(text: str, event: Any) -> bool:
    return bool(event["message"]["text"] == text)


async def ask_for_help(customer: Client) -> str:
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    return str(ack["ticket"]["id"])


async def sees_in_queue(agent: Client, ticket_id: str) -> None:
    await agent.wait_for(
        "queue.changed",
        lambda change: any(e["ticketId"] == ticket_id for e in change["added"]),
        timeout=10,
    )


async def test_chat_between_a_customer_and_an_agent_on_different_nodes(cluster: Cluster) -> None:
    alice = await cluster.agent("alice", node=1)
    bob = await cluster.agent("bob", node=2)
    customer = await cluster.customer(node=0)
    help_ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id, token = help_ack["ticket"]["id"], help_ack["token"]
    # The queue is seen from every node.
    await sees_in_queue(alice, ticket_id)
    await sees_in_queue(bob, ticket_id)
    for agent in (alice, bob):
        listed = await agent.call("queue.list", {})
        assert ticket_id in [e["ticketId"] for e in listed["entries"]]

    accepted = await alice.call("session.accept", {"ticketId": ticket_id})
    assert accepted["ok"], accepted
    await customer.wait_for("session.accepted", lambda e: e["ticketId"] == ticket_id)
    await bob.wait_for(
        "queue.changed", lambda c: any(r["ticketId"] == ticket_id for r in c["removed"])
    )

    sent = await customer.call("chat.send", {"clientMsgId": "c-1", "text": "my order is late"})
    assert sent["ok"], sent
    heard = await alice.wait_for(
        "chat.message", lambda e: e["message"]["text"] == "my order is late"
    )
    assert heard["message"]["ticketId"] == ticket_id
    reply = {"ticketId": ticket_id, "clientMsgId": "a-1", "text": "let me look"}
    assert (await alice.call("chat.send", reply))["ok"]
    await customer.wait_for("chat.message", lambda e: e["message"]["text"] == "let me look")

    # A customer who comes back on a third node resumes the same session.
    again = await cluster.customer(node=2, token=token)
    state = await again.call("session.resume", {})
    assert [m["text"] for m in state["messages"]] == ["my order is late", "let me look"]
    assert (await again.call("chat.send", {"clientMsgId": "c-2", "text": "thanks"}))["ok"]
    await alice.wait_for("chat.message", lambda e: e["message"]["text"] == "thanks")


async def test_a_call_whose_customer_and_agent_sit_on_different_nodes(cluster: Cluster) -> None:
    customer = await cluster.customer(node=0)
    alice = await cluster.agent("alice", node=1)
    ticket_id = await ask_for_help(customer)
    await sees_in_queue(alice, ticket_id)
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    assert (await customer.call("rtc.join", {}))["ok"]
    assert (await alice.call("rtc.join", {"ticketId": ticket_id}))["ok"]
    publisher = peer(customer, ticket_id, "customer")
    camera = CounterVideoTrack(320, 240)
    publisher.add_track(camera)
    viewer = peer(alice, ticket_id, "agent")
    try:
        # The customer's offer makes node 1 the session's home: the agent's offer, answer and
        # candidates go from node 2 to it, and the server's offers come back through the bus.
        await publisher.negotiate(lambda: {camera.id: "camera"})
        viewer.pc.addTransceiver("audio", direction="recvonly")
        await viewer.negotiate()
        await wait_for(lambda: bool(viewer.video), 20, "the agent to receive the camera")
        await next(iter(viewer.video.values())).wait_frames(10, within=20)
        track_id = next(iter(viewer.video))
        shot = await alice.call("capture.still", {"ticketId": ticket_id, "trackId": track_id})
        assert shot["ok"], shot
        assert shot["attachment"]["kind"] == "screenshot"
    finally:
        await publisher.close()
        await viewer.close()


async def test_accept_race_across_nodes_has_one_winner(cluster: Cluster) -> None:
    agents = [
        await cluster.agent("alice", node=0),
        await cluster.agent("bob", node=1),
        await cluster.agent("sam", node=2),
    ]
    customers = [await cluster.customer(node=i % 3) for i in range(6)]
    tickets = [await ask_for_help(customer) for customer in customers]
    for ticket_id in tickets:
        for agent in agents:
            await sees_in_queue(agent, ticket_id)
        acks = await asyncio.gather(
            *(agent.call("session.accept", {"ticketId": ticket_id}) for agent in agents)
        )
        winners = [ack for ack in acks if ack["ok"]]
        losers = [ack for ack in acks if not ack["ok"]]
        assert len(winners) == 1, acks
        assert {ack["error"]["code"] for ack in losers} == {"already_taken"}
        assert all("accepted this session first" in ack["error"]["message"] for ack in losers)
    for agent in agents:
        listed = await agent.call("queue.list", {})
        assert not set(tickets) & {e["ticketId"] for e in listed["entries"]}


async def test_cobrowse_late_join_from_another_node(cluster: Cluster) -> None:
    customer = await cluster.customer(node=0)
    alice = await cluster.agent("alice", node=1)
    ticket_id = await ask_for_help(customer)
    await sees_in_queue(alice, ticket_id)
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
    await customer.wait_for("cobrowse.requested")
    assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
    await alice.wait_for("cobrowse.state", lambda e: e["state"] == "sharing")
    events = [meta(1), snapshot(2), *(scroll(3 + y, y * 100) for y in range(5))]
    assert (await customer.call("cobrowse.events", {"data": json.dumps(events)}))["ok"]
    live = await alice.wait_for("cobrowse.events")
    assert [e["type"] for e in live["events"][:2]] == [4, 2]

    # The events arrived on node 1; an agent on node 2 (and one on node 3) joins late.
    view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
    assert view["sharing"], view
    assert [e["type"] for e in view["events"][:2]] == [4, 2]
    assert [e["data"]["y"] for e in view["events"][2:]] == [y * 100 for y in range(5)]
    sam = await cluster.agent("sam", node=2)
    assert (await sam.call("session.join", {"ticketId": ticket_id}))["ok"]
    sams_view = await sam.call("cobrowse.join", {"ticketId": ticket_id})
    assert sams_view["events"] == view["events"]

    assert (await customer.call("cobrowse.stop", {}))["ok"]
    await sam.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
    assert not (await sam.call("cobrowse.join", {"ticketId": ticket_id}))["sharing"]


async def test_logout_closes_the_sessions_sockets_on_every_node(cluster: Cluster) -> None:
    import aiohttp

    token = await cluster.token("bob@tandem.test", node=0)
    sockets = [await cluster.agent("bob", node=i, token=token) for i in range(3)]
    other = await cluster.agent("bob", node=1)  # another sign-in session: stays
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{cluster.nodes[2].url}/api/auth/logout",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 204
    async with asyncio.timeout(10):
        while any(s.sio.connected for s in sockets):
            await asyncio.sleep(0.05)
    assert other.sio.connected


async def test_clients_spread_by_haproxy_talk_to_each_other(cluster: Cluster) -> None:
    agents = [await cluster.agent(who, node=None) for who in ("alice", "bob", "sam")]
    customers = [await cluster.customer(node=None) for _ in range(6)]
    tickets = [await ask_for_help(customer) for customer in customers]
    for index, (customer, ticket_id) in enumerate(zip(customers, tickets, strict=True)):
        agent = agents[index % 3]
        await sees_in_queue(agent, ticket_id)
        assert (await agent.call("session.accept", {"ticketId": ticket_id}))["ok"]
        await customer.wait_for("session.accepted")
        text = f"hello {index}"
        assert (await customer.call("chat.send", {"clientMsgId": f"m{index}", "text": text}))["ok"]
        await agent.wait_for("chat.message", partial(says, text))


async def test_a_killed_bus_subscription_is_made_again_and_clients_resync(
    cluster: Cluster,
) -> None:
    agents = [await cluster.agent("alice", node=i) for i in range(3)]
    killed = cluster.redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed or 0) >= 3
    for agent in agents:
        notice = await agent.wait_for("server.resync", timeout=15)
        assert notice["reason"] in ("bus_reconnected", "bus_silent")
    # And the bus carries events again: a customer on node 1 reaches an agent on node 3.
    customer = await cluster.customer(node=0)
    ticket_id = await ask_for_help(customer)
    await sees_in_queue(agents[2], ticket_id)


async def test_the_queue_comes_back_after_redis_restarts(cluster: Cluster) -> None:
    """Redis holds only rebuildable facts: killed and started empty, the queue is rebuilt from
    the store by every node's reconciler."""
    customers = [await cluster.customer(node=i) for i in range(3)]
    tickets = [await ask_for_help(customer) for customer in customers]
    agent = await cluster.agent("bob", node=1)
    cluster.redis.kill()
    cluster.redis.start()
    await agent.wait_for("server.resync", timeout=20)
    async with asyncio.timeout(20):
        while True:
            listed = await agent.call("queue.list", {})
            if listed.get("ok") and set(tickets) <= {e["ticketId"] for e in listed["entries"]}:
                break
            await asyncio.sleep(0.2)
    # Acting on the rebuilt queue works, across nodes.
    accepted = await agent.call("session.accept", {"ticketId": tickets[0]})
    assert accepted["ok"], accepted
    await customers[0].wait_for("session.accepted")


# ---------------------------------------------------------------------- rrweb events


def meta(ts: int) -> dict[str, Any]:
    return {"type": 4, "data": {"href": "http://shop.test/p/1", "width": 1280, "height": 800},
            "timestamp": ts}  # fmt: skip


def snapshot(ts: int) -> dict[str, Any]:
    node = {
        "type": 0,
        "id": 1,
        "childNodes": [
            {"type": 2, "tagName": "html", "attributes": {}, "id": 2, "childNodes": [
                {"type": 2, "tagName": "body", "attributes": {}, "id": 3, "childNodes": [
                    {"type": 3, "textContent": "Trail Runner 2", "id": 4},
                ]},
            ]},
        ],
    }  # fmt: skip
    return {"type": 2, "data": {"node": node, "initialOffset": {"top": 0, "left": 0}},
            "timestamp": ts}  # fmt: skip


def scroll(ts: int, y: int) -> dict[str, Any]:
    return {"type": 3, "data": {"source": 3, "id": 1, "x": 0, "y": y}, "timestamp": ts}
