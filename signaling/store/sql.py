"""One SQL implementation of ``TicketStore`` over two drivers: SQLite (``sqlite.py``: one
writing connection committing in groups) and PostgreSQL (``postgres.py``: an asyncpg pool).

The statements are written once with ``?`` placeholders; the PostgreSQL driver numbers them
(``$1``...). JSON columns are TEXT in both, timestamps are epoch seconds (DOUBLE PRECISION).
Every write is a body of statements handed to the driver (``driver.py``), which returns once it
is committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from signaling.store.base import (
    MAX_PAGES,
    AgentRecord,
    AttachmentRecord,
    AuthSessionRecord,
    CannedRecord,
    DuplicateError,
    MessageRecord,
    NoteRecord,
    PageRecord,
    Sender,
    SiteRecord,
    StaleEpoch,
    TicketChanged,
    TicketOpening,
    TicketRecord,
    TimelineRecord,
    UploadQuota,
)
from signaling.store.cache import CachedTicketStore
from signaling.store.driver import Driver, Row, Statements, UniqueViolation
from signaling.store.migrations import LATEST, MigrationRun, migrate
from signaling.store.postgres import PostgresDriver
from signaling.store.sqlite import SqliteDriver

__all__ = [
    "Driver",
    "PostgresDriver",
    "SqlTicketStore",
    "SqliteDriver",
    "Statements",
    "UniqueViolation",
    "open_store",
]

log = logging.getLogger("tandem.store")

_AT_EPOCH = "EXISTS (SELECT 1 FROM tickets WHERE id = ? AND owner_epoch = ?)"
"""The condition of a home node's write: the ticket's owner epoch is still the writer's."""


def _json_text(value: Any) -> str:
    """A stored JSON value's text, by orjson (ADR 0004: a ticket's writes made it on every new
    ticket and claim); what orjson cannot write (an integer past 64 bits, a lone surrogate) by
    ``json``, as before. Either reads back the same."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


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
        self.migration: MigrationRun | None = None
        """What opening this store did to the schema."""

    @classmethod
    async def create(cls, driver: SqliteDriver | PostgresDriver) -> SqlTicketStore:
        """The store over a database upgraded to the latest schema (``migrations.py``)."""
        store = cls(driver)
        store.migration = await migrate(driver)
        if store.migration.unknown:
            log.warning(
                "the database has schema versions %s that this build does not know (a newer "
                "build migrated it); carrying on with version %d",
                list(store.migration.unknown),
                LATEST,
            )
        return store

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

    async def set_site_settings(self, site_id: str, settings: dict[str, Any]) -> None:
        await self._db.execute(
            "UPDATE sites SET settings = ? WHERE id = ?", json.dumps(settings), site_id
        )

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
        async def change(tx: Statements) -> int:
            changed = await tx.execute(
                "UPDATE agents SET password_hash = ? WHERE id = ?", password_hash, agent_id
            )
            await tx.execute(
                "UPDATE auth_sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL",
                at,
                agent_id,
            )
            return changed

        return await self._db.write(change) == 1

    async def remove_agent(self, agent_id: str, at: float) -> bool:
        async def remove(tx: Statements) -> int:
            removed = await tx.execute("DELETE FROM agents WHERE id = ?", agent_id)
            await tx.execute(
                "UPDATE auth_sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL",
                at,
                agent_id,
            )
            return removed

        return await self._db.write(remove) == 1

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

    async def create_ticket(
        self, ticket: TicketRecord, opening: TicketOpening | None = None
    ) -> TimelineRecord | None:
        insert_agent = self._insert_agent

        async def create(tx: Statements) -> TimelineRecord | None:
            await tx.execute(
                "INSERT INTO tickets (id, site_id, status, created_at, closed_at, customer,"
                " context, previous_ticket_id, search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ticket.id,
                ticket.site_id,
                ticket.status,
                ticket.created_at,
                ticket.closed_at,
                _json_text(ticket.customer),
                _json_text(ticket.context),
                ticket.previous_ticket_id,
                _search_text(ticket.customer, ticket.context),
            )
            for agent in ticket.agents:
                await tx.execute(
                    insert_agent, ticket.id, agent["id"], agent["name"], ticket.created_at
                )
            if opening is None:
                return None
            # A new ticket has no pages: its first is inserted without add_page's comparison
            # with the last one and its trimming.
            await tx.execute(
                "INSERT INTO ticket_pages (ticket_id, at, url, title, app, request)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ticket.id,
                opening.at,
                opening.url,
                opening.title,
                json.dumps(opening.app, sort_keys=True, separators=(",", ":")),
                1,
            )
            rows = await tx.fetch(
                "INSERT INTO timeline (ticket_id, at, type, data) VALUES (?, ?, ?, ?) RETURNING *",
                ticket.id,
                opening.at,
                opening.type,
                _json_text(opening.data),
            )
            return _timeline(rows[0])

        return await self._db.write(create, atomic=bool(ticket.agents) or opening is not None)

    async def ticket(self, ticket_id: str) -> TicketRecord | None:
        # One statement, a row per joined agent: one round trip, where the ticket and then its
        # agents took two (on several nodes every chat.send reads its ticket from the store),
        # and both read at one moment.
        rows = await self._db.fetch(
            "SELECT tickets.*, ticket_agents.agent_id AS joined_agent_id,"
            " ticket_agents.name AS joined_agent_name"
            " FROM tickets LEFT JOIN ticket_agents ON ticket_agents.ticket_id = tickets.id"
            " WHERE tickets.id = ? ORDER BY ticket_agents.ordinal",
            ticket_id,
        )
        if not rows:
            return None
        agents = [
            {"id": row["joined_agent_id"], "name": row["joined_agent_name"]}
            for row in rows
            if row["joined_agent_id"] is not None
        ]
        return _ticket(rows[0], {rows[0]["id"]: agents})

    async def ticket_hint(self, ticket_id: str) -> TicketRecord | None:
        return await self.ticket(ticket_id)

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
        # A text search reads every message: off the event loop (``Driver.scan``).
        rows = await self._db.scan(chosen, *args)
        if not rows:
            return []
        # The agents of exactly those tickets, in one statement whatever their number.
        agents = await self._db.scan(
            "SELECT ticket_id, agent_id, name FROM ticket_agents WHERE ticket_id IN"
            f" (SELECT id FROM ({chosen}) AS chosen) ORDER BY ordinal",
            *args,
        )
        by_ticket = _agents_by_ticket(agents)
        return [_ticket(row, by_ticket) for row in rows]

    async def claim_ticket(self, ticket_id: str, agent: dict[str, str]) -> bool:
        insert_agent = self._insert_agent

        async def claim(tx: Statements) -> bool:
            changed = await tx.execute(
                "UPDATE tickets SET status = 'active' WHERE id = ? AND status = 'queued'",
                ticket_id,
            )
            if changed != 1:
                return False
            await tx.execute(insert_agent, ticket_id, agent["id"], agent["name"], time.time())
            return True

        return await self._db.write(claim)

    async def claim_ticket_noted(
        self, ticket_id: str, agent: dict[str, str], type: str, data: dict[str, Any], at: float
    ) -> TimelineRecord | None:
        insert_agent = self._insert_agent
        values = (ticket_id, at, type, _json_text(data))

        async def claim(tx: Statements) -> TimelineRecord | None:
            changed = await tx.execute(
                "UPDATE tickets SET status = 'active' WHERE id = ? AND status = 'queued'",
                ticket_id,
            )
            if changed != 1:
                return None
            await tx.execute(insert_agent, ticket_id, agent["id"], agent["name"], time.time())
            rows = await tx.fetch(
                "INSERT INTO timeline (ticket_id, at, type, data) VALUES (?, ?, ?, ?) RETURNING *",
                *values,
            )
            return _timeline(rows[0])

        return await self._db.write(claim)

    async def add_ticket_agent(self, ticket_id: str, agent: dict[str, str]) -> None:
        # One statement: the row goes in unless this agent is there already or the ticket is
        # not active (no read-then-write for a concurrent join or close to slip between).
        await self._db.execute(
            "INSERT INTO ticket_agents (ticket_id, agent_id, name, ordinal, joined_at)"
            f" SELECT ?, ?, ?, {self._db.next_ordinal}, ? WHERE EXISTS"
            " (SELECT 1 FROM tickets WHERE id = ? AND status = 'active') ON CONFLICT DO NOTHING",
            ticket_id,
            agent["id"],
            agent["name"],
            time.time(),
            ticket_id,
        )

    async def requeue_ticket(self, ticket_id: str) -> bool:
        changed = await self._db.execute(
            "UPDATE tickets SET status = 'queued' WHERE id = ? AND status = 'active'", ticket_id
        )
        return changed == 1

    async def remove_ticket_agent(self, ticket_id: str, agent_id: str) -> bool:
        changed = await self._db.execute(
            "DELETE FROM ticket_agents WHERE ticket_id = ? AND agent_id = ?", ticket_id, agent_id
        )
        return changed == 1

    async def close_ticket(self, ticket_id: str, at: float) -> bool:
        changed = await self._db.execute(
            "UPDATE tickets SET status = 'closed', closed_at = ?"
            " WHERE id = ? AND status <> 'closed'",
            at,
            ticket_id,
        )
        return changed == 1

    async def set_context(self, ticket_id: str, context: dict[str, Any]) -> None:
        async def change(tx: Statements) -> None:
            # The search text includes the customer: read in the same write, so no other
            # write slips between.
            rows = await tx.fetch("SELECT customer FROM tickets WHERE id = ?", ticket_id)
            if not rows:
                return
            await tx.execute(
                "UPDATE tickets SET context = ?, search = ? WHERE id = ?",
                json.dumps(context),
                _search_text(json.loads(rows[0]["customer"]), context),
                ticket_id,
            )

        await self._db.write(change)

    async def merge_context(
        self, ticket_id: str, merge: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        read = "SELECT customer, context FROM tickets WHERE id = ?" + self._db.lock_rows

        async def change(tx: Statements) -> dict[str, Any] | None:
            # The row stays locked (PostgreSQL; SQLite writes one at a time) from the read to
            # the commit: a patch arriving meanwhile merges into this one's result.
            rows = await tx.fetch(read, ticket_id)
            if not rows:
                return None
            context = merge(json.loads(rows[0]["context"]))
            await tx.execute(
                "UPDATE tickets SET context = ?, search = ? WHERE id = ?",
                json.dumps(context),
                _search_text(json.loads(rows[0]["customer"]), context),
                ticket_id,
            )
            return context

        return await self._db.write(change)

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
        as_read: TicketRecord | None = None,
    ) -> tuple[MessageRecord, bool]:
        row, added = await self._insert_once(
            "messages",
            {
                "ticket_id": ticket_id,
                "sender": sender,
                "author_id": author_id,
                "author": author,
                "text": text,
                "client_msg_id": client_msg_id,
                "at": at,
            },
            "client_msg_id",
            as_read,
        )
        return _message(row), added

    async def _insert_once(
        self,
        table: str,
        values: dict[str, Any],
        client_id: str,
        as_read: TicketRecord | None = None,
    ) -> tuple[Any, bool]:
        """Insert a row a client may send twice (``values[client_id]`` names it per ticket and
        author): the row and True, or on a resend the stored original and False. With
        ``as_read``, only while the ticket's status and agents are still that record's, else
        ``TicketChanged``.

        ON CONFLICT DO NOTHING makes a resend a no-op in one statement on both engines; the
        stored original is then read back. Not atomic: the original is committed once the
        insert has seen it (PostgreSQL waits for a concurrent one)."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        args = [*values.values()]
        if as_read is None:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        else:
            # Checked by the insert itself: no read before it, and no change of the ticket can
            # slip between a check and the write. The agents as a set (their number, and that
            # many of them are the record's): a chat message depends on who, not in what order.
            agent_ids = [agent["id"] for agent in as_read.agents]
            sql = (
                f"INSERT INTO {table} ({columns}) SELECT {marks}"
                " WHERE EXISTS (SELECT 1 FROM tickets WHERE id = ? AND status = ?)"
                " AND (SELECT COUNT(*) FROM ticket_agents WHERE ticket_id = ?) = ?"
            )
            args += [as_read.id, as_read.status, as_read.id, len(agent_ids)]
            if agent_ids:
                sql += (
                    " AND (SELECT COUNT(*) FROM ticket_agents WHERE ticket_id = ? AND agent_id IN"
                    f" ({', '.join('?' for _ in agent_ids)})) = ?"
                )
                args += [as_read.id, *agent_ids, len(agent_ids)]

        async def insert(tx: Statements) -> tuple[Any, bool] | None:
            rows = await tx.fetch(sql + " ON CONFLICT DO NOTHING RETURNING *", *args)
            if rows:
                return rows[0], True
            existing = await tx.fetch(
                f"SELECT * FROM {table} WHERE ticket_id = ? AND author_id = ? AND {client_id} = ?",
                values["ticket_id"],
                values["author_id"],
                values[client_id],
            )
            # None: the ticket changed (a failure would abort a group of writes: not raised here).
            return (existing[0], False) if existing else None

        found = await self._db.write(insert, atomic=False)
        if found is None:
            raise TicketChanged(values["ticket_id"])
        return found

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
        self, ticket_id: str, type: str, data: dict[str, Any], at: float, epoch: int | None = None
    ) -> TimelineRecord:
        values = (ticket_id, at, type, _json_text(data))

        async def add(tx: Statements) -> TimelineRecord:
            if epoch is None:
                rows = await tx.fetch(
                    "INSERT INTO timeline (ticket_id, at, type, data) VALUES (?, ?, ?, ?)"
                    " RETURNING *",
                    *values,
                )
            else:
                # One statement: the entry goes in only while the epoch is the ticket's.
                rows = await tx.fetch(
                    "INSERT INTO timeline (ticket_id, at, type, data) SELECT ?, ?, ?, ?"
                    f" WHERE {_AT_EPOCH} RETURNING *",
                    *values,
                    ticket_id,
                    epoch,
                )
                if not rows:
                    raise StaleEpoch(f"{ticket_id}: epoch {epoch} is not the owner's")
            return _timeline(rows[0])

        return await self._db.write(add, atomic=False)

    async def timeline(self, ticket_id: str) -> list[TimelineRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM timeline WHERE ticket_id = ? ORDER BY id", ticket_id
        )
        return [_timeline(row) for row in rows]

    async def add_page(
        self,
        ticket_id: str,
        url: str,
        title: str,
        app: dict[str, Any],
        at: float,
        request: bool = False,
        keep: int = MAX_PAGES,
    ) -> PageRecord | None:
        lock_ticket = "SELECT id FROM tickets WHERE id = ?" + self._db.lock_rows
        app_json = json.dumps(app, sort_keys=True, separators=(",", ":"))

        async def add(tx: Statements) -> PageRecord | None:
            # The ticket's row lock (PostgreSQL; SQLite writes one at a time) orders pages
            # arriving at once, so "the same as the last" compares with the one that landed.
            if not await tx.fetch(lock_ticket, ticket_id):
                return None
            last = await tx.fetch(
                "SELECT url, title, app FROM ticket_pages WHERE ticket_id = ?"
                " ORDER BY id DESC LIMIT 1",
                ticket_id,
            )
            if last and (last[0]["url"], last[0]["title"], last[0]["app"]) == (
                url,
                title,
                app_json,
            ):
                return None
            rows = await tx.fetch(
                "INSERT INTO ticket_pages (ticket_id, at, url, title, app, request)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                ticket_id,
                at,
                url,
                title,
                app_json,
                1 if request else 0,
            )
            # Bounded: the oldest pages past ``keep`` go, the page of the request stays (it
            # counts as one of the ``keep``).
            await tx.execute(
                "DELETE FROM ticket_pages WHERE ticket_id = ? AND request = 0 AND id <="
                " (SELECT id FROM ticket_pages WHERE ticket_id = ? AND request = 0"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                ticket_id,
                ticket_id,
                max(0, keep - 1),
            )
            return _page(rows[0])

        return await self._db.write(add)

    async def pages(self, ticket_id: str) -> list[PageRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM ticket_pages WHERE ticket_id = ? ORDER BY id", ticket_id
        )
        return [_page(row) for row in rows]

    async def add_attachment(
        self,
        attachment: AttachmentRecord,
        quota: UploadQuota | None = None,
        epoch: int | None = None,
    ) -> bool:
        columns = (
            attachment.id,
            attachment.ticket_id,
            attachment.kind,
            attachment.content_type,
            attachment.size,
            attachment.sha256,
            attachment.created_at,
            json.dumps(attachment.meta),
        )
        insert = (
            "INSERT INTO attachments (id, ticket_id, kind, content_type, size, sha256, created_at,"
            " meta)"
        )
        if quota is None or attachment.kind not in quota.kinds:
            if epoch is None:
                await self._db.execute(insert + " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", *columns)
                return True
            added = await self._db.execute(
                f"{insert} SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE {_AT_EPOCH}",
                *columns,
                attachment.ticket_id,
                epoch,
            )
            if added != 1:
                raise StaleEpoch(f"{attachment.ticket_id}: epoch {epoch} is not the owner's")
            return True
        kinds = ", ".join("?" for _ in quota.kinds)
        lock_ticket = "SELECT owner_epoch FROM tickets WHERE id = ?" + self._db.lock_rows

        async def add(tx: Statements) -> bool:
            # The ticket's row lock (PostgreSQL; SQLite writes one at a time anyway) queues the
            # uploads of one ticket, so the insert's count and sum see every one filed before;
            # it also holds the owner epoch still while this write checks it.
            rows = await tx.fetch(lock_ticket, attachment.ticket_id)
            if epoch is not None and (not rows or int(rows[0]["owner_epoch"]) != epoch):
                raise StaleEpoch(f"{attachment.ticket_id}: epoch {epoch} is not the owner's")
            added = await tx.execute(
                insert + " SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE"
                f" (SELECT COUNT(*) FROM attachments WHERE ticket_id = ? AND kind IN ({kinds}))"
                " < ? AND (SELECT COALESCE(SUM(size), 0) FROM attachments WHERE ticket_id = ?"
                f" AND kind IN ({kinds})) + ? <= ?",
                *columns,
                attachment.ticket_id,
                *quota.kinds,
                quota.max_count,
                attachment.ticket_id,
                *quota.kinds,
                attachment.size,
                quota.max_bytes,
            )
            return added == 1

        return await self._db.write(add)

    async def advance_owner_epoch(self, ticket_id: str, epoch: int) -> bool:
        await self._db.execute(
            "UPDATE tickets SET owner_epoch = ? WHERE id = ? AND owner_epoch < ?",
            epoch,
            ticket_id,
            epoch,
        )
        # Already this epoch (a second record of the same take) counts as recorded.
        return await self.owner_epoch(ticket_id) == epoch

    async def owner_epoch(self, ticket_id: str) -> int:
        rows = await self._db.fetch("SELECT owner_epoch FROM tickets WHERE id = ?", ticket_id)
        return int(rows[0]["owner_epoch"]) if rows else 0

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

    # ------------------------------------------------------------------ notes, canned replies

    async def add_note(
        self,
        ticket_id: str,
        author_id: str,
        author: str,
        text: str,
        source: Literal["agent", "transfer"],
        client_note_id: str | None,
        at: float,
    ) -> tuple[NoteRecord, bool]:
        row, added = await self._insert_once(
            "ticket_notes",
            {
                "ticket_id": ticket_id,
                "author_id": author_id,
                "author": author,
                "text": text,
                "source": source,
                "client_note_id": client_note_id,
                "at": at,
            },
            "client_note_id",
        )
        return _note(row), added

    async def notes(self, ticket_id: str) -> list[NoteRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM ticket_notes WHERE ticket_id = ? ORDER BY id", ticket_id
        )
        return [_note(row) for row in rows]

    async def put_canned(self, reply: CannedRecord) -> None:
        await self._db.execute(
            "INSERT INTO canned_replies (site_id, shortcut, text, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (site_id, shortcut) DO UPDATE SET"
            " text = excluded.text, created_by = excluded.created_by,"
            " created_at = excluded.created_at",
            reply.site_id,
            reply.shortcut,
            reply.text,
            reply.created_by,
            reply.created_at,
        )

    async def canned(self, site_id: str) -> list[CannedRecord]:
        rows = await self._db.fetch(
            "SELECT * FROM canned_replies WHERE site_id = ? ORDER BY shortcut", site_id
        )
        return [
            CannedRecord(
                site_id=row["site_id"],
                shortcut=row["shortcut"],
                text=row["text"],
                created_by=row["created_by"],
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]

    async def remove_canned(self, site_id: str, shortcut: str) -> bool:
        removed = await self._db.execute(
            "DELETE FROM canned_replies WHERE site_id = ? AND shortcut = ?", site_id, shortcut
        )
        return bool(removed)


async def open_driver(database_url: str | None, sqlite_path: Path) -> SqliteDriver | PostgresDriver:
    """PostgreSQL for a ``postgres://`` / ``postgresql://`` URL, else SQLite at the path (the
    schema as it is: ``SqlTicketStore.create`` migrates it)."""
    if database_url and database_url.startswith(("postgres://", "postgresql://")):
        return await PostgresDriver.open(database_url)
    if database_url:
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    return await SqliteDriver.open(sqlite_path)


async def open_store(
    database_url: str | None, sqlite_path: Path, *, several_nodes: bool = False
) -> CachedTicketStore:
    """The store on an upgraded schema (``migrations.py``), behind the cache of what live
    sessions read (``cache.py``; tickets are read through when ``several_nodes`` change them)."""
    store = await SqlTicketStore.create(await open_driver(database_url, sqlite_path))
    run = store.migration
    if run is not None and (run.applied or run.baseline):
        log.info(
            "database schema: version %d -> %d (applied %s, recorded as done %s)",
            run.before,
            run.after,
            list(run.applied),
            list(run.baseline),
        )
    return CachedTicketStore(store, cache_tickets=not several_nodes)


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


def _page(row: Row) -> PageRecord:
    return PageRecord(
        id=int(row["id"]),
        ticket_id=row["ticket_id"],
        at=float(row["at"]),
        url=row["url"],
        title=row["title"],
        app=json.loads(row["app"]),
        request=bool(row["request"]),
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


def _note(row: Row) -> NoteRecord:
    return NoteRecord(
        id=int(row["id"]),
        ticket_id=row["ticket_id"],
        author_id=row["author_id"],
        author=row["author"],
        text=row["text"],
        source="transfer" if row["source"] == "transfer" else "agent",
        client_note_id=row["client_note_id"],
        at=float(row["at"]),
    )
