"""PostgreSQL through an asyncpg pool: many writes in flight at once, on several connections.

No lock of ours around reads or transactions: PostgreSQL settles races row by row
(``UPDATE ... WHERE status = 'queued'``, ``ON CONFLICT DO NOTHING``). A write that is one
statement (``atomic=False``: a chat message, a timeline entry) needs no BEGIN and COMMIT round
trips, and those arriving while one is in flight are committed together (``_Grouped``): measured
with ``bench/store.py``, 100 concurrent chat inserts cost ~40-75 us of CPU each grouped against
~115-140 us each committed on its own, at 2-3x the rate; a lone insert costs the same either way.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Sequence
from typing import Any, Literal

from signaling.store.driver import Row, T, UniqueViolation, WriteBody

_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=512)
def number_placeholders(sql: str) -> str:
    """``?`` -> ``$1``, ``$2``... (the statements are written once, with SQLite's marks)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def _changed(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _PostgresStatements:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        import asyncpg

        try:
            status: str = await self._conn.execute(number_placeholders(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        return _changed(status)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        import asyncpg

        try:
            rows = await self._conn.fetch(number_placeholders(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from exc
        return [dict(row) for row in rows]


MAX_GROUP = 256

SCHEMA_LOCK = 736163
"""The first key of the advisory lock migrations hold (the second is the schema's hash)."""


class _Grouped:
    """One-statement writes (``atomic=False``) committed together while others are in flight.

    A write that finds none in flight runs at once, on its own connection and without a
    transaction: a lone write pays nothing extra. Writes arriving meanwhile queue, and a task
    then runs everything queued on one connection in ONE transaction, one round trip per
    statement and one commit for all. Should a write of a group fail (the transaction is then
    aborted), the group is rolled back and each of its writes run again on its own, so a failing
    write fails alone and no write is half done. Writes are serialised this way, one group at a
    time (reads and atomic writes still run beside them on the pool's other connections)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._busy = False
        self._queue: list[tuple[WriteBody[Any], asyncio.Future[Any]]] = []
        self._drains: set[asyncio.Task[None]] = set()
        self.groups = 0

    async def write(self, body: WriteBody[T]) -> T:
        if self._busy:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._queue.append((body, future))
            return await future
        self._busy = True
        try:
            return await self._alone(body)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._queue:
            self._busy = False
            return
        drain = asyncio.get_running_loop().create_task(self._drain())
        self._drains.add(drain)
        drain.add_done_callback(self._drains.discard)

    async def _alone(self, body: WriteBody[T]) -> T:
        async with self._pool.acquire() as conn:
            return await body(_PostgresStatements(conn))

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                await self._commit(group)
        finally:
            self._busy = False

    async def _commit(self, group: list[tuple[WriteBody[Any], asyncio.Future[Any]]]) -> None:
        if len(group) == 1:
            await self._settle_alone(*group[0])
            return
        self.groups += 1
        results: list[Any] = []
        in_a_write = False
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                statements = _PostgresStatements(conn)
                for body, _future in group:
                    in_a_write = True
                    results.append(await body(statements))
                    in_a_write = False
        except Exception as exc:
            if in_a_write:
                # A write failed, so the transaction was rolled back and left nothing behind:
                # run each write again on its own, and the failing one fails alone.
                for body, future in group:
                    await self._settle_alone(body, future)
                return
            # The connection or the commit failed: whether it committed is not known, so no
            # write is run again; each caller hears why.
            for _body, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_body, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _settle_alone(self, body: WriteBody[Any], future: asyncio.Future[Any]) -> None:
        try:
            result = await self._alone(body)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)


async def _keep_session(conn: Any) -> None:
    """The pool's reset of a released connection: nothing sent to the server.

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release, a second round trip for every statement of the chat path (a ticket read, a
    message insert). The store leaves no session state to undo: ``search_path`` is a startup
    setting (``RESET ALL`` keeps it anyway), advisory locks are transaction-scoped
    (``pg_advisory_xact_lock``), nothing LISTENs or declares a cursor. A transaction left open
    is still rolled back: asyncpg does that before calling this."""


class PostgresDriver:
    engine: Literal["postgres"] = "postgres"
    serial = "BIGSERIAL PRIMARY KEY"
    next_ordinal = "nextval('ticket_agent_ordinals')"
    lock_rows = " FOR UPDATE"

    def __init__(self, pool: Any, *, group_writes: bool = True) -> None:
        self._pool = pool
        self._grouped = _Grouped(pool) if group_writes else None

    @classmethod
    async def open(
        cls, dsn: str, schema: str | None = None, *, max_size: int = 10, group_writes: bool = True
    ) -> PostgresDriver:
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
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            server_settings=settings,
            reset=_keep_session,
        )
        return cls(pool, group_writes=group_writes)

    @property
    def groups(self) -> int:
        """Transactions of several grouped writes committed (or tried) so far."""
        return self._grouped.groups if self._grouped is not None else 0

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._pool.acquire() as conn:
            return await _PostgresStatements(conn).execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        rows = await self._pool.fetch(number_placeholders(sql), *args)
        return [dict(row) for row in rows]

    async def scan(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self.fetch(sql, *args)

    def write(self, body: WriteBody[T], *, atomic: bool = True) -> Awaitable[T]:
        return self._write(body, atomic)

    async def _write(self, body: WriteBody[T], atomic: bool) -> T:
        if not atomic and self._grouped is not None:
            return await self._grouped.write(body)
        async with self._pool.acquire() as conn:
            statements = _PostgresStatements(conn)
            if not atomic:
                return await body(statements)
            async with conn.transaction():
                return await body(statements)

    async def script(self, sql: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(sql)

    async def migrate(self, body: WriteBody[T]) -> T:
        async with self._pool.acquire() as conn, conn.transaction():
            # Held until the commit: nodes starting at once migrate one after the other. Keyed
            # by the schema, so databases (or test schemas) of one server do not wait on
            # each other.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", SCHEMA_LOCK
            )
            return await body(_PostgresStatements(conn))

    async def close(self) -> None:
        if self._grouped is not None:
            await self._grouped.close()
        await self._pool.close()
