"""The co-browse bench's agents, in a process of their own (``bench/cobrowse.py`` drives it).

The customer streams from the bench's main process and the agents read in this one, as they do
in the world: a customer's browser and an agent's console are different machines. In one
process, the customer building a page snapshot (what the snippet does when the server asks for
one) held up the agents' reading of a batch already delivered, and that was the bench's own
time counted as the server's latency. Both the Tandem run and the bare relay's run read here,
the same way.

Commands come over a pipe (``bench._clients.Pool`` with ``watcher_main``), one reply each:

* ``connect``: ``{"kind": "tandem", "url", "ticket", "tokens"}`` (agent 0 accepts the ticket,
  the others join it, agent 0 asks to co-browse) or ``{"kind": "relay", "url", "agents"}``;
* ``start``: forget what was read so far and start counting (and this process's CPU);
* ``collect``: ``{"sent"}``: wait (up to ``wait`` seconds) until every agent has read ``sent``
  incremental events; reply their counts, every latency and the bytes read;
* ``close``: close the sockets.

Latency is wall-clock (``time.time``, one clock for both processes): the moment an agent read an
event minus the timestamp the customer gave it as it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench._clients import serve_commands
from bench._common import die_with_parent
from tests.security.raw import raw_socket

Reply = dict[str, Any]


class Watchers:
    """The agents' sockets and what they read."""

    def __init__(self) -> None:
        self._sockets = contextlib.AsyncExitStack()
        self._readers: list[asyncio.Task[None]] = []
        self.counts: list[int] = []
        self.latencies: list[float] = []
        self.bytes_down = 0
        self._cpu0 = 0.0

    async def run(self, cmd: dict[str, Any]) -> Reply:
        op = cmd["op"]
        if op == "connect":
            return await self.connect(cmd)
        if op == "start":
            self.latencies, self.bytes_down = [], 0
            self.counts = [0] * len(self.counts)
            self._cpu0 = time.process_time()
            # No collection while the stream is read (``collect`` turns the collector on
            # again): a pause here was counted as the server's latency, for either server.
            gc.disable()
            return {}
        if op == "collect":
            gc.enable()
            return await self.collect(cmd)
        if op == "close":
            await self.close()
            return {}
        raise ValueError(f"unknown command {op!r}")

    async def connect(self, cmd: dict[str, Any]) -> Reply:
        await self.close()
        if cmd["kind"] == "tandem":
            tokens: list[str] = cmd["tokens"]
            self.counts = [0] * len(tokens)
            for j, token in enumerate(tokens):
                client = await self._sockets.enter_async_context(
                    raw_socket(cmd["url"], {"v": 1, "role": "agent", "token": token})
                )
                event = "session.accept" if j == 0 else "session.join"
                ack = await client.call(event, {"ticketId": cmd["ticket"]})
                if not ack.get("ok"):
                    raise RuntimeError(f"{event}: {ack}")
                client.on_event = self._tandem_listener(j)
                if j == 0:
                    ack = await client.call("cobrowse.request", {"ticketId": cmd["ticket"]})
                    if not ack.get("ok"):
                        raise RuntimeError(f"cobrowse.request: {ack}")
        else:
            agents = int(cmd["agents"])
            self.counts = [0] * agents
            http = await self._sockets.enter_async_context(aiohttp.ClientSession())
            for j in range(agents):
                sock = await http.ws_connect(f"{cmd['url']}/agent")
                self._sockets.push_async_callback(sock.close)
                self._readers.append(asyncio.ensure_future(self._relay_reader(j, sock)))
        return {}

    def _tandem_listener(self, j: int) -> Any:
        def got(frame: str) -> None:
            name, payload = json.loads(frame[2:])
            if name != "cobrowse.events":
                return
            # Timed once the events are read, as the relay's agents are.
            now = time.time() * 1000
            self.bytes_down += len(frame)
            for event in payload["events"]:
                if event["type"] == 3:
                    self.counts[j] += 1
                    self.latencies.append(now - event["timestamp"])

        return got

    async def _relay_reader(self, j: int, sock: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in sock:
            self.bytes_down += len(msg.data)
            # Timed once the events are read, as Tandem's agents are (decoded).
            events = json.loads(json.loads(msg.data)["data"])
            now = time.time() * 1000
            for event in events:
                self.counts[j] += 1
                self.latencies.append(now - event["timestamp"])

    async def collect(self, cmd: dict[str, Any]) -> Reply:
        cpu = time.process_time() - self._cpu0
        sent = int(cmd["sent"])
        deadline = time.monotonic() + float(cmd.get("wait", 10))
        while self.counts and min(self.counts) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return {
            "counts": list(self.counts),
            "latencies": self.latencies,
            "bytes_down": self.bytes_down,
            "cpu": cpu,
        }

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []
        with contextlib.suppress(Exception):
            await self._sockets.aclose()
        self._sockets = contextlib.AsyncExitStack()


def watcher_main(conn: Connection, index: int) -> None:
    """The process: commands from the pipe, on its own event loop."""
    die_with_parent()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    watchers = Watchers()
    try:
        # Collected before answering, not after: the stream starts on the answer to ``start``,
        # and a collection then held up the first batch's reading by 40 ms.
        await serve_commands(conn, watchers.run, before_reply=gc.collect)
    finally:
        await watchers.close()
