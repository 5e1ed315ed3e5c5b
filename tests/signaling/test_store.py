"""The same store tests against SQLite and PostgreSQL, through the cache as ``open_store``
builds the store (``test_store_writer.py`` has the tests of the writer and the cache).

PostgreSQL comes from ``DATABASE_URL`` or 127.0.0.1:5432/test; where none answers the PostgreSQL
cases skip with the reason, except under ``TANDEM_REQUIRE_POSTGRES=1`` (``.ci/run``), where they
fail instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from signaling.store import (
    AttachmentRecord,
    CachedTicketStore,
    SqlTicketStore,
    StaleEpoch,
    TicketOpening,
    TicketRecord,
)
from signaling.store.sql import PostgresDriver, SqliteDriver, UniqueViolation

PG_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"


async def _postgres(schema: str) -> PostgresDriver:
    try:
        return await asyncio.wait_for(PostgresDriver.open(PG_URL, schema=schema), 5)
    except (OSError, TimeoutError, Exception) as exc:
        reason = f"PostgreSQL not reachable at {PG_URL}: {exc!r}"
        if os.environ.get("TANDEM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CachedTicketStore]:
    if request.param == "sqlite":
        s = await SqlTicketStore.create(await SqliteDriver.open(tmp_path / "t.sqlite3"))
        yield CachedTicketStore(s)
        await s.close()
        return
    schema = f"t_{secrets.token_hex(6)}"
    s = await SqlTicketStore.create(await _postgres(schema))
    try:
        yield CachedTicketStore(s)
    finally:
        await s._db.execute(f"DROP SCHEMA {schema} CASCADE")
        await s.close()


def ticket(ticket_id: str, status: str = "queued", **context: object) -> TicketRecord:
    return TicketRecord(
        id=ticket_id,
        site_id="site_1",
        status=status,  # type: ignore[arg-type]
        created_at=time.time(),
        closed_at=None,
        customer={"id": "u-1", "verified": True, "name": "Dana Example", "email": "d@x.test"},
        context={"url": "http://shop.test/p/1", "title": "Aurora Jacket", "app": context},
        agents=(),
        previous_ticket_id=None,
    )


async def test_sites_and_agents(store: CachedTicketStore) -> None:
    from signaling.auth.accounts import AccountError, add_agent, add_site

    site = await add_site(store, "Shop", ["https://Shop.example.com/", "https://shop.example.com"])
    assert site.origins == ("https://shop.example.com",)
    assert await store.site_by_key(site.public_key) == site
    agent = await add_agent(store, "Ann@Example.com", "Ann", "long enough pw", "supervisor", ["x"])
    assert (await store.agent_by_email("ann@example.com")) == agent
    with pytest.raises(AccountError):
        await add_agent(store, "ann@example.com", "Ann 2", "long enough pw")
    with pytest.raises(AccountError):
        await add_site(store, "Bad", ["javascript:alert(1)"])


async def test_ticket_claim_is_first_wins(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_1"))
    results = await asyncio.gather(
        *(store.claim_ticket("tk_1", {"id": f"ag_{i}", "name": f"A{i}"}) for i in range(8))
    )
    assert results.count(True) == 1
    stored = await store.ticket("tk_1")
    assert stored is not None and stored.status == "active" and len(stored.agents) == 1
    await store.add_ticket_agent("tk_1", {"id": "sup", "name": "Sup"})
    await store.add_ticket_agent("tk_1", {"id": "sup", "name": "Sup"})
    assert [a["id"] for a in (await store.ticket("tk_1")).agents][1:] == ["sup"]  # type: ignore[union-attr]
    assert await store.close_ticket("tk_1", time.time())
    assert not await store.close_ticket("tk_1", time.time())
    assert not await store.claim_ticket("tk_1", {"id": "late", "name": "Late"})


async def test_a_ticket_opens_with_its_entry_and_request_page(store: CachedTicketStore) -> None:
    opening = TicketOpening("ticket.created", {"q": 1}, "http://shop.test/a", "A", {"k": 2}, 7.0)
    entry = await store.create_ticket(ticket("tk_o"), opening)
    assert entry is not None and (entry.type, entry.data, entry.at) == (
        "ticket.created",
        {"q": 1},
        7.0,
    )
    assert await store.timeline("tk_o") == [entry]
    (page,) = await store.pages("tk_o")
    assert (page.url, page.title, page.app, page.at, page.request) == (
        "http://shop.test/a",
        "A",
        {"k": 2},
        7.0,
        True,
    )
    # The same page again adds nothing, as after add_page.
    assert await store.add_page("tk_o", "http://shop.test/a", "A", {"k": 2}, 8.0) is None
    # A second ticket of the same id writes nothing of its opening.
    with pytest.raises(UniqueViolation):
        await store.create_ticket(ticket("tk_o"), opening)
    assert await store.timeline("tk_o") == [entry]
    assert len(await store.pages("tk_o")) == 1


async def test_a_noted_claim_writes_its_entry_only_when_it_wins(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_n"))
    entries = await asyncio.gather(
        *(
            store.claim_ticket_noted(
                "tk_n", {"id": f"ag_{i}", "name": f"A{i}"}, "session.accepted", {"i": i}, 5.0
            )
            for i in range(6)
        )
    )
    won = [entry for entry in entries if entry is not None]
    assert len(won) == 1 and won[0].type == "session.accepted" and won[0].at == 5.0
    stored = await store.ticket("tk_n")
    assert stored is not None and stored.status == "active"
    assert [a["id"] for a in stored.agents] == [f"ag_{won[0].data['i']}"]
    assert await store.timeline("tk_n") == won
    await store.close_ticket("tk_n", time.time())
    assert await store.claim_ticket_noted("tk_n", {"id": "x", "name": "X"}, "t", {}, 6.0) is None
    assert await store.timeline("tk_n") == won


async def test_messages_dedup_and_order(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_2"))
    first, new = await store.add_message("tk_2", "customer", "u-1", "Dana", "hi", "c1", 1.0)
    assert new
    again, new = await store.add_message("tk_2", "customer", "u-1", "Dana", "changed?", "c1", 2.0)
    assert not new and again == first and again.text == "hi"
    # The same client id from another author is another message.
    other, new = await store.add_message("tk_2", "agent", "ag_1", "Al", "hello", "c1", 3.0)
    assert new and other.id > first.id
    results = await asyncio.gather(
        *(
            store.add_message("tk_2", "customer", "u-1", "Dana", f"m{i}", f"k{i}", 4.0)
            for i in range(20)
        )
    )
    assert all(new for _, new in results)
    texts = [m.text for m in await store.messages("tk_2")]
    assert texts[:2] == ["hi", "hello"] and sorted(texts[2:]) == sorted(f"m{i}" for i in range(20))
    assert [m.text for m in await store.messages("tk_2", after_id=other.id)] == texts[2:]
    assert (await store.message_counts(["tk_2", "tk_none"])) == {"tk_2": 22}


async def test_a_new_tickets_transcript_is_read_as_written(store: CachedTicketStore) -> None:
    """A ticket created here reads as empty until a message is written, then as stored; one
    node's shortcut only: with several nodes the database is asked every time."""
    await store.create_ticket(ticket("tk_new"))
    assert await store.messages("tk_new") == []
    first, _ = await store.add_message("tk_new", "customer", "u-1", "Dana", "hi", "c1", 1.0)
    assert await store.messages("tk_new") == [first]
    # A read overlapping the write sees the database, not the shortcut.
    written = asyncio.ensure_future(
        store.add_message("tk_new", "customer", "u-1", "Dana", "two", "c2", 2.0)
    )
    await asyncio.sleep(0)
    read = await store.messages("tk_new")
    second, _ = await written
    assert read in ([first], [first, second])
    assert await store.messages("tk_new") == [first, second]

    shared = CachedTicketStore(store.inner, cache_tickets=False)
    await shared.create_ticket(ticket("tk_shared"))
    other, _ = await store.inner.add_message("tk_shared", "agent", "ag_1", "Al", "hey", "c1", 3.0)
    assert await shared.messages("tk_shared") == [other]


async def test_a_new_tickets_notes_are_read_as_written(store: CachedTicketStore) -> None:
    """Internal notes take the same shortcut as the transcript (an accept's state reads them)."""
    await store.create_ticket(ticket("tk_noted"))
    assert await store.notes("tk_noted") == []
    note, _ = await store.add_note("tk_noted", "ag_1", "Al", "VIP", "agent", "n1", 1.0)
    assert await store.notes("tk_noted") == [note]
    # A read overlapping a write sees the database, not the shortcut.
    written = asyncio.ensure_future(
        store.add_note("tk_noted", "ag_1", "Al", "two", "transfer", "n2", 2.0)
    )
    await asyncio.sleep(0)
    read = await store.notes("tk_noted")
    second, _ = await written
    assert read in ([note], [note, second])
    assert await store.notes("tk_noted") == [note, second]

    shared = CachedTicketStore(store.inner, cache_tickets=False)
    await shared.create_ticket(ticket("tk_noted_shared"))
    other, _ = await store.inner.add_note(
        "tk_noted_shared", "ag_2", "Bo", "hey", "agent", None, 3.0
    )
    assert await shared.notes("tk_noted_shared") == [other]


async def test_search_filters(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_a", product="Trail Runner 2"))
    await store.create_ticket(ticket("tk_b", status="closed", product="Aurora"))
    await store.add_message("tk_b", "customer", "u-1", "Dana", "zipper broke 100%", None, 1.0)
    assert [t.id for t in await store.tickets(text="trail runner")] == ["tk_a"]
    assert [t.id for t in await store.tickets(text="ZIPPER")] == ["tk_b"]
    assert [t.id for t in await store.tickets(text="100%")] == ["tk_b"]
    assert [t.id for t in await store.tickets(text="_")] == []
    assert [t.id for t in await store.tickets(status="closed")] == ["tk_b"]
    assert {t.id for t in await store.tickets(text="dana")} == {"tk_a", "tk_b"}
    await store.set_context("tk_a", {"url": "http://shop.test/cart", "title": "Cart", "app": {}})
    assert [t.id for t in await store.tickets(text="trail")] == []
    assert [t.id for t in await store.tickets(text="tk_a")] == ["tk_a"]


async def test_timeline_and_attachments(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_3"))
    one = await store.add_timeline("tk_3", "ticket.created", {"url": "u"}, 1.0)
    two = await store.add_timeline("tk_3", "session.ended", {"by": "agent"}, 2.0)
    assert [t.id for t in await store.timeline("tk_3")] == [one.id, two.id]
    record = AttachmentRecord(
        id="at_1",
        ticket_id="tk_3",
        kind="screenshot",
        content_type="image/png",
        size=3,
        sha256="a" * 64,
        created_at=5.0,
        meta={"width": 2},
    )
    await store.add_attachment(record)
    assert await store.attachments("tk_3") == [record]
    assert await store.attachment("tk_3", "at_1") == record
    assert await store.attachment("tk_other", "at_1") is None


async def test_concurrent_writes_do_not_trip_each_other(store: CachedTicketStore) -> None:
    """Many coroutines writing and reading back at once: nothing lost, nothing doubled.
    (The SQLite interleaving bug itself shows up through concurrent socket handlers; see
    ``test_many_customers_at_once``.)"""
    for i in range(20):
        await store.create_ticket(ticket(f"tk_c{i}"))

    async def work(i: int) -> None:
        tid = f"tk_c{i % 20}"
        await store.add_message(tid, "customer", "u-1", "Dana", f"m{i}", f"k{i}", float(i))
        await store.add_timeline(tid, "context.updated", {"i": i}, float(i))
        await store.claim_ticket(tid, {"id": f"ag_{i}", "name": "A"})
        await store.messages(tid)

    await asyncio.gather(*(work(i) for i in range(300)))
    await asyncio.gather(
        *(store.add_timeline(f"tk_c{i % 20}", "burst", {"i": i}, 0.0) for i in range(2000))
    )
    counts = await store.message_counts([f"tk_c{i}" for i in range(20)])
    assert sum(counts.values()) == 300
    lengths = [len(await store.timeline(f"tk_c{i}")) for i in range(20)]
    assert lengths == [15 + 100] * 20


async def test_upload_quota_is_settled_by_the_insert(store: CachedTicketStore) -> None:
    """Many uploads filed at once (as from several nodes): exactly the quota lands."""
    from signaling.store import UploadQuota

    await store.create_ticket(ticket("tk_q"))

    def upload(i: int, size: int, kind: str = "photo") -> AttachmentRecord:
        return AttachmentRecord(
            id=f"at_q{i}",
            ticket_id="tk_q",
            kind=kind,
            content_type="image/png",
            size=size,
            sha256="0" * 64,
            created_at=float(i),
            meta={},
        )

    by_count = UploadQuota(kinds=("photo", "video"), max_count=5, max_bytes=10**9)
    results = await asyncio.gather(
        *(store.add_attachment(upload(i, 10), by_count) for i in range(24))
    )
    assert results.count(True) == 5
    assert len(await store.attachments("tk_q")) == 5
    # Other kinds (a thumbnail, a recording) are not counted, and go in without a quota.
    assert await store.add_attachment(upload(100, 10, "thumbnail"), by_count)
    assert await store.add_attachment(upload(101, 10))

    by_bytes = UploadQuota(kinds=("photo", "video"), max_count=100, max_bytes=50 + 1000)
    results = await asyncio.gather(
        *(store.add_attachment(upload(200 + i, 300), by_bytes) for i in range(16))
    )
    # 60 bytes of photos were filed already (50 within a quota, 10 without): three more fit.
    assert results.count(True) == 3
    photos = [a for a in await store.attachments("tk_q") if a.kind == "photo"]
    assert sum(a.size for a in photos) == 60 + 900


async def test_concurrent_context_patches_all_land(store: CachedTicketStore) -> None:
    """Patches merged inside the write (as from two tabs on two nodes): none is lost."""
    await store.create_ticket(ticket("tk_ctx"))

    def patch(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda stored: {**stored, f"k{i}": i, "title": f"Page {i}"}

    results = await asyncio.gather(*(store.merge_context("tk_ctx", patch(i)) for i in range(20)))
    stored = await store.ticket("tk_ctx")
    assert stored is not None
    assert {k: v for k, v in stored.context.items() if k.startswith("k")} == {
        f"k{i}": i for i in range(20)
    }
    assert stored.context["url"] == "http://shop.test/p/1"  # what no patch touched stays
    assert stored.context in results  # the last merge's result is what is stored
    assert [t.id for t in await store.tickets(text=stored.context["title"])] == ["tk_ctx"]
    assert await store.merge_context("tk_none", patch(0)) is None


async def test_home_node_writes_are_fenced_by_the_owner_epoch(store: CachedTicketStore) -> None:
    await store.create_ticket(ticket("tk_f", "active"))
    assert await store.owner_epoch("tk_f") == 0
    assert await store.advance_owner_epoch("tk_f", 1)
    await store.add_timeline("tk_f", "call.joined", {"participant": "customer"}, 1.0, epoch=1)
    # Another node takes the lease (epoch 2) and records it: epoch 1's writes are refused.
    assert await store.advance_owner_epoch("tk_f", 2)
    assert not await store.advance_owner_epoch("tk_f", 1)
    with pytest.raises(StaleEpoch):
        await store.add_timeline("tk_f", "call.left", {"participant": "customer"}, 2.0, epoch=1)
    stale = AttachmentRecord("at_s", "tk_f", "screenshot", "image/png", 3, "ab", 2.0, {})
    with pytest.raises(StaleEpoch):
        await store.add_attachment(stale, epoch=1)
    assert await store.attachments("tk_f") == []
    assert [e.type for e in await store.timeline("tk_f")] == ["call.joined"]
    # The current owner writes; writes that are not a home node's stay unconditional.
    await store.add_timeline("tk_f", "call.joined", {"participant": "agent:a"}, 3.0, epoch=2)
    await store.add_attachment(stale, epoch=2)
    await store.add_timeline("tk_f", "session.ended", {"by": "agent"}, 4.0)
    assert [a.id for a in await store.attachments("tk_f")] == ["at_s"]
    assert len(await store.timeline("tk_f")) == 3
    # An unknown ticket has no owner: a fenced write to it is refused too.
    with pytest.raises(StaleEpoch):
        await store.add_timeline("tk_none", "call.joined", {}, 5.0, epoch=1)


async def test_owner_epoch_migration_upgrades_an_existing_database(tmp_path: Path) -> None:
    """A database made before ``tickets.owner_epoch`` gets the column, its tickets epoch 0."""
    path = tmp_path / "old.sqlite3"
    driver = await SqliteDriver.open(path)
    await driver.script(
        "CREATE TABLE tickets (id TEXT PRIMARY KEY, site_id TEXT NOT NULL, status TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL, closed_at DOUBLE PRECISION, customer TEXT NOT NULL,"
        " context TEXT NOT NULL, agents TEXT NOT NULL DEFAULT '[]', previous_ticket_id TEXT,"
        " search TEXT NOT NULL DEFAULT '');"
        "INSERT INTO tickets (id, site_id, status, created_at, customer, context)"
        " VALUES ('tk_old', 's', 'active', 1.0, '{}', '{}');"
    )
    await driver.close()
    for epoch in (1, 2):  # and opening it again keeps what was written
        s = await SqlTicketStore.create(await SqliteDriver.open(path))
        assert await s.owner_epoch("tk_old") == epoch - 1
        assert await s.advance_owner_epoch("tk_old", epoch)
        await s.close()
