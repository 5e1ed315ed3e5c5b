"""Closing a co-browse session while batches are being taken, and background recording writes
that finish in any order: every batch ``ingest`` accepted is in the file, in order; a batch
after the close is refused (``closed``), never accepted and lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import cobrowse
from cobrowse.recording import encode_event
from tests.cobrowse.cobrowse_factories import el, full, meta, page, text

RECORDER = "rrweb@2.0.0-alpha.20"


def padded(ts: float, n: int) -> dict[str, object]:
    """A custom event big enough that its batch is checked in a worker thread."""
    return {
        "type": 5,
        "data": {"tag": "pad", "payload": {"n": n, "x": "y" * 2000}},
        "timestamp": ts,
    }


def session(path: Path) -> cobrowse.CobrowseSession:
    recording = cobrowse.AsyncRecordingWriter(path, RECORDER)
    return cobrowse.CobrowseSession("tk_close", cobrowse.InMemoryMirrorStore(), recording=recording)


async def test_a_batch_taken_while_the_session_closes_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "part.tcb.gz"
    stream = session(path)
    await stream.ingest(json.dumps([meta(1), full(page(el("p", {}, [text("hi")])), 2)]))
    big = json.dumps([padded(3, n) for n in range(60)])  # > offload_bytes: checked off the loop
    taking = asyncio.create_task(stream.ingest(big))
    await asyncio.sleep(0)  # the batch is in its worker thread now
    await stream.close()
    result = await taking
    assert len(result.events) == 60
    _, events = cobrowse.read_recording(path)
    assert [e["timestamp"] for e in events] == [1, 2] + [3] * 60

    with pytest.raises(cobrowse.CobrowseError) as refused:
        await stream.ingest(json.dumps([padded(4, 0)]))
    assert refused.value.code == "closed"
    assert len(cobrowse.read_recording(path)[1]) == 62


async def test_background_flushes_land_in_call_order(tmp_path: Path) -> None:
    """Every batch falls due (no interval), so each starts its own background flush; the
    first ones open the file meanwhile. The members still land in the order of the batches."""
    path = tmp_path / "part.tcb.gz"
    writer = cobrowse.AsyncRecordingWriter(path, RECORDER, flush_interval=0.0)
    for n in range(200):
        writer.add_encoded([encode_event(padded(n, n))])
        if n % 7 == 0:
            await asyncio.sleep(0)
    await writer.aclose()
    _, events = cobrowse.read_recording(path)
    assert [e["timestamp"] for e in events] == list(range(200))
