"""The store off the chat hot path (issue 10, item 3), on SQLite and PostgreSQL.

Writes are committed in groups (SQLite: one writing connection on the loop; PostgreSQL: one-statement writes
arriving while one is in flight), each caller's await returns once its write is committed, a
failing write fails alone; tickets, sites and agents are read from memory
(``CachedTicketStore``) and every change through the store is visible at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from signaling.store import (
    AgentRecord,
    CachedTicketStore,
    DuplicateError,
    SiteRecord,
    SqlTicketStore,
    TicketChanged,
    TicketRecord,
    open_store,
)
from signaling.store.cache import _Lru
from signaling.store.driver import Statements, UniqueViolation
from signaling.store.postgres import PostgresDriver
from signaling.store.sqlite import SqliteDriver
from tests.signaling.test_store import PG_URL, _postgres

Driver = SqliteDriver | PostgresDriver


@dataclass
class Database:
    """Where a store lives, and a way to open (and reopen) one on it."""

    kind: str
    place: Path | str

    async def driver(self) -> Driver:
        if self.kind == "sqlite":
            assert isinstance(self.place, Path)
            return await SqliteDriver.open(self.place)
        assert isinstance(self.place, str)
        return await PostgresDriver.open(PG_URL, schema=self.place)

    async def open(self, **cache: Any) -> tuple[CachedTicketStore, Driver]:
        driver = await self.driver()
        return CachedTicketStore(await SqlTicketStore.create(driver), **cache), driver


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", tmp_path / "t.sqlite3")
        return
    schema = f"t_{secrets.token_hex(6)}"
    driver = await _postgres(schema)
    try:
        yield Database("postgres", schema)
    finally:
        await driver.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await driver.close()


def ticket(ticket_id: str, status: str = "queued") -> TicketRecord:
    return TicketRecord(
        id=ticket_id,
        site_id="site_1",
        status=status,  # type: ignore[arg-type]
        created_at=time.time(),
        closed_at=None,
        customer={"id": "u-1", "verified": False, "name": "Dana", "email": None},
        context={"url": "http://shop.test/", "title": "Shop"},
        agents=(),
        previous_ticket_id=None,
    )


def site(site_id: str, key: str) -> SiteRecord:
    return SiteRecord(id=site_id, name=site_id, public_key=key, secret="s", origins=())


async def hold_writes(driver: Driver) -> tuple[Awaitable[Any], Callable[[], None]]:
    """Occupy the writer with one write that waits for a gate, so that the writes made next
    queue up and form a group; returns that write and the gate's opener."""
    if isinstance(driver, SqliteDriver):
        release = driver.hold()

        async def first(tx: Statements) -> int:
            return await tx.execute("SELECT 1")

        return driver.write(first), release
    loop_gate = asyncio.Event()
    loop_entered = asyncio.Event()

    async def held_loop(tx: Statements) -> int:
        loop_entered.set()
        await loop_gate.wait()
        return await tx.execute("SELECT 1")

    held_task = asyncio.ensure_future(driver.write(held_loop, atomic=False))
    await loop_entered.wait()
    return held_task, loop_gate.set


async def test_500_writes_in_groups_each_with_its_own_result(database: Database) -> None:
    """500 writers at once: they share few commits, each gets its own result, the few that
    break a unique key fail alone, and every other write is durable (it outlives the store)."""
    _, driver = await database.open()
    try:
        await driver.script("CREATE TABLE probe (k TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        held, release = await hold_writes(driver)
        groups_before = driver.groups

        def insert(key: str, n: int) -> Callable[[Statements], Any]:
            async def body(tx: Statements) -> int:
                rows = await tx.fetch("INSERT INTO probe (k, n) VALUES (?, ?) RETURNING n", key, n)
                return int(rows[0]["n"])

            return body

        # Every 50th writer reuses the key of the writer before it: a unique violation.
        keys = [f"k{n - 1}" if n % 50 == 0 and n else f"k{n}" for n in range(500)]
        writes = [driver.write(insert(key, n), atomic=False) for n, key in enumerate(keys)]
        release()
        await held
        results = await asyncio.gather(*writes, return_exceptions=True)
        grouped = driver.groups - groups_before
    finally:
        await driver.close()

    failed = [n for n, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == [n for n in range(1, 500) if n % 50 == 0]
    assert all(isinstance(results[n], UniqueViolation) for n in failed)
    assert [results[n] for n in range(500) if n not in failed] == [
        n for n in range(500) if n not in failed
    ]
    # 500 writes queued behind one: committed in a few groups, not one commit each.
    assert 1 <= grouped <= 5, grouped

    again = await database.driver()
    try:
        rows = await again.fetch("SELECT k, n FROM probe ORDER BY n")
    finally:
        await again.close()
    assert [(row["k"], row["n"]) for row in rows] == [
        (f"k{n}", n) for n in range(500) if n not in failed
    ]


async def test_500_chat_messages_at_once_are_all_kept(database: Database) -> None:
    """The chat path through the store as the server opens it: 500 messages on 50 tickets at
    once, with sites added meanwhile (two of them under a key already taken)."""
    store, _ = await database.open()
    try:
        for t in range(50):
            await store.create_ticket(ticket(f"tk_{t}"))

        async def chat(n: int) -> tuple[int, str, bool]:
            record, new = await store.add_message(
                f"tk_{n % 50}", "customer", "u-1", "Dana", f"text {n}", f"c{n}", float(n)
            )
            return record.id, record.text, new

        sites = [site(f"site_{n}", f"key_{n % 8}") for n in range(10)]
        results = await asyncio.gather(
            *(chat(n) for n in range(500)),
            *(store.add_site(s) for s in sites),
            return_exceptions=True,
        )
    finally:
        await store.close()
    messages = [cast(tuple[int, str, bool], result) for result in results[:500]]
    added = results[500:]
    assert [text for _, text, _ in messages] == [f"text {n}" for n in range(500)]
    assert all(new for _, _, new in messages)
    assert len({message_id for message_id, _, _ in messages}) == 500
    # Per key one site is added, whichever came first; the other fails alone.
    assert all(a is None or isinstance(a, DuplicateError) for a in added)
    won = {sites[n].public_key for n, a in enumerate(added) if a is None}
    assert won == {f"key_{k}" for k in range(8)} and sum(a is None for a in added) == 8

    store, _ = await database.open()
    try:
        counts = await store.message_counts([f"tk_{t}" for t in range(50)])
        assert counts == {f"tk_{t}": 10 for t in range(50)}
        kept = await store.messages("tk_7")
        assert [m.text for m in kept] == [f"text {n}" for n in range(7, 500, 50)]
        assert [m.id for m in kept] == sorted(
            message_id for message_id, text, _ in messages if text in {m.text for m in kept}
        )
        assert sorted(s.public_key for s in await store.sites()) == sorted(won)
    finally:
        await store.close()


async def test_50_claimers_one_winner(database: Database) -> None:
    store, _ = await database.open()
    try:
        await store.create_ticket(ticket("tk_race"))
        assert (await store.ticket("tk_race")).status == "queued"  # type: ignore[union-attr]
        claims = await asyncio.gather(
            *(store.claim_ticket("tk_race", {"id": f"ag_{i}", "name": f"A{i}"}) for i in range(50))
        )
        assert claims.count(True) == 1
        winner = f"ag_{claims.index(True)}"
        claimed = await store.ticket("tk_race")
        assert claimed is not None and claimed.status == "active"
        assert [a["id"] for a in claimed.agents] == [winner]
        # And against a close racing the claims: the ticket ends closed, at most one claim won.
        await store.create_ticket(ticket("tk_race2"))
        outcomes = await asyncio.gather(
            store.close_ticket("tk_race2", time.time()),
            *(store.claim_ticket("tk_race2", {"id": f"b_{i}", "name": "B"}) for i in range(49)),
        )
        assert outcomes[0] is True and outcomes[1:].count(True) <= 1
        closed = await store.ticket("tk_race2")
        assert closed is not None and closed.status == "closed"
        assert len(closed.agents) == outcomes[1:].count(True)
    finally:
        await store.close()


async def test_every_change_is_visible_through_the_cache_at_once(database: Database) -> None:
    store, _ = await database.open()
    try:
        await store.create_ticket(ticket("tk_c"))
        first = await store.ticket("tk_c")
        assert first is not None and first.status == "queued"
        assert await store.ticket("tk_c") is first  # served from memory

        # A claim that was the ticket's only write leaves it cached, made active.
        assert await store.claim_ticket("tk_c", {"id": "ag_1", "name": "Al"})
        hits = store.tickets_cache.hits
        claimed = await store.ticket("tk_c")
        assert store.tickets_cache.hits == hits + 1
        assert claimed is not None and claimed.status == "active"
        assert claimed.agents == ({"id": "ag_1", "name": "Al"},)
        plain = SqlTicketStore(store.inner._db)  # type: ignore[attr-defined]
        assert await plain.ticket("tk_c") == claimed
        assert claimed == dataclasses.replace(first, status="active", agents=claimed.agents)
        hits = store.tickets_cache.hits

        await store.add_ticket_agent("tk_c", {"id": "sup", "name": "Sup"})
        assert [a["id"] for a in (await store.ticket("tk_c")).agents] == ["ag_1", "sup"]  # type: ignore[union-attr]

        await store.set_context("tk_c", {"url": "http://shop.test/cart", "title": "Cart"})
        assert (await store.ticket("tk_c")).context["title"] == "Cart"  # type: ignore[union-attr]

        closed_at = time.time()
        assert await store.close_ticket("tk_c", closed_at)
        closed = await store.ticket("tk_c")
        assert closed is not None and closed.status == "closed" and closed.closed_at == closed_at
        assert store.tickets_cache.hits == hits  # every read after a change went to the database

        # What the cache serves is what the database holds.
        assert await plain.ticket("tk_c") == closed
        assert await store.ticket("tk_missing") is None
        await store.create_ticket(ticket("tk_missing"))
        assert await store.ticket("tk_missing") is not None  # absent records are not cached
    finally:
        await store.close()


async def test_a_claim_racing_other_writes_leaves_the_cache_as_the_database(
    database: Database,
) -> None:
    """A claim keeps its ticket cached (made active) only when no other write of the ticket
    overlapped it: with a close, a context change or another claim at the same moment, what
    the cache then serves is what the database holds."""
    store, _ = await database.open()
    plain = SqlTicketStore(store.inner._db)  # type: ignore[attr-defined]
    try:
        others: list[Callable[[str], Awaitable[object]]] = [
            lambda t: store.close_ticket(t, time.time()),
            lambda t: store.set_context(t, {"url": "http://shop.test/cart", "title": "Cart"}),
            lambda t: store.claim_ticket(t, {"id": "ag_2", "name": "Bo"}),
            lambda t: store.add_ticket_agent(t, {"id": "sup", "name": "Sup"}),
        ]
        for n, other in enumerate(others):
            for claim_first in (True, False):
                ticket_id = f"tk_r{n}{int(claim_first)}"
                await store.create_ticket(ticket(ticket_id))
                assert await store.ticket(ticket_id) == await plain.ticket(ticket_id)
                claim = store.claim_ticket(ticket_id, {"id": "ag_1", "name": "Al"})
                both = (claim, other(ticket_id)) if claim_first else (other(ticket_id), claim)
                await asyncio.gather(*both)
                assert await store.ticket(ticket_id) == await plain.ticket(ticket_id), ticket_id
    finally:
        await store.close()


async def test_sites_and_agents_from_memory_and_changes_seen(database: Database) -> None:
    now = [1000.0]
    store, _ = await database.open(clock=lambda: now[0], record_ttl=10.0)
    other, _ = await database.open()  # another process, as ``tandem agent password`` is
    try:
        assert await store.site_by_key("key_a") is None
        await store.add_site(site("site_a", "key_a"))
        assert (await store.site_by_key("key_a")) == (await store.site("site_a"))
        assert await store.site("site_a") is await store.site("site_a")

        agent = AgentRecord("ag_1", "al@x.test", "Al", "hash-1", "agent", ())
        await store.add_agent(agent)
        assert await store.agent("ag_1") == agent
        assert await store.set_password("ag_1", "hash-2", time.time())
        assert (await store.agent("ag_1")).password_hash == "hash-2"  # type: ignore[union-attr]

        # A change made elsewhere is seen once the entry has lived its time.
        assert await other.set_password("ag_1", "hash-3", time.time())
        assert (await store.agent("ag_1")).password_hash == "hash-2"  # type: ignore[union-attr]
        now[0] += 10.0
        assert (await store.agent("ag_1")).password_hash == "hash-3"  # type: ignore[union-attr]
        assert await store.remove_agent("ag_1", time.time())
        assert await store.agent("ag_1") is None
        assert (await store.agent_by_email("al@x.test")) is None
    finally:
        await other.close()
        await store.close()


async def test_cache_is_bounded_and_evicts_closed_tickets_first(database: Database) -> None:
    store, _ = await database.open(max_tickets=4)
    try:
        for t in range(6):
            await store.create_ticket(ticket(f"tk_{t}", status="closed" if t < 2 else "queued"))
        for t in range(6):
            assert await store.ticket(f"tk_{t}") is not None
        assert len(store.tickets_cache) == 4
        # The two closed ones went first, though they were not the least recently read.
        assert [store.tickets_cache.get(f"tk_{t}") is not None for t in range(6)] == [
            False,
            False,
            True,
            True,
            True,
            True,
        ]
    finally:
        await store.close()


async def test_a_write_whose_caller_gave_up_still_lands_and_is_seen(database: Database) -> None:
    """A claim held up (SQLite: the writer busy; PostgreSQL: the row locked by another
    transaction) whose caller is cancelled: it still commits, and the cache then drops the
    ticket, though a read in between cached the old state."""
    store, driver = await database.open()
    try:
        await store.create_ticket(ticket("tk_x"))
        assert (await store.ticket("tk_x")).status == "queued"  # type: ignore[union-attr]
        if isinstance(driver, SqliteDriver):
            held, release = await hold_writes(driver)
        else:
            import asyncpg

            blocker = await asyncpg.connect(PG_URL, server_settings={"search_path": database.place})
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("SELECT 1 FROM tickets WHERE id = 'tk_x' FOR UPDATE")

            async def unlock() -> None:
                await lock.commit()
                await blocker.close()

            released = asyncio.Event()
            held = asyncio.ensure_future(released.wait())

            def release() -> None:
                released.set()

        claim = asyncio.ensure_future(store.claim_ticket("tk_x", {"id": "ag", "name": "A"}))
        for _ in range(3):
            await asyncio.sleep(0)
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
        store.tickets_cache.clear()
        read = await store.ticket("tk_x")  # read, and cached, meanwhile
        assert read is not None and read.status == "queued"
        assert store.tickets_cache.get("tk_x") is not None
        release()
        await held
        if not isinstance(driver, SqliteDriver):
            await unlock()
        for _ in range(200):  # the claim goes on in the background; its end replaces the entry
            if store.tickets_cache.get("tk_x") is not read:
                break
            await asyncio.sleep(0.01)
        claimed = await store.ticket("tk_x")
        assert claimed is not None and claimed.status == "active"
        assert claimed.agents == ({"id": "ag", "name": "A"},)
    finally:
        await store.close()


async def test_open_store_returns_the_cached_store(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path / "tandem.sqlite3")
    try:
        assert isinstance(store, CachedTicketStore)
        await store.create_ticket(ticket("tk_o"))
    finally:
        await store.close()
    store = await open_store(None, tmp_path / "tandem.sqlite3")
    try:
        assert (await store.ticket("tk_o")) is not None
    finally:
        await store.close()


async def test_sqlite_write_body_that_awaits_something_else_fails_alone(tmp_path: Path) -> None:
    driver = await SqliteDriver.open(tmp_path / "t.sqlite3")
    try:
        await driver.script("CREATE TABLE probe (k TEXT PRIMARY KEY)")

        async def strays(tx: Statements) -> None:
            await tx.execute("INSERT INTO probe (k) VALUES ('stray')")
            await asyncio.sleep(0)  # not a statement: a write body may only await its statements

        async def fine(tx: Statements) -> int:
            return await tx.execute("INSERT INTO probe (k) VALUES ('fine')")

        results = await asyncio.gather(
            driver.write(strays), driver.write(fine), return_exceptions=True
        )
        assert isinstance(results[0], RuntimeError) and results[1] == 1
        assert [row["k"] for row in await driver.fetch("SELECT k FROM probe")] == ["fine"]
    finally:
        await driver.close()
    with pytest.raises(RuntimeError):
        await driver.execute("SELECT 1")


async def test_a_read_overlapping_a_change_is_not_cached() -> None:
    """``_Lru.load``: a read that started before a change finished must not fill the cache
    with what it read (the change's drop came while it was on its way)."""
    lru: _Lru[str, str] = _Lru(10)
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_read() -> str:
        started.set()
        await finish.wait()
        return "before the change"

    loading = asyncio.ensure_future(lru.load("k", slow_read))
    await started.wait()
    lru.drop("k")  # the change is done
    finish.set()
    assert await loading == "before the change"  # the caller still gets its read
    assert lru.get("k") is None

    async def read_after() -> str:
        return "after the change"

    assert await lru.load("k", read_after) == "after the change"
    assert lru.get("k") == "after the change"


async def test_postgres_pool_sends_one_statement_per_read_not_a_reset_too() -> None:
    """A released connection goes back to the pool without asyncpg's default reset query
    (``RESET ALL`` and more): on the chat path that was a second round trip for every read and
    write. A transaction left open is still rolled back."""
    schema = f"t_{secrets.token_hex(6)}"
    driver = await PostgresDriver.open(PG_URL, schema=schema, max_size=1)
    sent: list[str] = []
    try:
        pool: Any = driver._pool
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
        for _ in range(3):
            assert await driver.fetch("SELECT 1 AS one") == [{"one": 1}]
        assert sent == ["SELECT 1 AS one"] * 3
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT set_config('tandem.mark', 'left open', true)")
        rows = await driver.fetch("SELECT current_setting('tandem.mark', true) AS mark")
        assert rows[0]["mark"] in ("", None)
    finally:
        await driver.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await driver.close()


async def test_a_message_written_as_read_lands_only_on_the_ticket_as_read(
    database: Database,
) -> None:
    """A message written ``as_read`` lands only while the ticket's status and agents are the
    record's (several nodes keep tickets without reading one per message): every change of
    them refuses it, a change of the context does not, a resend gets its original."""
    store, _ = await database.open(cache_tickets=False)
    try:
        await store.create_ticket(ticket("tk_v"))
        changes: list[Callable[[], Awaitable[object]]] = [
            lambda: store.claim_ticket("tk_v", {"id": "ag_1", "name": "Al"}),
            lambda: store.add_ticket_agent("tk_v", {"id": "sup", "name": "Sup"}),
            lambda: store.remove_ticket_agent("tk_v", "ag_1"),
            lambda: store.add_ticket_agent("tk_v", {"id": "ag_2", "name": "Bo"}),
            lambda: store.requeue_ticket("tk_v"),
            lambda: store.close_ticket("tk_v", time.time()),
        ]
        for n, change in enumerate(changes):
            kept = await store.ticket("tk_v")
            assert kept is not None
            record, new = await store.add_message(
                "tk_v", "customer", "u-1", "Dana", "hi", f"c{n}", 1.0, kept
            )
            assert new
            await store.merge_context("tk_v", lambda c: {**c, "patched": True})
            await store.add_message("tk_v", "customer", "u-1", "Dana", "hi", f"x{n}", 1.0, kept)
            await change()
            with pytest.raises(TicketChanged):
                await store.add_message("tk_v", "customer", "u-1", "Dana", "stale", None, 1.0, kept)
            # A resend is answered with the original whatever the ticket.
            again, new = await store.add_message(
                "tk_v", "customer", "u-1", "Dana", "hi", f"c{n}", 1.0, kept
            )
            assert not new and again == record
        texts = [m.text for m in await store.messages("tk_v")]
        assert texts == ["hi"] * 2 * len(changes)
    finally:
        await store.close()


async def test_another_nodes_change_is_never_served_from_what_this_node_kept(
    database: Database,
) -> None:
    """Two nodes' stores on one database (``cache_tickets=False``): a ticket node B kept is
    only a hint; ``ticket()`` reads it, and a message written on the hint after node A changed
    the ticket is refused (and the hint dropped), so B decides again on the stored ticket."""
    a, _ = await database.open(cache_tickets=False)
    b, _ = await database.open(cache_tickets=False)
    try:
        await a.create_ticket(ticket("tk_n"))
        hint = await b.ticket_hint("tk_n")
        assert hint is not None and hint.status == "queued"
        assert await b.ticket_hint("tk_n") is hint  # kept: no read
        assert await a.claim_ticket("tk_n", {"id": "ag_1", "name": "Al"})
        assert await b.ticket_hint("tk_n") is hint  # B cannot know yet
        fresh = await b.ticket("tk_n")
        assert fresh is not None and fresh.status == "active" and fresh.agents
        await a.add_ticket_agent("tk_n", {"id": "sup", "name": "Sup"})
        kept = await b.ticket_hint("tk_n")
        assert kept is not None and kept == fresh  # refreshed by the read, changed since on A
        with pytest.raises(TicketChanged):
            await b.add_message("tk_n", "agent", "sup", "Sup", "hi", "m1", 1.0, kept)
        now = await b.ticket_hint("tk_n")
        assert now is not None and [x["id"] for x in now.agents] == ["ag_1", "sup"]
        _, new = await b.add_message("tk_n", "agent", "sup", "Sup", "hi", "m1", 1.0, now)
        assert new
    finally:
        await a.close()
        await b.close()
