"""Recording round trip, appends, header checks, torn tails, async writer."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from cobrowse import (
    AsyncRecordingWriter,
    RecordingFormatError,
    RecordingReader,
    RecordingWriter,
    make_header,
    read_recording,
)
from tests.cobrowse.cobrowse_factories import FakeClock, full, meta, mouse_move, page

REC = "rrweb@2.0.0-alpha.18"


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [mouse_move(start + i) for i in range(n)]


def test_round_trip_with_appends_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.ndjson.gz"
    first = [meta(), full(page())]
    with RecordingWriter(path, REC, flush_bytes=1) as w:
        w.append(first)
        w.append(_events(3))
    size_after_first = path.stat().st_size
    prefix = path.read_bytes()
    with RecordingWriter(path, REC) as w:  # reopen: append, never rewrite
        w.append(_events(5, 100))
    assert path.read_bytes()[:size_after_first] == prefix
    header, events = read_recording(path)
    assert header == {"format": "tandem-cobrowse", "v": 1, "recorder": REC}
    assert events == [*first, *_events(3), *_events(5, 100)]


def test_plain_gzip_reads_it_as_one_ndjson_stream(tmp_path: Path) -> None:
    path = tmp_path / "s.gz"
    with RecordingWriter(path, REC, flush_bytes=1) as w:
        for i in range(4):
            w.append(_events(2, i * 10))
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    assert lines[0]["format"] == "tandem-cobrowse"
    assert len(lines) == 9


def test_buffering_writes_members_only_on_threshold(tmp_path: Path) -> None:
    path = tmp_path / "s.gz"
    w = RecordingWriter(path, REC, flush_bytes=10_000)
    size = path.stat().st_size
    w.append(_events(3))
    assert path.stat().st_size == size and w.buffered_bytes > 0
    w.flush()
    assert path.stat().st_size > size and w.buffered_bytes == 0
    w.close()


@pytest.mark.parametrize(
    "header",
    [
        {"format": "other", "v": 1, "recorder": REC},
        {"format": "tandem-cobrowse", "v": 2, "recorder": REC},
        {"format": "tandem-cobrowse", "v": True, "recorder": REC},
        {"format": "tandem-cobrowse", "v": "1", "recorder": REC},
        {"format": "tandem-cobrowse", "v": 1},
        ["tandem-cobrowse", 1],
    ],
)
def test_reader_rejects_unknown_header(tmp_path: Path, header: object) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(json.dumps(header).encode() + b"\n"))
    with pytest.raises(RecordingFormatError):
        RecordingReader(path)
    with pytest.raises(RecordingFormatError):
        RecordingWriter(path, REC)  # never appends to a file it cannot read


def test_reader_rejects_garbage_and_empty(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(RecordingFormatError):
        RecordingReader(bad)
    empty = tmp_path / "e"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(RecordingFormatError):
        RecordingReader(empty)


def test_writer_refuses_other_recorder(tmp_path: Path) -> None:
    path = tmp_path / "s.gz"
    RecordingWriter(path, REC).close()
    with pytest.raises(RecordingFormatError):
        RecordingWriter(path, "rrweb@2.0.0-alpha.19")
    with pytest.raises(ValueError):
        make_header("rrweb@1.1.3")
    with pytest.raises(ValueError):
        make_header("openreplay@1")


def test_torn_tail_is_detected_and_repaired_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.gz"
    with RecordingWriter(path, REC, flush_bytes=1) as w:
        w.append(_events(2))
        w.append(_events(2, 10))
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # crash in the middle of the last member
    reader = RecordingReader(path)
    assert list(reader) == _events(2)
    assert reader.truncated
    with pytest.raises(RecordingFormatError):
        list(RecordingReader(path, strict=True))
    with RecordingWriter(path, REC) as w:
        w.append(_events(1, 50))
    reader = RecordingReader(path, strict=True)
    assert list(reader) == [*_events(2), *_events(1, 50)]
    assert not reader.truncated


@pytest.mark.asyncio
async def test_async_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.gz"
    clock = FakeClock()
    w = AsyncRecordingWriter(path, REC, flush_bytes=1_000_000, flush_interval=2.0, clock=clock)
    await w.open()
    await w.append([meta(), full(page())], nbytes=500)
    assert list(RecordingReader(path)) == []  # buffered, not yet written
    clock.advance(3)
    await w.append(_events(2), nbytes=100)  # interval elapsed: flushed
    assert len(list(RecordingReader(path))) == 4
    await w.append(_events(1, 9), nbytes=10)
    await w.aclose()
    _, events = read_recording(path)
    assert len(events) == 5


def test_an_event_line_holds_what_json_dumps_writes() -> None:
    """``encode_event`` (orjson, the standard encoder for what orjson refuses) writes one
    compact UTF-8 line that reads back as the event, whatever the event holds."""
    from cobrowse.recording import encode_event

    events: list[object] = [
        {"type": 3, "data": {"source": 5, "text": 'caf\u00e9 \u2028 "q" \\ \U0001f600 \x00'}},
        {"type": 3, "data": {"source": 1, "positions": [{"x": 1.5, "y": -2, "id": 3}]}},
        {"a": None, "b": True, "c": False, "d": [], "e": {}, "f": 1e300, "g": 0.1 + 0.2},
        {"nested": [[{"deep": ["x" * 3]}]], "big": 2**70, "neg": -0.0},
        [1, 2, 3],
        "text",
    ]
    for event in events:
        line = encode_event(event)
        assert b"\n" not in line and b"\\u00e9" not in line  # one line, UTF-8 unescaped
        assert json.loads(line) == event
    with pytest.raises(UnicodeEncodeError):
        encode_event({"text": "\ud800"})  # a lone surrogate is refused, as before


@pytest.mark.asyncio
async def test_encoded_lines_are_written_as_one_member_after_what_was_buffered(
    tmp_path: Path,
) -> None:
    """The live stream's lines (``add_encoded``) are joined on the loop and written by the
    worker as one gzip member, after any events the writer held; the file reads back as every
    event in order, and counts them."""
    from cobrowse.recording import encode_event

    path = tmp_path / "lines.gz"
    clock = FakeClock()
    w = AsyncRecordingWriter(path, REC, flush_bytes=1_000_000, flush_interval=2.0, clock=clock)
    await w.open()
    await w.append([meta(), full(page())], nbytes=500)
    await w.flush()
    writer = w._writer
    assert writer is not None
    before = path.stat().st_size

    def no_loop_in_the_worker(events: object) -> None:
        raise AssertionError("encoded lines are not appended one by one in the worker")

    writer.append = no_loop_in_the_worker  # type: ignore[method-assign]
    w.add_encoded([encode_event(e) for e in _events(3)])
    clock.advance(3)
    w.add_encoded([encode_event(e) for e in _events(2, 10)])  # due: flushed in the background
    await w.aclose()
    with gzip.open(io.BytesIO(path.read_bytes()[before:])) as member:
        assert member.read().count(b"\n") == 5  # one member after the first flush: five lines
    _, events = read_recording(path)
    assert events == [meta(), full(page()), *_events(3), *_events(2, 10)]
    assert w._writer is not None and w._writer.events_written == 7
