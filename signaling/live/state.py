"""Live state: the queue, who is in which session, who is online.

Everything here is what several nodes must agree on while sessions run, so it sits behind one
small interface: ``MemoryLiveState`` for a single node now, a Redis implementation for several.
Nothing here is durable; after a restart of a single node ``rebuild`` refills it from the store.
Handlers never keep such state in their own dicts.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol


class LiveState(Protocol):
    async def enqueue(self, ticket_id: str, created_at: float, entry: dict[str, Any]) -> int:
        """Add a waiting ticket; ``entry`` is its wire ``QueueEntry``. Its position (1-based)."""
        ...

    async def position(self, ticket_id: str) -> int | None:
        """A waiting ticket's position (1-based), None if it is not waiting."""
        ...

    async def queue_page(self, limit: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` waiting entries, oldest first, after ticket ``after``; and how many
        wait in all."""
        ...

    async def dequeue(self, ticket_id: str) -> bool:
        """Remove a ticket from the queue; True only for the one caller that removed it."""
        ...

    async def queue(self) -> list[dict[str, Any]]:
        """Waiting entries, oldest first."""
        ...

    async def queued_ids(self) -> list[str]: ...

    async def queue_entries(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The entries of those of ``ticket_ids`` still waiting."""
        ...

    async def patch_queue_entry(
        self, ticket_id: str, patch: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Replace a waiting ticket's entry by ``patch(entry)``, unless that is None: the new
        entry, or None if the ticket is not waiting or ``patch`` changed nothing. A change
        made meanwhile (on any node) is never overwritten: ``patch`` then runs again on it."""
        ...

    async def join(self, ticket_id: str, agent_id: str) -> None: ...
    async def leave(self, ticket_id: str, agent_id: str) -> None: ...
    async def members(self, ticket_id: str) -> set[str]:
        """Agents in a session."""
        ...

    async def sessions_of(self, agent_id: str) -> set[str]: ...
    async def drop_session(self, ticket_id: str) -> None:
        """Forget a finished session's queue entry and members."""
        ...

    async def agent_online(self, agent_id: str, sid: str) -> None: ...
    async def agent_offline(self, agent_id: str, sid: str) -> int:
        """Forget one socket of an agent; how many of their sockets remain."""
        ...

    async def online_agents(self) -> set[str]: ...

    async def add_customer_socket(self, address: str, sid: str, limit: int) -> bool:
        """Count a customer socket against its client address; False (and nothing counted)
        when the address already has ``limit`` sockets."""
        ...

    async def drop_customer_socket(self, address: str, sid: str) -> None: ...

    async def hold_ticket(
        self, ticket_id: str, address: str, customer_id: str | None, limits: OpenTicketLimits
    ) -> str | None:
        """Count a new open ticket against its address and customer before it is created;
        None if held, else which limit refused it (and nothing is counted). Released when
        the session is dropped, or by ``release_ticket`` if creating it failed."""
        ...

    async def release_ticket(self, ticket_id: str) -> None: ...

    async def begin_upload(self, ticket_id: str, limit: int) -> bool:
        """Count an upload arriving for a ticket; False (nothing counted) at ``limit``."""
        ...

    async def end_upload(self, ticket_id: str) -> None: ...

    async def uploads_arriving(self, ticket_id: str) -> int:
        """How many uploads for a ticket are counted as arriving (counts nothing itself)."""
        ...

    # Routing: each agent's status, the offers ringing, who declined what.

    async def agent_presence(self, agent_id: str) -> AgentPresence:
        """What the agent chose and their timers (a default one if nothing is known)."""
        ...

    async def agents_routing(
        self, agent_ids: list[str]
    ) -> dict[str, tuple[AgentPresence, set[str]]]:
        """``agent_presence`` and ``sessions_of`` of each agent, read at once (one round trip
        with Redis: a routing pass reads every online agent while holding the routing lock)."""
        ...

    async def choose_status(
        self, agent_id: str, status: str, reason: str | None, at: float
    ) -> None:
        """The agent picked ``available``, ``away`` or ``offline`` (becoming Available starts
        their idle time)."""
        ...

    async def start_wrap_up(self, agent_id: str, until: float, at: float) -> None:
        """A session of the agent ended at ``at``: wrap-up until ``until``, idle from ``at``."""
        ...

    async def tell_status(self, agent_id: str, shown: str) -> bool:
        """Record the status last announced for the agent; True only for the one caller that
        changed it (so each change is announced once, whichever node sees it)."""
        ...

    async def put_offer(self, offer: RingingOffer, holding: tuple[str, str] | None = None) -> bool:
        """Ring ``offer``; False (nothing changed) if that ticket already rings somewhere, or
        when ``holding`` (a lock's name and token, from ``acquire``) is given and that lock is
        no longer held with that token (it lapsed: another pass may be deciding now)."""
        ...

    async def offers(self) -> list[RingingOffer]:
        """Every offer ringing now (each node expires those past their time)."""
        ...

    async def take_offer(self, ticket_id: str, agent_id: str | None = None) -> RingingOffer | None:
        """End the ticket's offer (only if it rings for ``agent_id``, when given); the offer for
        the one caller that ended it, else None."""
        ...

    async def add_declined(self, ticket_id: str, agent_id: str) -> None:
        """The agent declined the ticket or let it ring out: it is not offered to them again."""
        ...

    async def declined(self, ticket_ids: list[str]) -> dict[str, set[str]]:
        """Per ticket, the agents who declined it (tickets nobody declined are left out)."""
        ...

    async def set_routing(self, ticket_id: str, info: dict[str, Any]) -> None:
        """What routing needs of a waiting ticket (its queue, skills, priority, since)."""
        ...

    async def routing_of(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]: ...
    async def drop_routing(self, keys: list[str]) -> None:
        """Forget entries set with ``set_routing`` (a pending transfer, an agent's load)."""
        ...

    async def add_handle_time(self, queue: str, seconds: float, keep: int) -> None:
        """A session of ``queue`` ended after ``seconds`` with an agent; the last ``keep``
        are kept (the customer's estimated wait comes from them)."""
        ...

    async def handle_times(self, queue: str) -> list[float]: ...

    async def acquire(self, name: str, ttl: float) -> str | None:
        """A short lock over every node: a token if this caller holds it now, else None. It
        lapses after ``ttl`` seconds (its holder may die)."""
        ...

    async def release(self, name: str, token: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class AgentPresence:
    chosen: str = "available"
    """What the agent picked: available, away or offline (new agents start available)."""
    reason: str | None = None
    wrap_until: float = 0.0
    idle_since: float = 0.0
    told: str = ""
    """The status last announced for them."""


@dataclass(frozen=True)
class RingingOffer:
    ticket_id: str
    agent_id: str
    expires_at: float


@dataclass(frozen=True)
class OpenTicketLimits:
    per_address: int
    per_customer: int


class MemoryLiveState:
    """Single-node live state in plain dicts (all calls run on the one event loop)."""

    def __init__(self) -> None:
        self._queue: dict[str, tuple[float, dict[str, Any]]] = {}
        self._members: defaultdict[str, set[str]] = defaultdict(set)
        self._sessions: defaultdict[str, set[str]] = defaultdict(set)
        self._sockets: defaultdict[str, set[str]] = defaultdict(set)
        self._customer_sockets: defaultdict[str, set[str]] = defaultdict(set)
        self._tickets_by_address: defaultdict[str, set[str]] = defaultdict(set)
        self._tickets_by_customer: defaultdict[str, set[str]] = defaultdict(set)
        self._ticket_holders: dict[str, tuple[str, str | None]] = {}
        self._uploads: dict[str, int] = {}
        self._presence: dict[str, AgentPresence] = {}
        self._offers: dict[str, RingingOffer] = {}
        self._declined: defaultdict[str, set[str]] = defaultdict(set)
        self._routing: dict[str, dict[str, Any]] = {}
        self._handle_times: dict[str, list[float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    async def enqueue(self, ticket_id: str, created_at: float, entry: dict[str, Any]) -> int:
        # The dict is kept in waiting order: tickets nearly always arrive newest last, so
        # appending is O(1); one that arrives out of order re-sorts once.
        last = next(reversed(self._queue.values()), None) if self._queue else None
        self._queue[ticket_id] = (created_at, entry)
        if last is not None and created_at < last[0]:
            ordered = sorted(self._queue.items(), key=lambda item: item[1][0])
            self._queue = dict(ordered)
            return list(self._queue).index(ticket_id) + 1
        return len(self._queue)

    async def dequeue(self, ticket_id: str) -> bool:
        return self._queue.pop(ticket_id, None) is not None

    async def queue(self) -> list[dict[str, Any]]:
        return [entry for _, entry in self._queue.values()]

    async def queued_ids(self) -> list[str]:
        return list(self._queue)

    async def queue_entries(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        queue = self._queue
        return {t: queue[t][1] for t in ticket_ids if t in queue}

    async def patch_queue_entry(
        self, ticket_id: str, patch: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        held = self._queue.get(ticket_id)
        if held is None:
            return None
        entry = patch(held[1])
        if entry is not None:
            self._queue[ticket_id] = (held[0], entry)
        return entry

    async def position(self, ticket_id: str) -> int | None:
        if ticket_id not in self._queue:
            return None
        for index, waiting in enumerate(self._queue, start=1):
            if waiting == ticket_id:
                return index
        return None

    async def queue_page(self, limit: int, after: str | None) -> tuple[list[dict[str, Any]], int]:
        items = iter(self._queue.items())
        if after is not None and after in self._queue:
            for ticket_id, _ in items:
                if ticket_id == after:
                    break
        page = [entry for _, (_, (_, entry)) in zip(range(limit), items, strict=False)]
        return page, len(self._queue)

    async def join(self, ticket_id: str, agent_id: str) -> None:
        self._members[ticket_id].add(agent_id)
        self._sessions[agent_id].add(ticket_id)

    async def leave(self, ticket_id: str, agent_id: str) -> None:
        self._members[ticket_id].discard(agent_id)
        self._sessions[agent_id].discard(ticket_id)

    async def members(self, ticket_id: str) -> set[str]:
        return set(self._members.get(ticket_id, ()))

    async def sessions_of(self, agent_id: str) -> set[str]:
        return set(self._sessions.get(agent_id, ()))

    async def drop_session(self, ticket_id: str) -> None:
        self._queue.pop(ticket_id, None)
        for agent_id in self._members.pop(ticket_id, set()):
            self._sessions[agent_id].discard(ticket_id)
        await self.release_ticket(ticket_id)
        self._offers.pop(ticket_id, None)
        self._declined.pop(ticket_id, None)
        self._routing.pop(ticket_id, None)

    async def agent_online(self, agent_id: str, sid: str) -> None:
        self._sockets[agent_id].add(sid)

    async def agent_offline(self, agent_id: str, sid: str) -> int:
        sockets = self._sockets[agent_id]
        sockets.discard(sid)
        if not sockets:
            del self._sockets[agent_id]
            return 0
        return len(sockets)

    async def online_agents(self) -> set[str]:
        return set(self._sockets)

    async def add_customer_socket(self, address: str, sid: str, limit: int) -> bool:
        sockets = self._customer_sockets[address]
        if len(sockets) >= limit:
            if not sockets:
                del self._customer_sockets[address]
            return False
        sockets.add(sid)
        return True

    async def drop_customer_socket(self, address: str, sid: str) -> None:
        _discard(self._customer_sockets, address, sid)

    async def hold_ticket(
        self, ticket_id: str, address: str, customer_id: str | None, limits: OpenTicketLimits
    ) -> str | None:
        if len(self._tickets_by_address.get(address, ())) >= limits.per_address:
            return "address"
        if customer_id and len(self._tickets_by_customer.get(customer_id, ())) >= (
            limits.per_customer
        ):
            return "customer"
        self._tickets_by_address[address].add(ticket_id)
        if customer_id:
            self._tickets_by_customer[customer_id].add(ticket_id)
        self._ticket_holders[ticket_id] = (address, customer_id)
        return None

    async def begin_upload(self, ticket_id: str, limit: int) -> bool:
        arriving = self._uploads.get(ticket_id, 0)
        if arriving >= limit:
            return False
        self._uploads[ticket_id] = arriving + 1
        return True

    async def end_upload(self, ticket_id: str) -> None:
        arriving = self._uploads.pop(ticket_id, 1) - 1
        if arriving > 0:
            self._uploads[ticket_id] = arriving

    async def uploads_arriving(self, ticket_id: str) -> int:
        return self._uploads.get(ticket_id, 0)

    async def release_ticket(self, ticket_id: str) -> None:
        holder = self._ticket_holders.pop(ticket_id, None)
        if holder is None:
            return
        address, customer_id = holder
        _discard(self._tickets_by_address, address, ticket_id)
        if customer_id:
            _discard(self._tickets_by_customer, customer_id, ticket_id)

    async def agent_presence(self, agent_id: str) -> AgentPresence:
        return self._presence.get(agent_id, AgentPresence())

    async def agents_routing(
        self, agent_ids: list[str]
    ) -> dict[str, tuple[AgentPresence, set[str]]]:
        return {
            agent_id: (
                self._presence.get(agent_id, AgentPresence()),
                set(self._sessions.get(agent_id, ())),
            )
            for agent_id in agent_ids
        }

    async def choose_status(
        self, agent_id: str, status: str, reason: str | None, at: float
    ) -> None:
        was = await self.agent_presence(agent_id)
        idle = at if status == "available" and was.chosen != "available" else was.idle_since
        self._presence[agent_id] = replace(was, chosen=status, reason=reason, idle_since=idle)

    async def start_wrap_up(self, agent_id: str, until: float, at: float) -> None:
        was = await self.agent_presence(agent_id)
        self._presence[agent_id] = replace(was, wrap_until=until, idle_since=at)

    async def tell_status(self, agent_id: str, shown: str) -> bool:
        was = await self.agent_presence(agent_id)
        if was.told == shown:
            return False
        self._presence[agent_id] = replace(was, told=shown)
        return True

    async def put_offer(self, offer: RingingOffer, holding: tuple[str, str] | None = None) -> bool:
        if offer.ticket_id in self._offers:
            return False
        if holding is not None:
            held = self._locks.get(holding[0])
            if held is None or held[0] != holding[1] or held[1] <= time.monotonic():
                return False
        self._offers[offer.ticket_id] = offer
        return True

    async def offers(self) -> list[RingingOffer]:
        return list(self._offers.values())

    async def take_offer(self, ticket_id: str, agent_id: str | None = None) -> RingingOffer | None:
        offer = self._offers.get(ticket_id)
        if offer is None or (agent_id is not None and offer.agent_id != agent_id):
            return None
        return self._offers.pop(ticket_id)

    async def add_declined(self, ticket_id: str, agent_id: str) -> None:
        self._declined[ticket_id].add(agent_id)

    async def declined(self, ticket_ids: list[str]) -> dict[str, set[str]]:
        return {t: set(self._declined[t]) for t in ticket_ids if self._declined.get(t)}

    async def set_routing(self, ticket_id: str, info: dict[str, Any]) -> None:
        self._routing[ticket_id] = info

    async def routing_of(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {t: self._routing[t] for t in ticket_ids if t in self._routing}

    async def drop_routing(self, keys: list[str]) -> None:
        for key in keys:
            self._routing.pop(key, None)

    async def add_handle_time(self, queue: str, seconds: float, keep: int) -> None:
        times = self._handle_times.setdefault(queue, [])
        times.insert(0, seconds)
        del times[keep:]

    async def handle_times(self, queue: str) -> list[float]:
        return list(self._handle_times.get(queue, ()))

    async def acquire(self, name: str, ttl: float) -> str | None:
        now = time.monotonic()
        held = self._locks.get(name)
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(8)
        self._locks[name] = (token, now + ttl)
        return token

    async def release(self, name: str, token: str) -> None:
        held = self._locks.get(name)
        if held is not None and held[0] == token:
            del self._locks[name]

    async def close(self) -> None:
        return None


def _discard(index: defaultdict[str, set[str]], key: str, member: str) -> None:
    """Remove a member, and the key with its last member (the index stays bounded)."""
    members = index.get(key)
    if members is None:
        return
    members.discard(member)
    if not members:
        del index[key]
