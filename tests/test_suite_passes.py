"""scripts/test's PostgreSQL + Redis pass leaves out modules that start no test server: they would
only repeat the default pass. A module that starts one later must not stay left out unseen."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_USE = re.compile(
    r"running_server|start_server|BackgroundServer|TANDEM_TEST_|\bserver: Running\b|"
    r"\bany_store_server\b|\bserver_store\b"
)


def left_out() -> list[str]:
    script = (ROOT / "scripts" / "test").read_text()
    return re.findall(r"--ignore=(\S+)", script)


def test_the_node_pass_leaves_out_only_modules_that_start_no_server() -> None:
    modules = left_out()
    assert "tests/signaling/test_cli.py" in modules  # its servers are processes of their own
    starting = [
        module
        for module in modules
        if module != "tests/signaling/test_cli.py"
        and SERVER_USE.search((ROOT / module).read_text())
    ]
    assert starting == [], (
        f"start a test server, so belong in the PostgreSQL + Redis pass: {starting}"
    )
