"""Unfinished multi-part co-browse batches (issue 8, finding 4): 10 sockets x 8 parts of 900 KB
that never complete held +79 MB until the sockets closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.app import cobrowse_hub_key
from signaling.hubs.cobrowse import MAX_PENDING_PART_BYTES
from tests.support import CONTEXT, Client, Running, running_server


@pytest.fixture
async def open_frames(tmp_path: Path) -> AsyncIterator[Running]:
    # The per-socket byte budget would slow this attack down; lift it to test the node's bound.
    # Pull routing: one agent takes every session (past the capacity push routing keeps).
    async with running_server(
        tmp_path, socket_bytes_per_second=1e9, socket_burst_bytes=1e9, routing="pull"
    ) as running:
        yield running


async def sharing_customer(server: Running, alice: Client) -> Client:
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
    accept = {"v": 1, "recorder": "rrweb@2.0.0-alpha.20"}
    assert (await customer.call("cobrowse.accept", accept))["ok"]
    return customer


async def test_unfinished_batches_are_bounded_per_node(open_frames: Running) -> None:
    alice = await open_frames.agent("alice")
    customers = [await sharing_customer(open_frames, alice) for _ in range(10)]
    part = "x" * 900_000

    async def send_parts(n: int, customer: Client) -> list[str]:
        codes = []
        for index in range(8):
            payload = {"data": part, "batchId": f"b{n}", "part": index, "parts": 16}
            ack = await customer.call("cobrowse.events", payload, timeout=20)
            codes.append("ok" if ack["ok"] else ack["error"]["code"])
        return codes

    results = await asyncio.gather(*(send_parts(n, c) for n, c in enumerate(customers)))
    hub = open_frames.app[cobrowse_hub_key]
    held = sum(pending.size for pending in hub._parts.values())
    assert held <= MAX_PENDING_PART_BYTES
    assert any("rate_limited" in codes for codes in results)
    # Closing a socket gives back what it held.
    for customer in customers:
        await customer.close()
    async with asyncio.timeout(5):
        while hub._parts:
            await asyncio.sleep(0.05)
    assert hub.pending_part_bytes == 0
