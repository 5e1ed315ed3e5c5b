"""Numbered schema migrations: a database is upgraded in place, each step exactly once.

``schema_migrations`` records every version a database has (``how``: ``applied`` by a run of
``migrate``, or ``baseline`` for a step that a database made before this table existed had done
already). ``migrate`` runs as ONE transaction that first takes the schema lock (PostgreSQL: an
advisory lock of the schema; SQLite: ``BEGIN IMMEDIATE``, the database's write lock), so nodes
starting at the same moment queue: the first applies what is missing, the others then find it
applied and do nothing. DDL is transactional on both engines, so a step that fails leaves the
database as it was.

A step's statements are written once for both engines: ``{serial}`` is the engine's
auto-increment key; a step may carry PostgreSQL-only statements (``postgres``) and Python work
on the rows (``data``). Steps are never edited once released: a change is a new step.

Databases made before numbered migrations (the tables created if missing at every start) have no
``schema_migrations``: ``_baseline`` tells from their tables which steps they had and records
those as ``baseline``; the statements of the old steps are ``IF NOT EXISTS`` anyway.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from signaling.store.driver import Row, Statements, WriteBody

Engine = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...] = ()
    postgres: tuple[str, ...] = ()
    """Run on PostgreSQL only, after ``statements``."""
    sqlite: tuple[str, ...] = ()
    """Run on SQLite only, after ``statements``."""
    data: Callable[[Statements, Engine], Awaitable[None]] | None = None
    """Work on the rows, after the statements."""


async def _agents_to_rows(tx: Statements, engine: Engine) -> None:
    """Copy each ticket's JSON list of agents into ``ticket_agents`` (in ticket order; keyed, so
    a ticket copied already gains nothing)."""
    next_ordinal = (
        "nextval('ticket_agent_ordinals')"
        if engine == "postgres"
        else "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"
    )
    rows = await tx.fetch(
        "SELECT id, agents, created_at FROM tickets WHERE agents <> '[]' ORDER BY created_at"
    )
    for row in rows:
        for agent in json.loads(row["agents"]):
            await tx.execute(
                "INSERT INTO ticket_agents (ticket_id, agent_id, name, ordinal, joined_at)"
                f" VALUES (?, ?, ?, {next_ordinal}, ?) ON CONFLICT DO NOTHING",
                row["id"],
                agent["id"],
                agent["name"],
                row["created_at"],
            )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial: sites, agents, tickets, transcript, timeline, attachments",
        (
            """CREATE TABLE IF NOT EXISTS sites (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                public_key TEXT NOT NULL UNIQUE,
                secret TEXT NOT NULL,
                origins TEXT NOT NULL,
                settings TEXT NOT NULL DEFAULT '{}'
            )""",
            """CREATE TABLE IF NOT EXISTS agents (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL,
                skills TEXT NOT NULL
            )""",
            # ``agents`` (a JSON list) is unused since step 2; dropping it would rebuild the
            # table on SQLite for nothing.
            """CREATE TABLE IF NOT EXISTS tickets (
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
            )""",
            "CREATE INDEX IF NOT EXISTS tickets_by_status ON tickets (status, created_at)",
            """CREATE TABLE IF NOT EXISTS messages (
                id {serial},
                ticket_id TEXT NOT NULL,
                sender TEXT NOT NULL,
                author_id TEXT NOT NULL,
                author TEXT NOT NULL,
                text TEXT NOT NULL,
                client_msg_id TEXT,
                at DOUBLE PRECISION NOT NULL,
                UNIQUE (ticket_id, author_id, client_msg_id)
            )""",
            "CREATE INDEX IF NOT EXISTS messages_by_ticket ON messages (ticket_id, id)",
            """CREATE TABLE IF NOT EXISTS timeline (
                id {serial},
                ticket_id TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                type TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS timeline_by_ticket ON timeline (ticket_id, id)",
            """CREATE TABLE IF NOT EXISTS attachments (
                id TEXT PRIMARY KEY,
                ticket_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                sha256 TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                meta TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX IF NOT EXISTS attachments_by_ticket"
            " ON attachments (ticket_id, created_at)",
        ),
    ),
    Migration(
        2,
        "ticket_agents: a row per agent of a ticket (concurrent joins all land)",
        (
            """CREATE TABLE IF NOT EXISTS ticket_agents (
                ticket_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                name TEXT NOT NULL,
                ordinal BIGINT NOT NULL,
                joined_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (ticket_id, agent_id)
            )""",
            "CREATE INDEX IF NOT EXISTS ticket_agents_in_order"
            " ON ticket_agents (ticket_id, ordinal)",
        ),
        postgres=("CREATE SEQUENCE IF NOT EXISTS ticket_agent_ordinals",),
        data=_agents_to_rows,
    ),
    Migration(
        3,
        "auth_sessions: agent sign-in sessions",
        (
            """CREATE TABLE IF NOT EXISTS auth_sessions (
                id TEXT PRIMARY KEY,
                agent_id TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
            "CREATE INDEX IF NOT EXISTS auth_sessions_by_agent ON auth_sessions (agent_id)",
        ),
    ),
    Migration(
        4,
        "drop the ad-hoc 'migrations' table (schema_migrations replaced it)",
        ("DROP TABLE IF EXISTS migrations",),
    ),
    Migration(
        5,
        "tickets.owner_epoch: the lease epoch of the session's home node (fencing)",
        ("ALTER TABLE tickets ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0",),
    ),
    Migration(
        6,
        "ticket_notes: agent-only notes on a ticket; canned_replies: a site's /shortcut replies",
        (
            """CREATE TABLE IF NOT EXISTS ticket_notes (
                id {serial},
                ticket_id TEXT NOT NULL,
                author_id TEXT NOT NULL,
                author TEXT NOT NULL,
                text TEXT NOT NULL,
                source TEXT NOT NULL,
                client_note_id TEXT,
                at DOUBLE PRECISION NOT NULL,
                UNIQUE (ticket_id, author_id, client_note_id)
            )""",
            "CREATE INDEX IF NOT EXISTS ticket_notes_by_ticket ON ticket_notes (ticket_id, id)",
            """CREATE TABLE IF NOT EXISTS canned_replies (
                site_id TEXT NOT NULL,
                shortcut TEXT NOT NULL,
                text TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (site_id, shortcut)
            )""",
        ),
    ),
    Migration(
        7,
        "ticket_pages: every page the customer visited during a session, in order",
        (
            """CREATE TABLE IF NOT EXISTS ticket_pages (
                id {serial},
                ticket_id TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                url TEXT NOT NULL,
                title TEXT NOT NULL,
                app TEXT NOT NULL,
                request INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX IF NOT EXISTS ticket_pages_by_ticket ON ticket_pages (ticket_id, id)",
        ),
    ),
    Migration(
        8,
        "ticket_agents by ordinal (SQLite): the next ordinal without reading every row",
        # SQLite numbers a join MAX(ordinal) + 1 (``SqliteDriver.next_ordinal``): without this
        # index every accept and join read the whole table, a cost growing with every session
        # ever served. PostgreSQL takes its ordinals from a sequence.
        sqlite=("CREATE INDEX IF NOT EXISTS ticket_agents_by_ordinal ON ticket_agents (ordinal)",),
    ),
)
LATEST = MIGRATIONS[-1].version

_VERSIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    how TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
)"""
_LEGACY_AGENTS_MARK = "ticket_agents from tickets.agents"


@dataclass(frozen=True)
class MigrationRun:
    """What one ``migrate`` found and did."""

    before: int
    """The version the database had (0: empty or unversioned)."""
    after: int
    applied: tuple[int, ...] = ()
    baseline: tuple[int, ...] = ()
    """Steps recorded as done in a database made before ``schema_migrations``."""
    unknown: tuple[int, ...] = ()
    """Versions in the database that this build does not know (a newer build migrated it)."""


@dataclass(frozen=True)
class SchemaStep:
    """A row of ``schema_migrations``, or a step still to apply (``how`` is ``pending``)."""

    version: int
    name: str
    how: str
    at: float | None


def _statements(migration: Migration, engine: Engine, serial: str) -> list[str]:
    chosen = list(migration.statements)
    if engine == "postgres":
        chosen.extend(migration.postgres)
    else:
        chosen.extend(migration.sqlite)
    return [sql.replace("{serial}", serial) for sql in chosen]


async def _tables(tx: Statements, engine: Engine) -> set[str]:
    if engine == "sqlite":
        rows = await tx.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await tx.fetch(
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = current_schema()"
        )
    return {row["name"] for row in rows}


async def _baseline(tx: Statements, tables: set[str]) -> int:
    """The last step a database made before ``schema_migrations`` had done, told by its tables.

    Step 2's copy is counted done only if the old code had marked it so (it created the table
    first, then copied); otherwise step 2 runs again, which its ``IF NOT EXISTS`` and keyed
    inserts make safe."""
    if "sites" not in tables:
        return 0
    if "ticket_agents" not in tables or "migrations" not in tables:
        return 1
    marked = await tx.fetch("SELECT 1 FROM migrations WHERE name = ?", _LEGACY_AGENTS_MARK)
    if not marked:
        return 1
    return 3 if "auth_sessions" in tables else 2


async def run_migrations(
    tx: Statements,
    engine: Engine,
    serial: str,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    clock: Callable[[], float] = time.time,
) -> MigrationRun:
    """The body of one migrating transaction; the driver holds the schema lock around it."""
    tables = await _tables(tx, engine)
    await tx.execute(_VERSIONS)
    done = {int(row["version"]) for row in await tx.fetch("SELECT version FROM schema_migrations")}
    baseline: list[int] = []
    if not done:
        upto = await _baseline(tx, tables)
        for migration in migrations:
            if migration.version <= upto:
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, how, at) VALUES (?, ?, ?, ?)",
                    migration.version,
                    migration.name,
                    "baseline",
                    clock(),
                )
                baseline.append(migration.version)
        done = set(baseline)
    before = max(done, default=0)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        for sql in _statements(migration, engine, serial):
            await tx.execute(sql)
        if migration.data is not None:
            await migration.data(tx, engine)
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, how, at) VALUES (?, ?, ?, ?)",
            migration.version,
            migration.name,
            "applied",
            clock(),
        )
        applied.append(migration.version)
    known = {m.version for m in migrations}
    unknown = tuple(sorted(done - known))
    after = max(done | set(applied), default=0)
    return MigrationRun(before, after, tuple(applied), tuple(baseline), unknown)


class Migratable(Protocol):
    @property
    def engine(self) -> Engine: ...
    @property
    def serial(self) -> str: ...

    def migrate(self, body: WriteBody[MigrationRun]) -> Awaitable[MigrationRun]: ...


async def migrate(driver: Migratable, migrations: Sequence[Migration] = MIGRATIONS) -> MigrationRun:
    """Bring the database to the latest version, under the driver's schema lock."""

    async def body(tx: Statements) -> MigrationRun:
        return await run_migrations(tx, driver.engine, driver.serial, migrations)

    return await driver.migrate(body)


async def status(fetch: Callable[..., Awaitable[Sequence[Row]]]) -> list[SchemaStep]:
    """Every step: as recorded in ``schema_migrations``, else ``pending``; versions the database
    has that this build does not know come last. Reads only (``tandem db status``)."""
    try:
        rows = await fetch("SELECT version, name, how, at FROM schema_migrations ORDER BY version")
    except Exception:  # no such table: a database made before numbered migrations, or empty
        rows = []
    recorded = {int(row["version"]): row for row in rows}
    steps = []
    for migration in MIGRATIONS:
        row = recorded.pop(migration.version, None)
        if row is None:
            steps.append(SchemaStep(migration.version, migration.name, "pending", None))
        else:
            steps.append(SchemaStep(migration.version, row["name"], row["how"], float(row["at"])))
    for version, row in sorted(recorded.items()):
        steps.append(SchemaStep(version, row["name"], "unknown", float(row["at"])))
    return steps
