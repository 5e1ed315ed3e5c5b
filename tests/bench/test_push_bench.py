"""The signaling bench's push-routing scenario runs end to end at a tiny size.

Tandem in its own process with ``--routing push`` (capacity 3, no wrap-up), 20 customers
asking at once, 5 agents answering offers from client processes (a share declined, so some
sessions are offered again). Figures are not asserted: only that every customer was served,
nothing was dropped or refused, no agent went over its capacity, and the bench's own check
found each offer ringing at exactly one agent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bench.test_bench_quick import table_rows

REPO = Path(__file__).resolve().parents[2]


def markdown_rows(output: str, first_cell: str) -> list[dict[str, str]]:
    """The rows of the markdown table whose header starts with ``| first_cell |``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_push_scenario_serves_everyone_with_one_agent_per_offer() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "bench/signaling.py",
            "--quick",
            "--only",
            "push",
            "--servers",
            "tandem,minimal",
            "--push-customers",
            "20",
            "--push-agents",
            "5",
            "--decline",
            "0.2",
            "--handle",
            "0.3",
            "--think",
            "0.05",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert "scenario " in run.stdout, output
    rows = table_rows(run.stdout)
    assert [(r["scenario"], r["server"]) for r in rows] == [
        ("push routing", "tandem"),
        ("push routing", "minimal sio"),
    ], output
    assert all((r["status"], r["dropped"]) == ("ok", "0") for r in rows), output
    pushes = markdown_rows(run.stdout, "server")
    kinds = markdown_rows(run.stdout.split("agent events per offer, by kind:")[1], "server")
    assert len(pushes) == len(kinds) == 2, output
    for push, by_kind in zip(pushes, kinds, strict=True):
        assert push["served"] == "20/20", output
        assert push["one agent per offer"] == "yes", output
        assert int(push["offers"]) == 20 + int(push["declined"]) + int(push["rang out"]), output
        assert int(push["most open per agent"]) <= 3, output
        assert by_kind["session.offered"] == "1.00", output
    assert run.returncode == 0, output
