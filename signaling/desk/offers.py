"""Agent status and push routing: who is Available, and which agent a waiting session rings for.

Everything it knows is in the live state, so any node may make any step: an agent's chosen
status and timers, the offers ringing (each with its expiry), who declined what. The decision
itself is ``signaling.routing`` (pure); this applies it.

- A status shown to people is derived (``routing.current_status``) from the agent's choice,
  their sockets, their wrap-up timer and their load; ``refresh`` announces it when it changed,
  once (``LiveState.tell_status``), to the agent's sockets and to supervisors.
- ``dispatch`` makes the offers: one node at a time (a short lock in live state), each ticket
  to one agent (``put_offer`` refuses a second), each agent ringing for one ticket at a time.
  Whatever changes who may take what (a new ticket, an agent Available, a session ended, a
  decline) dispatches; every node also ticks, so an offer whose deciding node died still rings
  out (its expiry is in live state) and goes to the next agent.
- Pull routing (``push=False``) keeps statuses but offers nothing, and refuses no accept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from signaling import background
from signaling.desk.access import oversees
from signaling.desk.load import Loads
from signaling.desk.rooms import SUPERVISORS_ROOM, agent_room
from signaling.live import AgentPresence, LiveState, RingingOffer
from signaling.protocol import (
    AgentRef,
    AgentStatusNotice,
    Message,
    QueueEntry,
    SessionOffered,
    SessionOfferEnded,
)
from signaling.protocol.times import iso
from signaling.routing import (
    CHOOSABLE,
    AgentLoad,
    AgentStatus,
    QueueSpec,
    SessionLoad,
    Waiting,
    Weights,
    current_status,
    estimated_wait,
    plan_offers,
    serving_order,
)
from signaling.routing.agents import CHAT_WEIGHT
from signaling.routing.site_config import is_open, max_waiting, site_routing
from signaling.store import SiteRecord, TicketStore

log = logging.getLogger("tandem.routing")

Emit = Callable[[Message, list[str]], Awaitable[None]]

MISSED_OFFER = "missed offer"
AGEING_SECONDS = 60.0
"""A waiting ticket counts one priority level higher per minute it waits."""
LOCK_SECONDS = 5.0


class RoutingRefusal(Exception):
    """An agent's routing request that cannot be done (the desk turns it into a ``DeskError``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RoutingConfig:
    push: bool = True
    capacity: int = 3
    offer_seconds: float = 20.0
    wrap_up_seconds: float = 30.0
    call_weight: float = 2.0
    """What a session counts against ``capacity`` while the agent is in its call..."""
    control_weight: float = 2.0
    """...or holds remote control of the customer's page (a chat counts 1)."""

    @property
    def tick(self) -> float:
        """How often each node expires offers and wrap-ups and routes again."""
        return max(0.05, min(1.0, self.offer_seconds / 4))


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


def queue_of(site: SiteRecord, context: dict[str, Any], verified: bool) -> QueueSpec:
    """The queue a ticket of ``site`` with this context waits in (the site's rules)."""
    app = context.get("app") or {}
    return site_routing(site.settings).pick_queue(
        str(context.get("url") or ""), app if isinstance(app, dict) else {}, verified
    )


def queue_key(site_id: str, queue_id: str) -> str:
    """Queue ids are per site; live state and rooms name a queue by both."""
    return f"{site_id}/{queue_id}"


def routing_info(site: SiteRecord, queue: QueueSpec, since: float) -> dict[str, Any]:
    return {
        "queue": queue_key(site.id, queue.id),
        "skills": sorted(queue.skills),
        "priority": queue.priority,
        "since": since,
    }


Availability = Literal["open", "no_agents", "closed", "full"]
HANDLE_TIMES_KEPT = 20
"""Recent handle times kept per queue for the estimated wait."""


class Router:
    def __init__(
        self,
        live: LiveState,
        store: TicketStore,
        emit: Emit,
        config: RoutingConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        self.store = store
        self._emit = emit
        self.config = config
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._next_pass: asyncio.Future[int] | None = None
        """The pass that callers of ``dispatch`` in this turn of the loop wait for."""
        self._passing: asyncio.Task[None] | None = None
        """The latest pass (each waits for the one before it)."""
        self._waiting_known: dict[str, tuple[tuple[Any, ...], Waiting, QueueSpec]] = {}
        """Per waiting ticket: its routing facts as last read, and what a pass made of them."""
        self._queue_specs: dict[tuple[str, tuple[str, ...]], QueueSpec] = {}
        self.loads = Loads(live, Weights(config.call_weight, config.control_weight))

    # ------------------------------------------------------------------ status

    async def load_of(self, agent_id: str) -> AgentLoad:
        """The agent's open sessions, each weighed (a call or control counts more than a chat),
        against their capacity; status and skills are not filled in."""
        return self._weighed(agent_id, await self.loads.sessions(agent_id))

    def _weighed(self, agent_id: str, sessions: tuple[SessionLoad, ...]) -> AgentLoad:
        return AgentLoad(
            agent_id,
            frozenset(),
            AgentStatus.AVAILABLE,
            sessions,
            float(self.config.capacity),
            weights=self.loads.weights,
        )

    async def has_room(self, agent_id: str) -> bool:
        """Whether one more chat fits under the agent's capacity (by weighted load).

        Every session weighs at least a chat and at most the heaviest weight: when the number
        of sessions alone decides, their calls and controls are not read (every accept asks,
        and an agent holding many sessions made that a read of two keys per session)."""
        tickets = await self.live.sessions_of(agent_id)
        capacity = float(self.config.capacity)
        if len(tickets) * CHAT_WEIGHT + CHAT_WEIGHT > capacity:
            return False
        weights = self.loads.weights
        heaviest = float(max(CHAT_WEIGHT, weights.call, weights.control))
        # Whole weights add up exactly, so this bound is the weighed answer's own.
        if heaviest.is_integer() and len(tickets) * heaviest + CHAT_WEIGHT <= capacity:
            return True
        loads = await self.loads.many({agent_id: tickets})
        return self._weighed(agent_id, loads[agent_id]).has_room()

    async def load_changed(self, agent_id: str) -> None:
        """A call of the agent started or ended, or they got or gave up control: Busy may
        start or end, and room freed may be offered."""
        await self.refresh(agent_id)
        await self.dispatch()

    async def status(
        self, agent_id: str, online: bool | None = None
    ) -> tuple[AgentStatus, AgentPresence]:
        """The agent's status now; ``online``: whether they are, when the caller knows (a loop
        over the online agents need not read them all again per agent)."""
        presence = await self.live.agent_presence(agent_id)
        if online is None:
            online = agent_id in await self.live.online_agents()
        return self._shown(presence, online, await self.has_room(agent_id), self.clock()), presence

    def _shown(
        self, presence: AgentPresence, online: bool, has_room: bool, now: float
    ) -> AgentStatus:
        return current_status(
            AgentStatus(presence.chosen), online, presence.wrap_until, now, has_room
        )

    async def refresh(self, agent_id: str) -> AgentStatus:
        """The agent's status now, announced if it changed since it was last announced."""
        shown, presence = await self.status(agent_id)
        return await self._tell(agent_id, shown, presence)

    async def _tell(
        self, agent_id: str, shown: AgentStatus, presence: AgentPresence
    ) -> AgentStatus:
        if await self.live.tell_status(agent_id, shown.value):
            await self._announce(
                agent_id, shown, presence, [agent_room(agent_id), SUPERVISORS_ROOM]
            )
        return shown

    async def _announce(
        self, agent_id: str, shown: AgentStatus, presence: AgentPresence, rooms: list[str]
    ) -> None:
        agent = await self.store.agent(agent_id)
        name = agent.name if agent is not None else agent_id
        reason = presence.reason if shown is AgentStatus.AWAY else None
        notice = AgentStatusNotice(
            agent=AgentRef(id=agent_id, name=name), status=shown.value, reason=reason
        )
        await self._emit(notice, rooms)

    async def connected(self, agent_id: str, sid: str) -> None:
        """A socket of the agent connected (counted online at once; announced by ``arrived``)."""
        await self.live.agent_online(agent_id, sid)

    async def arrived(self, agent_id: str, sid: str) -> None:
        """After the socket's handshake: announce the status, route (nothing may be sent to a
        socket before its handshake is answered)."""
        shown = await self.refresh(agent_id)
        # The new socket learns where its agent stands (its other tabs heard nothing new).
        _, presence = await self.status(agent_id)
        await self._announce(agent_id, shown, presence, [sid])
        await self.dispatch()

    async def disconnected(self, agent_id: str, sid: str) -> None:
        left = await self.live.agent_offline(agent_id, sid)
        if left:
            return
        await self.refresh(agent_id)
        for offer in await self.live.offers():
            if offer.agent_id == agent_id and await self.live.take_offer(offer.ticket_id, agent_id):
                await self._ended(offer, "offline")
        await self.dispatch()

    async def choose(self, agent_id: str, status: str, reason: str | None) -> AgentStatus:
        chosen = AgentStatus(status)
        if chosen not in CHOOSABLE:
            raise RoutingRefusal("malformed", f"{status} is not a status an agent chooses")
        await self.live.choose_status(
            agent_id, chosen.value, reason if chosen is AgentStatus.AWAY else None, self.clock()
        )
        shown = await self.refresh(agent_id)
        if chosen is not AgentStatus.AVAILABLE:
            for offer in await self.live.offers():
                if offer.agent_id == agent_id and await self.live.take_offer(
                    offer.ticket_id, agent_id
                ):
                    await self._ended(offer, "declined")
        await self.dispatch()
        return shown

    # ------------------------------------------------------------------ the session's life

    async def queued(
        self, ticket_id: str, site: SiteRecord, queue: QueueSpec, since: float
    ) -> Availability:
        """Route the new ticket; whether anyone can serve it now (the customer is told)."""
        await self.live.set_routing(ticket_id, routing_info(site, queue, since))
        availability = await self.availability(site, queue, ticket_id)
        await self.dispatch()
        return availability

    async def availability(
        self, site: SiteRecord, queue: QueueSpec, ticket_id: str
    ) -> Availability:
        """Closed outside the site's hours; full when more wait in the queue than the site
        allows; no_agents when no agent who can serve the queue is online and not Away."""
        if not is_open(site.settings, self.clock()):
            return "closed"
        limit = max_waiting(site.settings)
        key = queue_key(site.id, queue.id)
        if limit is not None:
            waiting = await self.live.queued_ids()
            routing = await self.live.routing_of(waiting)
            in_queue = [t for t in waiting if routing.get(t, {}).get("queue") == key]
            if len(in_queue) > limit:
                return "full"
        for agent_id in await self.live.online_agents():
            record = await self.store.agent(agent_id)
            if record is None or not queue.skills <= frozenset(record.skills):
                continue
            shown, _ = await self.status(agent_id, online=True)
            if shown not in (AgentStatus.OFFLINE, AgentStatus.AWAY):
                return "open"
        return "no_agents"

    async def views(self) -> set[frozenset[str]]:
        """The distinct skill sets of the online agents who see only the queues they serve
        (supervisors and admins see the whole queue)."""
        views = set()
        for agent_id in await self.live.online_agents():
            record = await self.store.agent(agent_id)
            if record is not None and not oversees(record):
                views.add(frozenset(record.skills))
        return views

    async def estimates(self, ticket_ids: list[str]) -> dict[str, float | None]:
        """Each waiting ticket's estimated wait in seconds (``routing.estimated_wait``): its
        place in its queue's serving order, the queue's recent handle times, and the sessions
        its online agents can hold and have free."""
        if not ticket_ids:
            return {}
        routing = await self.live.routing_of(ticket_ids)
        now = self.clock()
        by_queue: dict[str, list[Waiting]] = {}
        for ticket_id, info in routing.items():
            by_queue.setdefault(info["queue"], []).append(
                Waiting(
                    ticket_id, info["queue"], int(info.get("priority", 0)), float(info["since"])
                )
            )
        agents = []
        for agent_id in await self.live.online_agents():
            record = await self.store.agent(agent_id)
            if record is None:
                continue
            shown, _ = await self.status(agent_id, online=True)
            if shown in (AgentStatus.OFFLINE, AgentStatus.AWAY):
                continue
            load = (await self.load_of(agent_id)).load
            agents.append((frozenset(record.skills), shown, load))
        estimates: dict[str, float | None] = {}
        for key, waiting in by_queue.items():
            skills = frozenset(routing[waiting[0].ticket_id]["skills"])
            serving = [a for a in agents if skills <= a[0]]
            slots = len(serving) * self.config.capacity
            free = sum(
                max(0, int(self.config.capacity - n))
                for _, shown, n in serving
                if shown is AgentStatus.AVAILABLE
            )
            times = await self.live.handle_times(key)
            ordered = serving_order(waiting, now, AGEING_SECONDS)
            for position, ticket in enumerate(ordered, start=1):
                estimates[ticket.ticket_id] = estimated_wait(position, times, slots, free)
        return estimates

    async def check_capacity(self, agent_id: str) -> None:
        """Push routing: an agent may take a session by hand only under their capacity."""
        if not self.config.push:
            return
        load = (await self.load_of(agent_id)).load
        if load + 1 > self.config.capacity:
            raise RoutingRefusal(
                "invalid_state",
                f"you are at capacity ({load:g} of {self.config.capacity}; a call or remote "
                "control counts more than a chat): end one before taking another",
            )

    async def accepted(self, ticket_id: str, agent_id: str) -> None:
        info = (await self.live.routing_of([ticket_id])).get(ticket_id)
        if info is not None and "acceptedAt" not in info:
            await self.live.set_routing(ticket_id, info | {"acceptedAt": self.clock()})
        offer = await self.live.take_offer(ticket_id)
        if offer is not None:
            await self._ended(offer, "accepted" if offer.agent_id == agent_id else "taken")
        await self.refresh(agent_id)
        await self.dispatch()

    async def decline(self, agent_id: str, ticket_id: str) -> None:
        offer = await self.live.take_offer(ticket_id, agent_id)
        if offer is None:
            raise RoutingRefusal("not_found", "no offer of that session rings for you")
        await self.live.add_declined(ticket_id, agent_id)
        await self._ended(offer, "declined")
        await self.dispatch()

    async def closed(self, ticket_id: str) -> None:
        """Before the session's live state goes: its agents wrap up, its offer stops."""
        offer = await self.live.take_offer(ticket_id)
        if offer is not None:
            await self._ended(offer, "ended")
        now = self.clock()
        info = (await self.live.routing_of([ticket_id])).get(ticket_id)
        if info is not None and "acceptedAt" in info:
            handled = max(0.0, now - float(info["acceptedAt"]))
            await self.live.add_handle_time(info["queue"], handled, HANDLE_TIMES_KEPT)
        members = await self.live.members(ticket_id)
        for agent_id in members:
            await self.live.start_wrap_up(agent_id, now + self.config.wrap_up_seconds, now)

    async def after_close(self, ticket_id: str, members: set[str]) -> None:
        for agent_id in members:
            await self.refresh(agent_id)
        await self.dispatch()

    async def _ended(self, offer: RingingOffer, reason: Any) -> None:
        await self._emit(
            SessionOfferEnded(ticket_id=offer.ticket_id, reason=reason),
            [agent_room(offer.agent_id)],
        )

    # ------------------------------------------------------------------ offers

    async def tick(self) -> None:
        """Expire offers past their time (the silent agent is set Away), end wrap-ups, route."""
        now = self.clock()
        # Offers before the queue (as in a pass): a new session is queued before it is
        # offered, so read the other way round its fresh offer looked stale and was ended.
        ringing = await self.live.offers()
        waiting = set(await self.live.queued_ids())
        for offer in ringing:
            if offer.ticket_id not in waiting:
                if await self.live.take_offer(offer.ticket_id, offer.agent_id):
                    await self._ended(offer, "taken")
            elif offer.expires_at <= now and await self.live.take_offer(
                offer.ticket_id, offer.agent_id
            ):
                await self.live.add_declined(offer.ticket_id, offer.agent_id)
                await self.live.choose_status(offer.agent_id, "away", MISSED_OFFER, now)
                await self._ended(offer, "expired")
                await self.refresh(offer.agent_id)
        # Every online agent's status (a wrap-up may have ended), read at once: one refresh per
        # agent cost three Redis round trips each tick, and read the whole online set each time.
        online = await self.live.online_agents()
        now = self.clock()
        facts = await self.live.agents_routing(sorted(online))
        loads = await self.loads.many(
            {agent_id: sessions for agent_id, (_, sessions) in facts.items()}
        )
        for agent_id, (presence, _sessions) in facts.items():
            room = self._weighed(agent_id, loads[agent_id]).has_room()
            shown = self._shown(presence, True, room, now)
            if shown.value != presence.told:  # else tell_status would refuse it: nothing new
                await self._tell(agent_id, shown, presence)
        await self.dispatch()

    async def dispatch(self) -> int:
        """Offer waiting sessions to agents who may take them; how many offers were made.

        What changed before the call is routed by the time it returns. Calls made in one turn
        of the event loop share one pass, made at the next turn: a pass reads the whole queue,
        the offers and the agents, and with a pass per call a burst (a thousand customers
        asking at once, each accept and each end) read them once per event, most of push
        routing's CPU. A pass waits for the one before it, so a node makes one at a time."""
        if not self.config.push:
            return 0
        waiter = self._next_pass
        if waiter is None:
            loop = asyncio.get_running_loop()
            waiter = self._next_pass = loop.create_future()
            # Retrieved here, so a failure nobody waits for any more is not logged as lost.
            waiter.add_done_callback(_retrieve)
            self._passing = loop.create_task(self._pass_for(waiter, self._passing))
        return await asyncio.shield(waiter)

    async def _pass_for(
        self, waiter: asyncio.Future[int], previous: asyncio.Task[None] | None
    ) -> None:
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            # From here on a caller needs a pass of its own: this one's reads may predate its
            # change.
            self._next_pass = None
            made = await self._pass()
        except asyncio.CancelledError:
            if self._next_pass is waiter:
                self._next_pass = None
            waiter.cancel()
            raise
        except Exception as exc:
            # Its callers hear of it (as when each made its own pass); the next pass is new.
            waiter.set_exception(exc)
        else:
            waiter.set_result(made)

    async def _pass(self) -> int:
        # Timed from before asking: on a busy loop the answer may come seconds after the lock
        # was taken (its time runs from then).
        stale_at = time.monotonic() + LOCK_SECONDS / 2
        token = await self.live.acquire("routing", LOCK_SECONDS)
        if token is None:
            return 0  # another node is routing; every node's tick routes again shortly
        try:
            return await self._dispatch(token, stale_at)
        finally:
            await self.live.release("routing", token)

    async def _dispatch(self, token: str, stale_at: float) -> int:
        """One pass under the routing lock; it makes no offer past ``stale_at`` (monotonic):
        by then its facts are old and the lock may lapse, letting another pass decide from
        newer ones (a busy node once took 8 s over a pass: two passes then offered one agent
        two sessions and sessions already taken). The rest is left to the next pass. Each offer
        is also made only while ``token`` still holds the lock (``put_offer``'s fence), so a
        pass whose loop stalled past both cannot offer beside a newer one."""
        # Offers before the queue: an accept leaves the queue before its offer ends, so a
        # session read as ringing is excluded, and one read as not ringing any more was
        # already gone from the queue (read the other way round, a session accepted between
        # the two reads looked open and was offered again).
        ringing = await self.live.offers()
        queued = await self.live.queued_ids()
        if not queued:
            return 0
        busy_agents = {offer.agent_id for offer in ringing}
        ringing_tickets = {offer.ticket_id for offer in ringing}
        open_tickets = [t for t in queued if t not in ringing_tickets]
        online = await self.live.online_agents()
        if not open_tickets or not online - busy_agents:
            return 0
        # The agents first: only those who could take a ticket now (not ringing, Available,
        # with room; ``plan_offers`` offers to no other). When there are none, as most of the
        # time under load, the pass ends here: the waiting tickets are not read at all (a pass
        # over 1,000 of them cost 2.8 ms, and one ran for every request, accept and end).
        now = self.clock()
        facts = await self.live.agents_routing(sorted(online - busy_agents))
        # A session weighs a chat at least: an agent with as many sessions as their capacity
        # has no room, whatever the sessions are (their loads are not read).
        capacity = float(self.config.capacity)
        free = [
            agent_id
            for agent_id, (presence, sessions) in facts.items()
            if presence.chosen == AgentStatus.AVAILABLE.value
            and len(sessions) * CHAT_WEIGHT + CHAT_WEIGHT <= capacity
        ]
        loads = await self.loads.many({agent_id: facts[agent_id][1] for agent_id in free})
        agents: list[AgentLoad] = []
        for agent_id in free:
            record = await self.store.agent(agent_id)
            if record is None:
                continue
            presence, _sessions = facts[agent_id]
            weighed = self._weighed(agent_id, loads[agent_id])
            status = current_status(
                AgentStatus(presence.chosen), True, presence.wrap_until, now, weighed.has_room()
            )
            agent = AgentLoad(
                agent_id,
                frozenset(record.skills),
                status,
                weighed.sessions,
                weighed.capacity,
                presence.idle_since,
                frozenset(),
                weighed.weights,
            )
            if agent.status is AgentStatus.AVAILABLE and agent.has_room():
                agents.append(agent)
        if not agents:
            return 0
        routing = await self._routing_of(open_tickets)
        queues: dict[str, QueueSpec] = {}
        waiting = []
        known = self._waiting_known
        for ticket_id in open_tickets:
            info = routing.get(ticket_id)
            if info is None:
                continue
            # What routing makes of a ticket's facts is kept from pass to pass while they are
            # the same (they are set when the ticket is queued): a pass reads every waiting
            # ticket's, and made a queue spec and a waiting record for each, every time.
            read = (info["queue"], tuple(info["skills"]), info.get("priority", 0), info["since"])
            held = known.get(ticket_id)
            if held is None or held[0] != read:
                held = known[ticket_id] = (read, *self._waiting_from(ticket_id, info))
            queues[held[2].id] = held[2]
            waiting.append(held[1])
        if len(known) > 2 * len(routing):
            for gone in known.keys() - routing.keys():
                del known[gone]
        declined_by: dict[str, set[str]] = {}
        for ticket_id, decliners in (await self.live.declined(open_tickets)).items():
            for agent_id in decliners:
                declined_by.setdefault(agent_id, set()).add(ticket_id)
        agents = [
            dataclasses.replace(agent, declined=frozenset(declined_by[agent.agent_id]))
            if agent.agent_id in declined_by
            else agent
            for agent in agents
        ]
        made = 0
        expires = now + self.config.offer_seconds
        plan = plan_offers(waiting, queues, agents, now, AGEING_SECONDS, busy_agents)
        # Only the offered tickets' entries are read (the agent's offer shows it).
        entries = await self.live.queue_entries([planned.ticket_id for planned in plan])
        for planned in plan:
            if time.monotonic() >= stale_at:
                break
            if planned.ticket_id not in entries:
                continue  # it left the queue meanwhile (another node)
            offer = RingingOffer(planned.ticket_id, planned.agent_id, expires)
            if not await self.live.put_offer(offer, ("routing", token)):
                continue
            made += 1
            entry = QueueEntry.model_validate(entries[planned.ticket_id])
            await self._emit(
                SessionOffered(ticket_id=offer.ticket_id, entry=entry, expires_at=iso(expires)),
                [agent_room(offer.agent_id)],
            )
        return made

    def _waiting_from(self, ticket_id: str, info: dict[str, Any]) -> tuple[Waiting, QueueSpec]:
        key = (info["queue"], tuple(info["skills"]))
        queue = self._queue_specs.get(key)
        if queue is None:
            queue = QueueSpec(key[0], key[0], frozenset(key[1]))
            if len(self._queue_specs) < 1024:  # queues and skill sets are few
                self._queue_specs[key] = queue
        since = float(info["since"])
        return Waiting(ticket_id, queue.id, int(info.get("priority", 0)), since), queue

    async def _routing_of(self, ticket_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Routing info of waiting tickets; tickets queued again from the store (a rebuild, a
        repair) get theirs here."""
        known = await self.live.routing_of(ticket_ids)
        for ticket_id in ticket_ids:
            if ticket_id in known:
                continue
            ticket = await self.store.ticket(ticket_id)
            site = await self.store.site(ticket.site_id) if ticket is not None else None
            if ticket is None or site is None:
                continue
            queue = queue_of(site, ticket.context, bool(ticket.customer.get("verified")))
            info = routing_info(site, queue, ticket.created_at)
            await self.live.set_routing(ticket_id, info)
            known[ticket_id] = info
        return known

    # ------------------------------------------------------------------ the tick

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every_tick())

    async def close(self) -> None:
        if self._task is not None:
            await background.stop(self._task)
            self._task = None
        if self._passing is not None:
            await background.stop(self._passing)
            self._passing = None

    async def _every_tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            try:
                await self.tick()
            except Exception:
                log.exception("routing tick failed")
