#!/usr/bin/env python
"""Tandem on 1, 2 and 3 nodes behind HAProxy, beside a single node without Redis, in one run.

Each setup gets a fresh PostgreSQL schema; the clustered ones a redis-server of their own and
HAProxy with the shipped ``deploy/haproxy.cfg`` in front (``bench/_cluster.py``, the launcher
of the multi-node tests too):

* ``single``: one ``tandem serve`` with PostgreSQL and no Redis (live state in process),
  clients straight to it: the single-node deployment;
* ``1 node``, ``2 nodes``, ``3 nodes``: ``tandem serve --redis-url`` behind HAProxy (leastconn,
  so a customer and their agent often sit on different nodes and meet through the bus).

The bench/signaling.py sessions scenario, scaled step by step until latency breaks: at step k
``k x --step-sessions`` customers are held; the new ones connect, all ask for help at once and
their agents accept at once (pairing), then every held session chats open loop at
``k x --step-rate`` customer messages/s (Poisson arrivals; each answered by its agent at once;
latency from each message's scheduled time). A setup stops climbing at the first step whose chat
p99 passes ``--break-ms`` or that loses a message; the clients run in ``--procs`` worker
processes (``bench/_clients.py``). CPU of every node, of redis-server and of HAProxy is read
from ``/proc/PID/task/*/schedstat`` around each phase, memory from ``/proc/PID/status``, and
Redis's command counts (``INFO commandstats``) around the chat: how many round trips a message
costs, a count the machine's other load does not disturb.

On a machine with few cores every node, Redis, HAProxy and the clients share the same cores: more
nodes cannot add throughput here. The table shows what the several-nodes path costs (Redis, the
bus, the proxy) and whether it holds up as the load grows.

Usage::

    .venv/bin/python bench/nodes.py            # full run (a few minutes)
    .venv/bin/python bench/nodes.py --quick    # well under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
# bench/signaling.py would shadow the server package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

from bench._accounts import build_template, login  # noqa: E402
from bench._clients import PhaseFailed, PhaseTimeout, Pool  # noqa: E402
from bench._cluster import Launched, Unavailable, launch  # noqa: E402
from bench._common import (  # noqa: E402
    fmt_ms,
    loadavg,
    log_problems,
    machine_busy_seconds,
    percentile,
    proc_cpu_precise,
    proc_status,
    quantiles,
    wait_quiet,
)

STARTED = time.perf_counter()
SETUPS = ("single", "1", "2", "3")
BENCH_LIMITS = (
    "--rate-per-second", "1000000",
    "--socket-bytes-per-second", "1000000000",
    "--socket-burst-bytes", "4000000000",
    "--max-customer-sockets-per-address", "10000000",
    "--max-open-tickets-per-address", "10000000",
    "--max-open-tickets-per-customer", "10000",
    "--routing", "pull",
)  # fmt: skip
"""Per-socket and per-address limits lifted, as bench/tandem_server.py does: the bench's agents
each carry many sessions (taken by hand: pull routing, no capacity), and all its customers come
from 127.0.0.1."""


@dataclass(frozen=True)
class Config:
    setups: tuple[str, ...]
    agents: int
    step_sessions: int
    step_rate: float
    steps: int
    open_seconds: float
    drain: float
    break_ms: float
    procs: int
    batch: int
    quiet_window: float
    quiet_limit: float
    quick: bool
    keep: bool


FULL: dict[str, Any] = {
    "agents": 50,
    "step_sessions": 100,
    "step_rate": 50.0,
    "steps": 10,
    "open_seconds": 8.0,
    "drain": 5.0,
    "quiet_window": 1.2,
    "quiet_limit": 10.0,
}
QUICK: dict[str, Any] = {
    "agents": 4,
    "step_sessions": 30,
    "step_rate": 20.0,
    "steps": 2,
    "open_seconds": 1.5,
    "drain": 5.0,
    "quiet_window": 0.3,
    "quiet_limit": 2.0,
}


def label(setup: str) -> str:
    return "single" if setup == "single" else f"{setup} node" + ("s" if setup != "1" else "")


@dataclass
class Row:
    setup: str
    step: int
    sessions: int = 0
    pairs_per_s: float | None = None
    pair_p50: float | None = None
    pair_p99: float | None = None
    offered: float = 0.0
    achieved: float | None = None
    chat_p50: float | None = None
    chat_p99: float | None = None
    sent_p99: float | None = None
    """Chat p99 from when each message was actually sent: how much of ``chat_p99`` was the
    clients' own lateness (a starved client sends late; the latency counts it)."""
    node_cpu: list[float] = field(default_factory=list)
    """Each node's CPU over the chat phase, as a share of one core."""
    node_rss_kib: list[int] = field(default_factory=list)
    redis_cpu: float | None = None
    proxy_cpu: float | None = None
    ms_per_rt: float | None = None
    """CPU of nodes + Redis + HAProxy per chat round trip."""
    redis_per_rt: float | None = None
    """Redis commands per chat round trip (each one a wait for some node)."""
    dropped: int = 0
    status: str = "not run"
    notes: list[str] = field(default_factory=list)


@dataclass
class Phase:
    replies: list[dict[str, Any]]
    seconds: float
    cpu: dict[int, float]
    """CPU seconds by pid over the phase."""
    others: float
    errors: Counter[str]
    unquiet: str
    redis_calls: Counter[str] = field(default_factory=Counter)
    """Redis commands run over the phase (``INFO commandstats``), by command."""

    def total(self, key: str) -> int:
        return sum(int(r.get(key, 0)) for r in self.replies)

    def values(self, key: str) -> list[float]:
        return [x for r in self.replies for x in r.get(key, [])]


class Setup:
    """One launched setup and the pool driving it."""

    def __init__(self, up: Launched, pool: Pool, cfg: Config) -> None:
        self.up = up
        self.pool = pool
        self.cfg = cfg
        self.node_pids = [n.process.pid for n in up.nodes]
        self.redis_pid = up.redis.pid if up.redis is not None else None
        self.proxy_pid = up.proxy.pid if up.proxy is not None else None

    def server_pids(self) -> list[int]:
        extra = [p for p in (self.redis_pid, self.proxy_pid) if p is not None]
        return [*self.node_pids, *extra]

    def measure(self, cmds: Sequence[dict[str, Any]], timeout: float) -> Phase:
        pids = [*self.server_pids(), *self.pool.pids()]
        unquiet = wait_quiet(pids, self.cfg.quiet_window, self.cfg.quiet_limit)
        calls0 = self.redis_calls()
        cpu0 = {p: proc_cpu_precise(p) for p in pids}
        machine0, parent0 = machine_busy_seconds(), time.process_time()
        t0 = time.perf_counter()
        replies = self.pool.call(cmds, timeout)
        seconds = time.perf_counter() - t0
        cpu = {p: proc_cpu_precise(p) - cpu0[p] for p in pids}
        calls = self.redis_calls()
        calls.subtract(calls0)
        ours = sum(cpu.values()) + time.process_time() - parent0
        others = max(0.0, machine_busy_seconds() - machine0 - ours)
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["tally"]["errors"])
        for node in self.up.nodes:
            if node.process.poll() is not None:
                raise PhaseFailed(f"{node.name} exited with {node.process.returncode}")
        return Phase(replies, seconds, cpu, others, errors, unquiet, +calls)

    def redis_calls(self) -> Counter[str]:
        """Commands Redis has run so far, by command: round trips that a node waits on (and
        a count no other load on the machine disturbs, unlike the latencies)."""
        calls: Counter[str] = Counter()
        if self.up.redis is None:
            return calls
        for line in self.up.redis.cli("INFO", "commandstats").splitlines():
            # cmdstat_get:calls=12,usec=34,...
            name, _, stats = line.partition(":")
            if name.startswith("cmdstat_") and stats.startswith("calls="):
                calls[name.removeprefix("cmdstat_")] = int(stats.split(",")[0].split("=")[1])
        return calls


def split(items: Sequence[Any], owner: Any, procs: int) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in range(procs)]
    for item in items:
        out[owner(item)].append(item)
    return out


def climb(setup: Setup, cfg: Config, rows: list[Row]) -> None:
    """Connect the agents, then step by step: more customers, pairing, open-loop chat."""
    pool, procs = setup.pool, setup.pool.size
    agents = cfg.agents
    base = setup.up.proxy_url
    deadline = time.monotonic() + 60
    tokens = []
    for j in range(agents):
        if time.monotonic() > deadline:
            raise PhaseTimeout(f"logging in {agents} agents took over 60 s")
        # Logins go to the nodes in turn (HAProxy would do the same).
        tokens.append(login(setup.up.nodes[j % len(setup.up.nodes)].url, j))
    pool.call(
        [{"op": "setup", "kind": "sio", "url": base, "agent_count": agents, "version": 2}] * procs,
        30,
    )
    agent_lists = split([(j, tokens[j]) for j in range(agents)], lambda a: a[0] % procs, procs)
    pool.call(
        [
            {"op": "connect", "agents": agent_lists[w], "customers": [], "batch": cfg.batch}
            for w in range(procs)
        ],
        60,
    )
    held = 0
    for row in rows:
        target = row.step * cfg.step_sessions
        new = list(range(held, target))
        customers = split(new, lambda i: (i % agents) % procs, procs)
        connect = setup.measure(
            [
                {"op": "connect", "agents": [], "customers": customers[w], "batch": cfg.batch}
                for w in range(procs)
            ],
            60 + len(new) / 20,
        )
        if connect.total("failed") or connect.errors:
            row.status = "FAILED"
            row.dropped = connect.total("failed")
            row.notes.append(f"connecting {len(new)} customers: {top(connect.errors)}")
            return
        pairing = setup.measure(
            [{"op": "request", "customers": customers[w], "accept": True} for w in range(procs)],
            60 + len(new) / 10,
        )
        paired = pairing.total("paired")
        held += paired
        row.sessions = held
        pair_lat = pairing.values("latencies")
        row.pairs_per_s = paired / pairing.seconds if pairing.seconds > 0 else None
        row.pair_p50, row.pair_p99 = quantiles(pair_lat, len(new) - len(pair_lat))
        row.dropped = len(new) - paired
        pair_cpu = sum(pairing.cpu[p] for p in setup.server_pids())
        row.notes.append(
            f"pairing {paired}/{len(new)} in {pairing.seconds:.1f} s, "
            f"{pair_cpu * 1000 / max(paired, 1):.1f} ms server CPU each (nodes+Redis+HAProxy)"
        )
        rate = row.step * cfg.step_rate
        row.offered = rate
        start_at = time.perf_counter() + 1.0
        chat = setup.measure(
            [
                {
                    "op": "chat_open",
                    "rate": rate / procs,
                    "seconds": cfg.open_seconds,
                    "start_at": start_at,
                    "drain": cfg.drain,
                    "seed": row.step * 100 + w + 1,
                }
                for w in range(procs)
            ],
            cfg.open_seconds + cfg.drain + 20,
        )
        latencies = chat.values("latencies")
        scheduled = chat.total("scheduled")
        last = max((r.get("last", start_at) for r in chat.replies), default=start_at)
        row.achieved = len(latencies) / max(cfg.open_seconds, last - start_at)
        row.chat_p50, row.chat_p99 = quantiles(latencies, chat.total("dropped"))
        _, row.sent_p99 = quantiles(chat.values("from_send"), chat.total("dropped"))
        row.dropped += chat.total("dropped")
        window = chat.seconds or 1.0
        row.node_cpu = [chat.cpu[p] / window for p in setup.node_pids]
        row.node_rss_kib = [proc_status(p).get("VmRSS", 0) for p in setup.node_pids]
        if setup.redis_pid is not None:
            row.redis_cpu = chat.cpu[setup.redis_pid] / window
        if setup.proxy_pid is not None:
            row.proxy_cpu = chat.cpu[setup.proxy_pid] / window
        server_cpu = sum(chat.cpu[p] for p in setup.server_pids())
        row.ms_per_rt = server_cpu * 1000 / len(latencies) if latencies else None
        clients = sum(chat.cpu[p] for p in pool.pids()) / window
        late99 = percentile(chat.values("lateness"), 0.99) or 0.0
        row.notes.append(
            f"chat: {scheduled} scheduled over {cfg.open_seconds:g} s, {len(latencies)} answered; "
            f"clients sent late by p99 {late99 * 1000:.1f} ms (in the latency); clients "
            f"{clients:.2f} cores, other processes on the machine {chat.others / window:.2f} cores"
        )
        if chat.redis_calls and latencies:
            row.redis_per_rt = sum(chat.redis_calls.values()) / len(latencies)
            row.notes.append(
                f"chat: Redis commands per round trip {row.redis_per_rt:.1f}: "
                + ", ".join(
                    f"{k} {v / len(latencies):.1f}" for k, v in chat.redis_calls.most_common(14)
                )
            )
        for phase in (connect, pairing, chat):
            if phase.unquiet:
                row.notes.append(phase.unquiet)
        problems = connect.errors + pairing.errors + chat.errors
        if problems:
            row.notes.append("errors: " + top(problems))
            row.status = "FAILED"
            return
        over = row.chat_p99 is not None and row.chat_p99 * 1000 > cfg.break_ms
        if over or row.dropped:
            why = f"p99 > {cfg.break_ms:g} ms" if over else f"{row.dropped} lost"
            row.status = f"broke ({why})"
            return
        row.status = "ok"


def top(counter: Counter[str], n: int = 4) -> str:
    return ", ".join(f"{k} x{v}" for k, v in counter.most_common(n)) or "none"


def run_setup(
    setup_name: str, cfg: Config, work: Path, rows: list[Row], pool_box: list[Pool]
) -> None:
    print(
        f"... {label(setup_name)} (at {time.perf_counter() - STARTED:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    here = work / setup_name
    here.mkdir()
    nodes = 1 if setup_name == "single" else int(setup_name)
    clustered = setup_name != "single"

    def provision(database_url: str) -> None:
        asyncio.run(asyncio.wait_for(build_template(here, cfg.agents, database_url), 120))

    try:
        with launch(
            here, nodes, provision, redis=clustered, proxy=clustered, limits=BENCH_LIMITS
        ) as up:
            try:
                climb(Setup(up, pool_box[0], cfg), cfg, rows)
            finally:
                with contextlib.suppress(Exception):
                    pool_box[0].call([{"op": "teardown"}] * pool_box[0].size, 60)
                peaks = [proc_status(n.process.pid).get("VmHWM", 0) for n in up.nodes]
                ran = [r for r in rows if r.status != "not run"]
                if ran:
                    ran[-1].notes.append(
                        "node RSS peak " + "/".join(f"{p / 1024:.0f}" for p in peaks) + " MiB"
                    )
        for node in up.nodes:
            records, exceptions = log_problems(node.log)
            if records or exceptions:
                rows[0].notes.append(
                    f"{node.name} log: {records} ERROR records; "
                    + "; ".join(f"{k} x{v}" for k, v in exceptions.items())
                )
                for row in rows:
                    if row.status != "not run":
                        row.status = "FAILED"
    except (PhaseTimeout, PhaseFailed, Unavailable, RuntimeError, OSError) as exc:
        failed = next((r for r in rows if r.status in ("not run", "ok")), rows[-1])
        if failed.status == "ok":
            failed = rows[-1]
        failed.status = "TIMEOUT" if isinstance(exc, PhaseTimeout) else "FAILED"
        failed.notes.append(f"{type(exc).__name__}: {exc}"[:400])
        pool_box[0].kill()
        pool_box[0] = Pool(cfg.procs)
    for row in rows:
        if row.status == "not run":
            row.notes.append("not run: the setup broke or failed at an earlier step")


def share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'setup':<8} {'step':>4} {'sessions':>8} {'pairs/s':>7} {'pair p50':>8} "
        f"{'pair p99':>8} {'offered':>7} {'rt/s':>5} {'chat p50':>8} {'chat p99':>8} "
        f"{'sent p99':>8} "
        f"{'node CPU':<14} {'node RSS MiB':<12} {'redis':>5} {'proxy':>5} {'ms/rt':>5} "
        f"{'cmd/rt':>6} {'lost':>4}  status"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        cpu = "/".join(f"{c * 100:.0f}%" for c in r.node_cpu) or "-"
        rss = "/".join(f"{k / 1024:.0f}" for k in r.node_rss_kib) or "-"
        ms = "-" if r.ms_per_rt is None else f"{r.ms_per_rt:.2f}"
        cmds = "-" if r.redis_per_rt is None else f"{r.redis_per_rt:.1f}"
        print(
            f"{label(r.setup):<8} {r.step:>4} {r.sessions:>8,} {fmt_rate(r.pairs_per_s):>7} "
            f"{fmt_ms(r.pair_p50):>8} {fmt_ms(r.pair_p99):>8} {r.offered:>7,.0f} "
            f"{fmt_rate(r.achieved):>5} {fmt_ms(r.chat_p50):>8} {fmt_ms(r.chat_p99):>8} "
            f"{fmt_ms(r.sent_p99):>8} "
            f"{cpu:<14} {rss:<12} {share(r.redis_cpu):>5} {share(r.proxy_cpu):>5} {ms:>5} "
            f"{cmds:>6} {r.dropped:>4}  {r.status}"
        )


def highest_ok(rows: list[Row], setup: str) -> Row | None:
    ok = [r for r in rows if r.setup == setup and r.status == "ok"]
    return ok[-1] if ok else None


def print_summary(rows: list[Row], cfg: Config) -> None:
    print(f"highest step held (chat p99 <= {cfg.break_ms:g} ms, nothing lost):")
    single = highest_ok(rows, "single")
    for setup in cfg.setups:
        best = highest_ok(rows, setup)
        if best is None:
            print(f"  {label(setup):<8} none")
            continue
        same = next((r for r in rows if r.setup == "single" and r.step == best.step), None)
        beside = ""
        if setup != "single" and same is not None and same.ms_per_rt and best.ms_per_rt:
            beside = (
                f"; CPU per round trip {best.ms_per_rt / same.ms_per_rt:.1f}x the single node's "
                "at that step"
            )
        print(
            f"  {label(setup):<8} {best.sessions:,} sessions at {best.offered:,.0f} msg/s, "
            f"chat p99 {fmt_ms(best.chat_p99)} ms{beside}"
        )
    if single is None:
        print("  (the single node held no step)")


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small steps; well under 1 min")
    parser.add_argument("--setups", default=",".join(SETUPS), help="from single,1,2,3")
    parser.add_argument("--agents", type=int, help="agent sockets (full 50)")
    parser.add_argument("--step-sessions", type=int, help="sessions added per step (full 100)")
    parser.add_argument("--step-rate", type=float, help="msg/s added per step (full 50)")
    parser.add_argument("--steps", type=int, help="most steps per setup (full 10)")
    parser.add_argument("--open-seconds", type=float, help="open-loop chat per step (full 8)")
    parser.add_argument("--drain", type=float, help="seconds for late replies (then lost)")
    parser.add_argument("--break-ms", type=float, default=250.0, help="chat p99 that breaks")
    parser.add_argument("--procs", type=int, default=max(2, min(4, os.cpu_count() or 2)))
    parser.add_argument("--batch", type=int, default=50, help="handshakes in flight per worker")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (node logs)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    pick = {k: getattr(args, k, None) for k in base}
    pick = {k: v if v is not None else base[k] for k, v in pick.items()}
    setups = tuple(s.strip() for s in args.setups.split(",") if s.strip())
    unknown = [s for s in setups if s not in SETUPS]
    if unknown:
        parser.error(f"unknown setups {unknown}; choose from {','.join(SETUPS)}")
    return Config(
        setups=setups,
        agents=max(1, int(pick["agents"])),
        step_sessions=max(1, int(pick["step_sessions"])),
        step_rate=float(pick["step_rate"]),
        steps=max(1, int(pick["steps"])),
        open_seconds=float(pick["open_seconds"]),
        drain=float(pick["drain"]),
        break_ms=args.break_ms,
        procs=max(1, args.procs),
        batch=args.batch,
        quiet_window=float(pick["quiet_window"]),
        quiet_limit=float(pick["quiet_limit"]),
        quick=args.quick,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    rows_by_setup = {s: [Row(s, k) for k in range(1, cfg.steps + 1)] for s in cfg.setups}
    rows = [r for s in cfg.setups for r in rows_by_setup[s]]
    for r in rows:
        r.offered = r.step * cfg.step_rate
    work = Path(tempfile.mkdtemp(prefix="tandem-nodes-bench-"))
    load_before = loadavg()
    pool_box: list[Pool] = []

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    interrupted = ""
    try:
        pool_box.append(Pool(cfg.procs))
        for setup in cfg.setups:
            run_setup(setup, cfg, work, rows_by_setup[setup], pool_box)
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = f"interrupted ({type(exc).__name__})"
    finally:
        if pool_box:
            with contextlib.suppress(Exception):
                pool_box[0].close()
        print()
        print(
            f"Tandem nodes bench ({'quick' if cfg.quick else 'full'}): {cfg.procs} client "
            f"processes, {cfg.agents} agents, +{cfg.step_sessions} sessions and "
            f"+{cfg.step_rate:g} msg/s a step, {cfg.open_seconds:g} s of chat a step; "
            f"127.0.0.1, {os.cpu_count()} CPUs" + (f"; {interrupted}" if interrupted else "")
        )
        print_table(rows)
        print()
        print_summary(rows, cfg)
        print()
        print("notes:")
        for r in rows:
            for note in r.notes:
                print(f"  {label(r.setup)} step {r.step}: {note}")
        print(
            "  single = one node, PostgreSQL, no Redis, clients straight to it; N nodes = "
            "PostgreSQL + a redis-server + HAProxy (deploy/haproxy.cfg) in front"
        )
        print(
            "  offered = customer msg/s; rt/s = answered round trips/s (customer chat.send -> "
            "agent -> reply -> customer); chat latency from each message's scheduled time "
            "(sent p99: from its actual send, without the clients' lateness; the break is on "
            "chat p99); "
            "node CPU / redis / proxy = CPU over the chat phase as a share of one core; "
            "ms/rt = CPU of nodes + Redis + HAProxy per round trip; cmd/rt = Redis commands "
            "per round trip (INFO commandstats, the nodes' background work included; a Lua "
            "script's own calls counted too); RSS at the step's end"
        )
        print(
            f"  {os.cpu_count()} CPUs shared by every node, Redis, HAProxy and the clients: "
            "more nodes here cannot mean more throughput, only what the several-nodes path "
            "costs and whether it holds"
        )
        print(
            f"  load average before {load_before}, after {loadavg()}; total "
            f"{time.perf_counter() - STARTED:.0f} s"
            + (f"; node logs kept in {work}" if cfg.keep else "")
        )
        sys.stdout.flush()
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.status != "FAILED" and r.status != "TIMEOUT" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
