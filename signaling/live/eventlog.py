"""Each session's recent events, numbered, so a client that lost its socket (or missed a message
on the bus) gets exactly what it missed.

Every session event the server sends is appended here first, and the number it gets (``seq``:
1, 2, 3, ... per ticket and audience) travels with it. A ticket has two numbered lines, one per
audience, because the customer does not see everything the agents see (the timeline, context
changes): ``customer`` holds what the customer's sockets get, ``agents`` what the session's agents
get. A client remembers the last number it applied; after a reconnect or a gap it asks for what
came after it (``since``).

The log keeps the last ``keep`` events of a line and forgets them ``ttl`` seconds after the last
write. When it no longer reaches back, ``since`` answers None and the client takes a snapshot from
the store instead: the store stays the truth, this log only spares the snapshot. The counter
outlives the events (``counter_ttl``, renewed by every write) so the numbers of a quiet session
never start again at 1 under its clients; when a session ends it goes with the events.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import redis.asyncio as aioredis

Audience = Literal["customer", "agents"]
AUDIENCES: tuple[Audience, ...] = ("customer", "agents")

DEFAULT_KEEP = 500
"""Events kept per ticket and audience (a few minutes of a busy chat)."""
DEFAULT_TTL = 120.0
"""Seconds after its last write that a line's events are forgotten (a client away longer resumes
from the store)."""
DEFAULT_COUNTER_TTL = 7 * 86400.0
"""Seconds after its last write that a line's counter is forgotten (an open session that quiet)."""


class LoggedEvent(NamedTuple):
    seq: int
    name: str
    """The socket.io event name (the model's ``type``)."""
    payload: dict[str, Any]
    """The event as sent, without its ``seq``."""

    def wire(self) -> dict[str, Any]:
        """The event as a client receives it live."""
        return {**self.payload, "seq": self.seq}


class EventLog(Protocol):
    keep: int
    """Events kept per line."""

    async def append(
        self,
        ticket_id: str,
        audience: Audience,
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> int:
        """Number the event and keep it; its ``seq`` (one more than the line's last).
        ``body``: the payload's JSON when the caller made it already (it is sent as well).
        ``once``: a key the line numbers at most one event under (a chat message's id): 0 when
        an event was numbered under it already, and nothing is kept (the caller sends nothing:
        a node that stored a message, froze before telling it, and woke after another node
        told it for the resent message, would otherwise number it twice)."""
        ...

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        """Every event after ``seq`` in order, or None when the log no longer reaches back that
        far (or ``seq`` is ahead of it: the numbers were lost and started again)."""
        ...

    async def current(self, ticket_id: str, audience: Audience) -> int:
        """The line's last ``seq`` (0 before its first event)."""
        ...

    async def end(self, ticket_id: str) -> None:
        """The session ended: keep its lines only ``ttl`` longer (so a client that missed the
        end still gets it replayed), then forget them."""
        ...

    async def close(self) -> None: ...


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- one node


@dataclass
class _Line:
    seq: int = 0
    events: deque[tuple[int, str, str]] = field(default_factory=deque)
    """(seq, name, payload as JSON): a fifth of the memory of the payload's dict."""
    written: float = 0.0
    forget_at: float = 0.0
    once: set[str] = field(default_factory=set)
    """The ``once`` keys numbered on the line."""


class MemoryEventLog:
    """The embedded (one-node) log: bounded deques, forgotten on an injected clock."""

    SWEEP_EVERY = 60.0

    def __init__(
        self,
        keep: int = DEFAULT_KEEP,
        ttl: float = DEFAULT_TTL,
        counter_ttl: float = DEFAULT_COUNTER_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep = keep
        self.ttl = ttl
        self.counter_ttl = max(counter_ttl, ttl)
        self._clock = clock
        self._lines: dict[tuple[str, Audience], _Line] = {}
        self._swept = clock()

    async def append(
        self,
        ticket_id: str,
        audience: Audience,
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> int:
        now = self._clock()
        self._sweep(now)
        line = self._line(ticket_id, audience, now)
        if line is None:
            line = self._lines[(ticket_id, audience)] = _Line(events=deque(maxlen=self.keep))
        if once is not None:
            if once in line.once:
                return 0
            line.once.add(once)
        line.seq += 1
        line.events.append((line.seq, name, body if body is not None else _json(payload)))
        line.written = now
        line.forget_at = now + self.counter_ttl
        return line.seq

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        line = self._line(ticket_id, audience, self._clock())
        last = line.seq if line else 0
        if seq == last:
            return []
        if line is None or seq > last or not line.events or seq < line.events[0][0] - 1:
            return None
        return [
            LoggedEvent(number, name, json.loads(body))
            for number, name, body in line.events
            if number > seq
        ]

    async def current(self, ticket_id: str, audience: Audience) -> int:
        line = self._line(ticket_id, audience, self._clock())
        return line.seq if line else 0

    async def end(self, ticket_id: str) -> None:
        now = self._clock()
        for audience in AUDIENCES:
            line = self._line(ticket_id, audience, now)
            if line is not None:
                line.forget_at = min(line.forget_at, now + self.ttl)

    async def close(self) -> None:
        self._lines.clear()

    def _line(self, ticket_id: str, audience: Audience, now: float) -> _Line | None:
        """The line as of ``now``: its events dropped once stale, itself once forgotten."""
        line = self._lines.get((ticket_id, audience))
        if line is None:
            return None
        if now >= line.forget_at:
            del self._lines[(ticket_id, audience)]
            return None
        if now - line.written >= self.ttl:
            line.events.clear()
        return line

    def _sweep(self, now: float) -> None:
        # Lines of sessions nobody writes to any more are dropped here, not only when read.
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        for key in [key for key, line in self._lines.items() if now >= line.forget_at]:
            del self._lines[key]
        for line in self._lines.values():
            if now - line.written >= self.ttl:
                line.events.clear()

    def __len__(self) -> int:
        """Lines held (what the sweep bounds)."""
        return len(self._lines)


# --------------------------------------------------------------------------- several nodes

# Both keys of a line share the ticket's hash tag, so a cluster keeps them on one shard and the
# scripts below may touch both.
_APPEND = """
if ARGV[7] ~= '' then
  if redis.call('SADD', KEYS[3], ARGV[7]) == 0 then return 0 end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
local seq = redis.call('INCRBY', KEYS[1], 1 + tonumber(ARGV[6]))
local id = seq .. '-0'
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], id, 'n', ARGV[2], 'p', ARGV[3])
if type(added) == 'table' and added.err then
  -- The stream outlived its counter (only after data loss): start it again from this number.
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], id, 'n', ARGV[2], 'p', ARGV[3])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return seq
"""

_SINCE = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local after = tonumber(ARGV[1])
if after == last then return {last, {}} end
if after > last then return {last} end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 then return {last} end
local oldest = tonumber(string.match(first[1][1], '^(%d+)'))
if after < oldest - 1 then return {last} end
local events = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+')
-- A number skipped on purpose (an event went out unlogged) leaves a hole: not replayable.
if #events ~= last - after then return {last} end
return {last, events}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventLog:
    """The log of several nodes: per line, a counter (``INCR``) and a capped stream
    (``XADD MAXLEN ~ keep``) whose entry id is the ``seq``, written together by one script."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "tandem:",
        keep: int = DEFAULT_KEEP,
        ttl: float = DEFAULT_TTL,
        counter_ttl: float = DEFAULT_COUNTER_TTL,
    ) -> None:
        self._redis = client
        self.prefix = prefix
        self.keep = keep
        self.ttl = ttl
        self.counter_ttl = max(counter_ttl, ttl)
        self._append = client.register_script(_APPEND)
        self._since = client.register_script(_SINCE)
        self._unlogged: set[str] = set()
        """Lines of which this node sent an event it could not log (Redis out of reach): their
        next number is skipped, so a resume across the hole is a snapshot, not a replay that
        lacks the event. (This node's hint only: if it dies first, there is no hole.)"""

    def _keys(self, ticket_id: str, audience: Audience) -> list[str]:
        base = f"{self.prefix}ev:{{{ticket_id}}}:{audience}"
        return [f"{base}:seq", f"{base}:log", f"{base}:once"]

    async def append(
        self,
        ticket_id: str,
        audience: Audience,
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> int:
        keys = self._keys(ticket_id, audience)
        if body is None:
            body = _json(payload)
        args: list[str | int] = [
            self.keep,
            name,
            body,
            int(self.ttl * 1000),
            int(self.counter_ttl * 1000),
            1 if keys[0] in self._unlogged else 0,
            once or "",
        ]
        try:
            seq = int(await self._append(keys=keys, args=args))
        except Exception:
            # The caller sends the event anyway, unnumbered (Desk.tell).
            self._unlogged.add(keys[0])
            raise
        self._unlogged.discard(keys[0])
        return seq

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        reply = await self._since(keys=self._keys(ticket_id, audience), args=[seq])
        if len(reply) < 2:
            return None
        events = []
        for entry_id, fields in reply[1]:
            values = dict(zip(map(_text, fields[::2]), fields[1::2], strict=True))
            events.append(
                LoggedEvent(
                    int(_text(entry_id).split("-")[0]),
                    _text(values["n"]),
                    json.loads(values["p"]),
                )
            )
        return events

    async def current(self, ticket_id: str, audience: Audience) -> int:
        value = await self._redis.get(self._keys(ticket_id, audience)[0])
        return int(value) if value is not None else 0

    async def end(self, ticket_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for audience in AUDIENCES:
                for key in self._keys(ticket_id, audience):
                    pipe.pexpire(key, int(self.ttl * 1000))
            await pipe.execute()

    async def close(self) -> None:
        """The client belongs to whoever made it; nothing of the log's own to close."""
