"""Finding 12 of issue 8: concurrent supervisor joins must not lose writes. The store settles
the race (a row per ticket agent, inserted atomically), on SQLite and PostgreSQL alike, and a
database created before that keeps its agents."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling import keys
from signaling.auth.accounts import add_agent
from signaling.store import SqlTicketStore, TicketRecord
from signaling.store.sql import PostgresDriver, SqliteDriver
from tests.security import background
from tests.support import CONTEXT, PASSWORD, STORES, Running, running_server

PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"


async def _postgres(schema: str) -> PostgresDriver:
    try:
        return await asyncio.wait_for(PostgresDriver.open(PG_URL, schema=schema), 5)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
        if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str | Path]]:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL schema (dropped after)."""
    if request.param == "sqlite":
        yield "sqlite", tmp_path / "t.sqlite3"
        return
    schema = f"t_{secrets.token_hex(6)}"
    driver = await _postgres(schema)
    try:
        yield "postgres", schema
    finally:
        await driver.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await driver.close()


async def _driver(where: tuple[str, str | Path]) -> SqliteDriver | PostgresDriver:
    kind, place = where
    if kind == "sqlite":
        assert isinstance(place, Path)
        return await SqliteDriver.open(place)
    assert isinstance(place, str)
    return await PostgresDriver.open(PG_URL, schema=place)


def _ticket(ticket_id: str) -> TicketRecord:
    return TicketRecord(
        id=ticket_id,
        site_id="site_1",
        status="queued",
        created_at=time.time(),
        closed_at=None,
        customer={"id": "u-1", "verified": False, "name": None, "email": None},
        context={"url": "http://shop.test/"},
        agents=(),
        previous_ticket_id=None,
    )


async def test_twenty_concurrent_joins_are_all_kept(database: tuple[str, str | Path]) -> None:
    store = await SqlTicketStore.create(await _driver(database))
    try:
        await store.create_ticket(_ticket("tk_race"))
        assert await store.claim_ticket("tk_race", {"id": "ag_owner", "name": "Owner"})
        joiners = [{"id": f"sup_{i:02d}", "name": f"Sup {i}"} for i in range(20)]
        await asyncio.gather(*(store.add_ticket_agent("tk_race", a) for a in joiners))
        # Everyone joining again, at once, duplicates no one.
        await asyncio.gather(*(store.add_ticket_agent("tk_race", a) for a in joiners))
        ticket = await store.ticket("tk_race")
        assert ticket is not None
        ids = [a["id"] for a in ticket.agents]
        assert ids[0] == "ag_owner", ids
        assert sorted(ids[1:]) == [a["id"] for a in joiners], ids
        assert {a["id"]: a["name"] for a in ticket.agents}["sup_07"] == "Sup 7"
        # The list read through tickets() agrees with the single read.
        listed = await store.tickets(status="active")
        assert [t.agents for t in listed] == [ticket.agents]
    finally:
        await store.close()


async def test_join_order_is_kept(database: tuple[str, str | Path]) -> None:
    store = await SqlTicketStore.create(await _driver(database))
    try:
        await store.create_ticket(_ticket("tk_order"))
        assert await store.claim_ticket("tk_order", {"id": "ag_1", "name": "One"})
        for i in (5, 3, 9):
            await store.add_ticket_agent("tk_order", {"id": f"ag_{i}", "name": f"A{i}"})
        await store.add_ticket_agent("tk_order", {"id": "ag_3", "name": "A3 again"})
        ticket = await store.ticket("tk_order")
        assert ticket is not None
        assert [a["id"] for a in ticket.agents] == ["ag_1", "ag_5", "ag_3", "ag_9"]
        assert ticket.agents[2] == {"id": "ag_3", "name": "A3"}
        # A ticket that does not exist gains no agents.
        await store.add_ticket_agent("tk_missing", {"id": "ag_1", "name": "One"})
        assert await store.ticket("tk_missing") is None
    finally:
        await store.close()


async def test_claim_races_with_joins(database: tuple[str, str | Path]) -> None:
    """Eight claims and eight joins at once: one claim wins and its agent comes first."""
    store = await SqlTicketStore.create(await _driver(database))
    try:
        await store.create_ticket(_ticket("tk_mix"))
        claims = [store.claim_ticket("tk_mix", {"id": f"c_{i}", "name": "C"}) for i in range(8)]
        results = await asyncio.gather(*claims)
        assert results.count(True) == 1
        winner = f"c_{results.index(True)}"
        await asyncio.gather(
            *(store.add_ticket_agent("tk_mix", {"id": f"j_{i}", "name": "J"}) for i in range(8))
        )
        ticket = await store.ticket("tk_mix")
        assert ticket is not None and ticket.status == "active"
        ids = [a["id"] for a in ticket.agents]
        assert ids[0] == winner and sorted(ids[1:]) == [f"j_{i}" for i in range(8)]
    finally:
        await store.close()


# The tickets table as it was before ticket agents had their own rows (agents as a JSON list).
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    closed_at DOUBLE PRECISION,
    customer TEXT NOT NULL,
    context TEXT NOT NULL,
    agents TEXT NOT NULL DEFAULT '[]',
    previous_ticket_id TEXT,
    search TEXT NOT NULL DEFAULT ''
);
"""


async def test_old_database_keeps_its_agents(database: tuple[str, str | Path]) -> None:
    old = await _driver(database)
    await old.script(_OLD_SCHEMA)
    agents = [{"id": "ag_b", "name": "Bea"}, {"id": "ag_a", "name": "Abe"}]
    for ticket_id, status, listed in (
        ("tk_old", "active", agents),
        ("tk_old_queued", "queued", []),
    ):
        await old.execute(
            "INSERT INTO tickets (id, site_id, status, created_at, customer, context, agents)"
            " VALUES (?, 'site_1', ?, ?, '{}', '{}', ?)",
            ticket_id,
            status,
            time.time(),
            json.dumps(listed),
        )
    await old.close()

    store = await SqlTicketStore.create(await _driver(database))
    try:
        ticket = await store.ticket("tk_old")
        assert ticket is not None and list(ticket.agents) == agents
        queued = await store.ticket("tk_old_queued")
        assert queued is not None and queued.agents == ()
        await store.add_ticket_agent("tk_old", {"id": "ag_c", "name": "Cy"})
        await store.add_ticket_agent("tk_old", {"id": "ag_b", "name": "Bea"})
        assert await store.claim_ticket("tk_old_queued", {"id": "ag_q", "name": "Q"})
    finally:
        await store.close()
    # Opened again: the old list is not copied a second time, the new joins are kept.
    store = await SqlTicketStore.create(await _driver(database))
    try:
        ticket = await store.ticket("tk_old")
        assert ticket is not None
        assert [a["id"] for a in ticket.agents] == ["ag_b", "ag_a", "ag_c"]
        queued = await store.ticket("tk_old_queued")
        assert queued is not None and [a["id"] for a in queued.agents] == ["ag_q"]
    finally:
        await store.close()


@pytest.fixture(params=STORES)
def server_store(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The server's store settings: SQLite, or a PostgreSQL database of its own."""
    with background.database(request.param) as settings:
        yield settings


async def test_five_supervisors_join_at_once_over_sockets(
    tmp_path: Path, server_store: dict[str, Any]
) -> None:
    async with running_server(tmp_path, **server_store) as server:
        await _five_supervisors_join_at_once(server)


async def _five_supervisors_join_at_once(server: Running) -> None:
    store = server.app[keys.store]
    for i in range(4):
        server.agents[f"sup{i}"] = await add_agent(
            store, f"sup{i}@tandem.test", f"Sup {i}", PASSWORD, "supervisor"
        )
    alice = await server.agent("alice")
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    supervisors = [await server.agent(name) for name in ("sam", "sup0", "sup1", "sup2", "sup3")]
    acks = await asyncio.gather(
        *(s.call("session.join", {"ticketId": ticket_id}) for s in supervisors)
    )
    assert all(ack["ok"] for ack in acks), acks
    expected = {server.agents[n].id for n in ("alice", "sam", "sup0", "sup1", "sup2", "sup3")}
    # What the store holds, over REST and over the socket.
    _, detail = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    assert {a["id"] for a in detail["agents"]} == expected, detail["agents"]
    assert detail["agents"][0]["id"] == server.agents["alice"].id
    resumed = await alice.call("session.resume", {"ticketId": ticket_id})
    assert {a["id"] for a in resumed["ticket"]["agents"]} == expected
    # Every supervisor is in the session: each one hears the customer.
    await customer.call("chat.send", {"clientMsgId": "m1", "text": "hello all"})
    for supervisor in supervisors:
        await supervisor.wait_for("chat.message", lambda m: m["message"]["text"] == "hello all")
