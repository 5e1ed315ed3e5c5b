"""The ``tandem`` command: ``serve``, ``demo``, ``site add``, ``agent add``, ``db status``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from signaling import cli_canned, cli_routing
from signaling.app import create_app, drain, drain_and_wait
from signaling.auth.accounts import (
    AccountError,
    add_agent,
    add_site,
    ensure_demo,
    remove_agent,
    set_password,
)
from signaling.desk.canned import CannedError
from signaling.routing import RoutingConfigError
from signaling.settings import Settings, env
from signaling.store import open_store
from signaling.store.migrations import LATEST, status
from signaling.store.sql import SqlTicketStore, open_driver


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("DATA_DIR") or "var"),
        help="where SQLite, attachments and the secret live (TANDEM_DATA_DIR; default ./var)",
    )
    parser.add_argument(
        "--database-url",
        default=env("DATABASE_URL") or os.environ.get("DATABASE_URL"),
        help="postgresql://... to use PostgreSQL (TANDEM_DATABASE_URL or DATABASE_URL)",
    )


def _server_flags(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default=env("HOST", "127.0.0.1"), help="TANDEM_HOST")
    parser.add_argument("--port", type=int, default=int(env("PORT") or port), help="TANDEM_PORT")
    parser.add_argument(
        "--redis-url",
        default=env("REDIS_URL") or os.environ.get("REDIS_URL"),
        help="redis://... for live state shared by several nodes (TANDEM_REDIS_URL or REDIS_URL)",
    )
    parser.add_argument(
        "--redis-prefix",
        default=env("REDIS_PREFIX", "tandem"),
        help="prefix of this deployment's Redis keys and channels (TANDEM_REDIS_PREFIX)",
    )
    parser.add_argument(
        "--node-name",
        default=env("NODE_NAME", ""),
        help="this node's name among the nodes (TANDEM_NODE_NAME; default: the host name)",
    )
    parser.add_argument("--secret", default=env("SECRET"), help="token signing key (TANDEM_SECRET)")
    _files_flags(parser)
    parser.add_argument("--public-url", default=env("PUBLIC_URL"), help="TANDEM_PUBLIC_URL")
    parser.add_argument(
        "--stun-urls", default=env("STUN_URLS", ""), help="comma-separated (TANDEM_STUN_URLS)"
    )
    parser.add_argument(
        "--turn-urls", default=env("TURN_URLS", ""), help="comma-separated (TANDEM_TURN_URLS)"
    )
    parser.add_argument("--turn-secret", default=env("TURN_SECRET"), help="TANDEM_TURN_SECRET")
    parser.add_argument(
        "--cobrowse-events-per-second",
        type=float,
        default=float(env("COBROWSE_EVENTS_PER_SECOND") or 500),
        help="sustained co-browse events/s per customer tab (TANDEM_COBROWSE_EVENTS_PER_SECOND)",
    )
    parser.add_argument(
        "--media-hosts",
        default=env("MEDIA_HOSTS", ""),
        help="comma-separated addresses for media candidates, e.g. 127.0.0.1 (TANDEM_MEDIA_HOSTS)",
    )
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="TANDEM_LOG_LEVEL")
    parser.add_argument(
        "--web-dir",
        type=Path,
        default=Path(env("WEB_DIR") or Settings().web_dir),
        help="the front-end project whose dist/ is served (TANDEM_WEB_DIR)",
    )
    _limit_flags(parser)


def _files_flags(parser: argparse.ArgumentParser) -> None:
    files_dir = env("FILES_DIR")
    parser.add_argument(
        "--files-dir",
        type=Path,
        default=Path(files_dir) if files_dir else None,
        help="where attachments, recordings and the co-browse asset cache live: a directory "
        "every node mounts (TANDEM_FILES_DIR; default the data dir)",
    )
    parser.add_argument(
        "--files-url",
        default=env("FILES_URL"),
        help="s3://bucket/prefix to keep them in an S3-compatible bucket instead "
        "(TANDEM_FILES_URL; needs the 's3' extra)",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=env("S3_ENDPOINT_URL"),
        help="the S3-compatible server, e.g. http://minio:9000 (TANDEM_S3_ENDPOINT_URL; "
        "default AWS)",
    )
    parser.add_argument("--s3-region", default=env("S3_REGION"), help="TANDEM_S3_REGION")
    parser.add_argument(
        "--s3-access-key-id",
        default=env("S3_ACCESS_KEY_ID"),
        help="TANDEM_S3_ACCESS_KEY_ID (default: AWS_ACCESS_KEY_ID, ~/.aws, an instance role)",
    )
    parser.add_argument(
        "--s3-secret-access-key",
        default=env("S3_SECRET_ACCESS_KEY"),
        help="TANDEM_S3_SECRET_ACCESS_KEY (prefer the variable: a flag shows in ps)",
    )


LIMITS: dict[str, str] = {
    "rate_per_second": "socket events per second per socket, bursts of twice that",
    "socket_bytes_per_second": "bytes per second one socket may send",
    "socket_burst_bytes": "bytes one socket may send at once",
    "max_customer_sockets_per_address": "customer sockets open at once from one address",
    "max_open_tickets_per_address": "open tickets created from one client address",
    "max_open_tickets_per_customer": "open tickets of one customer",
    "max_uploads_per_ticket": "customer uploads on one ticket",
    "max_upload_bytes_per_ticket": "bytes of customer uploads on one ticket",
    "max_uploads_while_queued": "customer uploads before an agent has joined",
    "login_account_burst": "failed logins at once for one account",
    "login_account_interval": "seconds for one more failed login of an account",
    "login_address_burst": "failed logins at once from one address",
    "login_address_interval": "seconds for one more failed login from an address",
    "agent_session_max_age": "seconds an agent stays signed in before logging in again",
    "home_lease_ms": "milliseconds a session's home-node lease lives unrenewed",
    "agent_capacity": "chats one agent holds at once (a call or control counts more)",
    "offer_seconds": "seconds an offered session rings before it goes to the next agent",
    "wrap_up_seconds": "seconds an agent is in Wrap-up after a session ends",
    "call_weight": "chats a session counts against the capacity while its agent is in the call",
    "control_weight": "chats a session counts while its agent holds remote control",
    "call_invite_seconds": "seconds a call invitation rings before it expires",
    "shutdown_grace_seconds": "seconds a node stopping on SIGTERM waits for its clients to leave",
}
"""Limits of ``Settings``, each a ``--flag`` and a ``TANDEM_*`` variable (docs/security.md)."""


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for name, text in LIMITS.items():
        kind = type(getattr(defaults, name))
        variable = name.upper()
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            # A string default (the variable) goes through ``type`` as a flag would: a bad
            # value stops the command with argparse's message, not a traceback.
            default=env(variable) or getattr(defaults, name),
            help=f"{text} (TANDEM_{variable}; default {getattr(defaults, name)})",
        )
    parser.add_argument(
        "--routing",
        choices=["push", "pull"],
        default=env("ROUTING", "push"),
        help="push: offer each waiting session to one agent in turn; pull: agents take from the "
        "queue (TANDEM_ROUTING; default push)",
    )
    parser.add_argument(
        "--trusted-proxies",
        default=env("TRUSTED_PROXIES", ""),
        help="comma-separated proxy addresses whose X-Forwarded-For is believed "
        "(TANDEM_TRUSTED_PROXIES)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description="Tandem support server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    _common(serve)
    _server_flags(serve, 8080)

    demo = commands.add_parser("demo", help="run the server with a demo site and agent")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("DATA_DIR") or "var/demo"),
        help="TANDEM_DATA_DIR (default ./var/demo)",
    )
    demo.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    _server_flags(demo, 8080)

    site = commands.add_parser("site", help="manage sites").add_subparsers(
        dest="action", required=True
    )
    site_add = site.add_parser("add", help="add a site; prints its public key and secret")
    site_add.add_argument("name")
    site_add.add_argument("--origin", action="append", required=True, help="repeatable")
    site_add.add_argument(
        "--asset-host",
        action="append",
        default=[],
        help="an origin that serves the site's images, fonts or CSS (a CDN), e.g. "
        "https://cdn.example.com; co-browse fetches assets from the site's origins and these only "
        "(repeatable)",
    )
    _common(site_add)
    cli_routing.add_parsers(commands, site, _common)
    cli_canned.add_parsers(commands, _common)

    agent = commands.add_parser("agent", help="manage agents").add_subparsers(
        dest="action", required=True
    )
    agent_add = agent.add_parser("add", help="add an agent (password from --password or stdin)")
    agent_add.add_argument("email")
    agent_add.add_argument("--name", required=True)
    agent_add.add_argument("--skills", default="", help="comma-separated")
    agent_add.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    agent_add.add_argument("--password")
    _common(agent_add)
    agent_password = agent.add_parser(
        "password", help="change an agent's password (from --password or stdin); signs them out"
    )
    agent_password.add_argument("email")
    agent_password.add_argument("--password")
    _common(agent_password)
    agent_remove = agent.add_parser("remove", help="remove an agent; signs them out everywhere")
    agent_remove.add_argument("email")
    _common(agent_remove)

    db = commands.add_parser("db", help="the database schema").add_subparsers(
        dest="action", required=True
    )
    _common(db.add_parser("status", help="list the schema's migrations: done, pending, unknown"))
    _common(
        db.add_parser("migrate", help="apply pending migrations now (every start does so anyway)")
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    def urls(value: str) -> tuple[str, ...]:
        return tuple(u.strip() for u in value.split(",") if u.strip())

    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        database_url=args.database_url,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        files_dir=args.files_dir,
        files_url=args.files_url or None,
        s3_endpoint_url=args.s3_endpoint_url or None,
        s3_region=args.s3_region or None,
        s3_access_key_id=args.s3_access_key_id or None,
        s3_secret_access_key=args.s3_secret_access_key or None,
        node_name=args.node_name,
        secret=args.secret or "",
        public_url=args.public_url,
        stun_urls=urls(args.stun_urls),
        turn_urls=urls(args.turn_urls),
        turn_secret=args.turn_secret,
        media_host_addresses=urls(args.media_hosts),
        cobrowse_events_per_second=args.cobrowse_events_per_second,
        log_level=args.log_level,
        web_dir=args.web_dir,
        trusted_proxies=urls(args.trusted_proxies),
        routing=args.routing,
        **{name: getattr(args, name) for name in LIMITS},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(settings_from(args))
        if args.command == "demo":
            return _demo(settings_from(args))
        if args.command == "canned":
            return asyncio.run(cli_canned.run(args, args.data_dir))
        if args.command in ("queue", "route") or (args.command == "site" and args.action != "add"):
            return asyncio.run(cli_routing.run(args, args.data_dir))
        if args.command == "site":
            return asyncio.run(_site_add(args))
        if args.command == "db":
            return asyncio.run(_db_migrate(args) if args.action == "migrate" else _db_status(args))
        if args.action == "password":
            return asyncio.run(_agent_password(args))
        if args.action == "remove":
            return asyncio.run(_agent_remove(args))
        return asyncio.run(_agent_add(args))
    except (AccountError, RoutingConfigError, CannedError) as exc:
        print(f"tandem: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings, banner: str | None = None) -> int:
    refusals = settings.refusals()
    if refusals:
        for refusal in refusals:
            print(f"tandem: {refusal}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        print(banner or f"Tandem listening on http://{settings.host}:{settings.port}", flush=True)

    async def drain_on_signal(app: web.Application) -> None:
        # SIGUSR1 drains and keeps the node up (until SIGTERM). SIGTERM drains, waits for the
        # clients to leave, then exits; a second SIGTERM (or SIGINT) exits at once.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGUSR1, lambda: loop.create_task(drain(app)).add_done_callback(_logged)
        )
        stopping: list[asyncio.Task[None]] = []

        async def stop() -> None:
            left = await drain_and_wait(app, settings.shutdown_grace_seconds)
            if left:
                logging.getLogger("tandem").info("stopping with %d sockets still connected", left)
            loop.call_soon(_exit)

        def on_sigterm() -> None:
            if stopping:
                _exit()  # a second SIGTERM
            task = loop.create_task(stop())
            task.add_done_callback(_exit_after)
            stopping.append(task)

        # Replaces aiohttp's own handler, which began its shutdown at once.
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    app.on_startup.append(announce)
    app.on_startup.append(drain_on_signal)
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=5)
    return 0


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("tandem").error("drain failed", exc_info=task.exception())


def _exit() -> NoReturn:
    # Raised in a callback of the event loop, as aiohttp's own signal handler does: it ends
    # ``run_app``'s loop, which then shuts the server down.
    raise web.GracefulExit()


def _exit_after(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _logged(task)
        asyncio.get_running_loop().call_soon(_exit)  # a failed drain still stops the node


def _demo(settings: Settings) -> int:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    login = asyncio.run(_ensure_demo(settings, base))
    banner = "\n".join(
        [
            "",
            "Tandem demo is running.",
            f"  Demo shop (customer): {base}/demo/",
            f"  Agent console:        {base}/console/",
            f"  Agent login:          {login[0]}  /  {login[1]}",
            f"  Supervisor login:     {login[2]}  /  {login[1]}",
            "Open the shop in one window, the console in another, press Help in the shop.",
            "Ctrl+C stops it.",
            "",
        ]
    )
    return _serve(settings, banner)


async def _ensure_demo(settings: Settings, base: str) -> tuple[str, str, str]:
    store = await open_store(settings.database_url, settings.sqlite_path)
    try:
        return await ensure_demo(store, settings.data_dir, base)
    finally:
        await store.close()


async def _site_add(args: argparse.Namespace) -> int:
    store = await open_store(args.database_url, args.data_dir / "tandem.sqlite3")
    try:
        site = await add_site(store, args.name, args.origin, asset_hosts=args.asset_host)
    finally:
        await store.close()
    print(f"site:       {site.name}")
    print(f"public key: {site.public_key}")
    print(f"secret:     {site.secret}")
    print(f"origins:    {', '.join(site.origins)}")
    if site.settings.get("assetHosts"):
        print(f"asset hosts: {', '.join(site.settings['assetHosts'])}")
    print(
        f'embed:      <script async src="https://HOST/tandem.js" data-site="{site.public_key}">'
        "</script>"
    )
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\n")


async def _agent_password(args: argparse.Namespace) -> int:
    password = _password(args)
    store = await open_store(args.database_url, args.data_dir / "tandem.sqlite3")
    try:
        agent = await set_password(store, args.email, password)
    finally:
        await store.close()
    print(f"password of {agent.email} changed; their sign-in sessions have ended")
    return 0


async def _agent_remove(args: argparse.Namespace) -> int:
    store = await open_store(args.database_url, args.data_dir / "tandem.sqlite3")
    try:
        agent = await remove_agent(store, args.email)
    finally:
        await store.close()
    print(f"agent {agent.email} removed; their sign-in sessions have ended")
    return 0


async def _agent_add(args: argparse.Namespace) -> int:
    password = _password(args)
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    store = await open_store(args.database_url, args.data_dir / "tandem.sqlite3")
    try:
        agent = await add_agent(store, args.email, args.name, password, args.role, skills)
    finally:
        await store.close()
    print(f"agent {agent.email} ({agent.role}) added as {agent.id}")
    return 0


async def _db_status(args: argparse.Namespace) -> int:
    """Exit status 0 when the schema is up to date, 1 when migrations are pending."""
    driver = await open_driver(args.database_url, args.data_dir / "tandem.sqlite3")
    try:
        steps = await status(driver.fetch)
    finally:
        await driver.close()
    for step in steps:
        when = "" if step.at is None else time.strftime(" %Y-%m-%d %H:%M:%S", time.gmtime(step.at))
        print(f"{step.version:4d}  {step.how:<8}{when}  {step.name}")
    pending = [step for step in steps if step.how == "pending"]
    print(f"latest known version: {LATEST}; pending: {len(pending)}")
    return 1 if pending else 0


async def _db_migrate(args: argparse.Namespace) -> int:
    driver = await open_driver(args.database_url, args.data_dir / "tandem.sqlite3")
    store = await SqlTicketStore.create(driver)
    try:
        run = store.migration
        assert run is not None
        print(f"schema version {run.before} -> {run.after}")
        if run.baseline:
            print(f"recorded as done (made before numbered migrations): {list(run.baseline)}")
        print(f"applied: {list(run.applied) or 'nothing, up to date'}")
        if run.unknown:
            print(f"versions this build does not know: {list(run.unknown)}")
    finally:
        await store.close()
    return 0
