#!/usr/bin/env python
"""Co-browse bench: one customer's rrweb stream through the real Tandem server to 1 and 4 agents,
beside a bare websocket relay of the same bytes.

For each rate (events/s) and agent count it starts a fresh Tandem server process (the real
``create_app``, SQLite in a temp dir, 127.0.0.1) and runs:

* **tandem**: a customer socket (socket.io spoken by hand) asks for help, agent 0 accepts,
  agents 1..3 (supervisors) join, agent 0 sends ``cobrowse.request``, the customer accepts and
  sends Meta + FullSnapshot, then streams ``cobrowse.events`` in 50 ms batches (what the snippet
  does) for ``--seconds``, answering ``cobrowse.snapshot_needed`` as the snippet does (a
  checkpoint). Every event's ``timestamp`` is the wall-clock time it was sent, so each agent
  computes end-to-end latency (customer emit -> agent receives the sanitized event) for every
  event it gets. The agents read in a process of their own (``bench/_cobrowse_watchers.py``),
  as they do in the world, for both paths: the customer's work (building a snapshot) is not
  the agents' delay.
* **ws relay (floor)**: an aiohttp server that forwards every text frame from the customer's
  websocket to every agent's websocket; the same batches (the same ``data`` strings) go through
  it, timed the same way. Tandem does far more per event (validate, sanitize, record, mirror,
  socket.io framing): the floor shows what the transport alone costs.

Columns: latency p50/p99 over every event each agent received; server CPU per 1,000 events
(user+sys of the server process over the phase, divided by events sent); bytes on the wire (the
socket.io / websocket payloads sent by the customer and received by all agents; framing headers
not counted); lost (events sent but not received by an agent).

Then, against one server: the full snapshot of a 10,000-node page (taken by rrweb itself in
headless Chromium when Playwright and Chromium are there, else synthesized): its size, rrweb's
time to take it, and the time through the server to an agent; and a late joiner after ten
minutes of events (600 s x ``--late-rate`` events, sent as fast as the server takes them, the
customer answering ``cobrowse.snapshot_needed`` like the snippet): the time for ``cobrowse.join``
to answer with the current page and what it holds.

The server runs with the socket and co-browse rate limits raised (a small launcher), because the
default co-browse limit (500 events/s per session, bursts of 5,000) would refuse the 1,000 and
5,000 events/s runs: that limit is a policy, not a capacity.

Usage::

    .venv/bin/python bench/cobrowse.py          # 100/1,000/5,000 ev/s x 1/4 agents, 8 s each
    .venv/bin/python bench/cobrowse.py --quick  # 100/1,000 ev/s, 3 s, 2,000 nodes, 1 min late
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from bench._clients import Pool  # noqa: E402
from bench._cobrowse_watchers import watcher_main  # noqa: E402
from bench._common import (  # noqa: E402
    ServerProcess,
    free_port,
    percentile,
    proc_cpu_precise,
    stop_all_servers,
)
from tests.security.raw import RawSocket, raw_socket  # noqa: E402

HOST = "127.0.0.1"
ORIGIN = "https://shop.bench.example"
SITE_KEY = "pk_bench_cobrowse"
PASSWORD = "bench-password-1"
RECORDER = "rrweb@2.2.2"
BATCH_SECONDS = 0.05
PART_CHARS = 890_000
RRWEB_UMD = REPO / "web" / "node_modules" / "rrweb" / "dist" / "rrweb.umd.min.cjs"
CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")

TANDEM_LAUNCHER = r"""
import logging, sys, time
from pathlib import Path
from aiohttp import web
from signaling.app import create_app
from signaling.settings import Settings

data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s %(message)s")
settings = Settings(host="127.0.0.1", port=port, data_dir=data_dir, rate_per_second=1e6,
                    socket_bytes_per_second=1e11, socket_burst_bytes=1e12,
                    cobrowse_events_per_second=1e7, cobrowse_bytes_per_second=1e11,
                    log_level="WARNING")
web.run_app(create_app(settings), host="127.0.0.1", port=port, print=None, access_log=None,
            shutdown_timeout=3, handle_signals=True)
"""

RELAY_LAUNCHER = r"""
import sys
from aiohttp import WSMsgType, web

agents = set()

async def customer(request):
    sock = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            for agent in list(agents):
                await agent.send_str(msg.data)
    return sock

async def agent(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    agents.add(sock)
    try:
        async for _ in sock:
            pass
    finally:
        agents.discard(sock)
    return sock

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/customer", customer)
app.router.add_get("/agent", agent)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            shutdown_timeout=1)
"""


# --------------------------------------------------------------------------- helpers


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# --------------------------------------------------------------------------- the event stream


class Page:
    """A synthetic page (rrweb's serialized node shapes) and realistic incremental events on it:
    mouse moves, scrolls, clicks, typing, text and attribute mutations, added/removed nodes."""

    def __init__(self, nodes: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.next_id = 1
        self.texts: list[int] = []
        self.elements: list[int] = []
        self.inputs: list[int] = []
        self.added: list[int] = []
        body_children = []
        remaining = nodes
        while remaining > 0:
            section, used = self._section(min(remaining, 40))
            body_children.append(section)
            remaining -= used
        self.root = {
            "type": 0, "id": self._id(), "childNodes": [
                {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": self._id()},
                {"type": 2, "tagName": "html", "attributes": {"lang": "en"}, "id": self._id(),
                 "childNodes": [
                     {"type": 2, "tagName": "head", "attributes": {}, "id": self._id(),
                      "childNodes": [{"type": 2, "tagName": "style", "id": self._id(),
                                      "attributes": {"_cssText": "body{font:14px sans-serif}"
                                                     ".card{padding:8px;border:1px solid #ddd}"},
                                      "childNodes": []}]},
                     {"type": 2, "tagName": "body", "attributes": {}, "id": self._id(),
                      "childNodes": body_children},
                 ]},
            ],
        }  # fmt: skip

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _section(self, budget: int) -> tuple[dict[str, Any], int]:
        sid = self._id()
        kids: list[dict[str, Any]] = []
        used = 1
        while used + 2 <= budget:
            kind = self.rng.random()
            eid, tid = self._id(), self._id()
            if kind < 0.15:
                self.inputs.append(eid)
                kids.append(
                    {
                        "type": 2,
                        "tagName": "input",
                        "id": eid,
                        "childNodes": [],
                        "attributes": {"type": "text", "name": f"f{eid}", "value": ""},
                    }
                )
                used += 1
                continue
            tag = self.rng.choice(["p", "span", "a", "li", "h3", "button"])
            attrs: dict[str, Any] = {"class": f"c{self.rng.randrange(30)}"}
            if tag == "a":
                attrs["href"] = f"https://shop.bench.example/p/{eid}"
            text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randrange(2, 9)))
            kids.append(
                {
                    "type": 2,
                    "tagName": tag,
                    "attributes": attrs,
                    "id": eid,
                    "childNodes": [{"type": 3, "textContent": text, "id": tid}],
                }
            )
            self.elements.append(eid)
            self.texts.append(tid)
            used += 2
        return {
            "type": 2,
            "tagName": "div",
            "attributes": {"class": "card"},
            "id": sid,
            "childNodes": kids,
        }, used

    def snapshot(self, ts: float) -> list[dict[str, Any]]:
        return [
            {"type": 4, "data": {"href": "https://shop.bench.example/", "width": 1280,
                                 "height": 800}, "timestamp": ts},
            {"type": 2, "data": {"node": self.root, "initialOffset": {"top": 0, "left": 0}},
             "timestamp": ts},
        ]  # fmt: skip

    def event(self, ts: float) -> dict[str, Any]:
        r = self.rng.random()
        x, y = self.rng.randrange(1280), self.rng.randrange(800)
        if r < 0.45:
            data: dict[str, Any] = {
                "source": 1,
                "positions": [
                    {"x": x, "y": y, "id": self.rng.choice(self.elements), "timeOffset": -20}
                ],
            }
        elif r < 0.60:
            data = {"source": 3, "id": 1, "x": 0, "y": self.rng.randrange(4000)}
        elif r < 0.65:
            data = {
                "source": 2,
                "type": 2,
                "id": self.rng.choice(self.elements),
                "x": x,
                "y": y,
                "pointerType": 0,
            }
        elif r < 0.78:
            data = {
                "source": 5,
                "text": "*" * self.rng.randrange(1, 20),
                "isChecked": False,
                "id": self.rng.choice(self.inputs),
            }
        elif r < 0.90:
            data = {
                "source": 0,
                "texts": [
                    {
                        "id": self.rng.choice(self.texts),
                        "value": " ".join(self.rng.sample(WORDS, 4)),
                    }
                ],
                "attributes": [],
                "removes": [],
                "adds": [],
            }
        elif r < 0.96:
            data = {
                "source": 0,
                "texts": [],
                "removes": [],
                "adds": [],
                "attributes": [
                    {
                        "id": self.rng.choice(self.elements),
                        "attributes": {"class": f"c{self.rng.randrange(30)} active"},
                    }
                ],
            }
        else:
            if self.added and self.rng.random() < 0.5:
                gone = self.added.pop()
                data = {
                    "source": 0,
                    "texts": [],
                    "attributes": [],
                    "adds": [],
                    "removes": [
                        {"parentId": self.root["childNodes"][1]["childNodes"][1]["id"], "id": gone}
                    ],
                }
            else:
                nid, tid = self._id(), self._id()
                self.added.append(nid)
                data = {
                    "source": 0,
                    "texts": [],
                    "attributes": [],
                    "removes": [],
                    "adds": [
                        {
                            "parentId": self.root["childNodes"][1]["childNodes"][1]["id"],
                            "nextId": None,
                            "node": {
                                "type": 2,
                                "tagName": "div",
                                "attributes": {"class": "toast"},
                                "id": nid,
                                "childNodes": [
                                    {"type": 3, "textContent": "Added to cart", "id": tid}
                                ],
                            },
                        }
                    ],
                }
        return {"type": 3, "data": data, "timestamp": ts}


WORDS = (
    "trail runner jacket aurora waterproof breathable size guide returns shipping cart "
    "checkout colour ember slate moss lightweight warranty repairs order total free"
).split()


def split_parts(data: str) -> list[str]:
    """The snippet's split: parts whose JSON-escaped size stays under PART_CHARS."""
    parts, i = [], 0
    while i < len(data):
        n = min(PART_CHARS, len(data) - i)
        while True:
            chunk = data[i : i + n]
            esc = len(chunk) + chunk.count('"') + chunk.count("\\")
            if esc <= PART_CHARS:
                break
            n = max(1, n * PART_CHARS // esc - 64)
        parts.append(data[i : i + n])
        i += n
    return parts


# --------------------------------------------------------------------------- results


@dataclass
class Run:
    name: str
    rate: int
    agents: int
    sent: int = 0
    received: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    """CPU seconds the customer's process and the agents' process used over the stream."""
    errors: dict[str, int] = field(default_factory=dict)

    def take(self, read: dict[str, Any]) -> None:
        """What the agents' process read (``bench._cobrowse_watchers``)."""
        self.received = read["counts"]
        self.latencies = read["latencies"]
        self.bytes_down = read["bytes_down"]
        self.client_cpu += read["cpu"]

    def row(self) -> list[str]:
        lost = sum(max(0, self.sent - r) for r in self.received)
        per_k = self.cpu / self.sent * 1000 if self.sent else 0
        return [
            self.name, f"{self.rate:,}", str(self.agents), f"{self.sent:,}",
            ms(percentile(self.latencies, 0.5)), ms(percentile(self.latencies, 0.99)),
            f"{per_k * 1000:.1f} ms",
            f"{100 * self.client_cpu / self.seconds:.0f}%" if self.seconds else "-",
            size(self.bytes_up), size(self.bytes_down),
            f"{lost:,}" + (f" ({', '.join(f'{k} {v}' for k, v in self.errors.items())})"
                           if self.errors else ""),
        ]  # fmt: skip


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])  # fmt: skip


# --------------------------------------------------------------------------- the agents' process


async def watch(watchers: Pool, cmd: dict[str, Any]) -> dict[str, Any]:
    """One command to the agents' process, its reply (``bench._cobrowse_watchers``)."""
    [reply] = await asyncio.to_thread(watchers.call, [cmd], 60)
    return reply


# --------------------------------------------------------------------------- tandem


async def build_data(data_dir: Path) -> None:
    from signaling import auth
    from signaling.auth.accounts import add_site
    from signaling.store import AgentRecord, open_store

    store = await open_store(None, data_dir / "tandem.sqlite3")
    try:
        await add_site(store, "Bench shop", [ORIGIN], public_key=SITE_KEY)
        password_hash = auth.hash_password(PASSWORD)
        for j in range(5):
            await store.add_agent(
                AgentRecord(
                    id=auth.new_id("ag"), email=f"agent{j}@bench.tandem", name=f"Agent {j}",
                    password_hash=password_hash, role="agent" if j == 0 else "supervisor",
                    skills=(),
                )
            )  # fmt: skip
    finally:
        await store.close()


class Tandem:
    """A server process and its clients: one customer sharing, N agents watching."""

    def __init__(self, template: Path, work: Path) -> None:
        self.data = work / f"data-{time.monotonic_ns()}"
        shutil.copytree(template, self.data)
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.proc = ServerProcess(
            "tandem",
            [sys.executable, "-c", TANDEM_LAUNCHER, str(self.data), str(self.port)],
            work / f"tandem-{self.port}.log",
            REPO,
        )
        # The customer's and agents' sockets are spoken by hand, as the relay's clients are:
        # python-socketio's client spends a task and a timer on every frame it reads or writes,
        # and that cost of the bench's own clients counted as the server's latency.
        self._sockets = contextlib.AsyncExitStack()
        self._customer: RawSocket | None = None
        self.agents: list[RawSocket] = []
        self.ticket = ""
        self.page: Page | None = None
        self._snapshots: set[asyncio.Future[None]] = set()

    async def start(self, agents: int, page: Page, watchers: Pool | None = None) -> None:
        """The customer asks for help and shares; ``agents`` agents watch, in the ``watchers``
        process if given (else here, in ``self.agents``)."""
        await self.proc.wait_ready(f"{self.url}/healthz")
        self.page = page
        self._customer = await self._sockets.enter_async_context(
            raw_socket(self.url, {"v": 1, "role": "customer", "site": SITE_KEY}, origin=ORIGIN)
        )
        self._customer.on_event = self._customer_event
        ack = await self.customer.call(
            "help.request",
            {
                "context": {
                    "url": "https://shop.bench.example/",
                    "title": "Bench",
                    "userAgent": "bench",
                }
            },
        )
        self.ticket = ack["ticket"]["id"]
        tokens = []
        async with aiohttp.ClientSession() as http:
            for j in range(agents):
                body = {"email": f"agent{j}@bench.tandem", "password": PASSWORD}
                async with http.post(f"{self.url}/api/auth/login", json=body) as res:
                    tokens.append((await res.json())["token"])
        if watchers is not None:
            await watch(
                watchers, {"op": "connect", "kind": "tandem", "url": self.url,
                           "ticket": self.ticket, "tokens": tokens}
            )  # fmt: skip
        else:
            for j, token in enumerate(tokens):
                client = await self._sockets.enter_async_context(
                    raw_socket(self.url, {"v": 1, "role": "agent", "token": token})
                )
                event = "session.accept" if j == 0 else "session.join"
                assert (await client.call(event, {"ticketId": self.ticket}))["ok"]
                self.agents.append(client)
            ticket = {"ticketId": self.ticket}
            assert (await self.agents[0].call("cobrowse.request", ticket))["ok"]
        accept = await self.customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER})
        assert accept["ok"], accept
        self.snapshots_sent = 0

    @property
    def customer(self) -> RawSocket:
        assert self._customer is not None, "start() first"
        return self._customer

    def _customer_event(self, frame: str) -> None:
        if frame.startswith('42["cobrowse.snapshot_needed"'):
            task = asyncio.ensure_future(self._snapshot_needed(None))
            self._snapshots.add(task)
            task.add_done_callback(self._snapshots.discard)

    async def _snapshot_needed(self, _payload: Any) -> None:
        if self.page is not None:
            self.snapshots_sent += 1
            # As the snippet answers it: a checkpoint, kept by the server for joiners.
            await self.send(self.page.snapshot(time.time() * 1000), checkpoint=True)

    async def send(
        self, events: list[dict[str, Any]], checkpoint: bool = False
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(events, separators=(",", ":"))
        parts = split_parts(data)
        nbytes, ack = 0, {}
        batch = f"b{time.monotonic_ns()}"
        for i, part in enumerate(parts):
            payload: dict[str, Any] = {"data": part}
            if len(parts) > 1:
                payload |= {"batchId": batch, "part": i, "parts": len(parts)}
            if checkpoint:
                payload["checkpoint"] = True
            ack = await self.customer.call("cobrowse.events", payload, timeout=60)
            # Counted once the batch is on its way: encoding it a second time just to count
            # its bytes was on the measured path (the relay's client encodes it once).
            nbytes += len(json.dumps(payload, separators=(",", ":")))
        return nbytes, ack

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._sockets.aclose()
        self.proc.stop()


async def stream(run: Run, send: Any, page: Page, seconds: float) -> None:
    """Send ``run.rate`` events/s in 50 ms batches for ``seconds``. The garbage collector is off
    meanwhile: a full collection of this process (12-15 ms, measured) between a batch's
    timestamps and its send was counted as the server's latency, for either server."""
    per_batch = max(1, round(run.rate * BATCH_SECONDS))
    gc.collect()
    gc.disable()
    try:
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            now_ms = time.time() * 1000
            events = [page.event(now_ms) for _ in range(per_batch)]
            run.sent += len(events)
            await send(events)
            k += 1
            delay = start + k * BATCH_SECONDS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        run.seconds = time.monotonic() - start
    finally:
        gc.enable()


def ratio_line(tandem: Run, relay: Run) -> str:
    def x(a: float | None, b: float | None) -> str:
        return f"{a / b:.1f}x" if a is not None and b else "-"

    return (
        f"  {tandem.rate:,} ev/s x {tandem.agents}: "
        f"p50 {x(percentile(tandem.latencies, 0.5), percentile(relay.latencies, 0.5))}, "
        f"p99 {x(percentile(tandem.latencies, 0.99), percentile(relay.latencies, 0.99))}, "
        f"CPU {x(tandem.cpu, relay.cpu)}"
    )


async def run_tandem(
    template: Path,
    work: Path,
    rate: int,
    agents: int,
    seconds: float,
    watchers: Pool,
    profile: Path | None = None,
) -> Run:
    run = Run("tandem", rate, agents)
    server = Tandem(template, work)
    page = Page(300)
    try:
        await server.start(agents, page, watchers)
        await server.send(page.snapshot(time.time() * 1000))
        await asyncio.sleep(0.5)
        await watch(watchers, {"op": "start"})

        async def send(events: list[dict[str, Any]]) -> None:
            nbytes, ack = await server.send(events)
            run.bytes_up += nbytes
            if not ack.get("ok"):
                code = ack.get("error", {}).get("code", "?")
                run.errors[code] = run.errors.get(code, 0) + 1

        spy = start_profile(profile, server.proc.pid, rate, agents, seconds)
        cpu0, client0 = proc_cpu_precise(server.proc.pid), time.process_time()
        await stream(run, send, page, seconds)
        run.client_cpu = time.process_time() - client0
        if spy is not None:
            await asyncio.to_thread(spy.wait)
        read = await watch(watchers, {"op": "collect", "sent": run.sent, "wait": 10})
        run.cpu = proc_cpu_precise(server.proc.pid) - cpu0
        run.take(read)
        await watch(watchers, {"op": "close"})
    finally:
        await server.stop()
    return run


def start_profile(
    profile: Path | None, pid: int, rate: int, agents: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    """py-spy on the server over the stream (``--profile``): folded stacks, one file per run.
    Sampling costs the server nothing but takes CPU from the shared cores, so a profiled run's
    latencies are not comparable with an unprofiled one's."""
    if profile is None:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    profile.mkdir(parents=True, exist_ok=True)
    out = profile / f"tandem-{rate}-{agents}-{time.time_ns()}.txt"
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-r", "1000", "-f", "raw", "-o", str(out),
         "--nonblocking", "-d", str(max(1, int(seconds)))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def run_relay(work: Path, rate: int, agents: int, seconds: float, watchers: Pool) -> Run:
    run = Run("ws relay", rate, agents)
    port = free_port(HOST)
    proc = ServerProcess(
        "relay",
        [sys.executable, "-c", RELAY_LAUNCHER, str(port)],
        work / f"relay-{port}.log",
        REPO,
    )
    page = Page(300)
    try:
        await proc.wait_ready(f"http://{HOST}:{port}/healthz")
        url = f"http://{HOST}:{port}"
        await watch(watchers, {"op": "connect", "kind": "relay", "url": url, "agents": agents})
        async with aiohttp.ClientSession() as http:
            customer = await http.ws_connect(f"{url}/customer")
            await asyncio.sleep(0.2)
            await watch(watchers, {"op": "start"})

            async def send(events: list[dict[str, Any]]) -> None:
                text = json.dumps(
                    {"data": json.dumps(events, separators=(",", ":"))}, separators=(",", ":")
                )
                run.bytes_up += len(text)
                await customer.send_str(text)

            cpu0, client0 = proc_cpu_precise(proc.pid), time.process_time()
            await stream(run, send, page, seconds)
            run.client_cpu = time.process_time() - client0
            read = await watch(watchers, {"op": "collect", "sent": run.sent, "wait": 10})
            run.cpu = proc_cpu_precise(proc.pid) - cpu0
            run.take(read)
            await customer.close()
        await watch(watchers, {"op": "close"})
    finally:
        proc.stop()
    return run


# --------------------------------------------------------------------------- snapshot, late joiner


async def browser_snapshot(nodes: int) -> tuple[list[dict[str, Any]], float, int] | None:
    """rrweb's own Meta + FullSnapshot of a page of ``nodes`` DOM nodes, its time, node count."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return None
    if not await asyncio.to_thread(lambda: Path(CHROMIUM).exists() and RRWEB_UMD.exists()):
        return None
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.set_content(
                "<!doctype html><html><head><style>.card{padding:8px}"
                "</style></head><body></body></html>"
            )
            await page.evaluate("""(nodes) => {
                const words = 'trail runner jacket aurora waterproof size guide returns'.split(' ');
                let made = 0, section = null;
                while (made < nodes) {
                    if (made % 40 === 0) { section = document.createElement('div');
                        section.className = 'card'; document.body.append(section); made++; }
                    const tag = ['p', 'span', 'a', 'li', 'button', 'input'][made % 6];
                    const el = document.createElement(tag);
                    if (tag === 'input') { el.name = 'f' + made; el.value = 'v' + made; made++; }
                    else { el.className = 'c' + (made % 30);
                        el.textContent = words.slice(0, 2 + made % 5).join(' '); made += 2; }
                    section.append(el);
                }
            }""", nodes)  # fmt: skip
            await page.add_script_tag(content=await asyncio.to_thread(RRWEB_UMD.read_text))
            result = await page.evaluate("""() => new Promise((resolve) => {
                const events = [];
                const t0 = performance.now();
                const stop = rrweb.record({
                    emit(e) { events.push(e); if (e.type === 2) {
                        const ms = performance.now() - t0; resolve([events, ms]);
                        setTimeout(() => stop()); } },
                    maskAllInputs: true, slimDOMOptions: { script: true, comment: true },
                });
            })""")  # fmt: skip
            events, took = result
            dom_nodes = await page.evaluate("""() => { let n = 0;
                const w = document.createTreeWalker(document, NodeFilter.SHOW_ALL);
                while (w.nextNode()) n++; return n + 1; }""")
            return events, float(took), int(dom_nodes)
        finally:
            await browser.close()


async def snapshot_and_late_join(template: Path, work: Path, nodes: int, minutes: float,
                                 late_rate: int) -> list[str]:  # fmt: skip
    lines: list[str] = []
    taken = await browser_snapshot(nodes)
    page = Page(nodes)
    if taken is None:
        events = page.snapshot(time.time() * 1000)
        source = f"synthesized ({nodes:,} nodes; no Chromium/Playwright)"
        record_ms = None
    else:
        events, record_ms, dom_nodes = taken
        source = f"rrweb {RECORDER} in headless Chromium, {dom_nodes:,} DOM nodes"
    for e in events:
        e["timestamp"] = time.time() * 1000
    text = json.dumps(events, separators=(",", ":"))

    server = Tandem(template, work)
    try:
        await server.start(1, page)
        got = asyncio.get_running_loop().create_future()

        def on_events(frame: str) -> None:
            name, payload = json.loads(frame[2:])
            if name != "cobrowse.events":
                return
            if any(e["type"] == 2 for e in payload["events"]) and not got.done():
                got.set_result(time.monotonic())

        server.agents[0].on_event = on_events
        t0 = time.monotonic()
        nbytes, ack = await server.send(events)
        assert ack.get("ok"), ack
        arrived = await asyncio.wait_for(got, 60)
        parts = len(split_parts(text))
        lines.append(f"Full snapshot: {source}")
        lines.append(
            f"  size {size(len(text))} JSON ({size(len(text.encode()))} UTF-8, {parts} part(s) "
            f"on the wire, {size(nbytes)} socket.io payload)"
            + (f"; rrweb took {record_ms:.0f} ms to take it" if record_ms is not None else "")
        )
        lines.append(f"  customer emit -> agent receives it through Tandem: "
                     f"{(arrived - t0) * 1000:.0f} ms")  # fmt: skip

        # Ten minutes of a busy page, as fast as the server takes it (timestamps spread over
        # the ten minutes), then a late joiner.
        server.page = page
        total = int(minutes * 60 * late_rate)
        base = time.time() * 1000 - minutes * 60_000
        per_batch = 250
        t1 = time.monotonic()
        sent = 0
        while sent < total:
            n = min(per_batch, total - sent)
            batch = [page.event(base + (sent + i) * 1000 / late_rate) for i in range(n)]
            _, ack = await server.send(batch)
            if not ack.get("ok"):
                raise RuntimeError(f"batch refused: {ack}")
            sent += n
        feed = time.monotonic() - t1
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http:
            body = {"email": "agent4@bench.tandem", "password": PASSWORD}
            async with http.post(f"{server.url}/api/auth/login", json=body) as res:
                token = (await res.json())["token"]
        late = socketio.AsyncClient(reconnection=False)
        await late.connect(
            server.url, transports=["websocket"], auth={"v": 1, "role": "agent", "token": token}
        )
        try:
            assert (await late.call("session.join", {"ticketId": server.ticket}))["ok"]
            t2 = time.monotonic()
            view = await late.call("cobrowse.join", {"ticketId": server.ticket}, timeout=60)
            joined = (time.monotonic() - t2) * 1000
        finally:
            await late.disconnect()
        held = len(json.dumps(view["events"], separators=(",", ":")))
        kinds = [e["type"] for e in view["events"]]
        lines.append(
            f"Late joiner after {minutes:g} min of events ({total:,} events at {late_rate}/s, "
            f"fed in {feed:.1f} s; the customer answered {server.snapshots_sent} "
            f"snapshot requests):"
        )
        lines.append(
            f"  cobrowse.join answered in {joined:.0f} ms with the current page: "
            f"{len(kinds):,} events ({kinds.count(2)} full snapshot + {len(kinds) - 2:,} since), "
            f"{size(held)}"
        )
    finally:
        await server.stop()
    return lines


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="tandem-cobrowse-bench-"))
    template = work / "template"
    template.mkdir()
    await build_data(template)
    rates = [100, 1000] if args.quick else [100, 1000, 5000]
    if args.rates:
        rates = [int(r) for r in args.rates.split(",")]
    agent_counts = [int(a) for a in args.agents.split(",")]
    seconds = 3.0 if args.quick and not args.seconds else (args.seconds or 8.0)
    rows = []
    ratios = []
    watchers = Pool(1, watcher_main)
    try:
        for _ in range(args.repeat):
            for rate in rates:
                for agents in agent_counts:
                    tandem = await run_tandem(
                        template, work, rate, agents, seconds, watchers, args.profile
                    )
                    relay = await run_relay(work, rate, agents, seconds, watchers)
                    rows += [tandem.row(), relay.row()]
                    ratios.append(ratio_line(tandem, relay))
                    print(f"  done: {rate:,} ev/s x {agents} agent(s)", file=sys.stderr, flush=True)
        head = ["path", "events/s", "agents", "sent", "latency p50", "latency p99",
                "CPU per 1k events", "client CPU", "bytes up", "bytes down", "lost"]  # fmt: skip
        print(
            f"\nCo-browse stream, {seconds:g} s per run, 50 ms batches, one customer "
            f"(CPU: the server process, all its threads; client CPU: the bench's customer "
            f"process and its agents' process together, as a share of one core while "
            f"streaming):\n"
        )
        print(table(rows, head))
        print()
        print("Tandem / ws relay of the same rate and agents (p50, p99, CPU per event):")
        for line in ratios:
            print(line)
        print()
        nodes = 2_000 if args.quick else 10_000
        minutes = 1.0 if args.quick else 10.0
        if not args.no_late:
            for line in await snapshot_and_late_join(
                template, work, nodes, minutes, args.late_rate
            ):
                print(line)
        load = (await asyncio.to_thread(Path("/proc/loadavg").read_text)).split()[:3]
        print(f"\nmachine: {os.cpu_count()} CPUs, load average {' '.join(load)}")
    finally:
        watchers.close()
        stop_all_servers()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100/1,000 ev/s, 3 s, small page")
    parser.add_argument("--seconds", type=float, help="length of each stream run (8; quick 3)")
    parser.add_argument("--rates", help="events/s to run, comma-separated (100,1000,5000)")
    parser.add_argument("--agents", default="1,4", help="agent counts, comma-separated (1,4)")
    parser.add_argument("--repeat", type=int, default=1, help="run every rate x agents N times")
    parser.add_argument(
        "--no-late", action="store_true", help="skip the full snapshot and the late joiner"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy (next to this Python) samples Tandem's server over each stream into DIR",
    )
    parser.add_argument(
        "--late-rate",
        type=int,
        default=100,
        help="events/s of the ten minutes before the late joiner",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and logs")
    asyncio.run(main(parser.parse_args()))
