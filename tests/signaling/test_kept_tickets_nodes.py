"""Two nodes in this process, sharing PostgreSQL and Redis: a chat message is written on the
ticket as its node kept it (no read per message), and never on one another node changed; it
reaches the customer's and the agents' rooms through one publish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from signaling import keys
from signaling.app import bus_key
from signaling.edge.redis_bus import EMIT_TEXTS, NodeBus
from signaling.store import CachedTicketStore, TicketRecord
from tests.support import (
    CONTEXT,
    PG_URL,
    REDIS_URL,
    Running,
    _postgres_url,
    provision,
    redis_or_skip,
    start_server,
    unique_prefix,
)


def has_text(text: str, event: Any) -> bool:
    return bool(event["message"]["text"] == text)


def count_publishes(bus: NodeBus) -> list[Any]:
    """The bus messages carrying session events the node publishes from now on."""
    sent: list[Any] = []
    publish = bus._publish

    async def counted(data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") in ("emit", EMIT_TEXTS):
            sent.append(data)
        return await publish(data)

    bus._publish = counted  # type: ignore[method-assign]
    return sent


def count_reads(store: CachedTicketStore) -> list[str]:
    """The ticket ids the store reads from the database from now on."""
    reads: list[str] = []
    inner = store.inner
    read: Callable[[str], Awaitable[TicketRecord | None]] = inner.ticket

    async def counted(ticket_id: str) -> TicketRecord | None:
        reads.append(ticket_id)
        return await read(ticket_id)

    inner.ticket = counted  # type: ignore[method-assign]
    return reads


async def test_chat_on_a_kept_ticket_sees_another_nodes_accept_and_close(
    tmp_path: Path,
) -> None:
    async with redis_or_skip():
        try:
            database_url = await _postgres_url(tmp_path)
        except Exception as exc:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc!r}")
        common = {
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "redis_prefix": unique_prefix(),
            "secret": "kept-tickets-secret",
            "routing": "pull",
            "max_customer_sockets_per_address": 10_000,
            "max_open_tickets_per_address": 10_000,
        }
        app_a, runner_a, base_a = await start_server(tmp_path / "a", **common)
        app_b, runner_b, base_b = await start_server(tmp_path / "b", **common)
        site, other, agents = await provision(app_a)
        a = Running(app_a, runner_a, base_a, site, other, agents)
        b = Running(app_b, runner_b, base_b, site, other, agents)
        try:
            store_b = app_b[keys.store]
            assert isinstance(store_b, CachedTicketStore) and not store_b.cache_tickets
            # The customer's node B made the ticket and keeps it, queued with no agent.
            customer = await b.customer()
            ack = await customer.call("help.request", {"context": CONTEXT})
            assert ack["ok"], ack
            ticket_id = ack["ticket"]["id"]
            alice = await a.agent("alice")
            assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
            await customer.wait_for("session.accepted")
            reads = count_reads(store_b)
            publishes = count_publishes(app_b[bus_key])
            # Written on B's kept ticket, the message would go to no agent: the insert is
            # refused (the ticket changed), B reads the ticket and tells its agent.
            sent = await customer.call("chat.send", {"clientMsgId": "c0", "text": "hello"})
            assert sent["ok"] and not sent["duplicate"], sent
            await alice.wait_for("chat.message", lambda e: e["message"]["text"] == "hello")
            assert reads == [ticket_id]
            # Kept as read: the next messages read no ticket.
            for n in range(1, 6):
                sent = await customer.call("chat.send", {"clientMsgId": f"c{n}", "text": f"m{n}"})
                assert sent["ok"], sent
                await alice.wait_for("chat.message", partial(has_text, f"m{n}"))
            assert reads == [ticket_id]
            # Each message went to the customer's and the agents' rooms in one publish.
            assert len(publishes) == 6
            # Closed on A: B's next message is refused as for a closed session, not stored.
            assert (await alice.call("session.end", {"ticketId": ticket_id}))["ok"]
            await customer.wait_for("session.ended")
            late = await customer.call("chat.send", {"clientMsgId": "c9", "text": "late"})
            assert not late["ok"] and late["error"]["code"] == "invalid_state", late
            texts = [m.text for m in await store_b.messages(ticket_id)]
            assert texts == ["hello", "m1", "m2", "m3", "m4", "m5"]
        finally:
            for client in [*a.clients, *b.clients]:
                await client.close()
            await runner_b.cleanup()
            await runner_a.cleanup()
