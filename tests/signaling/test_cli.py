"""The ``tandem`` command as a person runs it: add a site and an agent, serve, stop with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import unittest.mock
from pathlib import Path

import aiohttp

from tests.support import CONTEXT, Client, free_port


def tandem(
    *args: str, data_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tandem_here(*args: str, data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``tandem`` run in this process (``signaling.cli.main``), its output captured: what
    ``tandem`` does without a new interpreter importing the server each time (1.5 s a command;
    ``test_accounts_serve_and_sigterm`` runs the real command for what it accepts)."""
    from signaling.cli import main

    argv = [*args, "--data-dir", str(data_dir)]
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        unittest.mock.patch("sys.stdin", io.StringIO(stdin)),
    ):
        try:
            code = main(argv)
        except SystemExit as refused:  # argparse's refusals
            code = refused.code if isinstance(refused.code, int) else 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


async def test_accounts_serve_and_sigterm(tmp_path: Path) -> None:
    site = tandem("site", "add", "Shop", "--origin", "http://shop.test", data_dir=tmp_path)
    assert site.returncode == 0, site.stderr
    key = next(
        line.split()[-1] for line in site.stdout.splitlines() if line.startswith("public key")
    )
    assert "secret:" in site.stdout and 'data-site="' in site.stdout
    # Refusals in this process: the command's own runs above and below are what a person sees.
    # (In a thread: the command runs its own event loop.)
    bad = await asyncio.to_thread(
        tandem_here, "site", "add", "Bad", "--origin", "ftp://x", data_dir=tmp_path
    )
    assert bad.returncode == 2 and "origin must look like" in bad.stderr
    agent = tandem(
        "agent",
        "add",
        "ann@x.test",
        "--name",
        "Ann",
        "--role",
        "supervisor",
        data_dir=tmp_path,
        stdin="a long password\n",
    )
    assert agent.returncode == 0, agent.stderr
    short = await asyncio.to_thread(
        tandem_here, "agent", "add", "bo@x.test", "--name", "Bo", data_dir=tmp_path, stdin="short\n"
    )
    assert short.returncode == 2 and "at least 8" in short.stderr

    port = free_port()
    env = {**os.environ, "TANDEM_PORT": str(port), "TANDEM_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{base}/healthz") as response:
                        assert (await response.json())["status"] == "ok"
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not start")
            login = await http.post(
                f"{base}/api/auth/login",
                json={"email": "ann@x.test", "password": "a long password"},
            )
            assert login.status == 200
        customer = Client()
        await customer.connect(
            base, {"v": 1, "role": "customer", "site": key}, origin="http://shop.test"
        )
        ack = await customer.call("help.request", {"context": CONTEXT})
        assert ack["ok"]
        server.send_signal(signal.SIGTERM)
        notice = await customer.wait_for("server.restarting", timeout=10)
        assert notice["reconnectAfterMs"] > 0
        # A message the customer sent before the notice reached it is still read, answered and
        # kept by the stopping node (aiohttp's own shutdown reads no frame more).
        sent = await customer.call("chat.send", {"clientMsgId": "m1", "text": "still there?"})
        assert sent["ok"], sent
        assert server.poll() is None  # it waits for its clients to leave
        # The customer leaves as the snippet does when told (to come back after that delay):
        # its close is answered, and the node exits once its sockets are gone.
        await asyncio.wait_for(customer.close(), 3)
        assert await asyncio.to_thread(server.wait, 15) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        log.close()

    # The ticket outlived the process.
    from signaling.store import open_store

    store = await open_store(None, tmp_path / "tandem.sqlite3")
    try:
        assert (await store.ticket(ack["ticket"]["id"])) is not None
        assert [m.text for m in await store.messages(ack["ticket"]["id"])] == ["still there?"]
    finally:
        await store.close()


def test_db_status_and_migrate_upgrade_an_old_database(tmp_path: Path) -> None:
    """A database of the first release (rows and all) reports its pending steps, and is upgraded
    by ``tandem db migrate``; a second run has nothing to do."""
    import sqlite3

    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "store" / "release_7782dba.sql"
    conn = sqlite3.connect(tmp_path / "tandem.sqlite3")
    conn.executescript(fixture.read_text().replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT"))
    conn.close()
    before = tandem_here("db", "status", data_dir=tmp_path)
    from signaling.store.migrations import LATEST

    assert before.returncode == 1 and f"pending: {LATEST}" in before.stdout, before.stdout
    migrated = tandem_here("db", "migrate", data_dir=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version 1 -> {LATEST}" in migrated.stdout
    assert f"applied: {list(range(2, LATEST + 1))}" in migrated.stdout
    after = tandem_here("db", "status", data_dir=tmp_path)
    assert after.returncode == 0 and "pending: 0" in after.stdout
    assert " baseline " in after.stdout and " applied " in after.stdout
    again = tandem_here("db", "migrate", data_dir=tmp_path)
    assert "nothing, up to date" in again.stdout


def test_files_url_is_refused_without_the_s3_client(tmp_path: Path) -> None:
    """``--files-url`` with aiobotocore missing (hidden here as Python's docs suggest) stops
    ``tandem serve`` at once, saying what to install."""
    hidden = (
        "import sys; sys.modules['aiobotocore'] = None; from signaling.cli import main; "
        f"sys.exit(main(['serve', '--data-dir', {str(tmp_path)!r}, '--files-url', 's3://b/p']))"
    )
    root = Path(__file__).resolve().parent.parent.parent
    result = subprocess.run(
        [sys.executable, "-c", hidden],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 2
    assert "pip install 'tandem[s3]'" in result.stderr


def test_queues_and_rules_are_configured_listed_and_bad_ones_refused(tmp_path: Path) -> None:
    assert (
        tandem_here(
            "site", "add", "Shop", "--origin", "http://shop.test", data_dir=tmp_path
        ).returncode
        == 0
    )
    ok = tandem_here(
        "queue",
        "add",
        "Shop",
        "billing",
        "--skills",
        "billing,en",
        "--priority",
        "2",
        data_dir=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert tandem_here("queue", "add", "Shop", "general", data_dir=tmp_path).returncode == 0
    assert tandem_here("queue", "default", "Shop", "general", data_dir=tmp_path).returncode == 0
    rule = tandem_here(
        "route", "add", "Shop", "--queue", "billing", "--url", "*/checkout*",
        "--app", "plan=enterprise", "--verified", data_dir=tmp_path,
    )  # fmt: skip
    assert rule.returncode == 0, rule.stderr
    hours = tandem_here(
        "site", "hours", "Shop", "mon-fri 09:00-17:00", "--time-zone", "Europe/Paris",
        data_dir=tmp_path,
    )  # fmt: skip
    assert hours.returncode == 0, hours.stderr
    assert tandem_here("site", "max-waiting", "Shop", "10", data_dir=tmp_path).returncode == 0
    listing = tandem_here("site", "list", data_dir=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for line in (
        "queue billing: skills billing,en, priority 2",
        "queue general (default): skills -, priority 0",
        "rule 1: url */checkout* and plan=enterprise and verified -> billing",
        "hours (Europe/Paris): mon,tue,wed,thu,fri 09:00-17:00",
        "at most 10 waiting per queue",
    ):
        assert line in listing.stdout, listing.stdout
    refusals = [
        (("route", "add", "Shop", "--queue", "nope"), "unknown queue 'nope'"),
        (("queue", "add", "Shop", "x", "--priority", "20"), "outside -5..10"),
        (("queue", "remove", "Shop", "billing"), "rules still send tickets to 'billing'"),
        (("site", "hours", "Shop", "mon-fri 9-17"), "times are HH:MM"),
        (("site", "hours", "Shop", "mon 09:00-10:00", "--time-zone", "Mars/Base"), "time zone"),
        (("route", "add", "Nowhere", "--queue", "billing"), "no site 'Nowhere'"),
    ]
    for args, message in refusals:
        refused = tandem_here(*args, data_dir=tmp_path)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    assert tandem_here("route", "remove", "Shop", "1", data_dir=tmp_path).returncode == 0
    assert tandem_here("queue", "remove", "Shop", "billing", data_dir=tmp_path).returncode == 0
    assert "billing" not in tandem_here("site", "list", data_dir=tmp_path).stdout
