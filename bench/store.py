#!/usr/bin/env python
"""The store on the chat hot path: inserts per second and CPU per insert, old path vs new.

```
.venv/bin/python bench/store.py                 # SQLite and PostgreSQL, 1 and 100 writers
.venv/bin/python bench/store.py --ops 2000 --no-postgres
```

Rows, each in a fresh database (SQLite in a temp dir; PostgreSQL in a schema of its own,
``DATABASE_URL`` or 127.0.0.1:5432/test):

- `aiosqlite (old)`: the driver before issue 10 (aiosqlite, one lock, a commit per write), kept
  here as the baseline only;
- `writer NORMAL` / `writer FULL`: ``signaling.store.sqlite``, one writer thread committing in
  groups, WAL synced at checkpoints (NORMAL, what ``open_store`` uses) or every group (FULL);
- `pg pool`: ``signaling.store.postgres`` with ``group_writes=False``, each insert committed on
  its own through the asyncpg pool (the path before issue 10);
- `pg grouped`: ``signaling.store.postgres`` as ``open_store`` opens it, inserts arriving while
  one is in flight committed together.

Workloads: `insert` is ``add_message`` alone; `chat` is what the desk does per chat message,
``ticket()`` then ``add_message``, through the store as ``open_store`` builds it (the old path:
no cache; the new: ``CachedTicketStore``). `writers` coroutines share the operations. CPU is this
process's (every thread: the event loop, the SQLite writer and readers); PostgreSQL's own
server processes are not counted. `read` rows compare a short read on the loop with the same
read through a thread (the choice ``sqlite.py`` makes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from signaling.store import CachedTicketStore, SqlTicketStore, TicketRecord  # noqa: E402
from signaling.store.driver import Row, Statements, T, UniqueViolation, WriteBody  # noqa: E402
from signaling.store.postgres import PostgresDriver  # noqa: E402
from signaling.store.sqlite import SqliteDriver  # noqa: E402

PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"


class AiosqliteDriver:
    """The SQLite driver as it was before issue 10 (aiosqlite, a lock, a commit per write),
    behind today's driver interface: the baseline. Needs aiosqlite (no longer a dependency)."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    ordinals = ""
    next_ordinal = "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> AiosqliteDriver:
        import aiosqlite

        conn = await aiosqlite.connect(path)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn)

    async def execute(self, sql: str, *args: Any) -> int:
        async def one(tx: Statements) -> int:
            return await tx.execute(sql, *args)

        return await self.write(one)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._lock:
            return [dict(row) for row in await self._conn.execute_fetchall(sql, args)]

    async def scan(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self.fetch(sql, *args)

    async def write(self, body: WriteBody[T], *, atomic: bool = True) -> T:
        import aiosqlite

        conn = self._conn

        class Tx:
            async def execute(self, sql: str, *args: Any) -> int:
                try:
                    cursor = await conn.execute(sql, args)
                except aiosqlite.IntegrityError as exc:
                    raise UniqueViolation(str(exc)) from exc
                return int(cursor.rowcount)

            async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
                return [dict(row) for row in await conn.execute_fetchall(sql, args)]

        async with self._lock:
            try:
                result = await body(Tx())
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
            return result

    async def script(self, sql: str) -> None:
        async with self._lock:
            await self._conn.executescript(sql)
            await self._conn.commit()

    async def close(self) -> None:
        await self._conn.close()


def _ticket(ticket_id: str) -> TicketRecord:
    return TicketRecord(
        id=ticket_id,
        site_id="site_1",
        status="active",
        created_at=time.time(),
        closed_at=None,
        customer={"id": "u-1", "verified": False, "name": "Dana", "email": None},
        context={"url": "http://shop.test/", "title": "Shop"},
        agents=({"id": "ag_1", "name": "Al"},),
        previous_ticket_id=None,
    )


Opener = Callable[[], Awaitable[Any]]


@contextlib.asynccontextmanager
async def opened(path_name: str, tmp: Path) -> AsyncIterator[tuple[Any, Any]]:
    """(the store as the desk would get it, its driver)."""
    schema = f"bench_{secrets.token_hex(5)}"
    driver: Any
    if path_name == "aiosqlite (old)":
        driver = await AiosqliteDriver.open(tmp / f"{schema}.sqlite3")
    elif path_name.startswith("writer"):
        mode = path_name.split()[1]
        driver = await SqliteDriver.open(tmp / f"{schema}.sqlite3", synchronous=mode)  # type: ignore[arg-type]
    else:
        grouped = path_name == "pg grouped"
        driver = await asyncio.wait_for(
            PostgresDriver.open(PG_URL, schema=schema, group_writes=grouped), 5
        )
    sql = await SqlTicketStore.create(driver)
    store: Any = sql if path_name == "aiosqlite (old)" else CachedTicketStore(sql)
    try:
        yield store, driver
    finally:
        if path_name.startswith("pg"):
            await driver.execute(f"DROP SCHEMA {schema} CASCADE")
        await store.close()


async def measure(
    path_name: str, workload: str, writers: int, ops: int, tmp: Path
) -> tuple[float, float]:
    """(operations per second, CPU microseconds per operation)."""
    async with opened(path_name, tmp) as (store, _driver):
        tickets = [f"tk_{i}" for i in range(max(1, writers))]
        for ticket_id in tickets:
            await store.create_ticket(_ticket(ticket_id))
        per_writer = ops // writers

        async def writer(index: int) -> None:
            ticket_id = tickets[index]
            for n in range(per_writer):
                if workload == "chat":
                    ticket = await store.ticket(ticket_id)
                    assert ticket is not None
                await store.add_message(
                    ticket_id, "customer", "u-1", "Dana", f"message {n}", f"c{index}-{n}", 1.0
                )

        await writer(0)  # warm up (statement caches, the cache entry)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        done = per_writer * writers
        return done / wall, cpu / done * 1e6


async def measure_reads(tmp: Path, ops: int) -> list[tuple[str, float, float]]:
    """A message list by index, on the loop vs through a thread (``asyncio.to_thread``)."""
    driver = await SqliteDriver.open(tmp / "reads.sqlite3")
    store = await SqlTicketStore.create(driver)
    await store.create_ticket(_ticket("tk_r"))
    for n in range(20):
        await store.add_message("tk_r", "customer", "u-1", "D", f"m{n}", f"c{n}", 1.0)
    sql = "SELECT * FROM tickets WHERE id = ?"
    results = []
    try:
        for label, read in (
            ("read on loop", lambda: driver.fetch(sql, "tk_r")),
            ("read via thread", lambda: driver.scan(sql, "tk_r")),
        ):
            await read()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(ops):
                await read()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            results.append((label, ops / wall, cpu / ops * 1e6))
    finally:
        await store.close()
    return results


async def postgres_answers() -> str | None:
    try:
        driver = await asyncio.wait_for(PostgresDriver.open(PG_URL), 5)
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
    await driver.close()
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=3000, help="operations per row")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workloads", default="insert,chat")
    parser.add_argument(
        "--paths", default="aiosqlite (old),writer NORMAL,writer FULL,pg pool,pg grouped"
    )
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if not p.startswith("pg")]
    if "aiosqlite (old)" in paths and importlib.util.find_spec("aiosqlite") is None:
        print("# aiosqlite is not installed (no longer a dependency): the old path is skipped")
        paths.remove("aiosqlite (old)")
    if not args.no_postgres:
        reason = await postgres_answers()
        if reason:
            print(f"# {reason}: PostgreSQL rows skipped")
        else:
            paths += [p for p in args.paths.split(",") if p.startswith("pg")]
    rows: list[tuple[str, str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="tandem-bench-store-") as tmp_name:
        tmp = Path(tmp_name)
        for workload in args.workloads.split(","):
            for path_name in paths:
                for writers in (1, 100):
                    rate, cpu = await measure(path_name, workload, writers, args.ops, tmp)
                    rows.append((workload, path_name, writers, rate, cpu))
                    print(
                        f"# {workload:6} {path_name:16} {writers:4d} {rate:9.0f}/s {cpu:7.0f} us",
                        flush=True,
                    )
        reads = await measure_reads(tmp, args.ops)
    print(f"\nload average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| workload | path | writers | ops/s | CPU us/op |")
    print("|---|---|---:|---:|---:|")
    for workload, path_name, writers, rate, cpu in rows:
        print(f"| {workload} | {path_name} | {writers} | {rate:,.0f} | {cpu:,.0f} |")
    for label, rate, cpu in reads:
        print(f"| read | {label} | 1 | {rate:,.0f} | {cpu:,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
