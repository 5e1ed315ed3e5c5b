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

from tests.support import CONTEXT, Client, free_port

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

            server.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.wait, 15) == 0
            await customer.close()
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        log.close()
    assert "handed 0 sessions over" in (tmp_path / "server.log").read_text()


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
