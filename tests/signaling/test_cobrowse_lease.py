"""Co-browse recording parts when the session's lease changes under a running co-browse, on one
node (and on a node of several: ``TANDEM_TEST_LIVE=redis``). Whatever happens to the lease,
every batch the customer sent and that was acknowledged is in the recording filed on the
ticket, once and in order (in one part or several, named by ``meta.part``, all with the same
``meta.share``).

The lease is made to lapse on purpose: the embedded node's placement clock is moved past the
lease, or the lease's key is deleted from Redis (what its expiry does), and the renewal then
finds it lost, as the renewal loop would after a stall longer than the lease."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import cobrowse
from signaling import keys
from signaling.app import home_key, redis_key
from signaling.live.placement import MemoryPlacement
from tests.signaling.test_cobrowse_functional import meta, scroll, send, sharing_session, snapshot
from tests.support import Client, Running

RECORDER = "rrweb@2.0.0-alpha.20"


async def lapse(server: Running, ticket_id: str) -> None:
    """The session's lease lapses unrenewed (nobody takes it meanwhile)."""
    placement = server.app[home_key].placement
    if isinstance(placement, MemoryPlacement):
        earlier = placement.clock
        placement.clock = lambda: earlier() + 60
    else:
        prefix = server.app[keys.settings].redis_key_prefix
        await server.app[redis_key].delete(f"{prefix}own:{ticket_id}")


async def renewal_finds_it_lost(server: Running, ticket_id: str) -> None:
    """The renewal finds the lapsed lease lost (the node's own renewal loop may have already)."""
    placement = server.app[home_key].placement
    await placement.renew_all()
    assert placement.holding(ticket_id) is None


async def recorded(server: Running, ticket_id: str) -> list[tuple[int, list[int]]]:
    """The ticket's recording parts: (part, event timestamps), in part order, all of one
    co-browse (one ``share``)."""
    store = server.app[keys.store]
    parts = [a for a in await store.attachments(ticket_id) if a.kind == "recording"]
    assert len({a.meta.get("share") for a in parts}) == 1, [a.meta for a in parts]
    found = []
    for attachment in sorted(parts, key=lambda a: int(a.meta["part"])):
        header, events = cobrowse.read_recording(server.stored_file(attachment.sha256))
        assert header["recorder"] == RECORDER
        assert len(events) == attachment.meta["events"]
        found.append((int(attachment.meta["part"]), [int(e["timestamp"]) for e in events]))
    return found


async def stop(customer: Client, alice: Client) -> None:
    assert (await customer.call("cobrowse.stop", {}))["ok"]
    await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")


async def test_a_lease_lapsed_and_taken_again_keeps_every_part(server: Running) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    assert (await send(customer, [meta(1), snapshot(2), scroll(3, 10)]))["ok"]

    await lapse(server, ticket_id)
    # The renewal finds the lease lost: the node lets the stream go.
    await renewal_finds_it_lost(server, ticket_id)

    # The next batch takes the session again (a new epoch): the co-browse goes on in part 2,
    # from a fresh snapshot the customer is asked for.
    assert (await send(customer, [scroll(4, 20)]))["ok"]
    await customer.wait_for("cobrowse.snapshot_needed")
    assert (await send(customer, [meta(5), snapshot(6), scroll(7, 30)]))["ok"]
    await stop(customer, alice)

    assert await recorded(server, ticket_id) == [(1, [1, 2, 3]), (2, [4, 5, 6, 7])]
    timeline = await server.app[keys.store].timeline(ticket_id)
    types = [e.type for e in timeline]
    assert types.count("cobrowse.started") == 1 and types.count("cobrowse.stopped") == 1
    assert [e.data["part"] for e in timeline if e.type == "cobrowse.moved"] == [2]


async def test_a_new_epoch_that_replaces_a_running_part_files_it_first(server: Running) -> None:
    """The lease changes without the node having found it lost (here: given up under it and
    taken again by the next request, which a page load's accept makes): the part it replaces
    is filed, not left behind."""
    alice, customer, ticket_id = await sharing_session(server)
    assert (await send(customer, [meta(1), snapshot(2), scroll(3, 10)]))["ok"]
    home = server.app[home_key]
    lease = await home.here(ticket_id)
    assert lease is not None
    assert await home.placement.release(lease)

    # The customer's next page accepts again, then sends its snapshot.
    assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
    moved = await home.here(ticket_id)
    assert moved is not None and moved.epoch == lease.epoch + 1
    assert (await send(customer, [meta(4), snapshot(5), scroll(6, 20)]))["ok"]
    # A late joiner gets the new page (filing the earlier part left the mirror alone).
    view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
    assert view["sharing"] and [e["timestamp"] for e in view["events"]] == [4, 5, 6]
    await stop(customer, alice)

    assert await recorded(server, ticket_id) == [(1, [1, 2, 3]), (2, [4, 5, 6])]


async def test_batches_racing_a_retake_land_in_order(server: Running) -> None:
    """Right after the lease was lost, a page load's accept and the batches after it arrive
    together: one of them takes the session again while the others wait for its new part."""
    alice, customer, ticket_id = await sharing_session(server)
    assert (await send(customer, [meta(1), snapshot(2)]))["ok"]
    await lapse(server, ticket_id)
    await renewal_finds_it_lost(server, ticket_id)

    accept = customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER})
    batches = [send(customer, [scroll(10 + n, n)]) for n in range(5)]
    acks = await asyncio.gather(accept, *batches)
    assert all(ack["ok"] for ack in acks), acks
    await stop(customer, alice)

    parts = await recorded(server, ticket_id)
    assert [part for part, _ in parts] == [1, 2]
    assert parts[0][1] == [1, 2]
    assert sorted(parts[1][1]) == [10, 11, 12, 13, 14]
    types = [e.type for e in await server.app[keys.store].timeline(ticket_id)]
    assert types.count("cobrowse.started") == 1


async def test_a_batch_acknowledged_while_sharing_stops_is_in_the_recording(
    server: Running,
) -> None:
    """A big batch (checked in a worker thread) is still being taken when the customer's stop
    arrives: either it is acknowledged and recorded, or refused; never acknowledged and lost."""
    alice, customer, ticket_id = await sharing_session(server)
    assert (await send(customer, [meta(1), snapshot(2)]))["ok"]
    filler = [
        {
            "type": 5,
            "data": {"tag": "tandem", "payload": {"n": n, "pad": "x" * 2000}},
            "timestamp": 3,
        }
        for n in range(60)
    ]
    big: Any = customer.call("cobrowse.events", {"data": json.dumps(filler)})
    stopping = customer.call("cobrowse.stop", {})
    ack, stopped = await asyncio.gather(big, stopping)
    assert stopped["ok"]
    await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
    ((part, stamps),) = await recorded(server, ticket_id)
    assert part == 1
    if ack["ok"]:
        assert stamps == [1, 2] + [3] * 60
    else:
        assert ack["error"]["code"] == "invalid_state" and stamps == [1, 2]
