"""SQLite for one node: one writing connection that commits in groups, and WAL readers.

Writes. The writing connection lives on the event loop's thread. Callers queue their write (a
body of statements, see ``driver.py``) and await a future; at the loop's next turn everything
queued runs in ONE transaction with each write in its own SAVEPOINT (a failing statement, say
a unique violation, rolls back and fails only its own write), is committed, and only then are
the futures resolved. So a caller's await returns once its write is committed, and under load
many writes share one commit. Nothing waits to fill a group: a lone write is committed at the
next turn. The group settles races the way one statement does: ``UPDATE ... WHERE status =
'queued'`` and ``INSERT ... ON CONFLICT DO NOTHING`` see every earlier write of the group.

Why on the loop: with WAL and ``synchronous=NORMAL`` a commit writes the WAL and does not fsync,
so a group costs tens of microseconds; a writer thread (tried first) cost more than the writes in
hand-offs: every wake-up of the thread and of the loop took the GIL back and forth, which made
chat round trips twice as slow under load (``bench/signaling.py``). The fsync happens at
checkpoints, which a thread of their own runs every second (``_Checkpointer``), never the loop.
Another process (``tandem agent ...``) may hold the write lock for a moment; the loop waits at
most 200 ms for it.

Durability: a commit is in the WAL file before any caller hears of it, so an acknowledged write
survives a crash or kill of the process; a power loss or OS crash may lose the writes since the
last checkpoint (the database stays consistent). ``FULL`` (``SqliteDriver.open(path,
synchronous="FULL")``) fsyncs every group instead, on the loop.

Reads. Short reads (a row by key, a ticket's transcript by index) run on the event loop, on a
connection of their own: in WAL a reader never waits for the writer, and such a read costs ~6 us
of CPU there, against ~48 us for the same read through a thread (``bench/store.py``, "read"
rows). Reads that may take long (a text search over every message, every open ticket at
start-up) go to a small pool of reader threads instead (``scan``). Each read starts a new WAL
snapshot, so it sees every write whose await has returned.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from signaling.store.driver import Row, Statements, T, UniqueViolation, WriteBody

MAX_GROUP = 256
"""Writes committed together at most: a bound on how long one group holds the loop."""

READ_THREADS = 2

MIGRATION_WAIT_MS = 60_000
"""How long a process waits for another one's migration of the same file to finish."""

Synchronous = Literal["NORMAL", "FULL"]


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _connect(
    path: Path, synchronous: Synchronous, *, same_thread: bool = True
) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; the writer opens and commits its transactions.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=same_thread)
    conn.row_factory = _dict_row
    conn.execute("PRAGMA busy_timeout=5000")  # another process (``tandem agent ...``) may write
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a write body whose awaits all complete at once (statements on this thread)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a write body awaited something other than its statements")


class _WriterStatements:
    """Statements on the writer's connection, inside the current write's savepoint."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return self._conn.execute(sql, args).rowcount
        except sqlite3.IntegrityError as exc:
            raise UniqueViolation(str(exc)) from exc

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        try:
            rows: list[Row] = self._conn.execute(sql, args).fetchall()
        except sqlite3.IntegrityError as exc:
            raise UniqueViolation(str(exc)) from exc
        return rows


@dataclass(frozen=True)
class _Write:
    body: WriteBody[Any] | None
    script: str | None
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


Outcome = tuple[_Write, Any, BaseException | None]


def _resolve(outcomes: list[Outcome]) -> None:
    for write, result, error in outcomes:
        if write.future.done():  # the caller stopped waiting; the write stands
            continue
        if error is None:
            write.future.set_result(result)
        else:
            write.future.set_exception(error)


class _Writer:
    """The writing connection, on the event loop's thread: writes queued during one turn of the
    loop are committed together at the next (see the module's docstring)."""

    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        self.conn = _connect(path, synchronous)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        # Another process (``tandem agent ...``) may hold the write lock for a moment; the loop
        # waits at most this long for it.
        self.conn.execute("PRAGMA busy_timeout=200")
        self._pending: collections.deque[_Write] = collections.deque()
        self._scheduled = False
        self.held = False
        """While held, writes queue and nothing commits (``SqliteDriver.hold``)."""
        self.groups = 0
        self.error: BaseException | None = None

    def submit(self, write: _Write) -> None:
        self._pending.append(write)
        if not self._scheduled and not self.held:
            self._scheduled = True
            write.loop.call_soon(self._flush)

    def release(self) -> None:
        self.held = False
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._pending[0].loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and not self.held:
            self._run_next(self.conn, self._pending)

    def _run_next(self, conn: sqlite3.Connection, pending: collections.deque[_Write]) -> None:
        """Commit the writes at the head of ``pending`` (a group, or a script on its own)."""
        head = pending[0]
        if head.script is not None:
            pending.popleft()
            try:
                conn.executescript(head.script)
            except Exception as exc:
                self._settle([(head, None, exc)])
            else:
                self._settle([(head, None, None)])
            return
        group: list[_Write] = []
        while pending and pending[0].script is None and len(group) < MAX_GROUP:
            group.append(pending.popleft())
        self._commit_group(conn, group)

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Write]) -> None:
        done: list[Outcome] = []
        rest: list[_Write] = []
        self.groups += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = _WriterStatements(conn)
            for index, write in enumerate(group):
                assert write.body is not None
                conn.execute("SAVEPOINT write")
                try:
                    result = run_to_end(write.body(tx))
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled back the whole transaction (disk full, I/O error): the
                        # group's earlier writes are lost too. Say so, and go on with the rest.
                        done = [(w, None, exc) for w, _, _ in done]
                        done.append((write, None, exc))
                        rest = group[index + 1 :]
                        break
                    conn.execute("ROLLBACK TO write")
                    conn.execute("RELEASE write")
                    done.append((write, None, exc))
                else:
                    conn.execute("RELEASE write")
                    done.append((write, result, None))
            else:
                conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.rollback()
            self._settle([(write, None, exc) for write in group])
            return
        self._settle(done)
        if rest:
            self._commit_group(conn, rest)

    @staticmethod
    def _settle(outcomes: list[Outcome]) -> None:
        _resolve(outcomes)

    def close(self) -> None:
        self._flush()
        self.conn.close()


class _Checkpointer(threading.Thread):
    """Moves the WAL into the database file (the fsync) off the event loop, every second."""

    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        super().__init__(name="tandem-sqlite-checkpoint", daemon=True)
        self._path = path
        self._synchronous = synchronous
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = _connect(self._path, self._synchronous, same_thread=False)
        try:
            while not self._stop_event.wait(1.0):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()


class SqliteDriver:
    engine: Literal["sqlite"] = "sqlite"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    # One writer thread runs every write, one at a time, so MAX + 1 is unique.
    next_ordinal = "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"
    lock_rows = ""

    def __init__(
        self,
        path: Path,
        writer: _Writer,
        checkpointer: _Checkpointer,
        synchronous: Synchronous,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer = writer
        self._checkpointer = checkpointer
        self._closed = False
        # Opened on the loop's thread, used only there (short reads).
        self._reader = _connect(path, synchronous)
        self._reader.execute("PRAGMA query_only=1")
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="tandem-sqlite-read")
        self._pool_readers: list[sqlite3.Connection] = []
        self._pool_local = threading.local()
        self._pool_lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path, *, synchronous: Synchronous = "NORMAL") -> SqliteDriver:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = _Writer(path, synchronous)
        checkpointer = _Checkpointer(path, synchronous)
        checkpointer.start()
        return cls(path, writer, checkpointer, synchronous)

    def hold(self) -> Callable[[], None]:
        """Queue writes without committing them until the returned function is called (to
        take a consistent copy of the file, or to see writes group in tests)."""
        self._writer.held = True
        return self._writer.release

    @property
    def groups(self) -> int:
        """Transactions the writer has run: fewer than writes when writes were grouped."""
        return self._writer.groups

    # ------------------------------------------------------------------ writes

    def write(self, body: WriteBody[T], *, atomic: bool = True) -> asyncio.Future[T]:
        return self._submit(body, None)

    async def execute(self, sql: str, *args: Any) -> int:
        async def one(tx: Statements) -> int:
            return await tx.execute(sql, *args)

        return await self.write(one)

    async def script(self, sql: str) -> None:
        await self._submit(None, sql)

    def _submit(self, body: WriteBody[Any] | None, script: str | None) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._writer.error is not None:
            raise RuntimeError("the SQLite writer has stopped") from self._writer.error
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._writer.submit(_Write(body, script, future, loop))
        return future

    async def migrate(self, body: WriteBody[T]) -> T:
        # On a connection of its own, in a thread: ``BEGIN IMMEDIATE`` takes the database's
        # write lock, so another process migrating the same file waits here (not on the loop).
        return await asyncio.to_thread(self._migrate, body)

    def _migrate(self, body: WriteBody[T]) -> T:
        conn = _connect(self.path, self.synchronous, same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = run_to_end(body(_WriterStatements(conn)))
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")
            return result
        finally:
            conn.close()

    # ------------------------------------------------------------------ reads

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        rows: list[Row] = self._reader.execute(sql, args).fetchall()
        return rows

    async def scan(self, sql: str, *args: Any) -> Sequence[Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._scan, sql, args)

    def _scan(self, sql: str, args: tuple[Any, ...]) -> Sequence[Row]:
        conn: sqlite3.Connection | None = getattr(self._pool_local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.synchronous, same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._pool_local.conn = conn
            with self._pool_lock:
                self._pool_readers.append(conn)
        rows: list[Row] = conn.execute(sql, args).fetchall()
        return rows

    async def close(self) -> None:
        """Commit what is queued, then stop the writer and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._checkpointer.stop()
        await asyncio.to_thread(self._checkpointer.join)
        await asyncio.to_thread(self._pool.shutdown, True)
        for conn in self._pool_readers:
            conn.close()
        self._reader.close()
