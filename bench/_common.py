"""What every bench script needs: servers in their own processes, CPU from /proc, percentiles.

Imported as ``bench._common`` (the scripts put the repository on ``sys.path``; the bench folder
itself is kept off it, since ``bench/signaling.py`` and ``bench/cobrowse.py`` would shadow the
packages they measure).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import aiohttp

READY_TIMEOUT = 30.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of the values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_cpu_precise(pid: int) -> float:
    """CPU seconds of a process's live threads, from ``/proc/PID/task/*/schedstat`` (ns).

    ``/proc/PID/stat`` counts in clock ticks (10 ms), too coarse for phases that cost tens of
    milliseconds; schedstat is exact but forgets threads that have exited, so the larger of the
    two is returned (the servers measured keep their threads: the event loop, the database
    thread, the executor pool).
    """
    total_ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return proc_cpu_seconds(pid)
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total_ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return max(total_ns / 1e9, proc_cpu_seconds(pid))


def run_delay(pid: int) -> float:
    """Seconds the process's main thread (for the servers: the event loop) has spent ready to
    run but waiting for a core (``/proc/PID/schedstat``, second field): on a shared machine,
    how much of a latency was the machine's and not the server's."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds all the machine's cores have spent busy since boot (``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    # user nice system idle iowait irq softirq steal: everything but idle and iowait.
    busy = [int(fields[i]) for i in (1, 2, 3, 6, 7, 8) if i < len(fields)]
    return sum(busy) / _CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process, empty once it is gone."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def die_with_parent() -> None:
    """Child processes get SIGKILL if this bench dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ServerProcess:
    """A server in its own process, its output in a log file; stopped for sure on exit."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        LIVE_SERVERS.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    timeout = aiohttp.ClientTimeout(total=2)
                    async with http.get(url, timeout=timeout) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url} within {READY_TIMEOUT:.0f} s")

    def wait_ready_sync(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        """``wait_ready`` for callers without an event loop (127.0.0.1 URLs only)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)

    def log_problems(self) -> tuple[int, dict[str, int]]:
        return log_problems(self.log_path)


def log_problems(log_path: Path) -> tuple[int, dict[str, int]]:
    """How many ERROR/CRITICAL records the log has, and its exceptions by final line."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return 0, {}
    records = sum(1 for ln in lines if " ERROR " in ln or " CRITICAL " in ln)
    exceptions: dict[str, int] = {}
    block: list[str] | None = None
    for line in [*lines, "0000-end"]:
        if line.startswith("Traceback"):
            block = []
        elif block is not None and line[:4].isdigit():
            # A traceback ends at the next log record; its last unindented line is the error.
            final = [ln for ln in block if ln and not ln[0].isspace()]
            if final:
                key = final[-1][:200]
                exceptions[key] = exceptions.get(key, 0) + 1
            block = None
        elif block is not None:
            block.append(line)
    return records, exceptions


LIVE_SERVERS: list[ServerProcess] = []


def stop_all_servers() -> None:
    for server in list(LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop()


def quantiles(latencies: list[float], lost: int) -> tuple[float | None, float | None]:
    """p50 and p99, counting what never completed as slower than everything (shown as
    ``lost``): percentiles of the survivors alone would flatter a server that drops."""
    values = latencies + [math.inf] * max(0, lost)
    return percentile(values, 0.5), percentile(values, 0.99)


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "lost"
    return f"{seconds * 1000:.2f}" if seconds < 0.01 else f"{seconds * 1000:,.1f}"


QUIET_SHARE = 0.1
"""Between phases a bench waits until its processes together use under this share of one
core over a window."""


def wait_quiet(pids: Sequence[int], window: float, limit: float = 30.0) -> str:
    """Wait (at most ``limit`` s) until the processes are idle over a ``window``; a note when
    they were not (the previous phase's work is then billed to the next), else ``""``."""
    start = time.monotonic()
    before = sum(proc_cpu_precise(p) for p in pids)
    while time.monotonic() < start + limit:
        time.sleep(window)
        now = sum(proc_cpu_precise(p) for p in pids)
        if now - before < QUIET_SHARE * window:
            return ""
        before = now
    return (
        f"the previous phase's traffic had not died down after {limit:.0f} s: "
        "some of its work is billed to this phase"
    )
