"""One SQL implementation of ``TicketStore`` over two drivers: aiosqlite and asyncpg.

The statements are written once with ``?`` placeholders; the PostgreSQL driver numbers them
(``$1``...). JSON columns are TEXT in both, timestamps are epoch seconds (DOUBLE PRECISION).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, cast

import aiosqlite

from signaling.store.base import (
    AgentRecord,
    AttachmentRecord,
    AuthSessionRecord,
    DuplicateError,
    MessageRecord,
    Sender,
    SiteRecord,
    TicketRecord,
    TimelineRecord,
)

Row = Mapping[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    origins TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    skills TEXT NOT NULL
);
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
CREATE INDEX IF NOT EXISTS tickets_by_status ON tickets (status, created_at);
CREATE TABLE IF NOT EXISTS messages (
    id {serial},
    ticket_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    author_id TEXT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    client_msg_id TEXT,
    at DOUBLE PRECISION NOT NULL,
    UNIQUE (ticket_id, author_id, client_msg_id)
);
CREATE INDEX IF NOT EXISTS messages_by_ticket ON messages (ticket_id, id);
CREATE TABLE IF NOT EXISTS timeline (
    id {serial},
    ticket_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_by_ticket ON timeline (ticket_id, id);
CREATE TABLE IF NOT EXISTS attachments (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS attachments_by_ticket ON attachments (ticket_id, created_at);
CREATE TABLE IF NOT EXISTS ticket_agents (
    ticket_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    ordinal BIGINT NOT NULL,
    joined_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ticket_id, agent_id)
);
CREATE INDEX IF NOT EXISTS ticket_agents_in_order ON ticket_agents (ticket_id, ordinal);
{ordinals}
CREATE TABLE IF NOT EXISTS auth_sessions (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS auth_sessions_by_agent ON auth_sessions (agent_id);
CREATE TABLE IF NOT EXISTS migrations (
    name TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL
);
"""
# ``tickets.agents`` (a JSON list, read and written back whole) lost concurrent joins; the rows of
# ``ticket_agents`` replaced it. The column stays, unused: the change only adds tables.
_AGENTS_TO_ROWS = "ticket_agents from tickets.agents"


class Statements(Protocol):
    """Runs statements: on its own (each one committed) or inside one transaction."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...


class Driver(Statements, Protocol):
    """The little a SQL store needs from a database client."""

    next_ordinal: str
    """An SQL expression for the next ``ticket_agents.ordinal``: increasing, never repeated."""

    def transaction(self) -> AbstractAsyncContextManager[Statements]:
        """Statements that commit together when the block ends, or not at all."""
        ...

    async def script(self, sql: str) -> None: ...
    async def close(self) -> None: ...


class UniqueViolation(Exception):
    pass


class SqliteDriver:
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    ordinals = ""
    # SQLite has one writer at a time (and this driver one connection), so MAX + 1 is unique.
    next_ordinal = "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        # One connection is one transaction: a statement and its commit must not interleave
        # with another coroutine's (a commit while another statement is still being read
        # fails with "SQL statements in progress").
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDriver:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path)
        conn.row_factory = aiosqlite.Row
        # WAL lets readers run while a write commits; NORMAL sync is durable across a process
        # crash (https://www.sqlite.org/wal.html).
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            try:
                cursor = await self._conn.execute(sql, args)
            except aiosqlite.IntegrityError as exc:
                await self._conn.rollback()
                raise UniqueViolation(str(exc)) from exc
            await self._conn.commit()
            return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._lock:
            rows = await self._conn.execute_fetchall(sql, args)
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
                await self._conn.commit()
        return [dict(row) for row in rows]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        async with self._lock:
            try:
                yield _SqliteTransaction(self._conn)
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    async def script(self, sql: str) -> None:
        async with self._lock:
            await self._conn.executescript(sql)
            await self._conn.commit()

    async def close(self) -> None:
        await self._conn.close()


class _SqliteTransaction:
    """Statements on the driver's connection while it holds the lock; committed by it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._conn.execute(sql, args)
        except aiosqlite.IntegrityError as exc:
            raise UniqueViolation(str(exc)) from exc
        return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return [dict(row) for row in await self._conn.execute_fetchall(sql, args)]


class PostgresDriver:
    serial = "BIGSERIAL PRIMARY KEY"
    ordinals = "CREATE SEQUENCE IF NOT EXISTS ticket_agent_ordinals;"
    next_ordinal = "nextval('ticket_agent_ordinals')"
    _placeholder = re.compile(r"\?")

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, schema: str | None = None) -> PostgresDriver:
        """``schema`` keeps the tables in their own PostgreSQL schema (tests use one each)."""
        import asyncpg

        settings = None
        if schema is not None:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
                raise ValueError("schema must be a plain lower-case identifier")
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            finally:
                await conn.close()
            settings = {"search_path": schema}
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10, server_settings=settings)
        return cls(pool)

    def _number(self, sql: str) -> str:
        counter = iter(range(1, 10_000))
        return self._placeholder.sub(lambda _m: f"${next(counter)}", sql)

    async def execute(self, sql: str, *args: Any) -> int:
        import asyncpg

        try:
            status: str = await self._pool.execute(self._number(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        rows = await self._pool.fetch(self._number(sql), *args)
        return [dict(row) for row in rows]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PostgresTransaction(conn, self._number)

    async def script(self, sql: str) -> None:
        async with self._pool.acquire() as conn:
            # Serialise schema creation across nodes starting at once.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(736163)")
                await conn.execute(sql)

    async def close(self) -> None:
        await self._pool.close()


class _PostgresTransaction:
    def __init__(self, conn: Any, number: Callable[[str], str]) -> None:
        self._conn = conn
        self._number = number

    async def execute(self, sql: str, *args: Any) -> int:
        import asyncpg

        try:
            status: str = await self._conn.execute(self._number(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return [dict(row) for row in await self._conn.fetch(self._number(sql), *args)]


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_text(customer: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    parts = [
        str(customer.get("id") or ""),
        str(customer.get("name") or ""),
        str(customer.get("email") or ""),
        str(context.get("url") or ""),
        str(context.get("title") or ""),
        json.dumps(context.get("app") or {}, ensure_ascii=False),
    ]
    return " ".join(parts).lower()


class SqlTicketStore:
    """``TicketStore`` in SQL; see the module docstring."""

    def __init__(self, driver: Driver) -> None:
        self._db = driver

    @classmethod
    async def create(cls, driver: SqliteDriver | PostgresDriver) -> SqlTicketStore:
        schema = _SCHEMA.replace("{serial}", driver.serial).replace("{ordinals}", driver.ordinals)
        await driver.script(schema)
        store = cls(driver)
        await store._migrate_agent_lists()
        return store

    async def _migrate_agent_lists(self) -> None:
        """Copy each ticket's JSON list of agents into ``ticket_agents``, once per database.

        Nodes opening the same database at once may both copy: the rows are keyed, so the
        second copy inserts nothing."""
        done = await self._db.fetch("SELECT 1 FROM migrations WHERE name = ?", _AGENTS_TO_ROWS)
        if done:
            return
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT id, agents, created_at FROM tickets WHERE agents <> '[]'"
                " ORDER BY created_at"
            )
            for row in rows:
                for agent in json.loads(row["agents"]):
                    await tx.execute(
                        self._insert_agent, row["id"], agent["id"], agent["name"], row["created_at"]
                    )
            await tx.execute(
                "INSERT INTO migrations (name, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                _AGENTS_TO_ROWS,
                time.time(),
            )

    @property
    def _insert_agent(self) -> str:
        """One agent joins one ticket: (ticket_id, agent_id, name, joined_at). A second join is
        a no-op, decided by the primary key in the same statement, so concurrent joins (on any
        node) all land; the ordinal records the order they landed in."""
        return (
            "INSERT INTO ticket_agents (ticket_id, agent_id, name, ordinal, joined_at)"
            f" VALUES (?, ?, ?, {self._db.next_ordinal}, ?) ON CONFLICT DO NOTHING"
        )

    async def close(self) -> None:
        await self._db.close()

    # ------------------------------------------------------------------ sites and agents

    async def add_site(self, site: SiteRecord) -> None:
        try:
            await self._db.execute(
                "INSERT INTO sites (id, name, public_key, secret, origins, settings)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                site.id,
                site.name,
                site.public_key,
                site.secret,
                json.dumps(list(site.origins)),
                json.dumps(site.settings),
            )
        except UniqueViolation as exc:
            raise DuplicateError("site key taken") from exc

    async def site_by_key(self, public_key: str) -> SiteRecord | None:
        rows = await self._db.fetch("SELECT * FROM sites WHERE public_key = ?", public_key)
        return _site(rows[0]) if rows else None

    async def site(self, site_id: str) -> SiteRecord | None:
        rows = await self._db.fetch("SELECT * FROM sites WHERE id = ?", site_id)
        return _site(rows[0]) if rows else None

    async def sites(self) -> list[SiteRecord]:
        return [_site(row) for row in await self._db.fetch("SELECT * FROM sites ORDER BY name")]

    async def add_agent(self, agent: AgentRecord) -> None:
        try:
            await self._db.execute(
                "INSERT INTO agents (id, email, name, password_hash, role, skills)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                agent.id,
                agent.email.lower(),
                agent.name,
                agent.password_hash,
                agent.role,
                json.dumps(list(agent.skills)),
            )
        except UniqueViolation as exc:
            raise DuplicateError(f"an agent with email {agent.email} exists") from exc

    async def agent_by_email(self, email: str) -> AgentRecord | None:
        rows = await self._db.fetch("SELECT * FROM agents WHERE email = ?", email.lower())
        return _agent(rows[0]) if rows else None

    async def agent(self, agent_id: str) -> AgentRecord | None:
        rows = await self._db.fetch("SELECT * FROM agents WHERE id = ?", agent_id)
        return _agent(rows[0]) if rows else None

    async def set_password(self, agent_id: str, password_hash: str, at: float) -> bool:
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE agents SET password_hash = ? WHERE id = ?", password_hash, agent_id
            )
            await tx.execute(
                "UPDATE auth_sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL",
                at,
                agent_id,
            )
        return changed == 1

    async def remove_agent(self, agent_id: str, at: float) -> bool:
        async with self._db.transaction() as tx:
            removed = await tx.execute("DELETE FROM agents WHERE id = ?", agent_id)
            await tx.execute(
                "UPDATE auth_sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL",
                at,
                agent_id,
            )
        return removed == 1

    # ------------------------------------------------------------------ sign-in sessions

    async def add_auth_session(self, session: AuthSessionRecord) -> None:
        await self._db.execute(
            "INSERT INTO auth_sessions (id, agent_id, created_at, revoked_at) VALUES (?, ?, ?, ?)",
            session.id,
            session.agent_id,
            session.created_at,
            session.revoked_at,
        )

    async def auth_session(self, session_id: str) -> AuthSessionRecord | None:
        rows = await self._db.fetch("SELECT * FROM auth_sessions WHERE id = ?", session_id)
        if not rows:
            return None
        row = rows[0]
        return AuthSessionRecord(
            id=row["id"],
            agent_id=row["agent_id"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )

    async def revoke_auth_session(self, session_id: str, at: float) -> bool:
        changed = await self._db.execute(
            "UPDATE auth_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            at,
            session_id,
        )
        return changed == 1

    # ------------------------------------------------------------------ tickets

    async def create_ticket(self, ticket: TicketRecord) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO tickets (id, site_id, status, created_at, closed_at, customer,"
                " context, previous_ticket_id, search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ticket.id,
                ticket.site_id,
                ticket.status,
                ticket.created_at,
                ticket.closed_at,
                json.dumps(ticket.customer),
                json.dumps(ticket.context),
                ticket.previous_ticket_id,
                _search_text(ticket.customer, ticket.context),
            )
            for agent in ticket.agents:
                await tx.execute(
                    self._insert_agent, ticket.id, agent["id"], agent["name"], ticket.created_at
                )

    async def ticket(self, ticket_id: str) -> TicketRecord | None:
        rows = await self._db.fetch("SELECT * FROM tickets WHERE id = ?", ticket_id)
        if not rows:
            return None
        agents = await self._db.fetch(
            "SELECT ticket_id, agent_id, name FROM ticket_agents WHERE ticket_id = ?"
            " ORDER BY ordinal",
            ticket_id,
        )
        return _ticket(rows[0], _agents_by_ticket(agents))

    async def tickets(
        self,
        *,
        status: str | None = None,
        text: str | None = None,
        limit: int = 100,
        member_id: str | None = None,
    ) -> list[TicketRecord]:
        where: list[str] = []
        args: list[Any] = []
        if member_id is not None:
            where.append("id IN (SELECT ticket_id FROM ticket_agents WHERE agent_id = ?)")
            args.append(member_id)
        if status:
            where.append("status = ?")
            args.append(status)
        if text:
            pattern = _like(text)
            where.append(
                "(search LIKE ? ESCAPE '\\' OR id = ? OR id IN (SELECT ticket_id FROM messages"
                " WHERE lower(text) LIKE ? ESCAPE '\\'))"
            )
            args.extend([pattern, text, pattern])
        chosen = "SELECT * FROM tickets"
        if where:
            chosen += " WHERE " + " AND ".join(where)
        chosen += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        rows = await self._db.fetch(chosen, *args)
        if not rows:
            return []
        # The agents of exactly those tickets, in one statement whatever their number.
        agents = await self._db.fetch(
            "SELECT ticket_id, agent_id, name FROM ticket_agents WHERE ticket_id IN"
            f" (SELECT id FROM ({chosen}) AS chosen) ORDER BY ordinal",
            *args,
        )
        by_ticket = _agents_by_ticket(agents)
        return [_ticket(row, by_ticket) for row in rows]

    async def claim_ticket(self, ticket_id: str, agent: dict[str, str]) -> bool:
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE tickets SET status = 'active' WHERE id = ? AND status = 'queued'",
                ticket_id,
            )
            if changed != 1:
                return False
            await tx.execute(self._insert_agent, ticket_id, agent["id"], agent["name"], time.time())
        return True

    async def add_ticket_agent(self, ticket_id: str, agent: dict[str, str]) -> None:
        # One statement: the row goes in unless this agent is there already or the ticket is
        # not (no read-then-write for a concurrent join to slip between).
        await self._db.execute(
            "INSERT INTO ticket_agents (ticket_id, agent_id, name, ordinal, joined_at)"
            f" SELECT ?, ?, ?, {self._db.next_ordinal}, ? WHERE EXISTS"
            " (SELECT 1 FROM tickets WHERE id = ?) ON CONFLICT DO NOTHING",
            ticket_id,
            agent["id"],
            agent["name"],
            time.time(),
            ticket_id,
        )

    async def close_ticket(self, ticket_id: str, at: float) -> bool:
        changed = await self._db.execute(
            "UPDATE tickets SET status = 'closed', closed_at = ?"
            " WHERE id = ? AND status <> 'closed'",
            at,
            ticket_id,
        )
        return changed == 1

    async def set_context(self, ticket_id: str, context: dict[str, Any]) -> None:
        ticket = await self.ticket(ticket_id)
        if ticket is None:
            return
        await self._db.execute(
            "UPDATE tickets SET context = ?, search = ? WHERE id = ?",
            json.dumps(context),
            _search_text(ticket.customer, context),
            ticket_id,
        )

    # ------------------------------------------------------------------ transcript

    async def add_message(
        self,
        ticket_id: str,
        sender: Sender,
        author_id: str,
        author: str,
        text: str,
        client_msg_id: str | None,
        at: float,
    ) -> tuple[MessageRecord, bool]:
        # ON CONFLICT DO NOTHING makes a resend (same client id) a no-op in one statement on
        # both engines; the stored original is then read back.
        rows = await self._db.fetch(
            "INSERT INTO messages (ticket_id, sender, author_id, author, text, client_msg_id, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *",
            ticket_id,
            sender,
            author_id,
            author,
            text,
            client_msg_id,
            at,
        )
        if rows:
            return _message(rows[0]), True
        existing = await self._db.fetch(
            "SELECT * FROM messages WHERE ticket_id = ? AND author_id = ? AND client_msg_id = ?",
            ticket_id,
            author_id,
            client_msg_id,
        )
        return _message(existing[0]), False

    async def messages(self, ticket_id: str, after_id: int = 0) -> list[MessageRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM messages WHERE ticket_id = ? AND id > ? ORDER BY id", ticket_id, after_id
        )
        return [_message(row) for row in rows]

    async def message_counts(self, ticket_ids: list[str]) -> dict[str, int]:
        if not ticket_ids:
            return {}
        marks = ", ".join("?" for _ in ticket_ids)
        rows = await self._db.fetch(
            f"SELECT ticket_id, COUNT(*) AS n FROM messages WHERE ticket_id IN ({marks})"
            " GROUP BY ticket_id",
            *ticket_ids,
        )
        return {row["ticket_id"]: int(row["n"]) for row in rows}

    async def add_timeline(
        self, ticket_id: str, type: str, data: dict[str, Any], at: float
    ) -> TimelineRecord:
        rows = await self._db.fetch(
            "INSERT INTO timeline (ticket_id, at, type, data) VALUES (?, ?, ?, ?) RETURNING *",
            ticket_id,
            at,
            type,
            json.dumps(data),
        )
        return _timeline(rows[0])

    async def timeline(self, ticket_id: str) -> list[TimelineRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM timeline WHERE ticket_id = ? ORDER BY id", ticket_id
        )
        return [_timeline(row) for row in rows]

    async def add_attachment(self, attachment: AttachmentRecord) -> None:
        await self._db.execute(
            "INSERT INTO attachments (id, ticket_id, kind, content_type, size, sha256, created_at,"
            " meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            attachment.id,
            attachment.ticket_id,
            attachment.kind,
            attachment.content_type,
            attachment.size,
            attachment.sha256,
            attachment.created_at,
            json.dumps(attachment.meta),
        )

    async def attachments(self, ticket_id: str) -> list[AttachmentRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM attachments WHERE ticket_id = ? ORDER BY created_at, id", ticket_id
        )
        return [_attachment(row) for row in rows]

    async def attachment(self, ticket_id: str, attachment_id: str) -> AttachmentRecord | None:
        rows = await self._db.fetch(
            "SELECT * FROM attachments WHERE ticket_id = ? AND id = ?", ticket_id, attachment_id
        )
        return _attachment(rows[0]) if rows else None


async def open_store(database_url: str | None, sqlite_path: Path) -> SqlTicketStore:
    """PostgreSQL for a ``postgres://`` / ``postgresql://`` URL, else SQLite at the path."""
    driver: SqliteDriver | PostgresDriver
    if database_url and database_url.startswith(("postgres://", "postgresql://")):
        driver = await PostgresDriver.open(database_url)
    elif database_url:
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    else:
        driver = await SqliteDriver.open(sqlite_path)
    return await SqlTicketStore.create(driver)


# ---------------------------------------------------------------------- row -> record


def _site(row: Row) -> SiteRecord:
    return SiteRecord(
        id=row["id"],
        name=row["name"],
        public_key=row["public_key"],
        secret=row["secret"],
        origins=tuple(json.loads(row["origins"])),
        settings=json.loads(row["settings"]),
    )


def _agent(row: Row) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        password_hash=row["password_hash"],
        role=row["role"],
        skills=tuple(json.loads(row["skills"])),
    )


def _agents_by_ticket(rows: Sequence[Row]) -> dict[str, list[dict[str, str]]]:
    """``ticket_agents`` rows (already in join order) grouped by ticket."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["ticket_id"], []).append(
            {"id": row["agent_id"], "name": row["name"]}
        )
    return grouped


def _ticket(row: Row, agents: Mapping[str, list[dict[str, str]]]) -> TicketRecord:
    return TicketRecord(
        id=row["id"],
        site_id=row["site_id"],
        status=row["status"],
        created_at=float(row["created_at"]),
        closed_at=None if row["closed_at"] is None else float(row["closed_at"]),
        customer=json.loads(row["customer"]),
        context=json.loads(row["context"]),
        agents=tuple(agents.get(row["id"], ())),
        previous_ticket_id=row["previous_ticket_id"],
    )


def _message(row: Row) -> MessageRecord:
    return MessageRecord(
        id=int(row["id"]),
        ticket_id=row["ticket_id"],
        sender=cast(Sender, row["sender"]),
        author_id=row["author_id"],
        author=row["author"],
        text=row["text"],
        client_msg_id=row["client_msg_id"],
        at=float(row["at"]),
    )


def _timeline(row: Row) -> TimelineRecord:
    return TimelineRecord(
        id=int(row["id"]),
        ticket_id=row["ticket_id"],
        at=float(row["at"]),
        type=row["type"],
        data=json.loads(row["data"]),
    )


def _attachment(row: Row) -> AttachmentRecord:
    return AttachmentRecord(
        id=row["id"],
        ticket_id=row["ticket_id"],
        kind=row["kind"],
        content_type=row["content_type"],
        size=int(row["size"]),
        sha256=row["sha256"],
        created_at=float(row["created_at"]),
        meta=json.loads(row["meta"]),
    )
