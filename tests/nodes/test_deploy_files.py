"""The shipped deployment files hold together: HAProxy accepts its configuration (the one the
several-nodes suite runs behind), and compose.yaml wires three nodes to one Redis, one
PostgreSQL, one secret and one files volume."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_haproxy_accepts_the_shipped_configuration() -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(haproxy):
        if os.environ.get("TANDEM_REQUIRE_REDIS"):
            pytest.fail("haproxy is not installed (scripts/setup --test installs it)")
        pytest.skip("haproxy is not installed")
    env = {
        **os.environ,
        "TANDEM_LB_BIND": "127.0.0.1:18080",
        "TANDEM_NODE1": "127.0.0.1:18081",
        "TANDEM_NODE2": "127.0.0.1:18082",
        "TANDEM_NODE3": "127.0.0.1:18083",
    }
    result = subprocess.run(
        [haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr


def test_compose_runs_three_nodes_on_shared_services() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    nodes = {name: services[name] for name in ("node1", "node2", "node3")}
    for node in nodes.values():
        env = node["environment"]
        assert env["TANDEM_DATABASE_URL"].startswith("postgresql://")
        assert env["TANDEM_REDIS_URL"].startswith("redis://")
        assert env["TANDEM_SECRET"].startswith("${TANDEM_SECRET")
        assert node["volumes"] == ["files:/data"]
    proxy = services["haproxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    assert {proxy["environment"][f"TANDEM_NODE{i}"] for i in (1, 2, 3)} == {
        f"{name}:8080" for name in nodes
    }
    assert {"redis", "postgres"} <= set(services)
