"""The nodes bench's quick mode runs end to end and prints its table with every row.

It launches real setups (a single node on PostgreSQL; 2 nodes with a redis-server and HAProxy
in front, through ``bench/_cluster.py`` as the multi-node tests do) and drives them
from client processes, only smaller than the full run. Figures are not asserted (when a step's
latency breaks is the machine's business): only that every setup's every step has its row, that
the first step of each ran, and that nothing failed, timed out or lost a message in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUPS = ("single", "2 nodes")
"""The embedded node and the clustered path (Redis, the bus, HAProxy); 1 and 3 nodes run the
same code as 2 and would only add time to the suite."""
QUICK_STEPS = 2


def table_rows(output: str) -> list[dict[str, str]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("setup "))
    header = lines[start]
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append(
            {
                "setup": line[: header.index("step")].strip(),
                "step": line[: header.index("step") + 4].split()[-1],
                "lost": line[: header.index("lost") + 4].split()[-1],
                "status": line[header.index("status") :].strip(),
            }
        )
    return rows


def test_quick_nodes_bench_prints_every_setup_and_step() -> None:
    for binary in ("redis-server", "haproxy"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            pytest.skip(f"{binary} is not installed (scripts/setup --test installs it)")
    run = subprocess.run(
        [sys.executable, "bench/nodes.py", "--quick", "--setups", "single,2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    if (
        "PostgreSQL not reachable" in run.stdout
        and os.environ.get("TANDEM_REQUIRE_POSTGRES") != "1"
    ):
        pytest.skip("PostgreSQL not reachable (DATABASE_URL or 127.0.0.1:5432/test)")
    assert "setup " in run.stdout, run.stdout + run.stderr
    rows = table_rows(run.stdout)
    seen = {(r["setup"], r["step"]) for r in rows}
    for setup in SETUPS:
        for step in range(1, QUICK_STEPS + 1):
            assert (setup, str(step)) in seen, (setup, step, run.stdout)
    first_steps = [r for r in rows if r["step"] == "1"]
    assert len(first_steps) == len(SETUPS), run.stdout
    for row in first_steps:
        # Ran, and every message came back; "ok" or "broke (p99 > ...)" are both fine.
        assert row["status"] not in ("not run", "FAILED", "TIMEOUT"), run.stdout + run.stderr
        assert row["lost"] == "0", run.stdout + run.stderr
    assert not [r for r in rows if r["status"] in ("FAILED", "TIMEOUT")], run.stdout + run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    assert "highest step held" in run.stdout
