#!/usr/bin/env python
"""Tandem as the bench runs it: the real ``create_app``, SQLite in a data dir, 127.0.0.1.

The only difference from ``tandem serve`` is some limits, lifted through ``Settings`` fields
(those this version has): per socket (``rate_per_second``, ``socket_bytes_per_second``,
``socket_burst_bytes``: one agent socket serving 20 sessions sends far more than the default 20
events/s) and per address (``max_customer_sockets_per_address``,
``max_open_tickets_per_address``: every bench customer comes from 127.0.0.1). Nothing of the
server is patched.

``--uvloop`` / ``--orjson`` switch the process's event loop and socket.io's JSON module (see
``bench/_accel.py``); ``--profile PATH`` runs the server under cProfile (slow).
``kill -USR1 <pid>`` prints what every asyncio task is waiting in (a stall diagnostic).

Usage: ``python bench/tandem_server.py DATA_DIR PORT [--rate R] [--uvloop] [--orjson]
[--routing push|pull] [--capacity N] [--offer-seconds S] [--wrap-up-seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
# This folder holds bench/signaling.py: keep it off the path so ``signaling`` is the server.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from bench import _accel  # noqa: E402
from signaling.app import create_app  # noqa: E402
from signaling.settings import Settings  # noqa: E402


def dump_tasks() -> None:
    counts: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=30)
        counts[" > ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)] += 1
    for where, n in counts.most_common(15):
        print(f"TASKS {n:6d} {where}", file=sys.stderr, flush=True)


async def on_startup(app: web.Application) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--rate", type=float, default=1e6, help="socket events/s per socket")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--orjson", action="store_true")
    parser.add_argument("--profile", default="", help="cProfile output path")
    parser.add_argument("--routing", choices=("push", "pull"), default="pull")
    parser.add_argument("--capacity", type=int, default=3, help="sessions per agent")
    parser.add_argument("--offer-seconds", type=float, default=20.0)
    parser.add_argument("--wrap-up-seconds", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    applied = _accel.apply(args.uvloop, args.orjson)
    if applied:
        print("tandem with " + ", ".join(applied), flush=True)
    # Limits lifted (those this version of Settings has): the bench's agents each carry many
    # sessions, and all its customers come from one address (127.0.0.1). Login throttles are
    # left alone (the bench's logins succeed).
    lifted: dict[str, float | int] = {
        "rate_per_second": args.rate,
        "socket_bytes_per_second": args.rate * 1024,
        "socket_burst_bytes": args.rate * 4096,
        "max_customer_sockets_per_address": 10_000_000,
        "max_open_tickets_per_address": 10_000_000,
        # The pairing scenario's agents each take many sessions by hand (pull, the default
        # here), as before routing; the push scenario passes ``--routing push`` with its
        # capacity and wrap-up.
        "routing": args.routing,
        "agent_capacity": args.capacity,
        "offer_seconds": args.offer_seconds,
        "wrap_up_seconds": args.wrap_up_seconds,
    }
    known = {f.name for f in dataclasses.fields(Settings)}
    settings = Settings(
        host="127.0.0.1",
        port=args.port,
        data_dir=args.data_dir,
        log_level="WARNING",
        **{name: value for name, value in lifted.items() if name in known},
    )
    print("limits lifted: " + ", ".join(n for n in lifted if n in known), flush=True)
    print(f"serving the signaling package in {Path(create_app.__code__.co_filename).parent}")

    def serve() -> None:
        app = create_app(settings)
        app.on_startup.append(on_startup)
        web.run_app(
            app,
            host="127.0.0.1",
            port=args.port,
            print=None,
            access_log=None,
            shutdown_timeout=3,
            handle_signals=True,
        )

    if args.profile:
        import cProfile

        cProfile.runctx("serve()", globals(), {"serve": serve}, args.profile)
    else:
        serve()


if __name__ == "__main__":
    main()
