"""What the SQL store needs from a database client, and what it hands a write.

A write is an ``async def body(tx)`` that runs statements through ``tx``. The SQLite writer runs
bodies on its own thread, driving each coroutine to its end with one ``send`` (its statements
complete at once there; see ``sqlite.py``), while PostgreSQL awaits them on a connection. So the
statements of each write are written once, in ``sql.py``, for both engines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

Row = Mapping[str, Any]
T = TypeVar("T")


class UniqueViolation(Exception):
    """A statement broke a unique (or other integrity) constraint; it changed nothing."""


class Statements(Protocol):
    """Runs statements inside one write."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...


WriteBody = Callable[[Statements], Coroutine[Any, Any, T]]


class Driver(Protocol):
    """The little a SQL store needs from a database client.

    Every write returns only once it is committed (durable), and its statements are atomic:
    all of them land or none does.
    """

    next_ordinal: str
    """An SQL expression for the next ``ticket_agents.ordinal``: increasing, never repeated."""

    lock_rows: str
    """Appended to a SELECT to lock the rows it reads until the write commits (PostgreSQL's
    ``FOR UPDATE``; empty on SQLite, whose writes run one at a time)."""

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        """A short read: by key or an index, a bounded number of rows."""
        ...

    async def scan(self, sql: str, *args: Any) -> Sequence[Row]:
        """A read that may take long (a search, a list of every open ticket): off the loop."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """One write statement, committed; the number of rows it changed."""
        ...

    def write(self, body: WriteBody[T], *, atomic: bool = True) -> Awaitable[T]:
        """Run ``body``'s statements as one write and return its result once committed.

        ``atomic=False`` says the body's statements need not share a transaction (a lone insert,
        an insert then a read back): an engine may then commit each one on its own, which on
        PostgreSQL saves the BEGIN and COMMIT round trips. SQLite runs every body atomically."""
        ...

    async def script(self, sql: str) -> None:
        """Several statements, committed."""
        ...

    serial: str
    """The engine's auto-increment primary key column type (``{serial}`` in migrations)."""

    def migrate(self, body: WriteBody[T]) -> Awaitable[T]:
        """Run ``body`` as one transaction holding the schema lock: one migrating process at a
        time per database (or PostgreSQL schema), whatever the number of nodes starting."""
        ...

    async def close(self) -> None: ...
