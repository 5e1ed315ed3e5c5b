"""Live state in Redis, shared by every node of a deployment.

The same facts as ``MemoryLiveState``, kept where every node sees them. Each change that must
be decided once (a dequeue, a count against a limit) is one Lua script, so it is atomic however
many nodes ask at once: ``ZREM`` of a queued ticket returns 1 to exactly one caller.

Keys, under a configurable prefix ``P`` (tests use a unique one per test):

- ``P:q`` ZSET of waiting ticket ids scored by when they were created; ``P:qe`` HASH of their
  wire entries.
- ``P:m:{ticket}`` SET of the agents in a session; ``P:as:{agent}`` SET of an agent's sessions.
- ``P:p:{agent}`` ZSET of the agent's sockets (``{node}/{sid}``) scored by when they were last
  seen; ``P:online`` SET of agents that may have such sockets. Each node refreshes its own
  sockets every ``heartbeat`` seconds; a socket not seen for ``presence_ttl`` seconds (its node
  died) no longer counts, and is purged on the next change.
- ``P:cs:{address}`` ZSET of a client address's customer sockets, kept alive the same way.
- ``P:ta:{address}`` / ``P:tc:{customer}`` SETs of open tickets held against limits, and
  ``P:th:{ticket}`` the holder of one (``address\\ncustomer``).
- ``P:st:{agent}`` HASH of an agent's status: what they chose (``chosen``, ``reason``), their
  wrap-up end (``wrap``), when they became idle (``idle``), the status last announced (``told``).
- ``P:of`` HASH of ringing offers, ticket -> ``{agent, expiresAt}``; ``P:dc:{ticket}`` SET of the
  agents who declined it; ``P:qr`` HASH of what routing needs of each waiting ticket.
- ``P:lock:{name}`` short locks (one node routes at a time).
- ``P:up:{ticket}`` the uploads arriving for a ticket (expiring: a node that dies mid-upload
  does not hold a place for ever).

Nothing here is durable: SQL is the truth, and ``Desk.reconcile_live_state`` repairs the queue
and the session members from it (after Redis restarts, for one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis

from signaling import background
from signaling.live.state import AgentPresence, OpenTicketLimits, RingingOffer

log = logging.getLogger("tandem.live")

HEARTBEAT_SECONDS = 5.0
PRESENCE_TTL_SECONDS = 15.0
UPLOAD_TTL_SECONDS = 3600

_ENQUEUE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""

_DEQUEUE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return removed
"""

_QUEUE_PAGE = """
local start = 0
if ARGV[2] ~= '' then
  local rank = redis.call('ZRANK', KEYS[1], ARGV[2])
  if rank then start = rank + 1 end
end
local limit = tonumber(ARGV[1])
local ids = {}
if limit > 0 then ids = redis.call('ZRANGE', KEYS[1], start, start + limit - 1) end
local entries = {}
if #ids > 0 then entries = redis.call('HMGET', KEYS[2], unpack(ids)) end
return {redis.call('ZCARD', KEYS[1]), entries}
"""

_QUEUE_ALL = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
"""

# KEYS: queue entries hash. ARGV: ticket id, the entry read, the entry to write instead.
_PATCH_ENTRY = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

_DROP_SESSION = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local members = redis.call('SMEMBERS', KEYS[3])
for _, agent in ipairs(members) do
  redis.call('SREM', ARGV[2] .. agent, ARGV[1])
end
redis.call('DEL', KEYS[3])
return #members
"""

# KEYS: presence zset, online set. ARGV: member, now, stale-before, agent id, ttl seconds
_AGENT_ONLINE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""

_AGENT_OFFLINE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then
  redis.call('SREM', KEYS[2], ARGV[3])
end
return left
"""

# KEYS[1]: online set. ARGV: presence key prefix, stale-before
_ONLINE_AGENTS = """
local online = {}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('ZCOUNT', ARGV[1] .. agent, ARGV[2], '+inf') > 0 then
    table.insert(online, agent)
  elseif redis.call('EXISTS', ARGV[1] .. agent) == 0 then
    redis.call('SREM', KEYS[1], agent)
  end
end
return online
"""

# KEYS[1]: the address's zset. ARGV: member, now, stale-before, limit, ttl seconds
_ADD_CUSTOMER_SOCKET = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: by address, by customer, holder. ARGV: ticket, per address, per customer, holder, has
# customer ('1' or '')
_HOLD_TICKET = """
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'address' end
if ARGV[5] ~= '' and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'customer' end
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[5] ~= '' then redis.call('SADD', KEYS[2], ARGV[1]) end
redis.call('SET', KEYS[3], ARGV[4])
return false
"""

# KEYS[1]: holder. ARGV: address key prefix, customer key prefix, ticket
_RELEASE_TICKET = """
local holder = redis.call('GET', KEYS[1])
if not holder then return 0 end
redis.call('DEL', KEYS[1])
local cut = string.find(holder, '\\n', 1, true)
local address = string.sub(holder, 1, cut - 1)
local customer = string.sub(holder, cut + 1)
redis.call('SREM', ARGV[1] .. address, ARGV[3])
if customer ~= '' then redis.call('SREM', ARGV[2] .. customer, ARGV[3]) end
return 1
"""

# KEYS[1]: status hash. ARGV: status to announce
_TELL_STATUS = """
if redis.call('HGET', KEYS[1], 'told') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'told', ARGV[1])
return 1
"""

# KEYS[1]: status hash. ARGV: chosen, reason, at
_CHOOSE_STATUS = """
local was = redis.call('HGET', KEYS[1], 'chosen') or 'available'
if ARGV[1] == 'available' and was ~= 'available' then
  redis.call('HSET', KEYS[1], 'idle', ARGV[3])
end
redis.call('HSET', KEYS[1], 'chosen', ARGV[1], 'reason', ARGV[2])
return 1
"""

# KEYS[1]: offers hash. ARGV: ticket, agent ('' for any)
_TAKE_OFFER = """
local offer = redis.call('HGET', KEYS[1], ARGV[1])
if not offer then return false end
if ARGV[2] ~= '' and cjson.decode(offer)['agent'] ~= ARGV[2] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return offer
"""

_PUT_OFFER = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_BEGIN_UPLOAD = """
local arriving = tonumber(redis.call('GET', KEYS[1]) or '0')
if arriving >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_END_UPLOAD = """
local left = redis.call('DECR', KEYS[1])
if left <= 0 then redis.call('DEL', KEYS[1]) end
return left
"""


class RedisLiveState:
    """``LiveState`` in Redis; see the module. ``node`` names this process in socket records."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        node: str,
        heartbeat: float = HEARTBEAT_SECONDS,
        presence_ttl: float = PRESENCE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.node = node
        self.heartbeat = heartbeat
        self.presence_ttl = presence_ttl
        self._clock = clock
        self._agent_sockets: defaultdict[str, set[str]] = defaultdict(set)
        self._customer_sockets: defaultdict[str, set[str]] = defaultdict(set)
        """This node's own sockets, which its heartbeat keeps alive."""
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._scripts = {
            name: redis.register_script(source)
            for name, source in {
                "enqueue": _ENQUEUE,
                "dequeue": _DEQUEUE,
                "queue_page": _QUEUE_PAGE,
                "queue_all": _QUEUE_ALL,
                "patch_entry": _PATCH_ENTRY,
                "drop_session": _DROP_SESSION,
                "agent_online": _AGENT_ONLINE,
                "agent_offline": _AGENT_OFFLINE,
                "online_agents": _ONLINE_AGENTS,
                "add_customer_socket": _ADD_CUSTOMER_SOCKET,
                "hold_ticket": _HOLD_TICKET,
                "release_ticket": _RELEASE_TICKET,
                "begin_upload": _BEGIN_UPLOAD,
                "end_upload": _END_UPLOAD,
                "tell_status": _TELL_STATUS,
                "choose_status": _CHOOSE_STATUS,
                "take_offer": _TAKE_OFFER,
                "put_offer": _PUT_OFFER,
                "release_lock": _RELEASE_LOCK,
            }.items()
        }

    # ------------------------------------------------------------------ keys

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def _queue_keys(self) -> list[str]:
        return [self._key("q"), self._key("qe")]

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[script](keys=keys, args=args)

    # ------------------------------------------------------------------ queue

    async def enqueue(self, ticket_id: str, created_at: float, entry: dict[str, Any]) -> int:
        position = await self._run(
            "enqueue",
            self._queue_keys,
            [ticket_id, repr(created_at), json.dumps(entry, separators=(",", ":"))],
        )
        return int(position)

    async def dequeue(self, ticket_id: str) -> bool:
        return bool(await self._run("dequeue", self._queue_keys, [ticket_id]))

    async def position(self, ticket_id: str) -> int | None:
        rank: Any = await self.redis.zrank(self._key("q"), ticket_id)
        return None if rank is None else int(rank) + 1

    async def queue_page(self, limit: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        waiting, entries = await self._run("queue_page", self._queue_keys, [limit, after or ""])
        return _entries(entries), int(waiting)

    async def queue(self) -> list[dict[str, Any]]:
        return _entries(await self._run("queue_all", self._queue_keys, []))

    async def queued_ids(self) -> list[str]:
        ids: list[Any] = await self.redis.zrange(self._key("q"), 0, -1)
        return [_text(t) for t in ids]

    async def queue_entries(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ticket_ids:
            return {}
        raw: list[Any] = await self.redis.hmget(self._key("qe"), ticket_ids)
        return {t: json.loads(r) for t, r in zip(ticket_ids, raw, strict=True) if r is not None}

    async def patch_queue_entry(
        self, ticket_id: str, patch: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        # Read, patch, then write only if the entry is still the one read (a compare-and-set
        # in one script): a dequeue or another patch meanwhile makes it read again.
        for _ in range(8):
            raw: Any = await self.redis.hget(self._key("qe"), ticket_id)
            if raw is None:
                return None
            entry = patch(cast(dict[str, Any], json.loads(raw)))
            if entry is None:
                return None
            written = json.dumps(entry, separators=(",", ":"))
            if await self._run("patch_entry", [self._key("qe")], [ticket_id, raw, written]):
                return entry
        log.warning("queue entry of %s not patched: it kept changing", ticket_id)
        return None

    # ------------------------------------------------------------------ sessions

    async def join(self, ticket_id: str, agent_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._key("m", ticket_id), agent_id)
            pipe.sadd(self._key("as", agent_id), ticket_id)
            await pipe.execute()

    async def leave(self, ticket_id: str, agent_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(self._key("m", ticket_id), agent_id)
            pipe.srem(self._key("as", agent_id), ticket_id)
            await pipe.execute()

    async def members(self, ticket_id: str) -> set[str]:
        return {_text(a) for a in await self.redis.smembers(self._key("m", ticket_id))}

    async def sessions_of(self, agent_id: str) -> set[str]:
        return {_text(t) for t in await self.redis.smembers(self._key("as", agent_id))}

    async def drop_session(self, ticket_id: str) -> None:
        await self._run(
            "drop_session",
            [*self._queue_keys, self._key("m", ticket_id)],
            [ticket_id, self._key("as", "")],
        )
        await self.release_ticket(ticket_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self._key("of"), ticket_id)
            pipe.delete(self._key("dc", ticket_id))
            pipe.hdel(self._key("qr"), ticket_id)
            await pipe.execute()

    # ------------------------------------------------------------------ presence

    def _socket(self, sid: str) -> str:
        return f"{self.node}/{sid}"

    def _stale_before(self) -> float:
        return self._clock() - self.presence_ttl

    async def agent_online(self, agent_id: str, sid: str) -> None:
        self._agent_sockets[agent_id].add(sid)
        self._start_heartbeat()
        await self._mark_agent(agent_id, sid)

    async def _mark_agent(self, agent_id: str, sid: str) -> None:
        await self._run(
            "agent_online",
            [self._key("p", agent_id), self._key("online")],
            [
                self._socket(sid),
                repr(self._clock()),
                repr(self._stale_before()),
                agent_id,
                int(self.presence_ttl * 2),
            ],
        )

    async def agent_offline(self, agent_id: str, sid: str) -> int:
        _discard(self._agent_sockets, agent_id, sid)
        left = await self._run(
            "agent_offline",
            [self._key("p", agent_id), self._key("online")],
            [self._socket(sid), repr(self._stale_before()), agent_id],
        )
        return int(left)

    async def online_agents(self) -> set[str]:
        online = await self._run(
            "online_agents",
            [self._key("online")],
            [self._key("p", ""), repr(self._stale_before())],
        )
        return {_text(agent) for agent in online}

    async def add_customer_socket(self, address: str, sid: str, limit: int) -> bool:
        added = await self._run(
            "add_customer_socket",
            [self._key("cs", address)],
            [
                self._socket(sid),
                repr(self._clock()),
                repr(self._stale_before()),
                limit,
                int(self.presence_ttl * 2),
            ],
        )
        if added:
            self._customer_sockets[address].add(sid)
            self._start_heartbeat()
        return bool(added)

    async def drop_customer_socket(self, address: str, sid: str) -> None:
        _discard(self._customer_sockets, address, sid)
        await self.redis.zrem(self._key("cs", address), self._socket(sid))

    async def refresh_presence(self) -> None:
        """Mark every socket of this node as seen now (what the heartbeat does)."""
        now = repr(self._clock())
        ttl = int(self.presence_ttl * 2)
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id, sids in list(self._agent_sockets.items()):
                key = self._key("p", agent_id)
                pipe.zadd(key, {self._socket(sid): now for sid in sids})
                pipe.expire(key, ttl)
                pipe.sadd(self._key("online"), agent_id)
            for address, sids in list(self._customer_sockets.items()):
                key = self._key("cs", address)
                pipe.zadd(key, {self._socket(sid): now for sid in sids})
                pipe.expire(key, ttl)
            await pipe.execute()

    def _start_heartbeat(self) -> None:
        if self._heartbeat_task is None:
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.refresh_presence()
            except Exception:
                log.warning("presence heartbeat failed (Redis unreachable?)", exc_info=True)

    # ------------------------------------------------------------------ limits

    async def hold_ticket(
        self, ticket_id: str, address: str, customer_id: str | None, limits: OpenTicketLimits
    ) -> str | None:
        refused = await self._run(
            "hold_ticket",
            [
                self._key("ta", address),
                self._key("tc", customer_id or ""),
                self._key("th", ticket_id),
            ],
            [
                ticket_id,
                limits.per_address,
                limits.per_customer,
                f"{address}\n{customer_id or ''}",
                "1" if customer_id else "",
            ],
        )
        return None if refused is None else _text(refused)

    async def release_ticket(self, ticket_id: str) -> None:
        await self._run(
            "release_ticket",
            [self._key("th", ticket_id)],
            [self._key("ta", ""), self._key("tc", ""), ticket_id],
        )

    async def begin_upload(self, ticket_id: str, limit: int) -> bool:
        began = await self._run(
            "begin_upload", [self._key("up", ticket_id)], [limit, UPLOAD_TTL_SECONDS]
        )
        return bool(began)

    async def end_upload(self, ticket_id: str) -> None:
        await self._run("end_upload", [self._key("up", ticket_id)], [])

    async def uploads_arriving(self, ticket_id: str) -> int:
        arriving = await self.redis.get(self._key("up", ticket_id))
        return int(arriving or 0)

    # ------------------------------------------------------------------ routing

    async def agent_presence(self, agent_id: str) -> AgentPresence:
        raw: dict[Any, Any] = await self.redis.hgetall(self._key("st", agent_id))
        return _presence(raw)

    async def agents_routing(
        self, agent_ids: list[str]
    ) -> dict[str, tuple[AgentPresence, set[str]]]:
        if not agent_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.hgetall(self._key("st", agent_id))
                pipe.smembers(self._key("as", agent_id))
            found = await pipe.execute()
        return {
            agent_id: (_presence(found[2 * i]), {_text(t) for t in found[2 * i + 1]})
            for i, agent_id in enumerate(agent_ids)
        }

    async def choose_status(
        self, agent_id: str, status: str, reason: str | None, at: float
    ) -> None:
        await self._run(
            "choose_status", [self._key("st", agent_id)], [status, reason or "", repr(at)]
        )

    async def start_wrap_up(self, agent_id: str, until: float, at: float) -> None:
        await self.redis.hset(
            self._key("st", agent_id), mapping={"wrap": repr(until), "idle": repr(at)}
        )

    async def tell_status(self, agent_id: str, shown: str) -> bool:
        return bool(await self._run("tell_status", [self._key("st", agent_id)], [shown]))

    async def put_offer(self, offer: RingingOffer, holding: tuple[str, str] | None = None) -> bool:
        value = json.dumps({"agent": offer.agent_id, "expiresAt": offer.expires_at})
        lock, token = holding if holding is not None else ("", "")
        put = await self._run(
            "put_offer",
            [self._key("of"), self._key("lock", lock)],
            [offer.ticket_id, value, token],
        )
        return bool(put)

    async def offers(self) -> list[RingingOffer]:
        raw: dict[Any, Any] = await self.redis.hgetall(self._key("of"))
        return [_offer(_text(ticket), value) for ticket, value in raw.items()]

    async def take_offer(self, ticket_id: str, agent_id: str | None = None) -> RingingOffer | None:
        taken = await self._run("take_offer", [self._key("of")], [ticket_id, agent_id or ""])
        return None if taken is None else _offer(ticket_id, taken)

    async def add_declined(self, ticket_id: str, agent_id: str) -> None:
        await self.redis.sadd(self._key("dc", ticket_id), agent_id)

    async def declined(self, ticket_ids: list[str]) -> dict[str, set[str]]:
        if not ticket_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.smembers(self._key("dc", ticket_id))
            found = await pipe.execute()
        return {
            ticket_id: {_text(a) for a in agents}
            for ticket_id, agents in zip(ticket_ids, found, strict=True)
            if agents
        }

    async def set_routing(self, ticket_id: str, info: dict[str, Any]) -> None:
        await self.redis.hset(self._key("qr"), ticket_id, json.dumps(info))

    async def routing_of(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ticket_ids:
            return {}
        raw: list[Any] = await self.redis.hmget(self._key("qr"), ticket_ids)
        return {
            ticket_id: json.loads(value)
            for ticket_id, value in zip(ticket_ids, raw, strict=True)
            if value is not None
        }

    async def drop_routing(self, keys: list[str]) -> None:
        if keys:
            await self.redis.hdel(self._key("qr"), *keys)

    async def add_handle_time(self, queue: str, seconds: float, keep: int) -> None:
        key = self._key("ht", queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, repr(seconds))
            pipe.ltrim(key, 0, keep - 1)
            await pipe.execute()

    async def handle_times(self, queue: str) -> list[float]:
        raw: list[Any] = await self.redis.lrange(self._key("ht", queue), 0, -1)
        return [float(_text(value)) for value in raw]

    async def acquire(self, name: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        held = await self.redis.set(self._key("lock", name), token, nx=True, px=int(ttl * 1000))
        return token if held else None

    async def release(self, name: str, token: str) -> None:
        await self._run("release_lock", [self._key("lock", name)], [token])

    async def close(self) -> None:
        """Stop the heartbeat and forget this node's sockets (they are going with it)."""
        if self._heartbeat_task is not None:
            await background.stop(self._heartbeat_task)
            self._heartbeat_task = None
        with contextlib.suppress(Exception):
            for agent_id, sids in list(self._agent_sockets.items()):
                for sid in list(sids):
                    await self.agent_offline(agent_id, sid)
            for address, sids in list(self._customer_sockets.items()):
                for sid in list(sids):
                    await self.drop_customer_socket(address, sid)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _presence(raw: dict[Any, Any]) -> AgentPresence:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return AgentPresence(
        chosen=fields.get("chosen") or "available",
        reason=fields.get("reason") or None,
        wrap_until=float(fields.get("wrap") or 0.0),
        idle_since=float(fields.get("idle") or 0.0),
        told=fields.get("told", ""),
    )


def _offer(ticket_id: str, raw: bytes | str) -> RingingOffer:
    value = json.loads(raw)
    return RingingOffer(ticket_id, str(value["agent"]), float(value["expiresAt"]))


def _entries(raw: list[Any]) -> list[dict[str, Any]]:
    """Wire entries from ``HMGET`` (an entry missing mid-read is skipped)."""
    return [cast(dict[str, Any], json.loads(entry)) for entry in raw if entry is not None]


def _discard(index: defaultdict[str, set[str]], key: str, member: str) -> None:
    members = index.get(key)
    if members is None:
        return
    members.discard(member)
    if not members:
        del index[key]
