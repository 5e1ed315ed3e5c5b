"""A home node that froze while sharing: its lease lapses, the other node takes the session (a
new part there), and when the frozen one wakes its renewal is refused. It may not file its part
(the store refuses its epoch), so it hands the part, already in the shared file store, to the
session's home, which files it: the recording holds every acknowledged batch, in its parts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

import cobrowse
from tests.home.nodes_support import nodes, store_of
from tests.signaling.test_cobrowse_functional import RECORDER, meta, scroll, send, snapshot
from tests.support import CONTEXT


async def test_a_woken_home_hands_its_part_to_the_new_home(
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
        assert (await send(customer, [meta(1), snapshot(2), scroll(3, 10)]))["ok"]

        # Node one "freezes": its lease lapses (what its expiry does), and node two takes the
        # session at the agent's next pointer move: part 2 begins there.
        await redis.delete(f"{prefix}own:{ticket_id}")
        pointer = {"ticketId": ticket_id, "x": 0.5, "y": 0.5, "mode": "move"}
        assert (await alice.call("cobrowse.pointer", pointer))["ok"]
        moved = await two.home.placement.current(ticket_id)
        assert moved is not None and (moved.node, moved.epoch) == (two.home.node, 2)
        await customer.wait_for("cobrowse.snapshot_needed")
        # The customer's page is back through node two meanwhile, with a fresh snapshot.
        back = await two.running.customer(token=token)
        assert (await send(back, [meta(4), snapshot(5)]))["ok"]

        # Node one "wakes": its renewal is refused, and its part 1 goes to node two, filed there.
        # (Its own renewal loop may have found the lease lost already: the same, sooner.)
        await one.home.placement.renew_all()
        assert one.home.placement.holding(ticket_id) is None
        store = store_of(two)

        async def parts() -> dict[int, int]:
            return {
                int(a.meta["part"]): int(a.meta["events"])
                for a in await store.attachments(ticket_id)
                if a.kind == "recording"
            }

        async with asyncio.timeout(10):
            while 1 not in await parts():
                await asyncio.sleep(0.05)

        # Letting go, node one left the mirror alone: a late joiner gets part 2's page.
        view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
        assert view["sharing"] and [e["timestamp"] for e in view["events"]] == [4, 5]

        # The stream goes on through node one's socket too, on node two; then the customer stops.
        assert (await send(customer, [scroll(6, 20)]))["ok"]
        assert (await back.call("cobrowse.stop", {}))["ok"]
        await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
        assert await parts() == {1: 3, 2: 3}
        recordings = sorted(
            (a for a in await store.attachments(ticket_id) if a.kind == "recording"),
            key=lambda a: a.meta["part"],
        )
        assert len({a.meta["share"] for a in recordings}) == 1
        stamps = [
            e["timestamp"]
            for a in recordings
            for e in cobrowse.read_recording(two.running.stored_file(a.sha256))[1]
        ]
        assert stamps == [1, 2, 3, 4, 5, 6]
