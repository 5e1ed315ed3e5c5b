"""Queue spam from one client (issue 8, finding 5): one client opened 400 sockets and created
200 tickets in seconds, and the agents' queue went from 0 to 200."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio

from tests.support import CONTEXT, Client, Running, running_server


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(
        tmp_path,
        max_customer_sockets_per_address=12,
        max_open_tickets_per_address=5,
        max_open_tickets_per_customer=2,
        rate_per_second=1000.0,
    ) as running:
        yield running


async def test_sockets_per_address_are_limited(strict: Running) -> None:
    for _ in range(12):
        await strict.customer()
    refused = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(
            strict.base_url,
            {"v": 1, "role": "customer", "site": strict.site.public_key},
            origin=strict.origin,
        )
    assert refused.refusal and refused.refusal["data"]["code"] == "rate_limited"
    # A socket that closes gives its place back.
    await strict.clients[0].close()
    await strict.customer()


async def test_open_tickets_per_address_are_limited(strict: Running) -> None:
    alice = await strict.agent("alice")
    acks = []
    for _ in range(10):
        customer = await strict.customer()
        acks.append(await customer.call("help.request", {"context": CONTEXT}))
    assert [ack["ok"] for ack in acks] == [True] * 5 + [False] * 5
    refused = acks[-1]["error"]
    assert refused["code"] == "rate_limited" and "network" in refused["message"]
    queue = await alice.call("queue.list")
    assert len(queue["entries"]) == 5
    # Ending one frees a place.
    first = strict.clients[1]
    assert (await first.call("session.end", {}))["ok"]
    late = await strict.customer()
    assert (await late.call("help.request", {"context": CONTEXT}))["ok"]


async def test_open_tickets_per_customer_are_limited(strict: Running) -> None:
    identity = {"id": "u-42", "name": "Dana"}
    acks = []
    for _ in range(3):
        customer = await strict.customer()
        acks.append(await customer.call("help.request", {"context": CONTEXT, "identity": identity}))
    assert [ack["ok"] for ack in acks] == [True, True, False]
    assert acks[2]["error"]["code"] == "rate_limited"
