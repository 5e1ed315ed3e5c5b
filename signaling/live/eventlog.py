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

Numbers never go back under a client, even when the log itself is lost (Redis restarted without
its data, a single node restarted): a line starts at its log's ``floor``, 0 in a deployment that
began with no session open, else the log's clock in milliseconds when it began, beyond any number
an earlier log can have handed out (that would take a line more than 1,000 events a second). A
client that holds a number of the lost log sees the new ones as a hole, resumes, and gets a
snapshot from the store (``since`` cannot reach back below the line's start). Were the numbers to
start again at 1, a client still holding, say, 40 would drop the new events 1..40 as seen (their
messages stored, never shown) and a resume after 40 would replay from 41 as if nothing were
missing.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import redis.asyncio as aioredis

from signaling.protocol.jsontext import compact

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

    async def append_lines(
        self,
        ticket_id: str,
        audiences: Sequence[Audience],
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> list[int]:
        """``append`` to each of ``audiences``' lines (one round trip on Redis): the seq on
        each, in order, each as ``append`` answers it."""
        ...

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        """Every event after ``seq`` in order, or None when the log no longer reaches back that
        far (or ``seq`` is ahead of it: the numbers were lost and started again)."""
        ...

    async def current(self, ticket_id: str, audience: Audience) -> int:
        """The line's last ``seq`` (its log's ``floor`` before its first event)."""
        ...

    async def recent(self, ticket_id: str, audience: Audience) -> list[LoggedEvent] | None:
        """The line's last ``keep`` events (all of them on a younger line), or None when the log
        no longer holds them all."""
        ...

    async def end(self, ticket_id: str) -> None:
        """The session ended: keep its lines only ``ttl`` longer (so a client that missed the
        end still gets it replayed), then forget them."""
        ...

    async def close(self) -> None: ...


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
        floor: int = 0,
    ) -> None:
        """``floor``: where every line starts (see the module): 0 unless a session may be open
        whose numbers an earlier log (this process before a restart) handed out."""
        self.keep = keep
        self.floor = floor
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
            line = self._lines[(ticket_id, audience)] = _Line(
                seq=self.floor, events=deque(maxlen=self.keep)
            )
        if once is not None:
            if once in line.once:
                return 0
            line.once.add(once)
        line.seq += 1
        line.events.append((line.seq, name, body if body is not None else compact(payload)))
        line.written = now
        line.forget_at = now + self.counter_ttl
        return line.seq

    async def append_lines(
        self,
        ticket_id: str,
        audiences: Sequence[Audience],
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> list[int]:
        if body is None:
            body = compact(payload)
        return [
            await self.append(ticket_id, audience, name, payload, body, once)
            for audience in audiences
        ]

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        line = self._line(ticket_id, audience, self._clock())
        last = line.seq if line else self.floor
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
        return line.seq if line else self.floor

    async def recent(self, ticket_id: str, audience: Audience) -> list[LoggedEvent] | None:
        last = await self.current(ticket_id, audience)
        return await self.since(ticket_id, audience, max(self.floor, last - self.keep))

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

# The keys of a line share the ticket's hash tag, so a cluster keeps them on one shard and the
# scripts below may touch them together. The floor (``KEYS[4]``) is one key of the deployment's.
_FLOOR = """
local function floor(genesis)
  local value = redis.call('GET', KEYS[4])
  if value then return tonumber(value) end
  -- No floor: a new deployment, or Redis lost its data (and every line's counter with it).
  if genesis == '1' then
    value = 0
  else
    local now = redis.call('TIME')
    value = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  end
  redis.call('SET', KEYS[4], string.format('%d', value), 'NX')
  return tonumber(redis.call('GET', KEYS[4]))
end
"""

# One call numbers an event on one or more lines of a ticket (a session event goes to the
# customer's and the agents' lines: one round trip, not one per line). KEYS: the first line's
# counter, stream and ``once`` set, the floor, then three keys per further line. ARGV[1..6]: keep,
# name, payload, ttl ms, counter ttl ms, genesis; ARGV[7]: the ``once`` key ('' for none); then
# per line whether to skip a number (an event went out unlogged before). Per line: its seq, or 0
# when ``once`` was numbered on it already.
_APPEND = (
    _FLOOR
    + """
local function append(k, skip)
  if ARGV[7] ~= '' then
    if redis.call('SADD', KEYS[k + 2], ARGV[7]) == 0 then return 0 end
    redis.call('PEXPIRE', KEYS[k + 2], ARGV[5])
  end
  local step = 1 + tonumber(skip)
  local seq = redis.call('INCRBY', KEYS[k], step)
  if seq == step then
    -- A new counter (one is never left at 0 by this script): the line starts at the floor.
    local start = floor(ARGV[6])
    if start ~= 0 then
      seq = start + step
      redis.call('SET', KEYS[k], string.format('%d', seq))
    end
  end
  local id = string.format('%d', seq) .. '-0'
  local log = KEYS[k + 1]
  local added = redis.pcall('XADD', log, 'MAXLEN', '~', ARGV[1], id, 'n', ARGV[2], 'p', ARGV[3])
  if type(added) == 'table' and added.err then
    -- The stream outlived its counter (only after data loss): start it again from this number.
    redis.call('DEL', log)
    redis.call('XADD', log, 'MAXLEN', '~', ARGV[1], id, 'n', ARGV[2], 'p', ARGV[3])
  end
  redis.call('PEXPIRE', log, ARGV[4])
  redis.call('PEXPIRE', KEYS[k], ARGV[5])
  return seq
end
local seqs = {append(1, ARGV[8])}
for i = 2, #ARGV - 7 do
  seqs[i] = append(3 * i - 1, ARGV[7 + i])
end
return seqs
"""
)

# ARGV[1]: the seq to replay after ('' for the line's last ``keep``, ARGV[3]).
_SINCE = (
    _FLOOR
    + """
local last = tonumber(redis.call('GET', KEYS[1]) or floor(ARGV[2]))
local after = tonumber(ARGV[1])
if ARGV[1] == '' then after = math.max(floor(ARGV[2]), last - tonumber(ARGV[3])) end
if after == last then return {last, {}} end
if after > last then return {last} end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 then return {last} end
local oldest = tonumber(string.match(first[1][1], '^(%d+)'))
if after < oldest - 1 then return {last} end
local events = redis.call('XRANGE', KEYS[2], string.format('%d', after + 1) .. '-0', '+')
-- A number skipped on purpose (an event went out unlogged) leaves a hole: not replayable.
if #events ~= last - after then return {last} end
return {last, events}
"""
)

_CURRENT = (
    _FLOOR
    + """
return tonumber(redis.call('GET', KEYS[1]) or floor(ARGV[1]))
"""
)


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
        genesis: bool = True,
    ) -> None:
        """``genesis``: with no floor in Redis at this node's first call, the deployment is new
        (the floor is 0); False when a session may be open (its numbers were in a Redis that
        lost them). After its first call a node knows the floor was there: one missing later
        means Redis lost its data."""
        self._redis = client
        self.prefix = prefix
        self._genesis = genesis
        self.keep = keep
        self.ttl = ttl
        self.counter_ttl = max(counter_ttl, ttl)
        self._append = client.register_script(_APPEND)
        self._since = client.register_script(_SINCE)
        self._current = client.register_script(_CURRENT)
        self._unlogged: set[str] = set()
        """Lines of which this node sent an event it could not log (Redis out of reach): their
        next number is skipped, so a resume across the hole is a snapshot, not a replay that
        lacks the event. (This node's hint only: if it dies first, there is no hole.)"""

    def _keys(self, ticket_id: str, audience: Audience) -> list[str]:
        base = f"{self.prefix}ev:{{{ticket_id}}}:{audience}"
        return [f"{base}:seq", f"{base}:log", f"{base}:once", f"{self.prefix}ev:floor"]

    async def append(
        self,
        ticket_id: str,
        audience: Audience,
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> int:
        (seq,) = await self.append_lines(ticket_id, (audience,), name, payload, body, once)
        return seq

    async def append_lines(
        self,
        ticket_id: str,
        audiences: Sequence[Audience],
        name: str,
        payload: dict[str, Any],
        body: str | None = None,
        once: str | None = None,
    ) -> list[int]:
        lines = [self._keys(ticket_id, audience) for audience in audiences]
        keys = [*lines[0], *(key for line in lines[1:] for key in line[:3])]
        if body is None:
            body = compact(payload)
        args: list[str | int] = [
            self.keep,
            name,
            body,
            int(self.ttl * 1000),
            int(self.counter_ttl * 1000),
            "1" if self._genesis else "0",
            once or "",
            *(1 if line[0] in self._unlogged else 0 for line in lines),
        ]
        try:
            seqs = [int(seq) for seq in await self._append(keys=keys, args=args)]
        except Exception:
            # The caller sends the event anyway, unnumbered (Desk.tell).
            self._unlogged.update(line[0] for line in lines)
            raise
        self._unlogged.difference_update(line[0] for line in lines)
        self._genesis = False
        return seqs

    async def since(self, ticket_id: str, audience: Audience, seq: int) -> list[LoggedEvent] | None:
        return await self._replay(ticket_id, audience, str(seq))

    async def recent(self, ticket_id: str, audience: Audience) -> list[LoggedEvent] | None:
        return await self._replay(ticket_id, audience, "")

    async def _replay(
        self, ticket_id: str, audience: Audience, after: str
    ) -> list[LoggedEvent] | None:
        genesis = "1" if self._genesis else "0"
        keys = self._keys(ticket_id, audience)
        reply = await self._since(keys=keys, args=[after, genesis, self.keep])
        self._genesis = False
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
        genesis = "1" if self._genesis else "0"
        value = await self._current(keys=self._keys(ticket_id, audience), args=[genesis])
        self._genesis = False
        return int(value)

    async def end(self, ticket_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for audience in AUDIENCES:
                for key in self._keys(ticket_id, audience)[:3]:
                    pipe.pexpire(key, int(self.ttl * 1000))
            await pipe.execute()

    async def close(self) -> None:
        """The client belongs to whoever made it; nothing of the log's own to close."""
