"""Mirror compaction, catch-up, memory cap and mask index."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cobrowse import (
    InMemoryMirrorStore,
    MirrorPolicy,
    MirrorState,
    MirrorStore,
    TargetStatus,
)
from signaling.live.mirror_store import RedisMirrorStore
from tests.cobrowse.cobrowse_factories import (
    FakeClock,
    add,
    el,
    full,
    incremental,
    meta,
    mouse_move,
    mutation,
    node_ids,
    page,
    text,
    typed,
)
from tests.support import free_port, redis_or_skip, unique_prefix


def _state(**kw: object) -> tuple[MirrorState, FakeClock]:
    clock = FakeClock()
    return MirrorState(MirrorPolicy(**kw), clock), clock  # type: ignore[arg-type]


def test_catch_up_empty_until_snapshot() -> None:
    st, _ = _state()
    assert st.catch_up() == []
    assert st.needs_snapshot()
    res = st.append([mouse_move(), mouse_move()])
    assert res.dropped == 2
    assert res.needs_snapshot and res.request_snapshot
    assert st.catch_up() == []


def test_catch_up_is_meta_snapshot_and_exact_tail() -> None:
    st, _ = _state(snapshot_after_events=10_000)
    m1, s1 = meta(1), full(page(), 2)
    st.append([m1, s1])
    tail1 = [mouse_move(10 + i) for i in range(50)]
    st.append(tail1)
    assert st.catch_up() == [m1, s1, *tail1]
    m2, s2 = meta(100), full(page(el("p")), 101)
    tail2 = [mouse_move(200 + i) for i in range(7)]
    st.append([mouse_move(99), m2, s2, *tail2[:3]])
    st.append(tail2[3:])
    out = st.catch_up()
    assert out[0] is m2 and out[1] is s2
    assert out[2:] == tail2


def test_meta_and_snapshot_split_across_batches() -> None:
    st, _ = _state()
    m, s = meta(1), full(page(), 2)
    st.append([m])
    st.append([s, mouse_move(3)])
    assert st.catch_up() == [m, s, mouse_move(3)]


def test_snapshot_without_new_meta_keeps_previous_meta() -> None:
    st, _ = _state()
    m, s1, s2 = meta(1), full(page(), 2), full(page(el("b")), 5)
    st.append([m, s1, mouse_move(3), s2])
    assert st.catch_up() == [m, s2]


def test_pointer_moves_and_scrolls_ask_for_no_snapshot_until_their_bytes_do() -> None:
    """A customer moving the mouse is not asked for a full snapshot (a walk of their whole
    page in their browser) every 2,000 moves: pointer moves and scrolls change no node and
    replay cheaply; their bytes still count."""
    st, _ = _state(snapshot_after_events=10, snapshot_after_bytes=20_000)
    st.append([meta(), full(page())])
    moves = [mouse_move(i) for i in range(100)]
    scrolls = [incremental(3, i, id=1, x=0, y=i) for i in range(100)]
    assert not st.append([*moves, *scrolls]).needs_snapshot
    assert st.tail_events == 200
    while st.tail_bytes < 20_000:
        res = st.append([mouse_move()])
    assert res.needs_snapshot and res.request_snapshot


def test_compaction_after_n_events() -> None:
    st, _ = _state(snapshot_after_events=2000)
    st.append([meta(), full(page())])
    for i in range(1999):
        res = st.append([typed(i), mouse_move(i)])
        assert not res.needs_snapshot
    res = st.append([typed(5000)])
    assert res.needs_snapshot and res.request_snapshot
    res = st.append([typed(5001)])
    assert res.needs_snapshot and not res.request_snapshot  # rate-limited re-request
    new_snap = full(page(el("i")), 6000)
    res = st.append([meta(5999), new_snap])
    assert not res.needs_snapshot
    assert st.tail_events == 0
    assert st.catch_up()[1] is new_snap


def test_compaction_after_time_and_bytes() -> None:
    st, clock = _state(snapshot_after_seconds=60, snapshot_after_bytes=10_000)
    st.append([meta(), full(page())])
    clock.advance(120)
    assert not st.needs_snapshot()  # no tail: the snapshot is still current
    st.append([mouse_move()])
    assert st.needs_snapshot()

    st2, _ = _state(snapshot_after_bytes=2_000)
    st2.append([meta(), full(page())])
    res = st2.append([mutation(adds=[add(text("x" * 3_000))])])
    assert res.needs_snapshot


def test_snapshot_requests_are_rate_limited_in_time() -> None:
    st, clock = _state(request_interval_seconds=5)
    assert st.append([mouse_move()]).request_snapshot
    assert not st.append([mouse_move()]).request_snapshot
    clock.advance(5)
    assert st.append([mouse_move()]).request_snapshot


def test_hard_cap_resets_and_keeps_requesting() -> None:
    st, clock = _state(max_tail_bytes=5_000, snapshot_after_bytes=1_000, request_interval_seconds=1)
    st.append([meta(), full(page())])
    big = mutation(adds=[add(text("x" * 2_000))])
    st.append([big, big])
    res = st.append([big])
    assert res.reset and res.needs_snapshot
    assert st.catch_up() == []
    assert st.total_bytes == 0
    clock.advance(2)
    assert st.append([mouse_move()]).request_snapshot
    s = full(page(), 9)
    st.append([s])
    assert st.catch_up()[-1] is s


def test_memory_stays_bounded_under_a_storm() -> None:
    st, _ = _state(max_tail_bytes=50_000)
    st.append([meta(), full(page())])
    for _ in range(2_000):
        st.append([mutation(adds=[add(text("y" * 200))])])
        assert st.tail_bytes <= 50_000


def test_target_status_masks() -> None:
    st, _ = _state()
    pw = el("input", {"type": "password"})
    card = el("input", {"name": "cc"})
    masked_div = el("div", {"data-tandem-mask": ""}, [card])
    blocked = el("div", {"class": "a rr-block", "rr_width": "10px", "rr_height": "5px"})
    ok = el("button", {"class": "buy"}, [text("Buy")])
    st.append([meta(), full(page(pw, masked_div, blocked, ok))])
    assert st.target_status(ok["id"]) is TargetStatus.OK
    assert st.target_status(5) is TargetStatus.OK  # <body>
    assert st.target_status(pw["id"]) is TargetStatus.MASKED
    assert st.target_status(card["id"]) is TargetStatus.MASKED  # via ancestor
    assert st.target_status(blocked["id"]) is TargetStatus.MASKED
    assert st.target_status(999_999) is TargetStatus.UNKNOWN
    # Mutations: added subtrees, attribute marks (sticky), removals.
    inner = el("input")
    plain = el("span")
    st.append([mutation(adds=[add(el("section", {"class": "rr-mask"}, [inner]), parent=ok["id"])])])
    st.append([mutation(adds=[add(plain, parent=ok["id"])])])
    assert st.target_status(plain["id"]) is TargetStatus.OK
    assert st.target_status(inner["id"]) is TargetStatus.MASKED
    st.append([mutation(attributes=[{"id": ok["id"], "attributes": {"data-tandem-block": ""}}])])
    assert st.target_status(ok["id"]) is TargetStatus.MASKED
    st.append([mutation(attributes=[{"id": ok["id"], "attributes": {"data-tandem-block": None}}])])
    assert st.target_status(ok["id"]) is TargetStatus.MASKED  # sticky
    st.append([mutation(removes=[{"parentId": 5, "id": ok["id"]}])])
    assert st.target_status(ok["id"]) is TargetStatus.UNKNOWN
    assert st.target_status(plain["id"]) is TargetStatus.UNKNOWN  # orphaned descendant
    st.append([mutation(attributes=[{"id": 5, "attributes": {"type": "Password"}}])])
    assert st.target_status(5) is TargetStatus.MASKED


def test_control_gets_the_same_answers_whether_asked_all_along_or_only_at_the_end() -> None:
    """The node index is built when control first asks after a snapshot (from the snapshot and
    the tail's mutations), then kept up batch by batch: the same answers as one kept up from
    the snapshot on, through masks added, sticky marks, removals and a second snapshot."""
    pw, card, ok, inner, plain = (
        el("input", {"type": "password"}),
        el("input", {"name": "cc"}),
        el("button", {"class": "buy"}, [text("Buy")]),
        el("input"),
        el("span"),
    )
    section = el("section", {"class": "rr-mask"}, [inner])
    batches = [
        [meta(), full(page(pw, el("div", {"data-tandem-mask": ""}, [card]), ok))],
        [mutation(adds=[add(section, parent=ok["id"])]), mouse_move()],
        [mutation(adds=[add(plain, parent=ok["id"])])],
        [mutation(attributes=[{"id": ok["id"], "attributes": {"data-tandem-block": ""}}])],
        [mutation(attributes=[{"id": ok["id"], "attributes": {"data-tandem-block": None}}])],
        [mutation(removes=[{"parentId": 5, "id": plain["id"]}])],
        [mutation(attributes=[{"id": 5, "attributes": {"type": "Password"}}])],
        [meta(), full(page(el("p", {}, [text("new page")]), ok))],
        [mutation(adds=[add(el("input", {"type": "password"}), parent=ok["id"])])],
    ]
    every = set().union(*(node_ids(b[1]["data"]["node"]) for b in (batches[0], batches[7])))
    every |= {inner["id"], plain["id"], section["id"], 999_999}
    asked_along, asked_at_end = MirrorState(), MirrorState()
    for number, batch in enumerate(batches):
        asked_along.append(batch)
        asked_at_end.append(batch)
        along = {n: asked_along.target_status(n) for n in every}
        if number in (6, len(batches) - 1):  # before and after the second snapshot
            assert {n: asked_at_end.target_status(n) for n in every} == along
    assert asked_at_end.target_status(ok["id"]) is TargetStatus.OK  # a new snapshot: unmarked
    assert asked_at_end.target_status(pw["id"]) is TargetStatus.UNKNOWN  # not on the new page


@pytest.fixture(params=["memory", "redis"])
async def mirror_store(request: pytest.FixtureRequest) -> AsyncIterator[MirrorStore]:
    """Each ``MirrorStore``: in this process, and in Redis (a prefix of this test's own)."""
    policy, clock = MirrorPolicy(snapshot_after_events=3), FakeClock()
    if request.param == "memory":
        yield InMemoryMirrorStore(policy, clock)
        return
    async with redis_or_skip() as client:
        yield RedisMirrorStore(client, prefix=unique_prefix(), policy=policy, clock=clock)


@pytest.mark.asyncio
async def test_store_protocol(mirror_store: MirrorStore) -> None:
    store = mirror_store
    assert await store.catch_up("s1") == []
    assert await store.needs_snapshot("s1")
    assert not await store.has_snapshot("s1")
    m, s = meta(), full(page(el("a", {"class": "rr-block"}, id=50)))
    res = await store.append("s1", [m, s])
    assert not res.needs_snapshot
    assert await store.has_snapshot("s1") and not await store.has_snapshot("s2")
    assert await store.target_status("s1", 50) is TargetStatus.MASKED
    assert await store.target_status("s2", 50) is TargetStatus.UNKNOWN
    res = await store.append("s1", [typed(), mouse_move(), typed()])
    assert not res.needs_snapshot  # a pointer move does not count
    res = await store.append("s1", [typed()])
    assert res.needs_snapshot and res.request_snapshot
    assert await store.catch_up("s1") == [m, s, typed(), mouse_move(), typed(), typed()]
    assert await store.catch_up("s2") == []
    await store.clear("s1")
    assert await store.catch_up("s1") == []
    assert not await store.has_snapshot("s1")


@pytest.mark.asyncio
async def test_redis_mirror_is_read_on_another_node() -> None:
    """The node that ingests writes through; another node's store reads the same mirror,
    and its mask index follows new snapshots."""
    async with redis_or_skip() as client:
        prefix = unique_prefix()
        writer = RedisMirrorStore(client, prefix=prefix)
        reader = RedisMirrorStore(client, prefix=prefix)
        assert await reader.needs_snapshot("s1")
        assert not await reader.has_snapshot("s1")
        first = full(page(el("a", {"class": "rr-block"}, id=50)))
        await writer.append("s1", [meta(), first, mouse_move()])
        assert await reader.has_snapshot("s1")
        assert await reader.catch_up("s1") == [meta(), first, mouse_move()]
        assert not await reader.needs_snapshot("s1")
        assert await reader.target_status("s1", 50) is TargetStatus.MASKED
        # A snapshot without the mask: the reader's index is rebuilt for the new generation.
        second = full(page(el("a", {}, id=50)))
        await writer.append("s1", [second])
        assert await reader.catch_up("s1") == [meta(), second]
        assert await reader.target_status("s1", 50) is TargetStatus.OK
        await writer.append("s1", [mouse_move()])
        assert await reader.catch_up("s1") == [meta(), second, mouse_move()]
        await reader.clear("s1")
        assert await writer.catch_up("s1") == []


@pytest.mark.asyncio
async def test_a_redis_mirror_that_missed_a_write_rewrites_itself_whole() -> None:
    """A batch the node took while Redis was out of reach is not lost for late joiners on other
    nodes: the next write that gets through carries the node's whole mirror."""
    async with redis_or_skip() as client:
        prefix = unique_prefix()
        writer = RedisMirrorStore(client, prefix=prefix)
        reader = RedisMirrorStore(client, prefix=prefix)
        first = full(page(el("p", {}, id=50)))
        await writer.append("s1", [meta(), first])
        gone = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
        writer.redis = gone
        with pytest.raises(RedisError):
            await writer.append("s1", [mouse_move(1)])
        await gone.aclose()
        writer.redis = client
        assert await reader.catch_up("s1") == [meta(), first]  # Redis is behind the node
        await writer.append("s1", [mouse_move(2)])
        assert await reader.catch_up("s1") == [meta(), first, mouse_move(1), mouse_move(2)]
        await writer.append("s1", [mouse_move(3)])  # and back to appending the tail
        assert await reader.catch_up("s1") == [
            meta(),
            first,
            mouse_move(1),
            mouse_move(2),
            mouse_move(3),
        ]


@pytest.mark.asyncio
async def test_a_redis_mirror_behind_its_node_holds_no_page_until_written() -> None:
    """What a joiner on any node is served is Redis: a page the node took while Redis was out
    of reach is not held yet (a checkpoint then is relayed, not kept back)."""
    async with redis_or_skip() as client:
        writer = RedisMirrorStore(client, prefix=unique_prefix())
        gone = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
        writer.redis = gone
        first = full(page(el("p", {}, id=50)))
        with pytest.raises(RedisError):  # (failing at the first call it makes to Redis)
            await writer.append("s1", [meta(), first])
        await gone.aclose()
        writer.redis = client
        assert not await writer.has_snapshot("s1")
        await writer.append("s1", [mouse_move(1)])  # the rewrite gets through
        assert await writer.has_snapshot("s1")
        assert await writer.catch_up("s1") == [meta(), first, mouse_move(1)]
