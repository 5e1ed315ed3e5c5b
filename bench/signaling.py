#!/usr/bin/env python
"""Load bench for Tandem's signaling server, with two floors measured in the same run.

Three servers, each in its own process on 127.0.0.1, driven by the same client processes:

* **tandem**: the real ``create_app`` (``bench/tandem_server.py``), SQLite in a temp dir;
* **minimal sio**: a minimal python-socketio server speaking the same protocol subset, with
  queue events only where they are needed (``bench/floors/minimal_sio.py``);
* **ws relay**: a bare aiohttp websocket relay between the two ends of each pair
  (``bench/floors/ws_relay.py``; chat only: it has no queue).

The clients run in ``--procs`` worker processes (``bench/_clients.py``), each with its own
event loop and many sockets; customer *i* is served by agent *i mod A*, and a session's two
ends live in the same worker. The parent drives the phases and reads the server's CPU (all its
threads, ``/proc/PID/task/*/schedstat``) and memory (``/proc/PID/status``) around each one.

Scenarios (rows of the table, per server):

* ``connect``: open all sockets (``--batch`` handshakes in flight per worker);
* ``pairing``: every customer sends ``help.request`` at the same moment; the assigned agent
  sends ``session.accept`` as soon as it sees the ticket (``queue.changed`` with protocol v2,
  the default; ``queue.added`` with ``--protocol 1`` and from the floor); latency is
  help.request -> ``session.accepted``;
* ``chat closed``: every session does ``--rounds`` round trips back to back (customer
  ``chat.send`` -> agent gets ``chat.message`` -> agent ``chat.send`` -> customer gets the
  reply). Throughput per server core = round trips / server CPU seconds;
* ``chat open``: ``--open-rate`` customer messages per second in total (Poisson arrivals,
  spread over the sessions), each answered by its agent at once, for ``--open-seconds``.
  Latency runs from each message's *scheduled* time, so neither the server nor a busy client
  can hide delay by sending later (no coordinated omission); offered vs achieved rate shown;
* ``disconnect``: after the chats, every socket closes (the clients disconnect; the server's
  CPU is read once it is idle again): the cost of a node's sockets going at once, as on a
  restart (python-socketio looks through every room on each disconnect unless told otherwise);
* ``accept @Q``: with Q customers waiting (plus the ones about to be accepted), agents accept
  ``--accepts`` of the oldest, one accept at a time per worker: accept latency and server CPU
  per accept at each queue length (accept cost should not grow with the queue).
* ``push routing`` (its own group and server, ``--routing push``, no wrap-up): agents of
  capacity ``--capacity`` answer each ``session.offered`` after ``--think`` seconds, declining
  ``--decline`` of them and ending each accepted session after ``--handle`` seconds, while all
  ``--push-customers`` customers ask at once: offer decision -> accept ack p50/p99, customers
  served per second, the customer's wait, events per offer, and a check that each offer rang at
  exactly one agent (its own markdown table; the floor routes by offers too).

Anything dropped (an acked request whose event never came, a message never answered, a socket
that fell) is counted; a row with drops or refusals is marked FAILED, a phase past its time
budget TIMEOUT, and the rest of that server's phases are then not run. The table is always
printed. Every wait is bounded; all traffic goes to 127.0.0.1.

Usage::

    .venv/bin/python bench/signaling.py           # full run (~3-9 min on 2 shared cores)
    .venv/bin/python bench/signaling.py --quick   # under a minute
    .venv/bin/python bench/signaling.py --accel   # also tandem and minimal with uvloop+orjson
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
# This file is itself named signaling.py: keep its folder off the path so ``import signaling``
# finds the server package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

from bench._accounts import build_template, login  # noqa: E402
from bench._clients import PhaseFailed, PhaseTimeout, Pool  # noqa: E402
from bench._common import (  # noqa: E402
    ServerProcess,
    fmt_ms,
    free_port,
    loadavg,
    log_problems,
    machine_busy_seconds,
    percentile,
    proc_cpu_precise,
    proc_status,
    quantiles,
    run_delay,
    stop_all_servers,
    wait_quiet,
)

HOST = "127.0.0.1"
STARTED = time.perf_counter()
QUIET_WINDOW = 1.2
"""Longer than Tandem's slowest periodic work (queue positions on a 1 s tick), so a tick's
work cannot fall between two windows (``--quick`` uses a third of it, to stay under a
minute)."""
QUIET_LIMIT = 30.0
"""Between phases the bench waits at most this long for server and clients to be idle
(``bench._common.wait_quiet``)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    pairs: int
    agents: int
    rounds: int
    open_rates: tuple[float, ...]
    open_seconds: float
    drain: float
    levels: tuple[int, ...]
    accepts: int
    waiting_agents: int
    procs: int
    batch: int
    rate_limit: float
    servers: tuple[str, ...]
    groups: tuple[str, ...]
    accel: tuple[str, ...]
    timeout_scale: float
    budget: float
    """Seconds after which no further server is started (phases have their own limits)."""
    quick: bool
    protocol: int
    keep: bool
    profile_server: Path | None
    spy: Path | None
    """py-spy samples each server over each phase into this folder (``--spy``)."""
    push_customers: int
    push_agents: int
    capacity: int
    think: float
    decline: float
    handle: float
    offer_seconds: float


FULL = {
    "pairs": 1000,
    "agents": 50,
    "rounds": 10,
    "open_rates": "200",
    "open_seconds": 30.0,
    "drain": 15.0,
    "levels": "10,500,5000",
    "accepts": 200,
    "waiting_agents": 10,
    "push_customers": 1000,
    "push_agents": 100,
}
QUICK = {
    "pairs": 100,
    "agents": 5,
    "rounds": 5,
    "open_rates": "50",
    "open_seconds": 3.0,
    "drain": 10.0,
    "levels": "10,100,400",
    "accepts": 8,
    "waiting_agents": 4,
    "push_customers": 100,
    "push_agents": 10,
}


@dataclass(frozen=True)
class ServerSpec:
    kind: str
    """``tandem``, ``minimal``, ``relay``, or ``tandem-redis`` (``python -m signaling serve``
    on PostgreSQL with a redis-server of its own: the several-nodes live state, one node; the
    push group only)."""
    uvloop: bool = False
    orjson: bool = False

    @property
    def label(self) -> str:
        name = {
            "tandem": "tandem",
            "tandem-redis": "tandem pg-redis",
            "minimal": "minimal sio",
            "relay": "ws relay",
        }[self.kind]
        extras = [x for x, on in (("uvloop", self.uvloop), ("orjson", self.orjson)) if on]
        return "+".join([name, *extras])


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    scenario: str
    size: str
    server: str
    unit: str = ""
    rate: float | None = None
    per_core: float | None = None
    p50: float | None = None
    p99: float | None = None
    cpu_per_op: float | None = None
    """Server CPU seconds per operation."""
    cpu_share: float | None = None
    """Server CPU over the phase, as a share of one core."""
    rss_kib: int | None = None
    dropped: int = 0
    status: str = "not run"
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.scenario, self.size


# --------------------------------------------------------------------------- servers


def start_server(spec: ServerSpec, cfg: Config, work: Path, template: Path, tag: str) -> Any:
    if spec.kind == "tandem-redis":
        cluster = ClusterServer(work / f"tandem-redis-{tag}", cfg, cfg.push_agents)
        return cluster, cluster.url
    port = free_port(HOST)
    flags = [*(["--uvloop"] if spec.uvloop else []), *(["--orjson"] if spec.orjson else [])]
    if tag == "push":
        # The push scenario: offers, agent capacity, no wrap-up (an agent whose session ended
        # is offered the next one at once). The other groups keep pull routing.
        flags += [
            "--routing",
            "push",
            "--capacity",
            str(cfg.capacity),
            "--offer-seconds",
            f"{cfg.offer_seconds:g}",
            "--wrap-up-seconds",
            "0",
        ]
    name = f"{spec.label.replace('+', '-').replace(' ', '-')}-{tag}"
    if spec.kind == "tandem":
        data_dir = work / name
        shutil.copytree(template, data_dir)
        argv = [
            sys.executable,
            str(BENCH / "tandem_server.py"),
            str(data_dir),
            str(port),
            "--rate",
            str(cfg.rate_limit),
            *flags,
        ]
        if cfg.profile_server is not None:
            argv += ["--profile", str(cfg.profile_server.with_name(f"{name}.prof").resolve())]
    else:
        script = "minimal_sio.py" if spec.kind == "minimal" else "ws_relay.py"
        argv = [sys.executable, str(BENCH / "floors" / script), str(port), *flags]
    server = ServerProcess(f"{spec.label} ({tag})", argv, work / f"{name}.log", REPO)
    base = f"http://{HOST}:{port}"
    server.wait_ready_sync(f"{base}/healthz")
    return server, base


class ClusterServer:
    """One ``tandem serve`` node on a fresh PostgreSQL schema with its own redis-server
    (``bench/_cluster.py``), shaped like ``ServerProcess`` for the bench: its CPU is the node's
    and redis-server's together."""

    def __init__(self, work: Path, cfg: Config, agents: int) -> None:
        from bench._cluster import launch

        def provision(database_url: str) -> None:
            asyncio.run(asyncio.wait_for(build_template(work, agents, database_url), 120))

        limits = [
            *("--rate-per-second", str(cfg.rate_limit)),
            *("--socket-bytes-per-second", str(cfg.rate_limit * 1024)),
            *("--socket-burst-bytes", str(cfg.rate_limit * 4096)),
            *("--max-customer-sockets-per-address", "10000000"),
            *("--max-open-tickets-per-address", "10000000"),
            *("--routing", "push", "--agent-capacity", str(cfg.capacity)),
            *("--offer-seconds", f"{cfg.offer_seconds:g}", "--wrap-up-seconds", "0"),
        ]
        work.mkdir(parents=True, exist_ok=True)
        self._launched = launch(work, 1, provision, redis=True, proxy=False, limits=limits)
        up = self._launched.__enter__()
        self.node = up.nodes[0]
        self.proc = self.node.process
        self.url = up.proxy_url
        self.extra_pids = [up.redis.pid] if up.redis is not None and up.redis.pid else []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self._launched.__exit__(None, None, None)

    def log_problems(self) -> tuple[int, dict[str, int]]:
        return log_problems(self.node.log)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    replies: list[dict[str, Any]]
    seconds: float
    server_cpu: float
    client_cpu: float
    others_cpu: float
    """CPU seconds the rest of the machine (not this bench) used over the phase."""
    events: Counter[str]
    errors: Counter[str]
    unquiet: str
    """Why the phase may hold some of the previous one's work (empty: it does not)."""
    agent_events: Counter[str] = field(default_factory=Counter)
    """The part of ``events`` the agents' sockets received."""
    server_waited: float = 0.0
    """Seconds the server's event loop was ready to run but waited for a core."""

    def total(self, key: str) -> int:
        return sum(int(r.get(key, 0)) for r in self.replies)

    def values(self, key: str) -> list[float]:
        return [x for r in self.replies for x in r.get(key, [])]


class Bench:
    """One server and the pool driving it, phase by phase."""

    def __init__(
        self,
        server: Any,
        base: str,
        pool: Pool,
        spec: ServerSpec,
        scale: float,
        spy: Path | None = None,
    ) -> None:
        self.server = server
        self.base = base
        self.pool = pool
        self.spec = spec
        self.scale = scale
        self.quiet_window = QUIET_WINDOW
        self.spy = spy
        self.phases = 0

    def start_spy(self, phase: str) -> subprocess.Popen[bytes] | None:
        """py-spy on the server over one phase (``--spy``): folded stacks, one file per
        phase. Sampling takes CPU from the shared cores, so a spied run's figures are not
        comparable with an unspied one's."""
        if self.spy is None:
            return None
        self.spy.mkdir(parents=True, exist_ok=True)
        label = self.spec.label.replace(" ", "_").replace("+", "_")
        out = self.spy / f"{label}-{phase}.txt"
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(self.server.pid),
             "-r", "1000", "-f", "raw", "-o", str(out), "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)  # py-spy attaches before the phase starts
        return spy

    def quiesce(self, limit: float = QUIET_LIMIT) -> str:
        """Wait (at most ``limit`` s) until the server and clients are idle: the previous
        phase's stragglers (events to other agents, position updates) must not be billed to
        the next phase. Returns a note when they were not idle in time."""
        return wait_quiet([self.server.pid, *self.pool.pids()], self.quiet_window, limit)

    def measure(
        self,
        cmds: Sequence[dict[str, Any]],
        timeout: float,
        then: Sequence[dict[str, Any]] = (),
        settle: bool = False,
    ) -> Measured:
        """Run one command on every worker and measure it. ``then``: a second command per
        worker whose time is not the phase's but whose CPU and events are (work the first
        started and others finish); its replies follow the first's. ``settle``: the server's
        CPU is read once it is idle again (work it does after the clients are done, such as
        handling the sockets they closed), not when the commands return."""
        unquiet = self.quiesce()
        server_pid = self.server.pid
        clients = self.pool.pids()
        extra = list(getattr(self.server, "extra_pids", []))
        cpu0 = sum(proc_cpu_precise(p) for p in [server_pid, *extra])
        delay0 = run_delay(server_pid)
        client0 = sum(proc_cpu_precise(p) for p in clients)
        self.phases += 1
        spy = self.start_spy(f"{self.phases:02d}-{cmds[0]['op'] if cmds else 'none'}")
        machine0, parent0 = machine_busy_seconds(), time.process_time()
        t0 = time.perf_counter()
        replies = self.pool.call(cmds, timeout * self.scale)
        seconds = time.perf_counter() - t0
        if then:
            replies += self.pool.call(then, 30 * self.scale)
        if settle:
            self.quiesce()
        if spy is not None:
            # py-spy writes what it sampled when interrupted.
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        server_cpu = sum(proc_cpu_precise(p) for p in [server_pid, *extra]) - cpu0
        server_waited = run_delay(server_pid) - delay0
        client_cpu = sum(proc_cpu_precise(p) for p in clients) - client0
        bench_cpu = server_cpu + client_cpu + time.process_time() - parent0
        others = max(0.0, machine_busy_seconds() - machine0 - bench_cpu)
        events: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        agent_events: Counter[str] = Counter()
        for reply in replies:
            events.update(reply["tally"]["events"])
            agent_events.update(reply["tally"].get("agent_events", {}))
            errors.update(reply["tally"]["errors"])
        if self.server.proc.poll() is not None:
            raise PhaseFailed(f"server exited with {self.server.proc.returncode}")
        return Measured(
            replies,
            seconds,
            server_cpu,
            client_cpu,
            others,
            events,
            errors,
            unquiet,
            agent_events,
            server_waited,
        )

    def fill_row(self, row: Row, m: Measured, ops: int, unit: str, dropped: int) -> None:
        row.unit = unit
        row.rate = ops / m.seconds if m.seconds > 0 else None
        row.per_core = ops / m.server_cpu if m.server_cpu > 0 else None
        row.cpu_per_op = m.server_cpu / ops if ops else None
        row.cpu_share = m.server_cpu / m.seconds if m.seconds > 0 else None
        row.rss_kib = proc_status(self.server.pid).get("VmRSS")
        row.dropped = dropped
        problems = [f"{k} x{v}" for k, v in m.errors.most_common(4)]
        row.status = "ok" if not dropped and not m.errors else "FAILED"
        if problems:
            row.notes.append("refused/errors: " + ", ".join(problems))
        if m.unquiet:
            row.notes.append(m.unquiet)
        busy = m.client_cpu / m.seconds / self.pool.size if m.seconds > 0 else 0.0
        others = m.others_cpu / m.seconds if m.seconds > 0 else 0.0
        row.notes.append(
            f"{m.seconds:.1f} s; server CPU {m.server_cpu:.2f} s, its event loop waited "
            f"{m.server_waited:.2f} s for a core; clients {busy:.0%} of "
            f"their {self.pool.size} cores; other processes on the machine {others:.1f} cores; "
            f"events received: {top(m.events)}"
        )


def accepted_asked(m: Measured) -> int:
    return m.total("accepted") + m.total("refused") + m.total("unanswered")


def top(events: Counter[str], n: int = 5) -> str:
    return ", ".join(f"{name} {count}" for name, count in events.most_common(n)) or "none"


def split(items: Sequence[Any], owner: Callable[[Any], int], procs: int) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in range(procs)]
    for item in items:
        out[owner(item)].append(item)
    return out


# --------------------------------------------------------------------------- scenario groups


def sessions_rows(spec: ServerSpec, cfg: Config) -> list[Row]:
    n = cfg.pairs
    rows = [Row("connect", f"{n:,} pairs", spec.label)]
    if spec.kind != "relay":
        rows.append(Row("pairing", f"{n:,} at once", spec.label))
    rows.append(Row("chat closed", f"{n:,} x {cfg.rounds}", spec.label))
    rows += [Row("chat open", f"{n:,} @ {r:g}/s", spec.label) for r in cfg.open_rates]
    rows.append(Row("disconnect", "every socket", spec.label))
    return rows


def run_sessions(bench: Bench, cfg: Config, rows: list[Row], tokens: list[str]) -> None:
    """connect -> pairing -> closed-loop chat -> open-loop chat, on one server."""
    spec, procs, n = bench.spec, bench.pool.size, cfg.pairs
    agents = 0 if spec.kind == "relay" else max(1, min(cfg.agents, n))
    rows_left = list(rows)

    def next_row() -> Row:
        return rows_left.pop(0)

    def worker_of_customer(i: int) -> int:
        return (i % agents) % procs if agents else i % procs

    customers = split(range(n), worker_of_customer, procs)
    agent_lists = split(
        [(j, tokens[j] if j < len(tokens) else "") for j in range(agents)],
        lambda a: a[0] % procs,
        procs,
    )
    kind = "ws" if spec.kind == "relay" else "sio"
    setup = {
        "op": "setup",
        "kind": kind,
        "url": bench.base,
        "agent_count": max(agents, 1),
        "version": cfg.protocol,
    }
    bench.pool.call([setup] * procs, 30)

    row = next_row()
    m = bench.measure(
        [
            {
                "op": "connect",
                "agents": agent_lists[w],
                "customers": customers[w],
                "batch": cfg.batch,
            }
            for w in range(procs)
        ],
        60 + n / 20,
    )
    sockets = m.total("opened")
    bench.fill_row(row, m, sockets, "sockets/s", m.total("failed"))
    row.notes.insert(0, f"{sockets} sockets ({agents} agents)")
    if row.status != "ok":
        return skip(rows_left, "not every socket connected")

    if spec.kind != "relay":
        row = next_row()
        m = bench.measure(
            [{"op": "request", "customers": customers[w], "accept": True} for w in range(procs)],
            60 + n / 10,
        )
        paired = m.total("paired")
        dropped = m.total("dropped") + m.total("refused") + m.total("unanswered")
        bench.fill_row(row, m, paired, "pairs/s", dropped + (n - paired))
        latencies = m.values("latencies")
        row.p50, row.p99 = quantiles(latencies, n - len(latencies))
        row.notes.insert(0, f"{paired}/{n} paired by {agents} agents")
        if paired == 0:
            return skip(rows_left, "nobody paired")

    row = next_row()
    m = bench.measure(
        [{"op": "chat_closed", "rounds": cfg.rounds} for _ in range(procs)],
        60 + n * cfg.rounds / 40,
    )
    rtts = m.values("latencies")
    bench.fill_row(row, m, len(rtts), "rt/s", m.total("expected") - len(rtts))
    row.p50, row.p99 = quantiles(rtts, m.total("expected") - len(rtts))

    for rate in cfg.open_rates:
        row = next_row()
        start_at = time.perf_counter() + 1.0
        m = bench.measure(
            [
                {
                    "op": "chat_open",
                    "rate": rate / procs,
                    "seconds": cfg.open_seconds,
                    "start_at": start_at,
                    "drain": cfg.drain,
                    "seed": w + 1,
                }
                for w in range(procs)
            ],
            cfg.open_seconds + cfg.drain + 20,
        )
        latencies = m.values("latencies")
        lateness = m.values("lateness")
        scheduled = m.total("scheduled")
        last = max((r.get("last", start_at) for r in m.replies), default=start_at)
        bench.fill_row(row, m, len(latencies), "rt/s", m.total("dropped"))
        # Achieved: answered round trips over the time from the first scheduled message to
        # the last reply (the phase itself also holds the start delay and the drain).
        row.rate = len(latencies) / max(cfg.open_seconds, last - start_at)
        row.p50, row.p99 = quantiles(latencies, m.total("dropped"))
        late99 = percentile(lateness, 0.99) or 0.0
        _, from_send99 = quantiles(m.values("from_send"), m.total("dropped"))
        row.notes.insert(
            0,
            f"offered {scheduled / cfg.open_seconds:.0f} msg/s ({scheduled} scheduled), "
            f"achieved {row.rate:.0f} rt/s; clients sent late by p99 {late99 * 1000:.1f} ms "
            f"(included in the latency; p99 from the actual send {fmt_ms(from_send99)} ms); "
            f"unanswered {cfg.drain:g} s after the last send = dropped",
        )

    # Every socket closes (customers in their sessions, then agents): what a node pays when
    # its sockets go, as on a restart or a proxy's reload. The CPU is read once the server is
    # idle again, so its handling of the closes is all billed.
    row = next_row()
    m = bench.measure([{"op": "teardown"} for _ in range(procs)], 60 + n / 20, settle=True)
    closed = m.total("closed")
    bench.fill_row(row, m, closed, "sockets/s", 0)
    row.notes.insert(0, f"{closed} sockets closed")


def skip(rows: list[Row], why: str) -> None:
    for row in rows:
        row.notes.append(f"not run: {why}")


def waiting_rows(spec: ServerSpec, cfg: Config) -> list[Row]:
    return [
        Row(f"accept @{q:,}", f"{cfg.accepts} of {q + cfg.accepts:,}", spec.label)
        for q in cfg.levels
    ]


def run_waiting(bench: Bench, cfg: Config, rows: list[Row], tokens: list[str]) -> None:
    """Grow the queue to each level (plus the accepts to come) and time accepts there."""
    procs = bench.pool.size
    agents = max(1, cfg.waiting_agents)
    bench.pool.call(
        [
            {
                "op": "setup",
                "kind": "sio",
                "url": bench.base,
                "agent_count": agents,
                "version": cfg.protocol,
            }
            for _ in range(procs)
        ],
        30,
    )
    agent_lists = split([(j, tokens[j]) for j in range(agents)], lambda a: a[0] % procs, procs)
    bench.pool.call(
        [
            {"op": "connect", "agents": agent_lists[w], "customers": [], "batch": cfg.batch}
            for w in range(procs)
        ],
        60,
    )
    waiting = 0
    next_customer = 0
    for q, row in zip(cfg.levels, rows, strict=True):
        add = max(0, q + cfg.accepts - waiting)
        new = list(range(next_customer, next_customer + add))
        next_customer += add
        customers = split(new, lambda i: (i % agents) % procs, procs)
        connect = bench.measure(
            [
                {"op": "connect", "agents": [], "customers": customers[w], "batch": cfg.batch}
                for w in range(procs)
            ],
            60 + add / 20,
        )
        if connect.total("failed") or connect.errors:
            raise PhaseFailed(f"connecting {add} customers: {top(connect.errors)}")
        fill = bench.measure(
            [
                {"op": "request", "customers": customers[w], "accept": False, "batch": cfg.batch}
                for w in range(procs)
            ],
            60 + add / 10,
        )
        queued = fill.total("queued")
        waiting += queued
        fill_dropped = fill.total("dropped") + fill.total("refused") + fill.total("unanswered")
        # The oldest waiting customers are spread over the workers like every customer.
        shares = [
            cfg.accepts // procs + (1 if w < cfg.accepts % procs else 0) for w in range(procs)
        ]
        m = bench.measure(
            [{"op": "accept", "count": shares[w]} for w in range(procs)], 60 + cfg.accepts * 5
        )
        accepted = m.total("accepted")
        waiting -= accepted
        dropped = m.total("dropped") + m.total("refused") + m.total("unanswered")
        bench.fill_row(row, m, accepted, "pairs/s", dropped + fill_dropped)
        latencies = m.values("latencies")
        row.p50, row.p99 = quantiles(latencies, accepted_asked(m) - len(latencies))
        per_accept = ", ".join(
            f"{name} {count / max(accepted, 1):,.1f}" for name, count in m.events.most_common(4)
        )
        row.notes.insert(
            0,
            f"queue {waiting + accepted} -> {waiting}; {accepted} accepted by "
            f"{min(procs, cfg.accepts)} agents at a time; events received per accept: "
            f"{per_accept}; "
            f"filling: {add} connects in {connect.seconds:.1f} s "
            f"({connect.server_cpu * 1000 / max(add, 1):.1f} ms server CPU each), "
            f"{queued} help.requests in {fill.seconds:.1f} s "
            f"({fill.server_cpu * 1000 / max(queued, 1):.1f} ms server CPU each), "
            f"{fill_dropped} queue.added missing",
        )
        if fill.errors:
            row.notes.append("filling refused/errors: " + top(fill.errors))
            row.status = "FAILED"


def push_rows(spec: ServerSpec, cfg: Config) -> list[Row]:
    size = f"{cfg.push_customers:,} to {cfg.push_agents}x{cfg.capacity}"
    return [Row("push routing", size, spec.label)]


@dataclass
class PushResult:
    """The push scenario's own figures, for its markdown table."""

    server: str
    served: int
    customers: int
    seconds: float
    offers: int
    declined: int
    rang_out: int
    one_agent_each: bool
    why_not: list[str]
    offer_to_ack: tuple[float | None, float | None]
    delivery: tuple[float | None, float | None]
    accept_ack: tuple[float | None, float | None]
    think: float
    wait: tuple[float | None, float | None]
    agent_events: Counter[str]
    customer_events: Counter[str]
    most_open: int
    cpu_per_session: float | None
    cpu: float
    """Server CPU seconds over the phase."""
    waited: float
    """Seconds the server's event loop waited for a core over the phase."""


PUSH_RESULTS: list[PushResult] = []


def check_offers(
    offers: list[tuple[str, int]],
    declined: list[tuple[str, int]],
    accepted: list[tuple[str, int]],
    ended: Counter[str],
) -> list[str]:
    """What contradicts "each offer rang at exactly one agent, one agent at a time".

    Counted from what the agents received: a session's ``session.offered`` events must be
    exactly its answers (the declines, the offers that rang out, the accept), no agent offered
    the same session twice (a decline is never offered back), the accept by an agent it was
    offered to. An offer sent to several agents breaks the first.
    """
    problems: list[str] = []
    offered: dict[str, list[int]] = {}
    for ticket_id, agent in offers:
        offered.setdefault(ticket_id, []).append(agent)
    answers: Counter[str] = Counter(t for t, _ in declined)
    answers.update(t for t, _ in accepted)
    expired = ended.get("expired", 0)
    surplus = sum(len(agents) for agents in offered.values()) - sum(answers.values())
    if surplus != expired:
        problems.append(
            f"{sum(len(a) for a in offered.values())} offers received, "
            f"{sum(answers.values())} answered and {expired} rang out"
        )
    twice = [t for t, agents in offered.items() if len(set(agents)) != len(agents)]
    if twice:
        problems.append(f"{len(twice)} sessions offered twice to the same agent")
    stray = [(t, a) for t, a in accepted if a not in offered.get(t, [])]
    if stray:
        problems.append(f"{len(stray)} accepts by an agent the session was not offered to")
    taken = Counter(t for t, _ in accepted)
    if any(n > 1 for n in taken.values()):
        problems.append("a session was accepted twice")
    return problems


def run_push(bench: Bench, cfg: Config, rows: list[Row], tokens: list[str]) -> None:
    """Push routing: ``push_agents`` agents (capacity ``capacity``) connected and Available;
    every customer asks at the same moment; each offer is answered after a think time (a
    share declined, to be offered to another agent), each accepted session held ``handle``
    seconds and ended by its agent, freeing the slot (no wrap-up) for the next offer."""
    procs, n, agents = bench.pool.size, cfg.push_customers, max(1, cfg.push_agents)
    row = rows[0]
    bench.pool.call(
        [
            {"op": "setup", "kind": "sio", "url": bench.base, "agent_count": agents, "version": 2}
            for _ in range(procs)
        ],
        30,
    )
    customers = split(range(n), lambda i: (i % agents) % procs, procs)
    agent_lists = split([(j, tokens[j]) for j in range(agents)], lambda a: a[0] % procs, procs)
    connect = bench.pool.call(
        [
            {
                "op": "connect",
                "agents": agent_lists[w],
                "customers": customers[w],
                "batch": cfg.batch,
            }
            for w in range(procs)
        ],
        60 + n / 20,
    )
    failed = sum(int(r.get("failed", 0)) for r in connect)
    if failed:
        raise PhaseFailed(f"{failed} of {n + agents} sockets did not connect")
    rounds = math.ceil(n / (agents * cfg.capacity))
    m = bench.measure(
        [
            {
                "op": "push",
                "customers": customers[w],
                "think": cfg.think,
                "decline": cfg.decline,
                "handle": cfg.handle,
                "offer_seconds": cfg.offer_seconds,
                "seed": w + 1,
            }
            for w in range(procs)
        ],
        60 + rounds * (cfg.handle + 3 * cfg.think) * 4 + n / 10,
        then=[{"op": "push_collect"}] * procs,
    )
    logs = [r["push"] for r in m.replies]
    offers = [(str(t), int(a)) for log in logs for t, a in log["offers"]]
    declined = [(str(t), int(a)) for log in logs for t, a in log["declined"]]
    accepted = [(str(t), int(a)) for log in logs for t, a in log["push_accepted"]]
    ended: Counter[str] = Counter()
    for log in logs:
        ended.update(log["offer_ended"])
    served = m.total("paired")
    lost = n - served
    why_not = check_offers(offers, declined, accepted, ended)
    unfinished = m.total("unfinished")
    dropped = m.total("dropped") + m.total("refused") + m.total("unanswered") + unfinished
    bench.fill_row(row, m, served, "served/s", dropped + lost)
    offer_to_ack = [x for log in logs for x in log["offer_to_ack"]]
    row.p50, row.p99 = quantiles(offer_to_ack, len(offers) - len(declined) - len(offer_to_ack))
    think = [x for log in logs for x in log["think"]]
    most_open = max((int(log["most_open"]) for log in logs), default=0)
    customer_events = m.events - m.agent_events
    if why_not or most_open > cfg.capacity:
        row.status = "FAILED"
    result = PushResult(
        server=row.server,
        served=served,
        customers=n,
        seconds=m.seconds,
        offers=len(offers),
        declined=len(declined),
        rang_out=ended.get("expired", 0),
        one_agent_each=not why_not,
        why_not=why_not,
        offer_to_ack=(row.p50, row.p99),
        delivery=quantiles([x for log in logs for x in log["delivery"]], 0),
        accept_ack=quantiles([x for log in logs for x in log["accept_ack"]], 0),
        think=sum(think) / len(think) if think else 0.0,
        wait=quantiles(m.values("waits"), lost),
        agent_events=m.agent_events,
        customer_events=customer_events,
        most_open=most_open,
        cpu_per_session=row.cpu_per_op,
        cpu=m.server_cpu,
        waited=m.server_waited,
    )
    PUSH_RESULTS.append(result)
    row.notes.insert(
        0,
        f"{served}/{n} served by {agents} agents of capacity {cfg.capacity} "
        f"(think {cfg.think:g} s, {cfg.decline:.0%} declined, sessions held {cfg.handle:g} s, "
        f"no wrap-up: at best {rounds} rounds of about {cfg.handle + cfg.think:.1f} s); "
        f"{len(offers)} offers, {len(declined)} declined, {ended.get('expired', 0)} rang out "
        f"(session.offer.ended by reason: {top(ended, 8)}); "
        f"p50/p99: the server's offer decision -> the accept's ack, think time included"
        + (f"; answers still running at the end: {unfinished}" if unfinished else ""),
    )
    if why_not:
        row.notes.append("offers not one agent each: " + "; ".join(why_not))
    if most_open > cfg.capacity:
        row.notes.append(f"an agent held {most_open} sessions, over capacity {cfg.capacity}")


def print_push(cfg: Config) -> None:
    """The push scenario's figures as markdown tables (one row per server)."""
    if not PUSH_RESULTS:
        return
    print(
        f"push routing: {cfg.push_customers:,} customers ask at once, {cfg.push_agents} agents "
        f"of capacity {cfg.capacity}, think {cfg.think:g} s (mean), {cfg.decline:.0%} declined, "
        f"sessions held {cfg.handle:g} s, wrap-up 0"
    )
    print()
    print(
        "| server | served | s | offers | declined | rang out | one agent per offer | "
        "offer->accept p50 / p99 ms | of which think (mean) ms | offer delivery p50 / p99 ms | "
        "accept ack p50 / p99 ms | customer wait p50 / p99 ms | agent events per offer | "
        "queue.changed per offer | queue.position per customer | most open per agent | "
        "cpu ms per session | server CPU s | server waited for a core s |"
    )
    print("|" + "---|" * 19)
    for r in PUSH_RESULTS:
        offers = max(r.offers, 1)
        one = "yes" if r.one_agent_each else "NO: " + "; ".join(r.why_not)
        pair = " / ".join
        print(
            f"| {r.server} | {r.served}/{r.customers} | {r.seconds:.1f} | {r.offers} | "
            f"{r.declined} | {r.rang_out} | {one} | "
            f"{pair(fmt_ms(x) for x in r.offer_to_ack)} | "
            f"{r.think * 1000:.0f} | {pair(fmt_ms(x) for x in r.delivery)} | "
            f"{pair(fmt_ms(x) for x in r.accept_ack)} | {pair(fmt_ms(x) for x in r.wait)} | "
            f"{sum(r.agent_events.values()) / offers:.2f} | "
            f"{r.agent_events.get('queue.changed', 0) / offers:.2f} | "
            f"{r.customer_events.get('queue.position', 0) / max(r.customers, 1):.2f} | "
            f"{r.most_open} | {fmt_ms(r.cpu_per_session)} | {r.cpu:.2f} | {r.waited:.2f} |"
        )
    print()
    kinds = sorted({k for r in PUSH_RESULTS for k in r.agent_events})
    print("agent events per offer, by kind:")
    print()
    print("| server | " + " | ".join(kinds) + " |")
    print("|" + "---|" * (len(kinds) + 1))
    for r in PUSH_RESULTS:
        offers = max(r.offers, 1)
        cells = " | ".join(f"{r.agent_events.get(k, 0) / offers:.2f}" for k in kinds)
        print(f"| {r.server} | {cells} |")
    print()


# --------------------------------------------------------------------------- the run


def run_group(
    name: str,
    spec: ServerSpec,
    cfg: Config,
    work: Path,
    template: Path,
    rows: list[Row],
    pool_box: list[Pool],
) -> None:
    """Start the server, run the group's phases, always stop it; rows say how far it got."""
    print(
        f"... {spec.label}: {name} (at {time.perf_counter() - STARTED:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    server = None
    try:
        server, base = start_server(spec, cfg, work, template, name)
        tokens: list[str] = []
        need = {"sessions": cfg.agents, "push": cfg.push_agents}.get(name, cfg.waiting_agents)
        if spec.kind in ("tandem", "tandem-redis"):
            login_deadline = time.monotonic() + 60 * cfg.timeout_scale
            for j in range(need):
                if time.monotonic() > login_deadline:
                    raise PhaseTimeout(f"logging in {need} agents took over 60 s")
                tokens.append(login(base, j))
        elif spec.kind == "minimal":
            tokens = [f"bench-agent-{j}" for j in range(need)]
        bench = Bench(server, base, pool_box[0], spec, cfg.timeout_scale, cfg.spy)
        if cfg.quick:
            bench.quiet_window = QUIET_WINDOW / 3
        if name == "sessions":
            run_sessions(bench, cfg, rows, tokens)
        elif name == "push":
            run_push(bench, cfg, rows, tokens)
        else:
            run_waiting(bench, cfg, rows, tokens)
    except PhaseTimeout as exc:
        mark_rest(rows, "TIMEOUT", str(exc))
        restart_pool(pool_box, cfg)
    except Exception as exc:
        mark_rest(rows, "FAILED", f"{type(exc).__name__}: {exc}")
        if isinstance(exc, PhaseFailed) and "worker" in str(exc):
            restart_pool(pool_box, cfg)
    finally:
        with contextlib.suppress(Exception):
            pool_box[0].call([{"op": "teardown"}] * pool_box[0].size, 60)
        if server is not None:
            peak = proc_status(server.pid).get("VmHWM")
            server.stop()
            records, exceptions = server.log_problems()
            for row in rows:
                if row.status != "not run" and peak is not None:
                    row.notes.append(f"server RSS peak {peak / 1024:.0f} MiB over the group")
                    break
            if records or exceptions:
                rows[0].notes.append(
                    f"server log: {records} ERROR records; "
                    + "; ".join(f"{k} x{v}" for k, v in exceptions.items())
                )
                for row in rows:
                    if row.status == "ok":
                        row.status = "FAILED"
                        row.notes.append("the server logged errors")


def mark_rest(rows: list[Row], status: str, why: str) -> None:
    """The phase that broke gets ``status``; later phases were not run."""
    if status == "not run":
        for row in rows:
            if row.status == "not run":
                row.notes.append(f"not run: {why}")
        return
    first = True
    for row in rows:
        if row.status == "not run":
            row.status = status if first else "not run"
            row.notes.append(why if first else f"not run: an earlier phase ended {status}")
            first = False
    if first and rows:
        rows[-1].notes.append(f"{status}: {why}")


def restart_pool(pool_box: list[Pool], cfg: Config) -> None:
    pool_box[0].kill()
    pool_box[0] = Pool(cfg.procs)


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'scenario':<12} {'size':<16} {'server':<26} {'rate':>8} {'unit':<9} "
        f"{'per core':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/op':>9} {'cpu':>5} "
        f"{'RSS MiB':>7} {'dropped':>7}  status"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        share = "-" if r.cpu_share is None else f"{r.cpu_share:.0%}"
        rss = "-" if r.rss_kib is None else f"{r.rss_kib / 1024:.0f}"
        print(
            f"{r.scenario:<12} {r.size:<16} {r.server:<26} {fmt_rate(r.rate):>8} {r.unit:<9} "
            f"{fmt_rate(r.per_core):>9} {fmt_ms(r.p50):>8} {fmt_ms(r.p99):>8} "
            f"{fmt_ms(r.cpu_per_op):>9} {share:>5} {rss:>7} {r.dropped:>7}  {r.status}"
        )


def pct(ratio: float) -> str:
    return f"{ratio:.0%}" if ratio >= 0.1 else f"{ratio:.2%}"


def print_ratios(rows: list[Row]) -> None:
    """Tandem (and each accelerated variant) over each floor, per scenario of the same run."""
    by_key: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        by_key.setdefault(r.key, {})[r.server] = r
    lines = []
    for (scenario, size), servers in by_key.items():
        for name, row in servers.items():
            if name.startswith("tandem") and row.per_core:
                # Each accelerated Tandem against the minimal server accelerated the same way.
                variant = name.removeprefix("tandem")
                floors = ("minimal sio", "ws relay") if not variant else (f"minimal sio{variant}",)
                for floor_name in floors:
                    floor = servers.get(floor_name)
                    if floor is None or not floor.per_core:
                        continue
                    p99 = "-"
                    if row.p99 and floor.p99 and not math.isinf(row.p99 + floor.p99):
                        p99 = f"{row.p99 / floor.p99:.1f}x"
                    lines.append(
                        f"  {scenario:<12} {size:<16} {name} / {floor_name}: per core "
                        f"{pct(row.per_core / floor.per_core)}, rate "
                        f"{pct((row.rate or 0) / (floor.rate or 1))}, p99 {p99}"
                    )
            base = servers.get(name.split("+")[0])
            if "+" in name and base is not None and base.per_core and row.per_core:
                lines.append(
                    f"  {scenario:<12} {size:<16} {name} / {base.server}: per core "
                    f"{pct(row.per_core / base.per_core)}, server CPU per op "
                    f"{pct((row.cpu_per_op or 0) / (base.cpu_per_op or 1))}"
                )
    if lines:
        print("ratios (throughput per server core and rate: higher is better; p99: lower):")
        print("\n".join(lines))


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; under a minute")
    parser.add_argument("--pairs", type=int, help="sessions (full 1000)")
    parser.add_argument("--agents", type=int, help="agent sockets for the sessions (full 50)")
    parser.add_argument("--rounds", type=int, help="closed-loop round trips per session")
    parser.add_argument("--open-rates", help="comma-separated total msgs/s (full 200)")
    parser.add_argument("--open-seconds", type=float, help="open-loop duration (full 20)")
    parser.add_argument("--drain", type=float, help="seconds to wait for late replies")
    parser.add_argument("--levels", help="waiting-queue lengths (full 10,500,5000)")
    parser.add_argument("--accepts", type=int, help="accepts timed at each level (full 20)")
    parser.add_argument("--waiting-agents", type=int, help="agents in the queue scenario")
    parser.add_argument("--push-customers", type=int, help="customers of push routing (1000)")
    parser.add_argument("--push-agents", type=int, help="agents of push routing (full 100)")
    parser.add_argument("--capacity", type=int, default=3, help="sessions per agent (push)")
    parser.add_argument("--think", type=float, default=0.2, help="mean s before answering")
    parser.add_argument("--decline", type=float, default=0.1, help="share of offers declined")
    parser.add_argument("--handle", type=float, default=1.0, help="s a session is held (push)")
    parser.add_argument("--offer-seconds", type=float, default=20.0, help="server's offer time")
    parser.add_argument("--procs", type=int, default=max(2, min(4, os.cpu_count() or 2)))
    parser.add_argument("--batch", type=int, default=50, help="handshakes in flight per worker")
    parser.add_argument("--rate-limit", type=float, default=1e6, help="server events/s/socket")
    parser.add_argument(
        "--servers",
        default="tandem,minimal,relay",
        help="also tandem-redis: the push group on PostgreSQL + Redis (one node)",
    )
    parser.add_argument("--only", default="sessions,waiting,push", help="scenario groups to run")
    parser.add_argument(
        "--accel",
        nargs="?",
        const="uvloop+orjson",
        default="",
        help="also run the sessions group on tandem and minimal with these variants "
        "(comma-separated from uvloop, orjson, uvloop+orjson; needs them installed)",
    )
    parser.add_argument(
        "--protocol",
        type=int,
        default=2,
        help="protocol version the clients announce (v1: "
        "agents get queue.added/removed per change, v2: queue.changed per tick)",
    )
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="x every phase limit")
    parser.add_argument(
        "--budget", type=float, help="seconds before no further server is started (full 1200)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--profile-server", type=Path, default=None, metavar="PATH")
    parser.add_argument(
        "--spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy (next to this Python) samples each server over each phase into DIR",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    pick = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    return Config(
        pairs=int(pick["pairs"]),
        agents=int(pick["agents"]),
        rounds=int(pick["rounds"]),
        open_rates=tuple(float(x) for x in str(pick["open_rates"]).split(",") if x.strip()),
        open_seconds=float(pick["open_seconds"]),
        drain=float(pick["drain"]),
        levels=tuple(int(x) for x in str(pick["levels"]).split(",") if x.strip()),
        accepts=max(1, int(pick["accepts"])),
        waiting_agents=int(pick["waiting_agents"]),
        procs=max(1, args.procs),
        batch=args.batch,
        rate_limit=args.rate_limit,
        servers=tuple(s.strip() for s in args.servers.split(",") if s.strip()),
        groups=tuple(s.strip() for s in args.only.split(",") if s.strip()),
        accel=tuple(s.strip() for s in args.accel.split(",") if s.strip()),
        timeout_scale=args.timeout_scale,
        budget=args.budget if args.budget is not None else (120.0 if args.quick else 1200.0),
        quick=args.quick,
        protocol=args.protocol,
        keep=args.keep,
        profile_server=args.profile_server,
        spy=args.spy,
        push_customers=int(pick["push_customers"]),
        push_agents=int(pick["push_agents"]),
        capacity=max(1, args.capacity),
        think=max(0.0, args.think),
        decline=min(max(0.0, args.decline), 0.9),
        handle=max(0.0, args.handle),
        offer_seconds=args.offer_seconds,
    )


PUSH_SERVERS = ("tandem", "minimal", "tandem-redis")
"""The servers that route by offers."""


def plan(cfg: Config) -> list[tuple[str, ServerSpec, list[Row]]]:
    groups: list[tuple[str, ServerSpec, list[Row]]] = []
    if "sessions" in cfg.groups:
        specs = [ServerSpec(k) for k in cfg.servers if k in ("tandem", "minimal", "relay")]
        for variant in cfg.accel:
            parts = set(variant.split("+"))
            specs += [
                ServerSpec(k, uvloop="uvloop" in parts, orjson="orjson" in parts)
                for k in ("tandem", "minimal")
                if k in cfg.servers
            ]
        groups += [("sessions", s, sessions_rows(s, cfg)) for s in specs]
    if "waiting" in cfg.groups:
        groups += [
            ("waiting", ServerSpec(k), waiting_rows(ServerSpec(k), cfg))
            for k in cfg.servers
            if k in ("tandem", "minimal")
        ]
    if "push" in cfg.groups:
        groups += [
            ("push", ServerSpec(k), push_rows(ServerSpec(k), cfg))
            for k in cfg.servers
            if k in PUSH_SERVERS
        ]
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    groups = plan(cfg)
    rows = [row for _, _, group_rows in groups for row in group_rows]
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    started = time.perf_counter()
    load_before = loadavg()
    pool_box: list[Pool] = []

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    interrupted = ""
    try:
        template = work / "template"
        agents = max(cfg.agents, cfg.waiting_agents, cfg.push_agents)
        asyncio.run(asyncio.wait_for(build_template(template, agents), 120))
        pool_box.append(Pool(cfg.procs))
        run_deadline = time.monotonic() + cfg.budget
        for name, spec, group_rows in groups:
            if time.monotonic() > run_deadline:
                mark_rest(group_rows, "not run", f"the run's budget of {cfg.budget:.0f} s is spent")
                continue
            run_group(name, spec, cfg, work, template, group_rows, pool_box)
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = f"interrupted ({type(exc).__name__})"
        mark_rest(rows, "not run", interrupted)
    finally:
        stop_all_servers()
        if pool_box:
            with contextlib.suppress(Exception):
                pool_box[0].close()
        print()
        print(
            f"Tandem signaling bench ({'quick' if cfg.quick else 'full'}): "
            f"{cfg.procs} client processes, 127.0.0.1, {os.cpu_count()} CPUs"
            + (f"; {interrupted}" if interrupted else "")
        )
        print_table(rows)
        print()
        print_ratios(rows)
        print()
        print_push(cfg)
        print("notes:")
        for r in rows:
            for note in r.notes:
                print(f"  {r.scenario} {r.size} [{r.server}]: {note}")
        print(
            "  per core = operations / server CPU seconds (all its threads) over the phase; "
            "cpu = the server's CPU over the phase as a share of one core; RSS at the phase's end"
        )
        print(
            "  rt = customer chat.send -> agent chat.message -> agent chat.send -> customer "
            "chat.message (the relay: the same frames, no acks)"
        )
        print(
            f"  load average before {load_before}, after {loadavg()}; total "
            f"{time.perf_counter() - started:.0f} s"
            + (f"; server logs and data kept in {work}" if cfg.keep else "")
        )
        sys.stdout.flush()
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in rows if r.status != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
