"""A transfer across node processes (three nodes, Redis, PostgreSQL, HAProxy): Alice on the
first node hands a session to Bob on the second, the customer chats on the third. Bob gets the
offer with the note and the transcript, the customer keeps talking to Bob, Alice hears nothing
more; and the finished transfer leaves nothing behind in Redis's routing hash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from tests.nodes.cluster import Cluster, running_cluster
from tests.support import CONTEXT

ROUTING_HASH = "tandem:qr"
"""The live state's routing hash (``--redis-prefix tandem``): queue info, pending transfers."""


def says(text: str, event: Any) -> bool:
    return bool(event["message"]["text"] == text)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("nodes")) as running:
        yield running


async def test_warm_transfer_between_agents_on_different_nodes(cluster: Cluster) -> None:
    try:
        alice = await cluster.agent("alice", node=0)
        bob = await cluster.agent("bob", node=1)
        customer = await cluster.customer(node=2)
        asked = await customer.call("help.request", {"context": CONTEXT})
        assert asked["ok"], asked
        ticket = str(asked["ticket"]["id"])
        # Either may be offered it; Alice takes it by hand.
        accepted = await alice.call("session.accept", {"ticketId": ticket})
        assert accepted["ok"], accepted
        await customer.wait_for("session.accepted", timeout=10)
        sent = await customer.call("chat.send", {"clientMsgId": "c1", "text": "my order is late"})
        assert sent["ok"], sent
        await alice.wait_for("chat.message", lambda e: e["message"]["text"] == "my order is late")

        # The colleagues online, seen from Alice's node.
        listed = await alice.call("agent.list", {})
        assert {"Alice", "Bob"} <= {a["agent"]["name"] for a in listed["agents"]}

        bob_id = next(a["agent"]["id"] for a in listed["agents"] if a["agent"]["name"] == "Bob")
        moved = await alice.call(
            "session.transfer",
            {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm", "note": "VIP"},
        )
        assert moved["ok"], moved
        offer = await bob.wait_for(
            "session.offered", lambda o: o["ticketId"] == ticket and o.get("transfer"), timeout=10
        )
        assert offer["transfer"]["note"] == "VIP" and offer["transfer"]["from"]["name"] == "Alice"
        assert f"transfer:{ticket}" in cluster.redis.cli("HKEYS", ROUTING_HASH).split()

        state = await bob.call("session.accept", {"ticketId": ticket})
        assert state["ok"], state
        assert [m["text"] for m in state["messages"]] == ["my order is late"]
        told = await customer.wait_for("session.transferred", lambda e: e.get("agent"), timeout=10)
        assert told["agent"]["name"] == "Bob" and "VIP" not in str(told)
        left = await alice.wait_for("session.transferred", lambda e: e.get("left"), timeout=10)
        assert left["left"]["name"] == "Alice"
        # Done: no pending transfer, not even an empty entry, is left in Redis.
        assert f"transfer:{ticket}" not in cluster.redis.cli("HKEYS", ROUTING_HASH).split()

        # The customer keeps chatting, with Bob; Alice hears none of it.
        heard_by_alice = len(alice.events["chat.message"])
        for n in range(3):
            text = f"still there? {n}"
            sent = await customer.call("chat.send", {"clientMsgId": f"c2-{n}", "text": text})
            assert sent["ok"], sent
            await bob.wait_for("chat.message", partial(says, text))
        reply = {"ticketId": ticket, "clientMsgId": "b1", "text": "Bob here"}
        assert (await bob.call("chat.send", reply))["ok"]
        await customer.wait_for("chat.message", lambda e: e["message"]["text"] == "Bob here")
        # Whatever was sent to Alice's node by now would have crossed the bus as Bob's did.
        await asyncio.sleep(0.5)
        assert len(alice.events["chat.message"]) == heard_by_alice
        refused = await alice.call(
            "chat.send", {"ticketId": ticket, "clientMsgId": "a9", "text": "me again"}
        )
        assert refused["error"]["code"] == "forbidden"
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        await cluster.close_clients()
