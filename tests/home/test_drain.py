"""Readiness and draining of a real ``tandem serve`` process: ``/healthz`` says ready while the
store answers and the node serves; SIGUSR1 drains (503 at once, new sockets refused, connected
clients told to reconnect elsewhere) and SIGTERM drains, then exits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from signaling.app import drain_and_wait
from tests.support import CONTEXT, Client, Running, free_port

ROOT = Path(__file__).resolve().parents[2]
"""The checkout under test: the server process runs this code, not an installed copy."""


def tandem_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def tandem(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=tandem_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def health(http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{base}/healthz") as response:
        return response.status, await response.json()


async def test_sigusr1_drains_and_sigterm_exits(tmp_path: Path) -> None:
    site = tandem("site", "add", "Shop", "--origin", "http://shop.test", data_dir=tmp_path)
    assert site.returncode == 0, site.stderr
    key = next(
        line.split()[-1] for line in site.stdout.splitlines() if line.startswith("public key")
    )
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--port", str(port)],
        cwd=ROOT,
        env=tandem_env(TANDEM_DATA_DIR=str(tmp_path), TANDEM_NODE_NAME="drained"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    hello = {"v": 2, "role": "customer", "site": key}
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    status, body = await health(http, base)
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not start")
            assert status == 200
            assert body["status"] == "ok" and body["state"] == "serving"
            assert body["store"] is True and body["redis"] is None  # no Redis configured
            assert body["node"].startswith("drained-")

            customer = Client()
            await customer.connect(base, hello, origin="http://shop.test")
            assert (await customer.call("help.request", {"context": CONTEXT}))["ok"]

            server.send_signal(signal.SIGUSR1)
            notice = await customer.wait_for("server.restarting", timeout=10)
            assert notice["reconnectAfterMs"] > 0
            status, body = await health(http, base)
            assert status == 503
            assert body["status"] == "unavailable" and body["state"] == "draining"
            # New work goes elsewhere: a new socket is refused, saying why.
            late = Client()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await late.connect(base, hello, origin="http://shop.test")
            assert late.refusal is not None and "draining" in str(late.refusal)
            assert server.poll() is None  # draining is not exiting

            # The customer left when told (as the snippet and the console do): SIGTERM stops
            # the node without waiting for anyone.
            await customer.close()
            server.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 15) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        log.close()
    assert "handed 0 sessions over" in (tmp_path / "server.log").read_text()


def test_a_shutdown_grace_that_is_no_duration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from signaling.cli import build_parser, settings_from
    from signaling.settings import Settings

    for bad in (-1.0, float("nan"), float("inf")):
        assert any("SHUTDOWN_GRACE" in r for r in Settings(shutdown_grace_seconds=bad).refusals())
    assert Settings(shutdown_grace_seconds=0).refusals() == []
    monkeypatch.setenv("TANDEM_SHUTDOWN_GRACE_SECONDS", "2.5")
    assert settings_from(build_parser().parse_args(["serve"])).shutdown_grace_seconds == 2.5


def test_node_flags_and_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from signaling.cli import build_parser, settings_from

    flags = ["serve", "--home-lease-ms", "3000", "--node-name", "edge-1", "--redis-prefix", "t:"]
    settings = settings_from(build_parser().parse_args(flags))
    assert (settings.home_lease_ms, settings.node_name, settings.redis_prefix) == (
        3000, "edge-1", "t:"
    )  # fmt: skip
    monkeypatch.setenv("TANDEM_HOME_LEASE_MS", "4500")
    monkeypatch.setenv("TANDEM_NODE_NAME", "edge-2")
    monkeypatch.setenv("TANDEM_REDIS_PREFIX", "u:")
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert (settings.home_lease_ms, settings.node_name, settings.redis_prefix) == (
        4500, "edge-2", "u:"
    )  # fmt: skip


async def test_a_stopping_node_waits_for_its_sockets_to_leave_up_to_its_grace(
    server: Running,
) -> None:
    """What SIGTERM runs before the server stops reading (``drain_and_wait``): it tells the
    clients to reconnect, still serves them meanwhile, and returns once they have gone, or
    once the grace is over with those that stayed."""
    leaving, staying = await server.customer(), await server.customer()
    stopping = asyncio.ensure_future(drain_and_wait(server.app, 1.0))
    await leaving.wait_for("server.restarting", timeout=5)
    await staying.wait_for("server.restarting", timeout=5)
    asked = await leaving.call("help.request", {"context": CONTEXT})
    assert asked["ok"], asked  # still served while the node waits
    await leaving.close()
    assert await asyncio.wait_for(stopping, 10) == 1  # the one that stayed, after the grace

    await staying.close()
    # With nobody left it returns at once, however long the grace.
    assert await asyncio.wait_for(drain_and_wait(server.app, 600), 5) == 0
