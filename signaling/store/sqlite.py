"""SQLite for one node: one writer thread that commits in groups, and WAL readers.

Writes. One thread owns the only writing connection. Callers queue their write (a body of
statements, see ``driver.py``) and await a future; the thread takes everything queued, runs it
in ONE transaction with each write in its own SAVEPOINT (a failing statement, say a unique
violation, rolls back and fails only its own write), commits, and only then resolves the
futures, with one wake-up of the event loop per group. So a caller's await returns once its
write is committed, and under load many writes share one commit (and, with FULL, one fsync), where
aiosqlite paid a thread hop per statement and a commit per write. Nothing waits to fill a
group: a lone write is committed at once, and what queues meanwhile forms the next group.
The thread settles races the way one statement does: ``UPDATE ... WHERE status = 'queued'``
and ``INSERT ... ON CONFLICT DO NOTHING`` see every earlier write of the group.

Durability: WAL with ``synchronous=NORMAL``, as before: a commit is in the WAL file before any
caller hears of it, so an acknowledged write survives a crash or kill of the process; the WAL is
fsynced at checkpoints, so a power loss or OS crash may lose the last moments of writes (the
database stays consistent). ``FULL`` (``SqliteDriver.open(path, synchronous="FULL")``) fsyncs
every group: measured with ``bench/store.py`` on this machine, one writer at a time then gets
~400 commits/s at ~200 us of CPU each instead of ~15,000 at ~40 us; 100 concurrent writers
share the fsync and get ~19,000/s at ~23 us (NORMAL: ~58,000/s at ~17 us).

Reads. Short reads (a row by key, a ticket's transcript by index) run on the event loop, on a
connection of their own: in WAL a reader never waits for the writer, and such a read costs ~6 us
of CPU there, against ~48 us for the same read through a thread (``bench/store.py``, "read"
rows), plus the wait for the thread. Reads that may take long (a text search over every message,
every open ticket at start-up) go to a small pool of reader threads instead (``scan``). Each
read starts a new WAL snapshot, so it sees every write whose await has returned.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import sqlite3
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from signaling.store.driver import Row, Statements, T, UniqueViolation, WriteBody

MAX_GROUP = 256
"""Writes committed together at most: a bound on how long the first of a group waits."""

READ_THREADS = 2

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


class _Writer(threading.Thread):
    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        super().__init__(name="tandem-sqlite-writer", daemon=True)
        self._path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.groups = 0
        """Transactions committed (or tried): fewer than writes when writes were grouped."""

    def submit(self, write: _Write) -> None:
        self._queue.put(write)

    def stop(self) -> None:
        self._queue.put(None)

    def run(self) -> None:
        try:
            conn = _connect(self._path, self._synchronous, same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        pending: collections.deque[_Write] = collections.deque()
        stopping = False
        try:
            while pending or not stopping:
                if not pending:
                    first = self._queue.get()
                    if first is None:
                        stopping = True
                        continue
                    pending.append(first)
                while not stopping and len(pending) < MAX_GROUP:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                    else:
                        pending.append(more)
                self._run_next(conn, pending)
        except BaseException as exc:
            # Not expected (each write's errors are its own): fail every write still waiting
            # rather than leave its caller waiting for ever; ``submit`` refuses from now on.
            self.error = exc
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is not None:
                    pending.append(more)
            self._settle([(write, None, exc) for write in pending])
            raise
        finally:
            conn.close()

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
        while pending and pending[0].script is None:
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
        """Resolve the futures on their loops: one wake-up per loop per group."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


class SqliteDriver:
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    ordinals = ""
    # One writer thread runs every write, one at a time, so MAX + 1 is unique.
    next_ordinal = "(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ticket_agents)"

    def __init__(self, path: Path, writer: _Writer, synchronous: Synchronous) -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer = writer
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
        writer.start()
        await asyncio.to_thread(writer.ready.wait)
        if writer.error is not None:
            raise writer.error
        return cls(path, writer, synchronous)

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
        self._writer.stop()
        await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._pool.shutdown, True)
        for conn in self._pool_readers:
            conn.close()
        self._reader.close()
