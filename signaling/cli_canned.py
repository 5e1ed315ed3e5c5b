"""``tandem canned add|list|remove``: a site's canned replies (``/shortcut`` in the console).

A reply's variables must be known ones (``{customer.name}``, ``{agent.name}``, ``{ticket.id}``
...): a text naming another is refused with the list of known ones.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from signaling.cli_routing import find_site
from signaling.desk import canned
from signaling.store import open_store


def add_parsers(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    replies = commands.add_parser("canned", help="a site's canned replies").add_subparsers(
        dest="action", required=True
    )
    add = replies.add_parser("add", help="add a reply, or replace the one with that shortcut")
    add.add_argument("site", help="the site's name, id or public key")
    add.add_argument("shortcut", help="typed after / in the composer, e.g. refund")
    add.add_argument(
        "text", help="the reply; may use " + ", ".join("{" + v + "}" for v in canned.VARIABLES)
    )
    listing = replies.add_parser("list", help="list a site's replies")
    listing.add_argument("site")
    remove = replies.add_parser("remove", help="remove a reply")
    remove.add_argument("site")
    remove.add_argument("shortcut")
    for parser in (add, listing, remove):
        common(parser)


async def run(args: argparse.Namespace, data_dir: Path) -> int:
    store = await open_store(args.database_url, data_dir / "tandem.sqlite3")
    try:
        site = await find_site(store, args.site)
        if args.action == "add":
            shortcut = args.shortcut.removeprefix("/")
            await canned.put(store, site.id, shortcut, args.text, "cli")
            print(f"/{shortcut} added to {site.name}")
        elif args.action == "remove":
            if not await store.remove_canned(site.id, args.shortcut.removeprefix("/")):
                raise canned.CannedError(f"{site.name} has no reply /{args.shortcut}")
            print(f"/{args.shortcut.removeprefix('/')} removed from {site.name}")
        else:
            for reply in await store.canned(site.id):
                print(f"/{reply.shortcut}  {reply.text}")
    finally:
        await store.close()
    return 0
