"""The bench's site and agents: provisioned straight into the store, logged in over HTTP."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from bench._clients import ORIGIN, SITE_KEY

PASSWORD = "bench-password-1"


async def build_template(data_dir: Path, agents: int, database_url: str | None = None) -> None:
    """The bench site and ``agents`` agents, in SQLite under ``data_dir`` (copied for every
    server) or, with ``database_url``, in that database (schema upgraded on the way)."""
    from signaling import auth
    from signaling.auth.accounts import add_site
    from signaling.store import AgentRecord, open_store

    store = await open_store(database_url, data_dir / "tandem.sqlite3")
    try:
        await add_site(store, "Bench shop", [ORIGIN], public_key=SITE_KEY)
        # One scrypt hash for all (each add_agent() would hash again, ~50-100 ms apiece).
        password_hash = auth.hash_password(PASSWORD)
        for j in range(agents):
            await store.add_agent(
                AgentRecord(
                    id=auth.new_id("ag"),
                    email=f"agent{j}@bench.tandem",
                    name=f"Bench Agent {j}",
                    password_hash=password_hash,
                    role="agent",
                    skills=(),
                )
            )
    finally:
        await store.close()


def login(base: str, j: int) -> str:
    body = json.dumps({"email": f"agent{j}@bench.tandem", "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"{base}/api/auth/login", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["token"])
