"""Creating sites and agents (for the CLI, the demo and tests), with their validation."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from signaling import auth
from signaling.store import AgentRecord, DuplicateError, SiteRecord, TicketStore

DEMO_SITE_KEY = "pk_demo"
"""The demo shop's embed tag names this key; it is public, like every site key."""
DEMO_AGENT = "agent@demo.tandem"
DEMO_SUPERVISOR = "supervisor@demo.tandem"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class AccountError(Exception):
    pass


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` in lower case: how origins are compared everywhere."""
    parts = urlsplit(url.strip().lower())
    return f"{parts.scheme}://{parts.netloc}"


def normalise_origin(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise AccountError(f"origin must look like https://shop.example.com, not {url!r}")
    return origin_of(url)


async def add_site(
    store: TicketStore,
    name: str,
    origins: Sequence[str],
    public_key: str | None = None,
    asset_hosts: Sequence[str] = (),
) -> SiteRecord:
    """``asset_hosts``: origins besides ``origins`` that serve the site's images, fonts and
    stylesheets (CDNs); the co-browse asset route fetches from these and nowhere else."""
    if not name.strip():
        raise AccountError("site name is empty")
    if not origins:
        raise AccountError("a site needs at least one --origin")
    hosts = list(dict.fromkeys(normalise_origin(h) for h in asset_hosts))
    site = SiteRecord(
        id=auth.new_id("site"),
        name=name.strip(),
        public_key=public_key or f"pk_{secrets.token_urlsafe(12)}",
        secret=f"sk_{secrets.token_urlsafe(32)}",
        origins=tuple(dict.fromkeys(normalise_origin(o) for o in origins)),
        settings={"assetHosts": hosts} if hosts else {},
    )
    try:
        await store.add_site(site)
    except DuplicateError as exc:
        raise AccountError(str(exc)) from None
    return site


async def add_agent(
    store: TicketStore,
    email: str,
    name: str,
    password: str,
    role: str = "agent",
    skills: Sequence[str] = (),
) -> AgentRecord:
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address")
    if not name.strip():
        raise AccountError("agent name is empty")
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    if role not in auth.ROLES:
        raise AccountError(f"role must be one of {', '.join(auth.ROLES)}")
    agent = AgentRecord(
        id=auth.new_id("ag"),
        email=email.lower(),
        name=name.strip(),
        password_hash=auth.hash_password(password),
        role=role,
        skills=tuple(skills),
    )
    try:
        await store.add_agent(agent)
    except DuplicateError as exc:
        raise AccountError(str(exc)) from None
    return agent


async def ensure_demo(store: TicketStore, data_dir: Path, base_url: str) -> tuple[str, str, str]:
    """The demo site (origin ``base_url``) and a demo agent and supervisor; returns their
    e-mails and the password (generated once, kept in the data dir)."""
    origin = normalise_origin(base_url)
    origins = {origin, origin.replace("127.0.0.1", "localhost")}
    site = await store.site_by_key(DEMO_SITE_KEY)
    if site is None:
        await add_site(store, "Demo shop", sorted(origins), public_key=DEMO_SITE_KEY)
    elif not origins <= set(site.origins):
        # The demo may move port between runs; its origin list follows.
        raise AccountError(
            f"the demo data in {data_dir} was made for {', '.join(site.origins)}; "
            f"remove {data_dir} or use that address"
        )
    login_file = data_dir / "demo-login.json"
    if login_file.exists():
        password = str(json.loads(login_file.read_text())["password"])
    else:
        password = secrets.token_urlsafe(9)
        login_file.touch(mode=0o600)
        login_file.write_text(json.dumps({"password": password}))
    if await store.agent_by_email(DEMO_AGENT) is None:
        await add_agent(store, DEMO_AGENT, "Alex Agent", password, "agent", ["orders", "returns"])
    if await store.agent_by_email(DEMO_SUPERVISOR) is None:
        await add_agent(store, DEMO_SUPERVISOR, "Sam Supervisor", password, "supervisor")
    return DEMO_AGENT, password, DEMO_SUPERVISOR


async def set_password(store: TicketStore, email: str, password: str) -> AgentRecord:
    """Change an agent's password; every sign-in session of theirs ends."""
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    agent = await store.agent_by_email(email)
    if agent is None:
        raise AccountError(f"no agent {email!r}")
    hashed = await asyncio.to_thread(auth.hash_password, password)
    await store.set_password(agent.id, hashed, time.time())
    return agent


async def remove_agent(store: TicketStore, email: str) -> AgentRecord:
    """Remove an agent; their tokens are refused from now on and their sockets closed within
    ``app.AUTH_SWEEP_SECONDS``. Tickets keep their name."""
    agent = await store.agent_by_email(email)
    if agent is None:
        raise AccountError(f"no agent {email!r}")
    await store.remove_agent(agent.id, time.time())
    return agent
