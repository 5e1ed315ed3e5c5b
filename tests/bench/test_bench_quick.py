"""The signaling bench's quick mode runs end to end and reports every scenario as ok.

It drives the real servers (Tandem, the minimal python-socketio floor, the bare websocket
relay) on 127.0.0.1 from client processes, as the full bench does, only smaller. Figures are
not asserted: only that the table is printed, with every scenario of every server, and that
none failed, timed out or dropped anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SESSION_SCENARIOS = ("connect", "pairing", "chat closed", "chat open", "disconnect")
RELAY_SCENARIOS = ("connect", "chat closed", "chat open", "disconnect")
SERVERS = ("tandem", "minimal sio")


def table_rows(output: str) -> list[dict[str, str]]:
    """The rows of the printed table: scenario, server, dropped and status of each."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    header = lines[start]
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append(
            {
                "scenario": line[: header.index("size")].strip(),
                # Left-aligned, 26 characters wide (bench/signaling.py's print_table).
                "server": line[header.index("server") : header.index("server") + 26].strip(),
                "dropped": line[: header.index("dropped") + len("dropped")].split()[-1],
                "status": line[header.index("status") :].strip(),
            }
        )
    return rows


def test_quick_bench_prints_every_scenario_ok() -> None:
    run = subprocess.run(
        # The push group has a test of its own (test_push_bench.py, both servers, smaller). The
        # open loop runs for a second per server, not the quick mode's three: this checks the
        # bench, not the figures.
        [
            sys.executable,
            "bench/signaling.py",
            "--quick",
            "--only",
            "sessions,waiting",
            "--open-seconds",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert "scenario " in run.stdout, run.stdout + run.stderr
    rows = table_rows(run.stdout)
    seen = {(r["scenario"], r["server"]) for r in rows}
    for server in SERVERS:
        for scenario in SESSION_SCENARIOS:
            assert (scenario, server) in seen, (scenario, server, run.stdout)
        accept_levels = [s for s, srv in seen if srv == server and s.startswith("accept @")]
        assert len(accept_levels) == 3, (server, accept_levels, run.stdout)
    for scenario in RELAY_SCENARIOS:
        assert (scenario, "ws relay") in seen, (scenario, run.stdout)
    not_ok = [r for r in rows if r["status"] != "ok" or r["dropped"] != "0"]
    assert not not_ok, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ratios" in run.stdout
