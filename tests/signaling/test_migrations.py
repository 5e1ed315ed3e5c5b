"""Numbered schema migrations on SQLite and PostgreSQL: from an empty database, from the first
release's schema (``tests/fixtures/store/release_7782dba.sql``, rows and all), from the schema main
created if missing before numbered migrations (``main_290e78e.sql``: baselined), several nodes
starting at once on one fresh database, and a failing step that leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from signaling.store import SqlTicketStore
from signaling.store.migrations import LATEST, MIGRATIONS, Migration, migrate, status
from signaling.store.sql import PostgresDriver, SqliteDriver

PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "store"
OLD_TABLES = ("sites", "agents", "tickets", "messages", "timeline", "attachments")
MAIN_TABLES = (*OLD_TABLES, "ticket_agents", "auth_sessions")
ORDER = {"messages": "id", "timeline": "id", "ticket_agents": "ordinal"}


@dataclass
class Database:
    """One fresh database: a SQLite file, or a PostgreSQL schema of its own."""

    engine: str
    path: Path
    schema: str

    async def driver(self) -> SqliteDriver | PostgresDriver:
        if self.engine == "sqlite":
            return await SqliteDriver.open(self.path)
        return await PostgresDriver.open(PG_URL, schema=self.schema, max_size=2)

    async def load(self, fixture: str) -> None:
        """Make the database as an older build left it (its DDL and rows)."""
        sql = (FIXTURES / fixture).read_text()
        if self.engine == "sqlite":
            sql = (
                sql.replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT")
                .replace("{ordinals}", "")
                .replace(
                    "{next_ordinal}", "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"
                )
            )
            conn = sqlite3.connect(self.path)
            try:
                conn.executescript(sql)
            finally:
                conn.close()
            return
        sql = (
            sql.replace("{serial}", "BIGSERIAL PRIMARY KEY")
            .replace("{ordinals}", "CREATE SEQUENCE IF NOT EXISTS ticket_agent_ordinals;")
            .replace("{next_ordinal}", "nextval('ticket_agent_ordinals')")
        )
        conn = await asyncpg.connect(PG_URL, server_settings={"search_path": self.schema})
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def rows(self, table: str) -> list[dict[str, Any]]:
        order = ORDER.get(table, "1")
        query = f"SELECT * FROM {table} ORDER BY {order}"
        if table in ("tickets", "sites", "agents", "attachments", "auth_sessions"):
            query = f"SELECT * FROM {table} ORDER BY id"
        if table == "ticket_agents":
            query = "SELECT * FROM ticket_agents ORDER BY ticket_id, ordinal"
        if self.engine == "sqlite":
            conn = sqlite3.connect(self.path)
            conn.row_factory = sqlite3.Row
            try:
                return [dict(row) for row in conn.execute(query)]
            finally:
                conn.close()
        pg = await asyncpg.connect(PG_URL, server_settings={"search_path": self.schema})
        try:
            return [dict(row) for row in await pg.fetch(query)]
        finally:
            await pg.close()

    async def tables(self) -> set[str]:
        if self.engine == "sqlite":
            conn = sqlite3.connect(self.path)
            try:
                return {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            finally:
                conn.close()
        pg = await asyncpg.connect(PG_URL)
        try:
            rows = await pg.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                self.schema,
            )
            return {r["table_name"] for r in rows}
        finally:
            await pg.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    schema = f"m_{secrets.token_hex(6)}"
    if request.param == "postgres":
        try:
            conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
        except (OSError, TimeoutError, Exception) as exc:
            reason = f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
            if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.close()
    yield Database(request.param, tmp_path / "t.sqlite3", schema)
    if request.param == "postgres":
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def open_store(database: Database) -> SqlTicketStore:
    return await SqlTicketStore.create(await database.driver())


def versions() -> tuple[int, ...]:
    return tuple(m.version for m in MIGRATIONS)


async def test_an_empty_database_gets_every_step_once(database: Database) -> None:
    store = await open_store(database)
    try:
        assert store.migration is not None
        assert (store.migration.before, store.migration.after) == (0, LATEST)
        assert store.migration.applied == versions() and store.migration.baseline == ()
        steps = await status(store._db.fetch)
        assert [(s.version, s.how) for s in steps] == [(v, "applied") for v in versions()]
    finally:
        await store.close()
    again = await open_store(database)
    try:
        assert again.migration is not None
        assert again.migration.applied == () and again.migration.before == LATEST
        assert len(await database.rows("schema_migrations")) == len(MIGRATIONS)
    finally:
        await again.close()


def old_columns(rows: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the old schema had them: columns later steps added (with their defaults) aside."""
    kept = set(old[0]) if old else set()
    return [{k: v for k, v in row.items() if k in kept} for row in rows]


async def test_the_first_release_upgrades_in_place_keeping_every_row(database: Database) -> None:
    await database.load("release_7782dba.sql")
    before = {table: await database.rows(table) for table in OLD_TABLES}
    assert sum(len(rows) for rows in before.values()) == 16

    store = await open_store(database)
    try:
        assert store.migration is not None
        # The old tables are step 1; its JSON lists of agents are copied by step 2.
        assert store.migration.baseline == (1,)
        assert store.migration.applied == tuple(v for v in versions() if v > 1)
        for table in OLD_TABLES:
            assert old_columns(await database.rows(table), before[table]) == before[table], table

        active = await store.ticket("tk_active")
        assert active is not None
        assert list(active.agents) == [
            {"id": "ag_bob", "name": "Bob"},
            {"id": "ag_ann", "name": "Ann"},
        ]
        assert [m.text for m in await store.messages("tk_closed")] == [
            "my order is late",
            "it ships today",
        ]
        assert [a.id for a in await store.attachments("tk_active")] == ["at_photo"]
        assert (await store.agent_by_email("ann@example.com")) is not None
        assert (await store.site_by_key("pk_old")) is not None

        # The upgraded database takes new writes: ids go on after the old ones, a join lands
        # after the copied agents, sign-in sessions have their table.
        message, new = await store.add_message(
            "tk_active", "customer", "u-1", "Dana", "still there?", "c-3", 1763870010.0
        )
        assert new and message.id > max(int(r["id"]) for r in before["messages"])
        await store.add_ticket_agent("tk_active", {"id": "ag_cy", "name": "Cy"})
        active = await store.ticket("tk_active")
        assert active is not None and [a["id"] for a in active.agents] == [
            "ag_bob",
            "ag_ann",
            "ag_cy",
        ]
        assert await store.claim_ticket("tk_queued", {"id": "ag_bob", "name": "Bob"})
        from signaling.store import AuthSessionRecord

        await store.add_auth_session(AuthSessionRecord("as_new", "ag_ann", 1763870020.0))
        assert await store.auth_session("as_new") is not None
    finally:
        await store.close()


async def test_a_database_made_by_create_if_missing_is_baselined(database: Database) -> None:
    await database.load("main_290e78e.sql")
    before = {table: await database.rows(table) for table in MAIN_TABLES}

    store = await open_store(database)
    try:
        assert store.migration is not None
        assert store.migration.baseline == (1, 2, 3)
        assert store.migration.applied == tuple(v for v in versions() if v > 3)
        for table in MAIN_TABLES:
            assert old_columns(await database.rows(table), before[table]) == before[table], table
        assert "migrations" not in await database.tables()  # step 4 dropped the ad-hoc table
        steps = {s.version: s.how for s in await status(store._db.fetch)}
        assert steps == {
            1: "baseline",
            2: "baseline",
            3: "baseline",
            **{v: "applied" for v in versions() if v > 3},
        }
        await store.add_ticket_agent("tk_active", {"id": "ag_cy", "name": "Cy"})
        active = await store.ticket("tk_active")
        assert active is not None and [a["id"] for a in active.agents] == [
            "ag_bob",
            "ag_ann",
            "ag_cy",
        ]
        assert await store.revoke_auth_session("as_1", 1763870030.0)
    finally:
        await store.close()


@pytest.mark.parametrize("fixture", [None, "release_7782dba.sql"])
async def test_nodes_starting_at_once_apply_each_step_once(
    database: Database, fixture: str | None
) -> None:
    if fixture is not None:
        await database.load(fixture)
    drivers = await asyncio.gather(*(database.driver() for _ in range(8)))
    runs = await asyncio.gather(*(migrate(driver) for driver in drivers))
    try:
        applied = sorted(v for run in runs for v in run.applied)
        expected = [v for v in versions() if fixture is None or v > 1]
        assert applied == expected
        assert all(run.after == LATEST for run in runs)
        recorded = await database.rows("schema_migrations")
        assert sorted(int(r["version"]) for r in recorded) == list(versions())
        if fixture is not None:
            # The copy of the JSON lists ran once: three agent rows, ordinals in ticket order.
            agents = await database.rows("ticket_agents")
            assert [(r["ticket_id"], r["agent_id"]) for r in agents] == [
                ("tk_active", "ag_bob"),
                ("tk_active", "ag_ann"),
                ("tk_closed", "ag_ann"),
            ]
    finally:
        for driver in drivers:
            await driver.close()


async def test_a_failing_step_leaves_the_database_as_it_was(database: Database) -> None:
    store = await open_store(database)
    await store.close()
    broken = (
        *MIGRATIONS,
        Migration(
            LATEST + 1,
            "broken",
            ("CREATE TABLE probe_half_done (k TEXT)", "INSERT INTO no_such_table VALUES (1)"),
        ),
    )
    driver = await database.driver()
    try:
        with pytest.raises(Exception, match="no_such_table"):
            await migrate(driver, broken)
    finally:
        await driver.close()
    assert "probe_half_done" not in await database.tables()
    assert len(await database.rows("schema_migrations")) == len(MIGRATIONS)


async def test_versions_from_a_newer_build_are_reported(database: Database) -> None:
    store = await open_store(database)
    await store._db.execute(
        "INSERT INTO schema_migrations (version, name, how, at) VALUES (?, ?, ?, ?)",
        99,
        "from the future",
        "applied",
        1.0,
    )
    await store.close()
    again = await open_store(database)
    try:
        assert again.migration is not None and again.migration.unknown == (99,)
        steps = await status(again._db.fetch)
        assert steps[-1].version == 99 and steps[-1].how == "unknown"
    finally:
        await again.close()


async def test_sqlite_numbers_an_agent_join_from_an_index(tmp_path: Path) -> None:
    """SQLite numbers each agent's join ``MAX(ordinal) + 1``: read from an index, so an accept
    costs the same after a million sessions as after one (it read every row before step 8)."""

    driver = await SqliteDriver.open(tmp_path / "t.sqlite3")
    store = await SqlTicketStore.create(driver)
    try:
        plan = await driver.fetch(f"EXPLAIN QUERY PLAN SELECT {driver.next_ordinal}")
        assert any("ticket_agents_by_ordinal" in str(row) for row in plan), plan
    finally:
        await store.close()
