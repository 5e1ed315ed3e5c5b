#!/usr/bin/env python
"""The bench's transport floor: a bare aiohttp websocket relay between the two ends of a pair.

``GET /ws?pair=<n>&role=customer|agent``: every text frame one end sends is forwarded as is to
the other end of the same pair (dropped while the other end is not connected). No socket.io,
no acks, no JSON parsing: what a chat round trip costs in aiohttp's websocket alone.

Usage: ``python bench/floors/ws_relay.py PORT [--uvloop]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import _accel  # noqa: E402

Pairs = dict[str, dict[str, web.WebSocketResponse]]
pairs_key = web.AppKey("pairs", dict)


async def relay(request: web.Request) -> web.WebSocketResponse:
    pair = request.query.get("pair", "")
    role = request.query.get("role", "")
    other_role = {"customer": "agent", "agent": "customer"}.get(role)
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    if not pair or other_role is None:
        await sock.close(message=b"pair and role required")
        return sock
    pairs: Pairs = request.app[pairs_key]
    ends = pairs.setdefault(pair, {})
    ends[role] = sock
    try:
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                other = ends.get(other_role)
                if other is not None and not other.closed:
                    await other.send_str(msg.data)
    finally:
        if ends.get(role) is sock:
            del ends[role]
        if not ends:
            pairs.pop(pair, None)
    return sock


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--orjson", action="store_true", help="accepted and ignored (no JSON)")
    args = parser.parse_args()
    _accel.apply(args.uvloop, False)
    app = web.Application()
    app[pairs_key] = {}
    app.router.add_get("/ws", relay)
    app.router.add_get("/healthz", healthz)
    web.run_app(
        app, host="127.0.0.1", port=args.port, print=None, access_log=None, shutdown_timeout=1
    )


if __name__ == "__main__":
    main()
