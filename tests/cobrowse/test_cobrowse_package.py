"""Rate limits, the session pipeline, the public API and the import boundary."""

from __future__ import annotations

import ast
import json
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
from tests.cobrowse.cobrowse_factories import FakeClock, el, full, meta, mouse_move, page, text

PKG = Path(cobrowse.__file__).parent


def test_public_api_resolves() -> None:
    assert len(cobrowse.__all__) == len(set(cobrowse.__all__))
    for name in cobrowse.__all__:
        assert getattr(cobrowse, name) is not None
    assert (PKG / "py.typed").exists()


def test_cobrowse_never_imports_the_io_stack() -> None:
    forbidden = {"signaling", "aiohttp", "socketio", "engineio", "media", "redis"}
    allowed_third_party = {"pydantic"}
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
    res2 = await session.ingest([mouse_move(), mouse_move()])
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
