"""Rate limits, the session pipeline, the public API and the import boundary."""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import cobrowse
from cobrowse import (
    CobrowseError,
    CobrowseSession,
    InMemoryMirrorStore,
    MirrorPolicy,
    RateLimits,
    SessionRateLimiter,
    TargetStatus,
    TokenBucket,
    read_recording,
)
from cobrowse.recording import AsyncRecordingWriter
from tests.cobrowse.cobrowse_factories import (
    FakeClock,
    add,
    el,
    full,
    meta,
    mouse_move,
    mutation,
    page,
    text,
    typed,
)

PKG = Path(cobrowse.__file__).parent


def test_public_api_resolves() -> None:
    assert len(cobrowse.__all__) == len(set(cobrowse.__all__))
    for name in cobrowse.__all__:
        assert getattr(cobrowse, name) is not None
    assert (PKG / "py.typed").exists()


def test_cobrowse_never_imports_the_io_stack() -> None:
    forbidden = {"signaling", "aiohttp", "socketio", "engineio", "media", "redis"}
    allowed_third_party = {"pydantic", "orjson"}
    import sys

    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root not in forbidden, f"{path.name} imports {root}"
                assert root in sys.stdlib_module_names or root in allowed_third_party, (
                    path.name,
                    root,
                )


def test_token_bucket_and_session_limits() -> None:
    clock = FakeClock()
    b = TokenBucket(rate=10, capacity=20, clock=clock)
    assert b.can_take(20) and not b.can_take(21)
    b.take(20)
    assert not b.can_take(1)
    clock.advance(0.5)
    assert b.can_take(5) and not b.can_take(6)

    lim = SessionRateLimiter(
        RateLimits(events_per_second=100, event_burst=200, bytes_per_second=1000, byte_burst=5000),
        clock,
    )
    lim.check(200, 1000)
    with pytest.raises(CobrowseError) as info:
        lim.check(1, 1)
    assert info.value.code == "rate_limited"
    clock.advance(1.0)
    lim.check(100, 1000)
    with pytest.raises(CobrowseError) as info:
        lim.check(1, 5001)
    assert info.value.code == "too_large"


def test_flood_is_throttled_within_a_second() -> None:
    clock = FakeClock()
    lim = SessionRateLimiter(RateLimits(), clock)
    accepted = 0
    for _ in range(10_000):  # 10k single-event batches in the same instant
        try:
            lim.check(1, 100)
            accepted += 1
        except CobrowseError:
            pass
    assert accepted == RateLimits().event_burst


def test_refused_batch_consumes_nothing() -> None:
    clock = FakeClock()
    lim = SessionRateLimiter(
        RateLimits(events_per_second=1, event_burst=10, bytes_per_second=1, byte_burst=100), clock
    )
    with pytest.raises(CobrowseError):
        lim.check(5, 101)
    lim.check(10, 100)


@pytest.mark.asyncio
async def test_session_pipeline(tmp_path: Path) -> None:
    store = InMemoryMirrorStore(MirrorPolicy(snapshot_after_events=2))
    rec = AsyncRecordingWriter(tmp_path / "r.gz", "rrweb@2.0.0-alpha.18", flush_bytes=1)
    session = CobrowseSession("s", store, recording=rec)
    evil = el("button", {"onclick": "steal()", "class": "buy"}, [text("Buy")], id=77)
    masked = el("input", {"type": "password"}, id=78)
    raw = json.dumps([meta(), full(page(evil, masked))])
    result = await session.ingest(raw)
    assert result.report.as_dict() == {"event_handler": 1}
    assert (
        "onclick"
        not in result.events[1]["data"]["node"]["childNodes"][1]["childNodes"][1]["childNodes"][0][
            "attributes"
        ]
    )
    assert not result.mirror.needs_snapshot
    res2 = await session.ingest([typed(), typed()])
    assert res2.mirror.request_snapshot
    catch = await session.catch_up()
    assert len(catch) == 4 and catch[0]["type"] == 4 and catch[1]["type"] == 2

    with pytest.raises(CobrowseError):
        await session.ingest("[{]")
    assert len(await session.catch_up()) == 4  # refused batch changed nothing

    session.control.request("agent")
    session.control.grant("cust")
    action, _ = await session.authorize_action(
        "agent", {"type": "click", "targetId": 77, "x": 1, "y": 1}
    )
    assert action["targetId"] == 77
    with pytest.raises(CobrowseError) as info:
        await session.authorize_action("agent", {"type": "click", "targetId": 78, "x": 1, "y": 1})
    assert info.value.code == "masked_target"
    assert await store.target_status("s", 78) is TargetStatus.MASKED

    await session.close()
    header, events = read_recording(tmp_path / "r.gz")
    assert header["recorder"] == "rrweb@2.0.0-alpha.18"
    assert len(events) == 4
    assert "steal()" not in json.dumps(events)


class _Watched(InMemoryMirrorStore):
    """The in-memory mirror, noting what it was given when (or failing, when told to)."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        super().__init__()
        self.log = log
        self.fail = fail

    async def append(
        self, session_id: str, events: Sequence[cobrowse.Event], sizes: Sequence[int] | None = None
    ) -> cobrowse.AppendResult:
        self.log.append(f"mirror {len(events)}")
        if self.fail:
            raise ConnectionError("the shared mirror is out of reach")
        return await super().append(session_id, events, sizes)


@pytest.mark.asyncio
async def test_a_batch_is_relayed_before_the_mirror_and_the_recording_take_it(
    tmp_path: Path,
) -> None:
    """The agents' latency does not wait for the mirror: ``relay`` gets the sanitized events
    and their JSON first, then the mirror and the recording take the same batch."""
    log: list[str] = []
    rec = AsyncRecordingWriter(tmp_path / "r.gz", "rrweb@2.0.0-alpha.18", flush_bytes=1)
    session = CobrowseSession("s", _Watched(log), recording=rec)
    relayed: list[tuple[list[cobrowse.Event], bytes]] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        log.append(f"relay {len(events)}")
        assert await session.catch_up() == []  # the mirror has not seen the batch yet
        relayed.append((events, events_json))

    evil = el("button", {"onclick": "steal()"}, [text("Buy")], id=77)
    result = await session.ingest(json.dumps([meta(), full(page(evil))]), relay)
    assert log == ["relay 2", "mirror 2"]
    ((events, events_json),) = relayed
    assert events is result.events
    assert json.loads(events_json) == events  # sanitized, as relayed
    # The recording's lines are the same JSON, event by event.
    assert events_json == b"[" + b",".join(result.encoded) + b"]"
    assert "onclick" not in json.dumps(events)
    assert len(await session.catch_up()) == 2
    await session.close()
    _, recorded = read_recording(tmp_path / "r.gz")
    assert recorded == events


@pytest.mark.asyncio
async def test_a_refused_batch_is_never_relayed() -> None:
    relayed: list[int] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        relayed.append(len(events))

    session = CobrowseSession("s", InMemoryMirrorStore())
    for bad in ("[{]", "[NaN]", '[{"type": 3, "data": "\\ud800"}]', "[" * 2000 + "]" * 2000):
        with pytest.raises(CobrowseError):
            await session.ingest(bad, relay)
    assert relayed == []
    assert await session.catch_up() == []


@pytest.mark.asyncio
async def test_a_mirror_that_fails_after_the_relay_does_not_fail_the_batch() -> None:
    """Relayed and recorded is taken: a shared mirror out of reach is logged, not reported to
    the customer as a refusal (a resend would show the agents the batch twice)."""
    log: list[str] = []
    store = _Watched(log, fail=True)
    session = CobrowseSession("s", store)

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        log.append(f"relay {len(events)}")

    result = await session.ingest(json.dumps([meta(), full(page(el("p", {}, [text("x")])))]), relay)
    assert log == ["relay 2", "mirror 2"]
    assert result.mirror.dropped == 2 and not result.mirror.request_snapshot
    store.fail = False
    await session.ingest(json.dumps([meta(), full(page(el("p", {}, [text("y")])))]), relay)
    assert len(await session.catch_up()) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("offload_bytes", [0, 1_000_000], ids=["off the loop", "on the loop"])
async def test_the_relay_and_the_recording_carry_the_same_json(offload_bytes: int) -> None:
    """Whether a batch is checked on the event loop or in a worker thread, the agents get the
    sanitized batch as one JSON array and the recording each event's line of the same JSON."""
    session = CobrowseSession("s", InMemoryMirrorStore(), offload_bytes=offload_bytes)
    relayed: list[bytes] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        relayed.append(events_json)

    evil = el("a", {"href": "javascript:steal()", "title": "caf\u00e9 \u2603"}, [text("x")])
    result = await session.ingest(json.dumps([meta(), full(page(evil)), mouse_move()]), relay)
    (events_json,) = relayed
    assert json.loads(events_json) == result.events
    assert "javascript" not in events_json.decode()
    assert events_json == b"[" + b",".join(result.encoded) + b"]"
    assert "caf\u00e9 \u2603".encode() in events_json  # UTF-8, not escaped


@pytest.mark.asyncio
async def test_a_lone_surrogate_is_refused_before_anything_is_relayed() -> None:
    """Text no page can hold (a lone surrogate, which only a batch handed over as objects can
    carry: JSON text holding one is refused as it is parsed) is refused whole."""
    session = CobrowseSession("s", InMemoryMirrorStore())
    relayed: list[bytes] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        relayed.append(events_json)

    batch = [meta(), full(page(el("p", {}, [text("\ud800")])))]
    with pytest.raises(CobrowseError) as refused:
        await session.ingest(batch, relay)
    assert refused.value.code == "malformed"
    assert relayed == [] and await session.catch_up() == []


@pytest.mark.asyncio
async def test_batches_are_relayed_in_the_order_they_came() -> None:
    """A big batch checked in a worker thread is not overtaken by the small ones after it."""
    session = CobrowseSession("s", InMemoryMirrorStore(), offload_bytes=1_000)
    order: list[int] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        order.append(len(events))

    big = json.dumps([meta(), full(page(*[el("p", {}, [text("x" * 50)]) for _ in range(100)]))])
    small = json.dumps([mouse_move()])
    await asyncio.gather(
        session.ingest(big, relay), *(session.ingest(small, relay) for _ in range(5))
    )
    assert order == [2, 1, 1, 1, 1, 1]


@pytest.mark.asyncio
@pytest.mark.parametrize("offload_bytes", [0, 1_000_000], ids=["off the loop", "on the loop"])
async def test_a_checkpoint_reaches_the_mirror_and_the_recording_not_the_agents_following(
    tmp_path: Path, offload_bytes: int
) -> None:
    """A snapshot answering the mirror's request (``checkpoint``) is of the page the agents
    already follow: its Meta and FullSnapshot are kept for joiners and in the recording, and
    only the rest of its batch is relayed. Before the mirror holds a page, or after it dropped
    it, a checkpoint is relayed whole: an agent may be waiting for that page."""
    store = InMemoryMirrorStore(MirrorPolicy(max_tail_bytes=50_000))
    rec = AsyncRecordingWriter(tmp_path / "r.gz", "rrweb@2.2.2", flush_bytes=1)
    session = CobrowseSession("s", store, recording=rec, offload_bytes=offload_bytes)
    relayed: list[list[int]] = []

    async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
        assert json.loads(events_json) == events
        relayed.append([event["type"] for event in events])

    first = json.dumps([meta(), full(page(el("p", {}, [text("one")], id=40)))])
    await session.ingest(first, relay, checkpoint=True)  # nothing held yet: relayed
    await session.ingest(json.dumps([mouse_move()]), relay)
    evil = el("p", {"onclick": "steal()"}, [text("two")], id=40)
    batch = json.dumps([typed(), meta(), full(page(evil)), mouse_move()])
    result = await session.ingest(batch, relay, checkpoint=True)
    assert [event["type"] for event in result.events] == [3, 4, 2, 3]
    await session.ingest(json.dumps([meta(), full(page())]), relay, checkpoint=True)
    assert relayed == [[4, 2], [3], [3, 3]]  # the last one was all page: nothing to relay

    # A joiner gets the latest page, sanitized; the recording has every event in order.
    caught = await session.catch_up()
    assert [event["type"] for event in caught] == [4, 2]
    assert "steal" not in json.dumps(result.events)
    # The hard cap drops the page: the next checkpoint is relayed again.
    big = el("p", {}, [text("x" * 60_000)], id=41)
    await session.ingest(json.dumps([mutation(adds=[add(big)])]), relay)
    assert await session.catch_up() == []
    await session.ingest(json.dumps([meta(), full(page())]), relay, checkpoint=True)
    assert relayed[-1] == [4, 2]
    await session.close()
    _, recorded = read_recording(tmp_path / "r.gz")
    assert [event["type"] for event in recorded] == [4, 2, 3, 3, 4, 2, 3, 4, 2, 3, 4, 2]
