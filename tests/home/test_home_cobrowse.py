"""Co-browse across two nodes: the customer shares through one node, the agent watches and
takes control through the other; the home node drains, so the session moves (recording part 1
filed, part 2 begun from a fresh snapshot, the control grant ended on the timeline)."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

import cobrowse
from signaling.app import drain
from tests.home.nodes_support import nodes, store_of
from tests.signaling.test_cobrowse_functional import RECORDER, meta, scroll, send, snapshot
from tests.support import CONTEXT

CLICK = {"type": "click", "targetId": 10, "x": 5, "y": 5}


async def test_cobrowse_and_control_across_nodes_and_a_drained_home(
    tmp_path: Path, redis: aioredis.Redis, prefix: str
) -> None:
    async with nodes(tmp_path, prefix) as (one, two):
        customer = await one.running.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        ticket_id, token = ack["ticket"]["id"], ack["token"]
        alice = await two.running.agent("alice")
        assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
        assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
        await customer.wait_for("cobrowse.requested")
        assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
        await alice.wait_for("cobrowse.state", lambda e: e["state"] == "sharing")
        lease = await one.home.placement.current(ticket_id)
        assert lease is not None and lease.node == one.home.node

        assert (await send(customer, [meta(1), snapshot(2), scroll(3, 100)]))["ok"]
        got = await alice.wait_for("cobrowse.events")
        assert [e["type"] for e in got["events"]] == [4, 2, 3]
        view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
        assert view["sharing"] and [e["type"] for e in view["events"]] == [4, 2, 3]
        assert (await alice.call("control.request", {"ticketId": ticket_id}))["ok"]
        await customer.wait_for("control.state", lambda e: e["state"] == "requested")
        assert (await customer.call("control.grant", {}))["ok"]
        await alice.wait_for("control.state", lambda e: e["state"] == "granted")
        assert (await alice.call("control.action", {"ticketId": ticket_id, "action": CLICK}))["ok"]
        assert (await customer.wait_for("control.action"))["action"] == CLICK

        # The home node drains: node two adopts the session at once.
        await drain(one.app)
        await customer.wait_for("server.restarting")
        moved = await two.home.placement.current(ticket_id)
        assert moved is not None and moved.node == two.home.node and moved.epoch == 2
        await alice.wait_for("control.state", lambda e: e["state"] == "revoked")
        await customer.wait_for("cobrowse.snapshot_needed")

        # The customer comes back on node two with a fresh snapshot; the stream goes on.
        back = await two.running.customer(token=token)
        before = len(alice.events["cobrowse.events"])
        assert (await send(back, [meta(10), snapshot(11)]))["ok"]
        await alice.wait_for("cobrowse.events", lambda e: e["events"][0]["timestamp"] == 10)
        assert len(alice.events["cobrowse.events"]) == before + 1
        late = await alice.call("control.action", {"ticketId": ticket_id, "action": CLICK})
        assert late["error"]["code"] == "forbidden"
        assert (await back.call("cobrowse.stop", {}))["ok"]
        await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")

        store = store_of(two)
        recordings = [a for a in await store.attachments(ticket_id) if a.kind == "recording"]
        assert [(a.meta["part"], a.meta["events"]) for a in recordings] == [(1, 3), (2, 2)]
        for part in recordings:
            header, events = cobrowse.read_recording(two.running.stored_file(part.sha256))
            assert header["recorder"] == RECORDER
            assert len(list(events)) == part.meta["events"]
        timeline = await store.timeline(ticket_id)
        types = [e.type for e in timeline]
        assert types.count("cobrowse.started") == 1 and types.count("cobrowse.stopped") == 1
        moved_entry = next(e for e in timeline if e.type == "cobrowse.moved")
        assert moved_entry.data == {"epoch": 2, "part": 2}
        revoked = [e.data for e in timeline if e.type == "control.revoke"]
        assert revoked == [
            {
                "actor": "system",
                "role": "system",
                "result": "ok",
                "reason": "home_moved",
                "state": "revoked",
            }
        ]
