"""Transfer: an agent hands a live session to another agent or back to the site's queue.

- ``warm``: the sender stays in the session until the next agent takes it (the agent-only note
  rides with the offer and the timeline); then the sender leaves.
- ``cold``: the sender leaves at once; the session waits in the queue (to an agent: with an
  offer ringing for that agent) with its original ``created_at``, so its wait time is kept.

A warm transfer is answered once: the colleague accepts or declines it, or the sender (or a
supervisor) takes it back (``cancel``), one at a time on every node (``settling``).

What the ticket holds (transcript, context, timeline, attachments) is on the ticket already: the
new agent gets it with the session state. The hubs drop what belonged to the leaving agent
(``Desk.on_agent_left``): their place in the media room, and a control grant (the customer is
asked again). The pending transfer is kept in live state, so any node completes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from signaling.desk.rooms import agent_room
from signaling.live import RingingOffer
from signaling.protocol import (
    AgentOnline,
    AgentRef,
    QueueEntry,
    SessionOffered,
    SessionOfferEnded,
    SessionTransferred,
    TransferInfo,
)
from signaling.store import TicketRecord

if TYPE_CHECKING:
    from signaling.desk.lifecycle import AgentCaller, Desk
    from signaling.protocol import SessionState

log = logging.getLogger("tandem.transfer")

Mode = Literal["warm", "cold"]
_ROUTING_LOCK_SECONDS = 5.0
_ANSWER_LOCK_SECONDS = 10.0
"""How long an answer to a warm transfer may hold it (a holder that died lets go then)."""
_ANSWER_WAIT_SECONDS = 3.0
"""How long an answer waits for another one to finish before it is refused."""


def _key(ticket_id: str) -> str:
    return f"transfer:{ticket_id}"


class Transfers:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    # ------------------------------------------------------------------ asking

    async def transfer(
        self,
        caller: AgentCaller,
        ticket_id: str,
        to_agent_id: str | None,
        to_queue: bool,
        mode: Mode,
        note: str | None,
    ) -> None:
        from signaling.desk.lifecycle import DeskError

        desk = self.desk
        ticket = await desk.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        member = any(a["id"] == caller.agent.id for a in ticket.agents)
        if not member and not caller.oversees:
            raise DeskError("forbidden", "you are not in this session")
        if ticket.status != "active":
            raise DeskError("invalid_state", f"the session is {ticket.status}")
        if (to_agent_id is None) == (not to_queue):
            raise DeskError("malformed", "transfer to one agent (agentId) or to the queue")
        if await self.pending(ticket_id) is not None:
            raise DeskError("invalid_state", "a transfer of this session is pending")
        sender = caller.ref if member else (ticket.agents[0] if ticket.agents else caller.ref)
        target: AgentRef | None = None
        if to_agent_id is not None:
            target = await self._check_target(ticket, to_agent_id)
        info: dict[str, Any] = {
            "mode": mode,
            "from": dict(sender),
            "to": {"agent": target.wire()} if target else {"queue": True},
            "note": note,
        }
        await desk.timeline(ticket, "transfer.requested", info)
        if note and note.strip():
            # Filed with the ticket's other notes: the agent who takes the session finds it there.
            await desk.notes.file(ticket, caller.ref, note, "transfer")
        if mode == "warm" and target is not None:
            await self._set_pending(ticket_id, info)
            await desk.broadcaster.emit(
                await self._offer(ticket, sender, mode, note, None), [agent_room(target.id)]
            )
            return
        if mode == "cold" and any(a["id"] == sender["id"] for a in ticket.agents):
            await self.leave(ticket, sender["id"], mode)
        await self._set_pending(ticket_id, info)
        await self._requeue(ticket, sender, mode, note, target)

    async def online(self) -> list[AgentOnline]:
        """Every online agent, with status and weighted load: whom a session could go to (the
        console's Transfer dialog; ``_check_target`` still decides)."""
        desk = self.desk
        router = desk.router
        found = []
        for agent_id in sorted(await desk.live.online_agents()):
            agent = await desk.store.agent(agent_id)
            if agent is None:
                continue
            status, reason, load, capacity = "available", None, 0.0, 0
            if router is not None:
                shown, presence = await router.status(agent_id)
                weighed = await router.load_of(agent_id)
                status, load, capacity = shown.value, weighed.load, router.config.capacity
                reason = presence.reason if status == "away" else None
            else:
                load = float(len(await desk.live.sessions_of(agent_id)))
            found.append(
                AgentOnline.model_validate(
                    {
                        "agent": {"id": agent.id, "name": agent.name},
                        "status": status,
                        "reason": reason,
                        "load": load,
                        "capacity": capacity,
                        "skills": list(agent.skills),
                    }
                )
            )
        found.sort(key=lambda a: (a.status != "available", a.load, a.agent.name))
        return found

    async def _check_target(self, ticket: TicketRecord, agent_id: str) -> AgentRef:
        from signaling.desk.lifecycle import DeskError

        desk = self.desk
        agent = await desk.store.agent(agent_id)
        if agent is None:
            raise DeskError("not_found", "no such agent")
        if any(a["id"] == agent_id for a in ticket.agents):
            raise DeskError("invalid_state", "that agent is in this session already")
        if agent_id not in await desk.live.online_agents():
            raise DeskError("invalid_state", "that agent is offline")
        router = desk.router
        if router is not None:
            presence = await desk.live.agent_presence(agent_id)
            if presence.chosen == "offline":
                raise DeskError("invalid_state", "that agent is offline")
            if not await router.has_room(agent_id):
                raise DeskError("invalid_state", "that agent is at capacity")
        return AgentRef(id=agent.id, name=agent.name)

    async def _entry(self, ticket: TicketRecord) -> QueueEntry:
        site = await self.desk.store.site(ticket.site_id)
        if site is None:
            raise RuntimeError(f"ticket {ticket.id} names no site")
        first = await self.desk.first_message(ticket.id)
        return self.desk._queue_entry(ticket, site, first=first)

    async def _offer(
        self,
        ticket: TicketRecord,
        sender: dict[str, str],
        mode: Mode,
        note: str | None,
        expires_at: str | None,
    ) -> SessionOffered:
        from signaling.protocol.times import iso

        entry = await self._entry(ticket)
        return SessionOffered(
            ticket_id=ticket.id,
            entry=entry,
            expires_at=expires_at or iso(0),
            transfer=TransferInfo(mode=mode, from_=AgentRef.model_validate(sender), note=note),
        )

    async def _requeue(
        self,
        ticket: TicketRecord,
        sender: dict[str, str],
        mode: Mode,
        note: str | None,
        target: AgentRef | None,
    ) -> None:
        """Back to the queue at its original place (``created_at``); to an agent, with an offer
        ringing for them before any other node's routing can offer it elsewhere."""
        from signaling.protocol.times import iso

        desk = self.desk
        live = desk.live
        if not await desk.store.requeue_ticket(ticket.id):
            return
        ticket = await desk._must_ticket(ticket.id)
        entry = await self._entry(ticket)
        router = desk.router
        token = await live.acquire("routing", _ROUTING_LOCK_SECONDS) if router else None
        try:
            await live.add_declined(ticket.id, sender["id"])
            await live.set_routing(
                ticket.id,
                {"queue": f"site:{ticket.site_id}", "skills": [], "since": ticket.created_at},
            )
            if router is not None:
                site = await desk.store.site(ticket.site_id)
                if site is not None:
                    from signaling.desk.offers import queue_of, routing_info

                    # Back in the queue its rules pick, waiting since it first asked.
                    verified = bool(ticket.customer.get("verified"))
                    queue = queue_of(site, ticket.context, verified)
                    await live.set_routing(ticket.id, routing_info(site, queue, ticket.created_at))
            position = await live.enqueue(ticket.id, ticket.created_at, entry.wire())
            expires = time.time() + (router.config.offer_seconds if router else 3600.0)
            if target is not None:
                await live.put_offer(RingingOffer(ticket.id, target.id, expires))
        finally:
            if token is not None:
                await live.release("routing", token)
        desk.queue_feed.told_position(ticket.id, position)
        await desk.queue_feed.added(entry)
        await desk.tell(
            ticket,
            SessionTransferred(ticket_id=ticket.id, mode=mode, queued=True),
            "customer",
        )
        if target is not None:
            await desk.broadcaster.emit(
                await self._offer(ticket, sender, mode, note, iso(expires)), [agent_room(target.id)]
            )
        if router is not None:
            await router.dispatch()

    # ------------------------------------------------------------------ completing

    async def pending(self, ticket_id: str) -> dict[str, Any] | None:
        found = (await self.desk.live.routing_of([_key(ticket_id)])).get(_key(ticket_id))
        return found or None

    async def _set_pending(self, ticket_id: str, info: dict[str, Any] | None) -> None:
        if info is None:
            # Dropped, not left empty: an ended transfer leaves nothing in the routing hash.
            await self.desk.live.drop_routing([_key(ticket_id)])
        else:
            await self.desk.live.set_routing(_key(ticket_id), info)

    async def forget(self, ticket_id: str) -> None:
        """The session ended: a transfer still pending goes with it. A warm one's offer rings
        for its agent outside routing, so it is ended here, in every tab of theirs (the card
        goes; an accept now is refused as ended). A cold one's offer is a routing offer, which
        the router ends itself (``Router.closed``)."""
        pending = await self.pending(ticket_id)
        await self._set_pending(ticket_id, None)
        if pending is None or pending.get("mode") != "warm":
            return
        target = pending.get("to", {}).get("agent", {}).get("id")
        if target:
            await self._offer_ended(ticket_id, str(target), "ended")

    @contextlib.asynccontextmanager
    async def settling(self, ticket_id: str) -> AsyncIterator[None]:
        """One answer to a ticket's warm transfer at a time, on every node. An accept and a
        cancel that both found it pending would add the colleague to a session whose sender
        was told the transfer was taken back."""
        from signaling.desk.lifecycle import DeskError

        live = self.desk.live
        name = f"transfer-answer:{ticket_id}"
        deadline = time.monotonic() + _ANSWER_WAIT_SECONDS
        while (token := await live.acquire(name, _ANSWER_LOCK_SECONDS)) is None:
            if time.monotonic() > deadline:
                raise DeskError("invalid_state", "the transfer is being answered; try again")
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            await live.release(name, token)

    async def cancel(self, caller: AgentCaller, ticket_id: str) -> None:
        """The sender (or a supervisor) takes a warm transfer back before it is accepted: the
        session stays with its agents, the colleague's offer stops ringing in every tab, and
        the timeline says so. A cold transfer has left its sender already: not taken back."""
        from signaling.desk.lifecycle import DeskError

        desk = self.desk
        ticket = await desk.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if not caller.oversees and not any(a["id"] == caller.agent.id for a in ticket.agents):
            raise DeskError("forbidden", "you are not in this session")
        async with self.settling(ticket_id):
            pending = await self.pending(ticket_id)
            if pending is None:
                raise DeskError("invalid_state", "no transfer of this session is pending")
            target = pending.get("to", {}).get("agent")
            if pending.get("mode") != "warm" or not target:
                raise DeskError("invalid_state", "a cold transfer is not taken back")
            await self._set_pending(ticket_id, None)
        await self._offer_ended(ticket_id, str(target["id"]), "cancelled")
        await desk.timeline(ticket, "transfer.cancelled", {"by": caller.ref, "agent": target})

    async def _offer_ended(
        self,
        ticket_id: str,
        agent_id: str,
        reason: Literal["accepted", "declined", "ended", "cancelled"],
    ) -> None:
        """A warm transfer's offer stops ringing in every tab of its agent, not only in the
        one that answered (it rings outside routing, whose offers end in ``Router``)."""
        await self.desk.broadcaster.emit(
            SessionOfferEnded(ticket_id=ticket_id, reason=reason), [agent_room(agent_id)]
        )

    def offered_to(self, pending: dict[str, Any], agent_id: str) -> bool:
        return bool(pending.get("to", {}).get("agent", {}).get("id") == agent_id)

    async def take_over(self, caller: AgentCaller, ticket: TicketRecord) -> SessionState:
        """A warm transfer to this agent, accepted: they join, then the sender leaves."""
        desk = self.desk
        ticket = await desk.add_agent(ticket.id, caller)
        await self.taken(ticket, caller)
        return await desk.session_state(await desk._must_ticket(ticket.id), "agents")

    async def taken(self, ticket: TicketRecord, caller: AgentCaller) -> None:
        """An agent took a transferred session (by its offer, or from the queue): the step goes
        on the timeline, the customer hears who they now talk to, a warm sender leaves."""
        desk = self.desk
        pending = await self.pending(ticket.id)
        if pending is None:
            return
        await self._set_pending(ticket.id, None)
        new = AgentRef(id=caller.agent.id, name=caller.agent.name)
        mode: Mode = "cold" if pending.get("mode") == "cold" else "warm"
        if mode == "warm" and self.offered_to(pending, caller.agent.id):
            await self._offer_ended(ticket.id, caller.agent.id, "accepted")
        sender = dict(pending.get("from") or {})
        data = {
            "mode": mode,
            "from": sender,
            "to": new.wire(),
            "via": "queue" if pending.get("to", {}).get("queue") else "agent",
            "note": pending.get("note"),
        }
        await desk.timeline(ticket, "session.transferred", data)
        left = None
        if sender.get("id") and any(a["id"] == sender["id"] for a in ticket.agents):
            left = AgentRef.model_validate(sender)
        await desk.tell(
            ticket, SessionTransferred(ticket_id=ticket.id, mode=mode, agent=new, left=left)
        )
        if left is not None:
            await self.leave(ticket, left.id, mode, told=True)

    async def declined(self, caller: AgentCaller, ticket: TicketRecord) -> None:
        """The target of a warm transfer said no: the sender keeps the session."""
        await self._set_pending(ticket.id, None)
        await self._offer_ended(ticket.id, caller.agent.id, "declined")
        await self.desk.timeline(ticket, "transfer.declined", {"agent": caller.ref})

    async def leave(
        self, ticket: TicketRecord, agent_id: str, mode: Mode, told: bool = False
    ) -> None:
        """The handing-over agent leaves: their media and control end first (while they are
        still on the ticket), then they are taken off it and hear nothing more."""
        from signaling.desk.lifecycle import AgentCaller

        desk = self.desk
        agent = await desk.store.agent(agent_id)
        if agent is None:
            return
        leaving = AgentCaller(agent=agent)
        for hook in desk.on_agent_left:
            try:
                await hook(ticket, leaving)
            except Exception:
                log.exception("agent-left hook failed for %s", ticket.id)
        if not told:
            await desk.tell(
                ticket,
                SessionTransferred(
                    ticket_id=ticket.id,
                    mode=mode,
                    left=AgentRef(id=agent.id, name=agent.name),
                ),
                "agents",
            )
        await desk.timeline(ticket, "session.left", {"agent": leaving.ref, "mode": mode})
        await desk.store.remove_ticket_agent(ticket.id, agent_id)
        await desk.live.leave(ticket.id, agent_id)
        if desk.router is not None:
            await desk.router.loads.forget(ticket.id, {agent_id})
            await desk.router.refresh(agent_id)
