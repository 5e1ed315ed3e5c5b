"""The co-browse bench runs end to end at a tiny size: one customer's stream through the real
server to one and two agents (their sockets spoken by hand, as the relay's are), beside the bare
relay. Figures are not asserted: only that every run printed its row and lost nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cobrowse_bench_streams_to_every_agent_and_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "bench/cobrowse.py", "--rates", "200", "--agents", "1,2",
         "--seconds", "1", "--no-late"],
        cwd=REPO, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| path "))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    assert [(r["path"], r["agents"]) for r in rows] == [
        ("tandem", "1"),
        ("ws relay", "1"),
        ("tandem", "2"),
        ("ws relay", "2"),
    ], run.stdout
    for row in rows:
        assert row["sent"] == "200" and row["lost"] == "0", row
