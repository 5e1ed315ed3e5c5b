#!/usr/bin/env python
"""Load bench for Tandem's signaling server, beside a bare aiohttp websocket echo floor.

For each ``--pairs`` count N it runs, each against a fresh server process on 127.0.0.1:

* **tandem**: N customer sockets and ``--agents`` agent sockets (python-socketio
  ``AsyncClient``, websocket transport). Every customer sends ``help.request``; the agent the
  customer is assigned to (customer i -> agent i mod A, recognised by the ``app.bench`` field of
  the ticket's context) sends ``session.accept`` as soon as it sees the ticket's ``queue.added``.
  *Pairing latency* is customer ``help.request`` sent -> customer receives ``session.accepted``.
  When every pair is paired, every customer does ``--rounds`` chat round trips: customer
  ``chat.send`` -> agent receives ``chat.message`` -> agent replies ``chat.send`` -> customer
  receives the reply's ``chat.message``. *events/s* counts every socket.io event the clients sent
  (emits) and received (server events and acks) during that chat phase, divided by its length.
* **ws echo (floor)**: N aiohttp websocket clients against a bare aiohttp echo server, each
  doing ``--rounds`` round trips of a JSON message about the size of a ``chat.message`` event.
  msgs/s counts messages sent + received. One echo round trip crosses the server once; a Tandem
  chat round trip crosses it twice (customer -> agent -> customer), so 2x the floor is parity.

*server RSS* is the server process's peak resident set (``VmHWM`` in /proc/PID/status); each
scenario gets its own process so the peaks do not mix.

Set-up choices (printed in the notes):

* the server is started by a small launcher (``python -c``) that builds
  ``Settings(rate_per_second=...)`` itself, because one agent socket serving 20 sessions sends
  far more than the default 20 events/s per socket; the default limit would refuse most events;
* agents are few (default 50; each socket accepts many tickets) because every agent is a login,
  and login is an scrypt check on the server (tens of ms each); the agents are written to the
  database with one precomputed password hash so the set-up does not hash 50 times;
* connections are opened in batches (``--batch``) so connect storms do not count in the figures;
  all customers then ask for help at the same moment, so the pairing figures include the queue
  burst (N tickets queued at once, fanned out to every agent).

The clients all run in this one process (one event loop): on a small machine this process can
be the bottleneck, so its CPU use (and the server's) during the chat phase is printed too.

Usage::

    .venv/bin/python bench/signaling.py              # 100 and 1,000 pairs, 10 round trips
    .venv/bin/python bench/signaling.py --quick      # 50 pairs, 3 round trips
    .venv/bin/python bench/signaling.py --pairs 200 --rounds 5 --agents 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

REPO = Path(__file__).resolve().parent.parent
# This file is itself named signaling.py: keep its folder off the path so ``import signaling``
# finds the server package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    ServerProcess,
    free_port,
    percentile,
    proc_cpu_seconds,
    stop_all_servers,
)

HOST = "127.0.0.1"
ORIGIN = "https://shop.bench.example"
"""The site's allowed origin; customers send it as their ``Origin`` header (no request goes
there: it is only a string the server compares)."""
SITE_KEY = "pk_bench"
PASSWORD = "bench-password-1"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

CONNECT_TIMEOUT = 60.0
"""Seconds for one batch of connections."""
PAIR_TIMEOUT = 120.0
"""Seconds for the whole pairing phase."""
ROUND_TIMEOUT = 30.0
"""Seconds for one chat (or echo) round trip."""
PHASE_TIMEOUT = 180.0
"""Seconds for the whole chat (or echo) phase."""
"""Seconds for a server process to answer its health check."""

# The Tandem server as the bench runs it: the real app factory, with a socket rate limit high
# enough for agents that serve many sessions at once. argv: data_dir port rate [profile_out]
TANDEM_LAUNCHER = r"""
import logging, sys
from pathlib import Path
from aiohttp import web
from signaling.app import create_app
from signaling.settings import Settings

data_dir, port, rate = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
profile_out = sys.argv[4] if len(sys.argv) > 4 else ""
logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s %(message)s")
settings = Settings(
    host="127.0.0.1", port=port, data_dir=data_dir, rate_per_second=rate, log_level="WARNING"
)

def dump_tasks():
    # kill -USR1 <pid>: what every asyncio task is waiting in, counted (a stall diagnostic).
    import asyncio, collections
    counts = collections.Counter()
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=30)
        counts[" > ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)] += 1
    for where, n in counts.most_common(15):
        print(f"TASKS {n:6d} {where}", file=sys.stderr, flush=True)

async def on_startup(app):
    import asyncio, signal
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)

def serve():
    app = create_app(settings)
    app.on_startup.append(on_startup)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None,
        shutdown_timeout=3, handle_signals=True,
    )

if profile_out:
    import cProfile
    cProfile.run("serve()", profile_out)
else:
    serve()
"""

# The floor: a bare aiohttp websocket server that sends every text frame back. argv: port
ECHO_LAUNCHER = r"""
import sys
from aiohttp import WSMsgType, web

async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            await sock.send_str(msg.data)
    return sock

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/ws", ws)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            shutdown_timeout=1)
"""


# --------------------------------------------------------------------------- small helpers


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process, empty once it is gone."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def cpu_share(cpu_seconds: float, wall_seconds: float) -> str:
    """CPU use as a share of one core; phases shorter than 0.5 s are below /proc's resolution."""
    if wall_seconds < 0.5:
        return "n/a (phase < 0.5 s)"
    return f"{cpu_seconds / wall_seconds:.0%}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def gather_bounded(coros: Iterable[Awaitable[Any]], timeout: float, what: str) -> list[Any]:
    """Run the coroutines concurrently; cancel the rest and fail after ``timeout`` seconds.

    Every result is retrieved; the first exception (if any) is raised after all have finished.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    failures = [t.exception() for t in done if t.exception() is not None]
    if pending:
        raise TimeoutError(f"{what}: {len(pending)} of {len(tasks)} unfinished after {timeout} s")
    if failures:
        raise failures[0]  # type: ignore[misc]
    return [task.result() for task in tasks]


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    scenario: str
    pairs: int
    pair_latencies: list[float] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    events: int = 0
    phase_seconds: float = 0.0
    rss_peak_kib: int | None = None
    rss_idle_kib: int | None = None
    notes: list[str] = field(default_factory=list)
    unpaired: int = 0
    """Customers with no ``session.accepted`` (refused or timed out)."""
    lost_rtts: int = 0
    """Round trips that should have run (for the paired) and did not complete."""

    @property
    def failed(self) -> str:
        if not self.unpaired and not self.lost_rtts:
            return "0"
        parts = [f"{self.unpaired} pairs"] if self.unpaired else []
        return ", ".join(parts + ([f"{self.lost_rtts} rtts"] if self.lost_rtts else []))

    @property
    def rate(self) -> float | None:
        return self.events / self.phase_seconds if self.phase_seconds > 0 else None


@dataclass
class Counters:
    sent: int = 0
    received: int = 0
    closing: bool = False
    """Set before the bench disconnects its clients (drops after that are not counted)."""
    foreign_timeline: int = 0
    """``ticket.timeline`` events customers received about tickets not their own."""
    by_event: dict[str, int] = field(default_factory=dict)
    """Server events received, by name (acks not included)."""
    errors: dict[str, int] = field(default_factory=dict)

    def got(self, event: str) -> None:
        self.received += 1
        self.by_event[event] = self.by_event.get(event, 0) + 1

    def reset(self) -> None:
        self.sent = self.received = 0
        self.by_event = {}

    def top_events(self, n: int = 6) -> str:
        ranked = sorted(self.by_event.items(), key=lambda item: -item[1])[:n]
        return ", ".join(f"{name} {count}" for name, count in ranked)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


# --------------------------------------------------------------------------- tandem clients


def _error_of(ack: Any) -> str | None:
    """None for an ok ack, else ``code`` of the refusal."""
    if isinstance(ack, dict) and ack.get("ok") is True:
        return None
    if isinstance(ack, dict) and isinstance(ack.get("error"), dict):
        return str(ack["error"].get("code"))
    return "bad-ack"


class Customer:
    def __init__(self, index: int, counters: Counters, text: str) -> None:
        self.index = index
        self.counters = counters
        self.text = text
        self.sio = socketio.AsyncClient(reconnection=False, request_timeout=CONNECT_TIMEOUT)
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)
        loop = asyncio.get_running_loop()
        self.accepted: asyncio.Future[float] = loop.create_future()
        """When ``session.accepted`` arrived; fails when ``help.request`` was refused."""
        self.ticket: asyncio.Future[str | None] = loop.create_future()
        """The ticket id from the ``help.request`` ack (None when it was refused)."""
        self.refused: str | None = None
        self._early_timeline: list[str] = []
        """Ticket ids of ``ticket.timeline`` events that came before the help.request ack."""
        self.replies: dict[str, asyncio.Future[float]] = {}
        self.ticket_id: str | None = None

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url,
            auth={"v": 1, "role": "customer", "site": SITE_KEY},
            headers={"Origin": ORIGIN},
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.counters.got(event)
        if event == "ticket.timeline" and isinstance(data, dict):
            # Meant for the agents in a session; a customer should at most see its own.
            ticket_id = str(data.get("ticketId"))
            if self.ticket_id is None and not self.ticket.done():
                self._early_timeline.append(ticket_id)
            elif ticket_id != self.ticket_id:
                self.counters.foreign_timeline += 1
        elif event == "session.accepted":
            if not self.accepted.done():
                self.accepted.set_result(time.perf_counter())
        elif event == "chat.message":
            message = data.get("message", {}) if isinstance(data, dict) else {}
            if message.get("from") == "agent":
                waiter = self.replies.get(message.get("clientMsgId", ""))
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())

    def _on_disconnect(self, reason: Any = None) -> None:
        if self.counters.closing:
            return
        self.counters.error(f"customer socket dropped ({reason})")
        self.fail_pairing(f"socket dropped ({reason})")
        for reply_id in list(self.replies):
            self.fail_round(reply_id, f"socket dropped ({reason})")

    def _on_help_ack(self, ack: Any = None) -> None:
        self.counters.received += 1
        problem = _error_of(ack)
        if problem:
            self.counters.error(f"help.request:{problem}")
            self.refused = problem
            self.fail_pairing(f"help.request refused: {problem}")
            if not self.ticket.done():
                self.ticket.set_result(None)
            self.counters.foreign_timeline += len(self._early_timeline)
            return
        self.ticket_id = ack["ticket"]["id"]
        self.counters.foreign_timeline += sum(t != self.ticket_id for t in self._early_timeline)
        self._early_timeline.clear()
        if not self.ticket.done():
            self.ticket.set_result(self.ticket_id)

    def _on_chat_ack(self, msg_id: str, ack: Any = None) -> None:
        self.counters.received += 1
        problem = _error_of(ack)
        if problem:
            self.counters.error(f"customer chat.send:{problem}")
            self.fail_round(f"r{msg_id}", f"chat.send refused: {problem}")

    def fail_round(self, reply_id: str, why: str) -> None:
        waiter = self.replies.get(reply_id)
        if waiter is not None and not waiter.done():
            waiter.set_exception(RuntimeError(why))

    def fail_pairing(self, why: str) -> None:
        if not self.accepted.done():
            self.accepted.set_exception(RuntimeError(why))

    async def request_help(self, deadline: float) -> float:
        """help.request -> session.accepted, in seconds."""
        request = {
            "context": {
                "url": f"{ORIGIN}/products/sku-{self.index}",
                "title": f"Bench widget {self.index} - Bench shop",
                "userAgent": USER_AGENT,
                "language": "en-GB",
                "timeZone": "Europe/London",
                "viewport": {"width": 1280, "height": 800},
                "app": {
                    "product": {"id": f"sku-{self.index}", "name": "Bench widget"},
                    "bench": self.index,
                },
            }
        }
        start = time.perf_counter()
        self.counters.sent += 1
        await self.sio.emit("help.request", request, callback=self._on_help_ack)
        accepted_at = await asyncio.wait_for(self.accepted, max(0.1, deadline - time.monotonic()))
        # The ack (with the ticket id) may come after session.accepted.
        await asyncio.wait_for(self.ticket, max(0.1, deadline - time.monotonic()))
        return accepted_at - start

    async def chat(self, rounds: int) -> list[float]:
        rtts: list[float] = []
        for k in range(rounds):
            msg_id = f"q{self.index}-{k}"
            waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self.replies[f"r{msg_id}"] = waiter
            start = time.perf_counter()
            self.counters.sent += 1
            await self.sio.emit(
                "chat.send",
                {"clientMsgId": msg_id, "text": f"{self.text} (#{k})"},
                callback=lambda ack=None, m=msg_id: self._on_chat_ack(m, ack),
            )
            try:
                end = await asyncio.wait_for(waiter, ROUND_TIMEOUT)
            except TimeoutError:
                self.counters.error("chat round trip timed out")
                break
            except RuntimeError:
                break  # refused on the way (counted where it was refused)
            rtts.append(end - start)
        return rtts


class Agent:
    def __init__(self, index: int, token: str, counters: Counters, text: str) -> None:
        self.index = index
        self.token = token
        self.counters = counters
        self.text = text
        self.sio = socketio.AsyncClient(reconnection=False, request_timeout=CONNECT_TIMEOUT)
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)
        self.customers: dict[int, Customer] = {}
        """The customers this agent accepts, by bench index."""
        self.tickets: dict[str, Customer] = {}
        self.accepted: dict[int, asyncio.Future[str | None]] = {}
        """Per customer: the accept ack arrived (its error code, None when ok)."""

    def assign(self, customer: Customer) -> None:
        self.customers[customer.index] = customer
        self.accepted[customer.index] = asyncio.get_running_loop().create_future()

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url,
            auth={"v": 1, "role": "agent", "token": self.token},
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.counters.got(event)
        if not isinstance(data, dict):
            return
        if event == "queue.added":
            entry = data.get("entry", {})
            index = entry.get("context", {}).get("app", {}).get("bench")
            if index in self.customers:
                ticket_id = entry["ticketId"]
                self.tickets[ticket_id] = self.customers[index]
                self.counters.sent += 1
                await self.sio.emit(
                    "session.accept",
                    {"ticketId": ticket_id},
                    callback=lambda ack=None, i=index: self._on_accept_ack(i, ack),
                )
        elif event == "chat.message":
            message = data.get("message", {})
            customer = self.tickets.get(message.get("ticketId", ""))
            if message.get("from") == "customer" and customer is not None:
                reply_id = f"r{message.get('clientMsgId', '')}"
                self.counters.sent += 1
                await self.sio.emit(
                    "chat.send",
                    {
                        "ticketId": message["ticketId"],
                        "clientMsgId": reply_id,
                        "text": f"Re: {self.text}",
                    },
                    callback=lambda ack=None, c=customer, r=reply_id: self._on_chat_ack(c, r, ack),
                )

    def _on_disconnect(self, reason: Any = None) -> None:
        if self.counters.closing:
            return
        self.counters.error(f"agent socket dropped ({reason})")
        for customer in self.customers.values():
            customer.fail_pairing(f"agent's socket dropped ({reason})")
            for reply_id in list(customer.replies):
                customer.fail_round(reply_id, f"agent's socket dropped ({reason})")

    def _on_accept_ack(self, index: int, ack: Any) -> None:
        self.counters.received += 1
        problem = _error_of(ack)
        waiter = self.accepted[index]
        if problem:
            self.counters.error(f"session.accept:{problem}")
            self.customers[index].fail_pairing(f"session.accept refused: {problem}")
        if not waiter.done():
            waiter.set_result(problem)

    def _on_chat_ack(self, customer: Customer, reply_id: str, ack: Any = None) -> None:
        self.counters.received += 1
        problem = _error_of(ack)
        if problem:
            self.counters.error(f"agent chat.send:{problem}")
            customer.fail_round(reply_id, f"agent's chat.send refused: {problem}")


# --------------------------------------------------------------------------- tandem scenario


async def build_template(data_dir: Path, agents: int) -> None:
    """A data dir with the bench site and agents (copied for every scenario's server)."""
    from signaling import auth
    from signaling.accounts import add_site
    from signaling.store import AgentRecord, open_store

    store = await open_store(None, data_dir / "tandem.sqlite3")
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


async def login_all(base: str, agents: int) -> list[str]:
    tokens: list[str] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for j in range(agents):
            body = {"email": f"agent{j}@bench.tandem", "password": PASSWORD}
            async with http.post(f"{base}/api/auth/login", json=body) as response:
                payload = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"login of agent{j} failed: {response.status} {payload}")
                tokens.append(payload["token"])
    return tokens


async def connect_all(clients: Sequence[Any], url: str, batch: int, what: str) -> None:
    for group in chunks(clients, batch):
        await gather_bounded((c.connect(url) for c in group), CONNECT_TIMEOUT, f"connect {what}")


async def disconnect_all(clients: Sequence[Any]) -> None:
    async def one(client: Any) -> None:
        with contextlib.suppress(Exception):
            await client.sio.disconnect()

    with contextlib.suppress(Exception):
        await gather_bounded((one(c) for c in clients), 30, "disconnect")


async def run_tandem(
    pairs: int,
    agents: int,
    rounds: int,
    batch: int,
    rate: float,
    template: Path,
    work: Path,
    profile: Path | None,
) -> Result:
    agents = max(1, min(agents, pairs))
    result = Result("tandem", pairs)
    data_dir = work / f"tandem-{pairs}"
    shutil.copytree(template, data_dir)
    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    argv = [sys.executable, "-c", TANDEM_LAUNCHER, str(data_dir), str(port), str(rate)]
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        argv.append(str(profile.with_name(f"{profile.stem}-{pairs}{profile.suffix}").resolve()))
    server = ServerProcess(
        f"tandem server ({pairs} pairs)", argv, work / f"tandem-{pairs}.log", REPO
    )
    counters = Counters()
    text = "Hi, the checkout page says my card was declined but my bank shows a charge"
    customers: list[Customer] = []
    agent_clients: list[Agent] = []
    try:
        await server.wait_ready(f"{base}/healthz")
        t0 = time.perf_counter()
        tokens = await login_all(base, agents)
        login_seconds = time.perf_counter() - t0

        agent_clients = [Agent(j, tokens[j], counters, text) for j in range(agents)]
        customers = [Customer(i, counters, text) for i in range(pairs)]
        for customer in customers:
            agent_clients[customer.index % agents].assign(customer)
        cpu_server, cpu_client, t0 = (
            proc_cpu_seconds(server.pid),
            time.process_time(),
            time.perf_counter(),
        )
        await connect_all(agent_clients, base, batch, "agents")
        await connect_all(customers, base, batch, "customers")
        connect_seconds = time.perf_counter() - t0
        connect_cpu = (
            cpu_share(proc_cpu_seconds(server.pid) - cpu_server, connect_seconds),
            cpu_share(time.process_time() - cpu_client, connect_seconds),
        )
        await asyncio.sleep(0.5)
        result.rss_idle_kib = proc_status(server.pid).get("VmRSS")

        # Pairing: every customer asks at once; agents accept on queue.added.
        counters.reset()
        cpu_server, cpu_client, t0 = (
            proc_cpu_seconds(server.pid),
            time.process_time(),
            time.perf_counter(),
        )
        deadline = time.monotonic() + PAIR_TIMEOUT
        outcomes = await gather_bounded(
            (_pair(c, deadline) for c in customers), PAIR_TIMEOUT + 5, "pairing"
        )
        paired = [c for c, outcome in zip(customers, outcomes, strict=True) if outcome is not None]
        # The agents' accept acks of the paired customers (session.accepted came before them).
        waiters = [agent_clients[c.index % agents].accepted[c.index] for c in paired]
        await gather_bounded(
            (asyncio.wait_for(w, max(0.1, deadline - time.monotonic())) for w in waiters),
            PAIR_TIMEOUT + 5,
            "accept acks",
        )
        pair_seconds = time.perf_counter() - t0
        pair_cpu = (
            cpu_share(proc_cpu_seconds(server.pid) - cpu_server, pair_seconds),
            cpu_share(time.process_time() - cpu_client, pair_seconds),
        )
        result.pair_latencies = [o for o in outcomes if o is not None]
        pair_events = counters.sent + counters.received
        pair_top = counters.top_events()
        foreign = counters.foreign_timeline

        # Chat: every paired customer does its round trips, all at once.
        await asyncio.sleep(0.5)
        counters.reset()
        cpu_server, cpu_client, t0 = (
            proc_cpu_seconds(server.pid),
            time.process_time(),
            time.perf_counter(),
        )
        per_customer = await gather_bounded(
            (c.chat(rounds) for c in paired), PHASE_TIMEOUT, "chat phase"
        )
        result.phase_seconds = time.perf_counter() - t0
        chat_cpu = (
            cpu_share(proc_cpu_seconds(server.pid) - cpu_server, result.phase_seconds),
            cpu_share(time.process_time() - cpu_client, result.phase_seconds),
        )
        # Acks and the agents' copies of the last replies may still be in flight: let them land
        # (they belong to the phase's traffic) without stretching the phase.
        await asyncio.sleep(0.3)
        result.events = counters.sent + counters.received
        result.rtts = [rtt for rtts in per_customer for rtt in rtts]
        result.rss_peak_kib = proc_status(server.pid).get("VmHWM")

        failed_pairs = pairs - len(paired)
        expected_rtts = len(paired) * rounds
        result.unpaired = failed_pairs
        result.lost_rtts = expected_rtts - len(result.rtts)
        result.notes += [
            f"{agents} agents x {math.ceil(pairs / agents)} sessions each; socket rate limit "
            f"{rate:g}/s; login of {agents} agents {login_seconds:.1f} s; "
            f"connect {pairs + agents} sockets {connect_seconds:.1f} s (batches of {batch}; CPU "
            f"server {connect_cpu[0]} / clients {connect_cpu[1]})",
            f"pairing phase {pair_seconds:.1f} s, {pair_events} events (server events received: "
            f"{pair_top}); CPU server {pair_cpu[0]} / clients {pair_cpu[1]} of a core",
            f"chat phase {result.phase_seconds:.1f} s for {len(result.rtts)}/{expected_rtts} "
            f"round trips; CPU server {chat_cpu[0]} / clients {chat_cpu[1]} of a core",
            f"server RSS idle (connected) {mib(result.rss_idle_kib)} -> peak "
            f"{mib(result.rss_peak_kib)}",
        ]
        if foreign:
            result.notes.append(
                f"customers received {foreign} ticket.timeline events of OTHER customers' tickets "
                "during pairing (an emit to an empty room list goes to every socket)"
            )
        if failed_pairs:
            result.notes.append(
                f"{failed_pairs} customers not paired (refused, or no session.accepted within "
                f"{PAIR_TIMEOUT:.0f} s)"
            )
        if counters.errors:
            result.notes.append(
                "refused/failed: "
                + ", ".join(f"{k} x{v}" for k, v in sorted(counters.errors.items()))
            )
    finally:
        counters.closing = True
        await disconnect_all([*customers, *agent_clients])
        server.stop()
        records, exceptions = server.log_problems()
        if records or exceptions:
            result.notes.append(
                f"server log: {records} ERROR records; exceptions: "
                + "; ".join(f"{k} x{v}" for k, v in sorted(exceptions.items(), key=lambda i: -i[1]))
            )
    return result


async def _pair(customer: Customer, deadline: float) -> float | None:
    try:
        return await customer.request_help(deadline)
    except Exception as exc:
        customer.counters.error(f"pairing: {type(exc).__name__}")
        return None


# --------------------------------------------------------------------------- echo scenario


def echo_payload() -> str:
    """About the size and shape of a ``chat.message`` event."""
    return json.dumps(
        [
            "chat.message",
            {
                "type": "chat.message",
                "message": {
                    "id": 123456,
                    "ticketId": "tk_Q2hhdF9iZW5jaF90aWNrZXQ",
                    "from": "customer",
                    "author": "Customer",
                    "authorId": "c_YmVuY2hfY3VzdG9tZXI",
                    "text": "Hi, the checkout page says my card was declined but my bank shows a "
                    "charge (#3)",
                    "at": "2025-01-01T12:00:00.000Z",
                    "clientMsgId": "q123-3",
                },
            },
        ],
        separators=(",", ":"),
    )


async def run_echo(pairs: int, rounds: int, batch: int, work: Path) -> Result:
    result = Result("ws echo (floor)", pairs)
    port = free_port(HOST)
    base = f"http://{HOST}:{port}"
    server = ServerProcess(
        f"echo server ({pairs})",
        [sys.executable, "-c", ECHO_LAUNCHER, str(port)],
        work / f"echo-{pairs}.log",
        REPO,
    )
    payload = echo_payload()
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    errors = 0
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        await server.wait_ready(f"{base}/healthz")

        async def connect() -> None:
            sockets.append(
                await http.ws_connect(f"{base}/ws", timeout=aiohttp.ClientWSTimeout(ws_close=5))
            )

        t0 = time.perf_counter()
        for group in chunks(range(pairs), batch):
            await gather_bounded((connect() for _ in group), CONNECT_TIMEOUT, "connect echo")
        connect_seconds = time.perf_counter() - t0
        await asyncio.sleep(0.5)
        result.rss_idle_kib = proc_status(server.pid).get("VmRSS")

        async def client(sock: aiohttp.ClientWebSocketResponse) -> list[float]:
            nonlocal errors
            rtts = []
            for _ in range(rounds):
                start = time.perf_counter()
                await sock.send_str(payload)
                try:
                    msg = await sock.receive(timeout=ROUND_TIMEOUT)
                except TimeoutError:
                    errors += 1
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    errors += 1
                    break
                rtts.append(time.perf_counter() - start)
            return rtts

        cpu_server, cpu_client, t0 = (
            proc_cpu_seconds(server.pid),
            time.process_time(),
            time.perf_counter(),
        )
        per_client = await gather_bounded((client(s) for s in sockets), PHASE_TIMEOUT, "echo phase")
        result.phase_seconds = time.perf_counter() - t0
        cpu = (
            cpu_share(proc_cpu_seconds(server.pid) - cpu_server, result.phase_seconds),
            cpu_share(time.process_time() - cpu_client, result.phase_seconds),
        )
        result.rtts = [rtt for rtts in per_client for rtt in rtts]
        result.events = 2 * len(result.rtts)
        result.lost_rtts = pairs * rounds - len(result.rtts)
        result.rss_peak_kib = proc_status(server.pid).get("VmHWM")
        result.notes.append(
            f"connect {pairs} sockets {connect_seconds:.1f} s; echo phase "
            f"{result.phase_seconds:.2f} s for {len(result.rtts)}/{pairs * rounds} round trips of "
            f"{len(payload)} B; CPU server {cpu[0]} / clients {cpu[1]} of a core; "
            f"RSS idle {mib(result.rss_idle_kib)} -> peak {mib(result.rss_peak_kib)}"
        )
        if errors:
            result.notes.append(f"{errors} echo clients failed or timed out")
    finally:
        for sock in sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(), 5)
        await http.close()
        server.stop()
    return result


# --------------------------------------------------------------------------- main


def print_table(results: list[Result]) -> None:
    header = (
        f"{'scenario':<18} {'pairs':>6} {'pair p50':>10} {'pair p99':>10} {'rtt p50':>10} "
        f"{'rtt p99':>10} {'events/s':>9} {'server RSS':>11}  failed"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rate = "-" if r.rate is None else f"{r.rate:,.0f}"
        print(
            f"{r.scenario:<18} {r.pairs:>6} {ms(percentile(r.pair_latencies, 0.5)):>10} "
            f"{ms(percentile(r.pair_latencies, 0.99)):>10} {ms(percentile(r.rtts, 0.5)):>10} "
            f"{ms(percentile(r.rtts, 0.99)):>10} {rate:>9} {mib(r.rss_peak_kib):>11}  {r.failed}"
        )


async def main_async(args: argparse.Namespace) -> int:
    pair_counts = [int(p) for p in args.pairs.split(",") if p.strip()]
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    results: list[Result] = []
    started = time.perf_counter()
    load_before = loadavg()
    try:
        template = work / "template"
        await build_template(template, max(1, min(args.agents, max(pair_counts))))
        for pairs in pair_counts:
            print(f"... tandem, {pairs} pairs", file=sys.stderr, flush=True)
            results.append(
                await run_tandem(
                    pairs,
                    args.agents,
                    args.rounds,
                    args.batch,
                    args.rate,
                    template,
                    work,
                    args.profile_server,
                )
            )
            print(f"... ws echo, {pairs} clients", file=sys.stderr, flush=True)
            results.append(await run_echo(pairs, args.rounds, args.batch, work))
    finally:
        stop_all_servers()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"Tandem signaling bench: {args.rounds} chat round trips per pair, 127.0.0.1, "
        f"{os.cpu_count()} CPUs"
    )
    print_table(results)
    print()
    print("notes:")
    for r in results:
        for note in r.notes:
            print(f"  {r.scenario} {r.pairs}: {note}")
    print(
        "  events/s: tandem = socket.io events sent + received by all clients (emits, server "
        "events, acks) over the chat phase; echo = messages sent + received"
    )
    print(
        "  rtt: tandem = customer -> server -> agent -> server -> customer (two server passes); "
        "echo = client -> server -> client (one)"
    )
    print(
        f"  load average before {load_before}, after {loadavg()}; total "
        f"{time.perf_counter() - started:.0f} s"
        + (f"; server logs and data kept in {work}" if args.keep else "")
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="100,1000", help="comma-separated (default 100,1000)")
    parser.add_argument("--rounds", type=int, default=10, help="chat round trips per pair")
    parser.add_argument("--agents", type=int, default=50, help="agent sockets (at most --pairs)")
    parser.add_argument("--batch", type=int, default=50, help="connections opened at a time")
    parser.add_argument(
        "--rate", type=float, default=1e6, help="server socket rate limit, events/s per socket"
    )
    parser.add_argument("--quick", action="store_true", help="50 pairs, 3 round trips")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="PATH",
        help="run the Tandem server under cProfile, stats to PATH-<pairs> (slows it down)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.rounds = "50", 3

    # The client libraries log every dropped socket; the bench counts them instead.
    for name in ("engineio.client", "socketio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all_servers()


if __name__ == "__main__":
    sys.exit(main())
