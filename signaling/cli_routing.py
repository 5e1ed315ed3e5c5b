"""``tandem queue``, ``tandem route`` and ``tandem site list|hours|max-waiting``: a site's queues,
routing rules, business hours and queue length limit, kept in the site's settings.

A running server reads a site's settings again within its record cache's lifetime (a minute),
so a change made here applies to new tickets shortly after, without a restart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signaling.routing import RoutingConfigError
from signaling.routing import site_config as config
from signaling.store import SiteRecord, TicketStore, open_store

Change = Callable[[dict[str, Any]], dict[str, Any]]


def add_parsers(
    commands: Any, site: Any, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The routing subcommands, under ``tandem`` (``commands``) and ``tandem site`` (``site``)."""
    queue = commands.add_parser("queue", help="a site's queues").add_subparsers(
        dest="action", required=True
    )
    queue_add = queue.add_parser("add", help="add a queue, or change one with the same id")
    queue_add.add_argument("site", help="the site's name, id or public key")
    queue_add.add_argument("id")
    queue_add.add_argument("--name", default=None)
    queue_add.add_argument("--skills", default="", help="skills an agent needs, comma-separated")
    queue_add.add_argument("--priority", type=int, default=0, help="-5..10, higher served first")
    queue_remove = queue.add_parser("remove", help="remove a queue no rule sends tickets to")
    queue_remove.add_argument("site")
    queue_remove.add_argument("id")
    queue_default = queue.add_parser("default", help="the queue tickets no rule matches go to")
    queue_default.add_argument("site")
    queue_default.add_argument("id")
    for parser in (queue_add, queue_remove, queue_default):
        common(parser)

    route = commands.add_parser("route", help="a site's routing rules").add_subparsers(
        dest="action", required=True
    )
    route_add = route.add_parser(
        "add", help="append a rule: tickets matching every condition go to --queue"
    )
    route_add.add_argument("site")
    route_add.add_argument("--queue", required=True)
    route_add.add_argument("--url", default=None, help="a page URL pattern such as '*/checkout*'")
    route_add.add_argument(
        "--app", action="append", default=[], help="KEY=VALUE of the host app's fields (repeatable)"
    )
    verified = route_add.add_mutually_exclusive_group()
    verified.add_argument("--verified", dest="verified", action="store_true", default=None)
    verified.add_argument("--unverified", dest="verified", action="store_false")
    route_remove = route.add_parser("remove", help="remove the rule numbered N (see site list)")
    route_remove.add_argument("site")
    route_remove.add_argument("number", type=int)
    for parser in (route_add, route_remove):
        common(parser)

    common(site.add_parser("list", help="list sites with their queues, rules and hours"))
    hours = site.add_parser(
        "hours", help="business hours: outside them the widget says the team is away"
    )
    hours.add_argument("site")
    hours.add_argument("spans", nargs="*", help="e.g. 'mon-fri 09:00-17:00' 'sat 10:00-14:00'")
    hours.add_argument("--time-zone", default="UTC", help="an IANA zone, e.g. Europe/Paris")
    hours.add_argument("--always", action="store_true", help="remove the hours: always open")
    max_waiting = site.add_parser(
        "max-waiting", help="a queue with more waiting than this is full (0: no limit)"
    )
    max_waiting.add_argument("site")
    max_waiting.add_argument("limit", type=int)
    for parser in (hours, max_waiting):
        common(parser)


def change_for(args: argparse.Namespace) -> Change:
    """What the command does to the site's settings (checked: a bad one raises)."""
    if args.command == "queue":
        if args.action == "add":
            skills = [s.strip() for s in args.skills.split(",") if s.strip()]
            return lambda s: config.with_queue(s, args.id, skills, args.priority, args.name)
        if args.action == "remove":
            return lambda s: config.without_queue(s, args.id)
        return lambda s: config.with_default(s, args.id)
    if args.command == "route":
        if args.action == "remove":
            return lambda s: config.without_rule(s, args.number)
        app = {}
        for pair in args.app:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise RoutingConfigError(f"--app {pair!r}: write it KEY=VALUE")
            app[key] = value
        return lambda s: config.with_rule(s, args.queue, args.url, app, args.verified)
    if args.action == "hours":
        if args.always:
            return lambda s: config.with_hours(s, None)
        hours = config.parse_hours(args.time_zone, args.spans)
        return lambda s: config.with_hours(s, hours)
    limit = args.limit if args.limit > 0 else None
    return lambda s: config.with_max_waiting(s, limit)


async def find_site(store: TicketStore, name: str) -> SiteRecord:
    sites = [s for s in await store.sites() if name in (s.id, s.name, s.public_key)]
    if len(sites) != 1:
        raise RoutingConfigError(
            f"no site {name!r}" if not sites else f"several sites are named {name!r}: use its id"
        )
    return sites[0]


async def run(args: argparse.Namespace, data_dir: Path) -> int:
    store = await open_store(args.database_url, data_dir / "tandem.sqlite3")
    try:
        if args.command == "site" and args.action == "list":
            for site in await store.sites():
                print(f"{site.name}  id {site.id}  key {site.public_key}")
                print(f"  origins: {', '.join(site.origins)}")
                for line in config.describe(site.settings):
                    print(f"  {line}")
            return 0
        change = change_for(args)
        site = await find_site(store, args.site)
        settings = change(dict(site.settings))
        await store.set_site_settings(site.id, settings)
    finally:
        await store.close()
    for line in config.describe(settings):
        print(line)
    return 0
