"""The session event log, both kinds: the in-memory one of a single node and the Redis one of
several (against the real redis-server on 127.0.0.1:6379, under a key prefix of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from signaling.live import EventLog, MemoryEventLog, RedisEventLog
from signaling.protocol import AgentRef, SessionAccepted
from tests.signaling.redis_server import own_redis, restart

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


LogFactory = Callable[..., EventLog]


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    async with _redis() as client:
        yield client


@pytest.fixture(params=["memory", "redis"])
async def make_log(request: pytest.FixtureRequest) -> AsyncIterator[LogFactory]:
    if request.param == "memory":
        yield lambda **kw: MemoryEventLog(**kw)
        return
    async with _redis() as client:
        prefix: str = client.test_prefix  # type: ignore[attr-defined]
        yield lambda **kw: RedisEventLog(client, prefix=prefix, **kw)


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[aioredis.Redis]:
    # As the server's own client: a blocking pool, so a burst of appends waits for a connection
    # rather than failing with "too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        REDIS_URL, max_connections=16, timeout=10, decode_responses=True
    )
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the suite's services start Redis
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"test:{secrets.token_hex(6)}:"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        # Only this test's keys: the shared Redis is never flushed.
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await pool.disconnect()


async def test_events_come_back_in_order_after_any_seq(make_log: LogFactory) -> None:
    log = make_log()
    seqs = [await log.append("tk_1", "customer", "chat.message", {"n": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await log.current("tk_1", "customer") == 5
    events = await log.since("tk_1", "customer", 2)
    assert events is not None
    assert [(e.seq, e.name, e.payload) for e in events] == [
        (3, "chat.message", {"n": 2}),
        (4, "chat.message", {"n": 3}),
        (5, "chat.message", {"n": 4}),
    ]
    assert events[0].wire() == {"n": 2, "seq": 3}
    assert await log.since("tk_1", "customer", 5) == []
    full = await log.since("tk_1", "customer", 0)
    assert full is not None and [e.seq for e in full] == [1, 2, 3, 4, 5]


async def test_a_message_told_by_two_nodes_is_numbered_once(make_log: LogFactory) -> None:
    """A node stores a message and freezes before telling it; the sender resends through
    another node, which tells it; the first node wakes and tells it too. Numbered under the
    message's key, the second telling is refused (0) and nothing is kept: a client sees the
    message once, whichever node's event reaches it (seen in the SIGSTOP fault test)."""
    log = make_log()
    assert await log.append("tk_1", "customer", "chat.message", {"id": 1}, once="m:1") == 1
    assert await log.append("tk_1", "customer", "chat.message", {"id": 2}) == 2
    assert await log.append("tk_1", "customer", "chat.message", {"id": 1}, once="m:1") == 0
    assert await log.current("tk_1", "customer") == 2
    # Each audience numbers it once on its own line.
    assert await log.append("tk_1", "agents", "chat.message", {"id": 1}, once="m:1") == 1
    events = await log.since("tk_1", "customer", 0)
    assert events is not None and [e.payload for e in events] == [{"id": 1}, {"id": 2}]


async def test_an_event_logged_as_sent_replays_as_sent(make_log: LogFactory) -> None:
    """Desk.tell makes an event's JSON once: the log keeps that text, and the frame sent is
    the same text with its seq spliced in, byte for byte what encoding the numbered dict gives."""
    log = make_log()
    event = SessionAccepted(ticket_id="tk_1", agent=AgentRef(id="ag_1", name="Zoë \u2603"))
    wire = event.wire()
    text = json.dumps(wire, separators=(",", ":"))
    seq = await log.append("tk_1", "customer", "session.accepted", wire, text)
    sent = event.numbered(seq, wire, text).wire_json()
    assert sent == json.dumps({**wire, "seq": seq}, separators=(",", ":"))
    assert event.numbered(None, wire, text).wire_json() == text
    replayed = await log.since("tk_1", "customer", 0)
    assert replayed is not None and [e.wire() for e in replayed] == [json.loads(sent or "")]


async def test_tickets_and_audiences_are_numbered_apart(make_log: LogFactory) -> None:
    log = make_log()
    assert await log.append("tk_1", "agents", "ticket.timeline", {}) == 1
    assert await log.append("tk_1", "agents", "ticket.timeline", {}) == 2
    assert await log.append("tk_1", "customer", "session.accepted", {}) == 1
    assert await log.append("tk_2", "agents", "ticket.timeline", {}) == 1
    assert await log.current("tk_1", "customer") == 1
    assert await log.current("tk_3", "customer") == 0
    assert await log.since("tk_3", "customer", 0) == []


async def test_a_seq_ahead_of_the_log_is_not_answered_from_it(make_log: LogFactory) -> None:
    # A client ahead of the counter (its numbers were lost and started again) takes a snapshot.
    log = make_log()
    await log.append("tk_1", "customer", "chat.message", {})
    assert await log.since("tk_1", "customer", 7) is None
    assert await log.since("tk_9", "customer", 3) is None


async def test_the_log_keeps_only_its_bound(make_log: LogFactory) -> None:
    log = make_log(keep=500)
    for i in range(1300):
        await log.append("tk_1", "agents", "chat.message", {"n": i})
    assert await log.current("tk_1", "agents") == 1300
    # Past the bound: not answered from the log (the client takes a snapshot).
    assert await log.since("tk_1", "agents", 0) is None
    assert await log.since("tk_1", "agents", 100) is None
    # Within it: exactly the events after the seq. (Redis trims approximately, MAXLEN ~: it keeps
    # at least the bound, whole nodes more at most.)
    recent = await log.since("tk_1", "agents", 800)
    assert recent is not None
    assert [e.seq for e in recent] == list(range(801, 1301))
    assert [e.payload["n"] for e in recent] == list(range(800, 1300))


async def test_the_memory_log_keeps_exactly_its_bound() -> None:
    log = MemoryEventLog(keep=3)
    for i in range(10):
        await log.append("tk_1", "customer", "chat.message", {"n": i})
    assert await log.since("tk_1", "customer", 6) is None
    kept = await log.since("tk_1", "customer", 7)
    assert kept is not None and [e.seq for e in kept] == [8, 9, 10]


async def test_concurrent_appends_get_distinct_consecutive_seqs(make_log: LogFactory) -> None:
    log = make_log()
    seqs = await asyncio.gather(
        *(log.append("tk_1", "customer", "chat.message", {"task": i}) for i in range(300))
    )
    assert sorted(seqs) == list(range(1, 301))
    events = await log.since("tk_1", "customer", 0)
    assert events is not None
    assert [e.seq for e in events] == list(range(1, 301))
    # Each event is filed under the number its own append got.
    assert {e.payload["task"]: e.seq for e in events} == dict(enumerate(seqs))


async def test_memory_events_expire_after_the_last_write() -> None:
    clock = Clock()
    log = MemoryEventLog(ttl=120, counter_ttl=3600, clock=clock)
    await log.append("tk_1", "customer", "chat.message", {})
    clock.now += 100
    await log.append("tk_1", "customer", "chat.message", {})
    clock.now += 100  # 200 s after the first write, 100 s after the last: still kept
    kept = await log.since("tk_1", "customer", 0)
    assert kept is not None and [e.seq for e in kept] == [1, 2]
    clock.now += 20
    assert await log.since("tk_1", "customer", 0) is None
    assert await log.since("tk_1", "customer", 2) == []  # nothing missed: nothing to replay
    # The counter outlives the events: numbering goes on, it never restarts under a client.
    assert await log.current("tk_1", "customer") == 2
    assert await log.append("tk_1", "customer", "chat.message", {}) == 3
    clock.now += 3600
    assert await log.current("tk_1", "customer") == 0


async def test_memory_lines_of_ended_sessions_are_swept() -> None:
    clock = Clock()
    log = MemoryEventLog(ttl=120, counter_ttl=3600, clock=clock)
    for n in range(50):
        await log.append(f"tk_{n}", "customer", "chat.message", {})
        await log.append(f"tk_{n}", "agents", "chat.message", {})
    assert len(log) == 100
    await log.end("tk_0")
    clock.now += 119
    ended = await log.since("tk_0", "customer", 0)
    assert ended is not None and len(ended) == 1  # a client that missed the end still gets it
    clock.now += 2
    await log.append("tk_new", "customer", "chat.message", {})  # a write sweeps
    assert len(log) == 99
    assert await log.current("tk_0", "agents") == 0
    clock.now += 3600
    await log.append("tk_new", "customer", "chat.message", {})
    assert len(log) == 1


async def test_redis_lines_expire_and_end(redis_client: aioredis.Redis) -> None:
    prefix: str = redis_client.test_prefix  # type: ignore[attr-defined]
    log = RedisEventLog(redis_client, prefix=prefix, ttl=120, counter_ttl=3600)
    await log.append("tk_1", "customer", "chat.message", {"a": 1})
    await log.append("tk_1", "agents", "chat.message", {"a": 1})
    seq_key, stream_key, _once, _floor = log._keys("tk_1", "customer")
    assert 110_000 < await redis_client.pttl(stream_key) <= 120_000
    assert 3_500_000 < await redis_client.pttl(seq_key) <= 3_600_000
    # The stream expiring (Redis does it on its own clock) leaves the counter: a resume from
    # before is a snapshot, a resume from now is nothing missed, and numbering goes on.
    await redis_client.delete(stream_key)
    assert await log.since("tk_1", "customer", 0) is None
    assert await log.since("tk_1", "customer", 1) == []
    assert await log.append("tk_1", "customer", "chat.message", {"a": 2}) == 2
    await log.end("tk_1")
    for audience in ("customer", "agents"):
        for key in log._keys("tk_1", audience)[:2]:  # (no once-key: none was used)
            assert 0 < await redis_client.pttl(key) <= 120_000


async def test_redis_log_recovers_from_a_lost_counter(redis_client: aioredis.Redis) -> None:
    prefix: str = redis_client.test_prefix  # type: ignore[attr-defined]
    log = RedisEventLog(redis_client, prefix=prefix)
    for _ in range(3):
        await log.append("tk_1", "customer", "chat.message", {})
    seq_key = log._keys("tk_1", "customer")[0]
    await redis_client.delete(seq_key)  # data loss: the counter is gone, the stream is not
    assert await log.since("tk_1", "customer", 3) is None  # the client is ahead: snapshot
    assert await log.append("tk_1", "customer", "chat.message", {"again": True}) == 1
    events = await log.since("tk_1", "customer", 0)
    assert events is not None and [(e.seq, e.payload) for e in events] == [(1, {"again": True})]


async def test_an_event_that_could_not_be_logged_leaves_a_hole() -> None:
    # Redis frozen (SIGSTOP) mid-session: the append times out and the desk sends the event
    # unnumbered; the line's next number is skipped, so nobody is replayed past the event.
    with own_redis() as server:
        client = aioredis.from_url(server.url, decode_responses=True, socket_timeout=0.5)
        try:
            log = RedisEventLog(client, prefix="test:")
            for _ in range(3):
                await log.append("tk_1", "customer", "chat.message", {})
            server.pause()
            with pytest.raises(aioredis.RedisError):
                await log.append("tk_1", "customer", "chat.message", {"lost": True})
            server.resume()
            seq = await log.append("tk_1", "customer", "chat.message", {"after": True})
            assert seq in (5, 6)  # 6 if the timed-out append ran after all, once Redis woke
            assert await log.since("tk_1", "customer", 3) is None
            assert await log.since("tk_1", "customer", 2) is None
            tail = await log.since("tk_1", "customer", seq - 1)
            assert tail is not None and [(e.seq, e.payload) for e in tail] == [
                (seq, {"after": True})
            ]
            # Only that line skips, and only once.
            assert await log.append("tk_1", "customer", "chat.message", {}) == seq + 1
            assert await log.append("tk_1", "agents", "chat.message", {}) == 1
        finally:
            await client.aclose()


async def test_numbers_go_on_beyond_what_clients_hold_when_redis_lost_them() -> None:
    # Redis killed and started again empty while a client holds 40 (the fault test of
    # tests/nodes/test_faults.py, once 1 message in ~350 lost): numbered from 1 again, the
    # client's gate dropped the new events 1..40 as seen (their messages stored, never shown)
    # and a resume after 40 replayed from 41 as if nothing were missing.
    with own_redis() as server:
        client = aioredis.from_url(server.url, decode_responses=True, socket_timeout=0.5)
        try:
            log = RedisEventLog(client, prefix="test:")
            for n in range(40):
                await log.append("tk_1", "customer", "chat.message", {"before": n})
            last = await log.current("tk_1", "customer")
            assert last == 40  # a new deployment's lines start at 0
            restart(server)
            await client.connection_pool.disconnect()  # those to the killed one
            told = [
                await log.append("tk_1", "customer", "chat.message", {"after": n})
                for n in range(45)
            ]
            assert min(told) > last  # none is dropped by a gate as seen
            assert await log.since("tk_1", "customer", last) is None  # a snapshot, not a replay
            start = await log.current("tk_1", "customer")
            assert start == told[-1]
            tail = await log.since("tk_1", "customer", start - 2)
            assert tail is not None and [e.payload for e in tail] == [{"after": 43}, {"after": 44}]
            recent = await log.recent("tk_1", "customer")
            assert recent is not None and [e.seq for e in recent] == told
            # A line of the lost log that was not written since starts beyond it as well.
            fresh = await log.current("tk_2", "agents")
            assert fresh > last and await log.since("tk_2", "agents", 3) is None
            assert await log.append("tk_2", "agents", "chat.message", {}) == fresh + 1
        finally:
            await client.aclose()


async def test_a_log_begun_while_sessions_are_open_starts_beyond_earlier_numbers(
    redis_client: aioredis.Redis,
) -> None:
    # A node that found sessions open in the store and no floor in Redis (Redis lost its data
    # while every node was down): no number of the lost log may come again.
    prefix: str = redis_client.test_prefix  # type: ignore[attr-defined]
    first = RedisEventLog(redis_client, prefix=prefix, genesis=False)
    start = await first.current("tk_1", "customer")
    assert start > 10**12
    assert await first.append("tk_1", "customer", "chat.message", {}) == start + 1
    # Every node agrees on the floor, whatever it was told.
    second = RedisEventLog(redis_client, prefix=prefix, genesis=True)
    assert await second.current("tk_2", "customer") == start
    replay = await second.since("tk_1", "customer", start)
    assert replay is not None and [e.seq for e in replay] == [start + 1]


async def test_a_memory_log_with_a_floor_starts_beyond_it() -> None:
    # A single node restarted with sessions open: its lines start beyond the old numbers.
    log = MemoryEventLog(floor=5_000)
    assert await log.current("tk_1", "customer") == 5_000
    assert await log.since("tk_1", "customer", 40) is None
    assert await log.since("tk_1", "customer", 5_000) == []
    assert await log.append("tk_1", "customer", "chat.message", {"n": 1}) == 5_001
    recent = await log.recent("tk_1", "customer")
    assert recent is not None and [e.payload for e in recent] == [{"n": 1}]
    assert await log.since("tk_1", "customer", 40) is None


async def test_one_call_numbers_an_event_on_both_lines(make_log: LogFactory) -> None:
    """``append_lines`` (Desk.tell's one round trip for the customer's and the agents' lines)
    numbers each line as ``append`` would: its own counter, ``once`` per line, a new line from
    the floor."""
    log = make_log()
    await log.append("tk_1", "customer", "chat.message", {"id": 0})
    assert await log.append_lines(
        "tk_1", ["customer", "agents"], "chat.message", {"id": 1}, once="m:1"
    ) == [2, 1]
    # Told already on the agents' line only: the customer's numbers it, the agents' refuses.
    await log.append("tk_1", "agents", "chat.message", {"id": 2}, once="m:2")
    assert await log.append_lines(
        "tk_1", ["customer", "agents"], "chat.message", {"id": 2}, once="m:2"
    ) == [3, 0]
    assert await log.append_lines("tk_1", ["agents"], "ticket.timeline", {"t": 1}) == [3]
    customer = await log.since("tk_1", "customer", 0)
    agents = await log.since("tk_1", "agents", 0)
    assert customer is not None and [e.payload for e in customer] == [
        {"id": 0},
        {"id": 1},
        {"id": 2},
    ]
    assert agents is not None and [e.payload for e in agents] == [{"id": 1}, {"id": 2}, {"t": 1}]


async def test_one_call_on_both_lines_starts_new_lines_at_the_floor(
    redis_client: aioredis.Redis,
) -> None:
    prefix: str = redis_client.test_prefix  # type: ignore[attr-defined]
    log = RedisEventLog(redis_client, prefix=prefix, genesis=False)
    start = await log.current("tk_9", "customer")
    assert start > 10**12
    assert await log.append_lines("tk_9", ["customer", "agents"], "chat.message", {}) == [
        start + 1,
        start + 1,
    ]
    assert await log.append_lines("tk_9", ["customer", "agents"], "chat.message", {}) == [
        start + 2,
        start + 2,
    ]
