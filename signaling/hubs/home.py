"""Home-node routing: run a session's home-node work on its home node, wherever the caller is.

A hub registers each piece of home-node work under a method name (``serve``) and asks for it
with ``run``: on the home node it runs in-process, on any other node it travels over the request
channel (``signaling.live.rpc``) to the home node, and the answer (or the refusal) comes back.
The handler on the socket's node has already validated the request; the home node trusts its
peers (they share the deployment's secret and Redis) and only checks the lease is still its own.

Taking a lease (``lease``) records its epoch in the store first, so from then on writes of the
previous holder are refused (``StaleEpoch``); then the hubs' ``on_taken`` hooks run (a call is
re-offered, co-browse restarts). When a home node finds its lease lost (renewal refused), the
hubs' ``on_lost`` hooks drop what they held for the session, writing nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from signaling import background
from signaling.desk import AgentCaller, Caller, CustomerCaller, DeskError
from signaling.live.nodes import Nodes
from signaling.live.placement import Lease, Placement
from signaling.live.rpc import Rpc, RpcRefused, RpcUnavailable
from signaling.protocol import ErrorCode
from signaling.store import StaleEpoch, TicketRecord, TicketStore

log = logging.getLogger("tandem.home")

Work = Callable[[Caller, TicketRecord, Lease, dict[str, Any]], Awaitable[dict[str, Any]]]
TicketHook = Callable[[str], Awaitable[None]]
TakenHook = Callable[[TicketRecord, Lease], Awaitable[None]]

ORPHAN_CHECK_SECONDS = 2.0
"""How often a node looks for sessions whose home node died (node records live 6 s)."""

_CODES: frozenset[str] = frozenset(
    {"malformed", "forbidden", "not_found", "invalid_state", "too_large", "rate_limited"}
)


class Home:
    def __init__(self, placement: Placement, rpc: Rpc, nodes: Nodes, store: TicketStore) -> None:
        self.placement = placement
        self.rpc = rpc
        self.nodes = nodes
        self.store = store
        self._work: dict[str, Work] = {}
        self._taking: dict[str, asyncio.Lock] = {}
        self._watch: asyncio.Task[None] | None = None
        self.on_taken: list[TakenHook] = []
        """Run when this node takes a session whose earlier home is gone (epoch > 1)."""
        self.on_lost: list[TicketHook] = []
        """Run when this node's lease of a session was found lost: drop, write nothing."""
        self.on_close: list[TicketHook] = []
        """Run on the home node when a session ends (file what it holds), before release."""
        self.on_hand_over: list[TicketHook] = []
        """Run when this node gives a session up (draining): file what it can, then drop."""
        placement.on_lost(self._lost)
        rpc.register("home.closed", self._closed_here)
        rpc.register("home.adopt", self._adopt)

    @property
    def node(self) -> str:
        return self.placement.node

    def serve(self, method: str, work: Work) -> None:
        self._work[method] = work

        async def handle(params: dict[str, Any]) -> dict[str, Any]:
            caller = await self._caller(params["caller"])
            ticket = await self._ticket(str(params["ticket"]))
            lease = await self.lease(ticket)
            if lease.node != self.node:
                raise DeskError("invalid_state", "the session's home node moved; try again")
            return await self._fenced(work, caller, ticket, lease, params["args"])

        self.rpc.register(method, handle)

    async def run(
        self, method: str, caller: Caller, ticket: TicketRecord, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Do ``method`` on the session's home node (taking the lease if nobody holds it)."""
        lease = await self.lease(ticket)
        if lease.node == self.node:
            return await self._fenced(self._work[method], caller, ticket, lease, args)
        params = {"caller": caller_wire(caller), "ticket": ticket.id, "args": args}
        try:
            return await self.rpc.call(lease.node, method, params)
        except RpcRefused as exc:
            raise DeskError(_code(exc.code), exc.message) from None
        except RpcUnavailable:
            taken = await self._take_from_dead(ticket, lease)
            if taken is None:
                # Another request or the orphan check may have taken it for this node already.
                taken = await self.lease(ticket)
            if taken.node != self.node:
                raise DeskError(
                    "invalid_state", "the session's home node is not answering; try again"
                ) from None
            return await self._fenced(self._work[method], caller, ticket, taken, args)

    async def _fenced(
        self, work: Work, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run home-node work; if the store refuses its epoch, this node was not the home any
        more (it froze, and woke after its lease moved): it lets the session go."""
        try:
            return await work(caller, ticket, lease, args)
        except StaleEpoch:
            log.warning("%s: epoch %d refused; letting the session go", ticket.id, lease.epoch)
            self.placement.forget(ticket.id)
            await self._lost(ticket.id)
            raise DeskError(
                "invalid_state", "the session moved to another node; try again"
            ) from None

    async def here(self, ticket_id: str) -> Lease | None:
        """This node's lease of the session, if it is the home node (no new lease taken)."""
        return self.placement.holding(ticket_id)

    async def lease(self, ticket: TicketRecord) -> Lease:
        """The session's lease: this node's if it holds it, else whoever holds it, else taken
        now by this node (recorded in the store, then the ``on_taken`` hooks run)."""
        held = await self.here(ticket.id)
        taking = self._taking.get(ticket.id)
        if held is not None and (taking is None or not taking.locked()):
            return held
        # One take at a time per session on this node: a second request waits until the
        # epoch is recorded and the take-over hooks have run, even though the new lease is
        # already held (work under it before the hooks ran would find nothing set up for it:
        # a co-browse batch or accept would start its recording over).
        async with self._taking.setdefault(ticket.id, asyncio.Lock()):
            lease = await self.placement.claim(ticket.id)
            if lease.taken:
                lease = await self._record(ticket, lease)
            return lease

    async def _record(self, ticket: TicketRecord, lease: Lease) -> Lease:
        if not await self.store.advance_owner_epoch(ticket.id, lease.epoch):
            # The store has seen a later epoch (Redis lost its counter): start above it.
            await self.placement.release(lease)
            floor = await self.store.owner_epoch(ticket.id)
            lease = await self.placement.claim(ticket.id, floor)
            if not lease.taken or not await self.store.advance_owner_epoch(ticket.id, lease.epoch):
                return lease
        if lease.epoch > 1:
            log.info("%s took %s at epoch %d", self.node, ticket.id, lease.epoch)
            for hook in self.on_taken:
                try:
                    await hook(ticket, lease)
                except Exception:
                    log.exception("take-over hook failed for %s", ticket.id)
        return lease

    async def _take_from_dead(self, ticket: TicketRecord, stale: Lease) -> Lease | None:
        """The home node did not answer: if its node record has gone too, it is dead, and
        this node takes the session now rather than after the lease lapses."""
        if await self.nodes.get(stale.node) is not None:
            return None
        lock = self._taking.setdefault(ticket.id, asyncio.Lock())
        async with lock:
            taken = await self.placement.take_over(stale, await self.store.owner_epoch(ticket.id))
            if taken is None:
                return None
            taken = await self._record(ticket, taken)
        return taken if taken.node == self.node else None

    async def adopt_orphans(self) -> list[str]:
        """Take the sessions whose home node has died (its node record expired, its lease
        not yet): their calls are re-offered and co-browse asks for a snapshot now, not at the
        next request. Several nodes may try; the lease's compare-and-set lets one win."""
        if self.nodes.state != "serving":
            return []
        adopted = []
        for name in await self.nodes.names():
            if name == self.node or await self.nodes.get(name) is not None:
                continue
            leases = await self.placement.leases_of(name)
            for lease in leases:
                ticket = await self.store.ticket(lease.ticket_id)
                if ticket is None or ticket.status == "closed":
                    taken = await self.placement.take_over(lease)
                    if taken is not None:  # nothing to adopt: let it go
                        await self.placement.release(taken)
                    continue
                if await self._take_from_dead(ticket, lease) is not None:
                    adopted.append(ticket.id)
            if not leases:
                await self.nodes.forget(name)
        return adopted

    def start(self) -> None:
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_forever())

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_CHECK_SECONDS)
            try:
                adopted = await self.adopt_orphans()
            except Exception:
                log.exception("looking for sessions of dead nodes failed")
                continue
            if adopted:
                log.info("adopted %d sessions of dead nodes", len(adopted))

    async def close(self) -> None:
        if self._watch is not None:
            await background.stop(self._watch)
            self._watch = None

    async def ticket_closed(self, ticket_id: str) -> None:
        """A session ended (on any node): its home node files what it holds and lets go."""
        self._taking.pop(ticket_id, None)
        lease = await self.placement.current(ticket_id)
        if lease is None or lease.node == self.node:
            await self._closed_here({"ticket": ticket_id})
            return
        try:
            await self.rpc.call(lease.node, "home.closed", {"ticket": ticket_id})
        except (RpcRefused, RpcUnavailable) as exc:
            log.warning("home node %s did not close %s: %s", lease.node, ticket_id, exc)

    async def _closed_here(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket_id = str(params["ticket"])
        for hook in self.on_close:
            try:
                await hook(ticket_id)
            except Exception:
                log.exception("close hook failed for %s", ticket_id)
        lease = await self.here(ticket_id)
        if lease is not None:
            await self.placement.release(lease)
        self._taking.pop(ticket_id, None)
        return {}

    async def _lost(self, ticket_id: str) -> None:
        self._taking.pop(ticket_id, None)
        for hook in self.on_lost:
            await hook(ticket_id)

    async def hand_over_all(self) -> int:
        """Draining: give every session up (what can be filed is filed, the lease released)
        and ask the least loaded serving nodes to adopt them now, so calls are re-offered and
        co-browse resumes without waiting for a request. How many were handed over."""
        try:
            targets = [n.node for n in await self.nodes.serving() if n.node != self.node]
        except Exception:
            # Redis away: nobody can be asked; the leases lapse and the sessions are adopted
            # by the others' orphan checks once it is back.
            log.exception("could not list the serving nodes")
            targets = []
        held = self.placement.held()
        for index, lease in enumerate(held):
            for hook in self.on_hand_over:
                try:
                    await hook(lease.ticket_id)
                except Exception:
                    log.exception("hand-over hook failed for %s", lease.ticket_id)
            try:
                await self.placement.release(lease)
            except Exception:
                log.exception("could not release %s", lease.ticket_id)
                continue
            if not targets:
                continue  # the next request, on whichever node, takes the session
            target = targets[index % len(targets)]
            try:
                await self.rpc.call(target, "home.adopt", {"ticket": lease.ticket_id})
            except (RpcRefused, RpcUnavailable) as exc:
                log.warning("%s did not adopt %s: %s", target, lease.ticket_id, exc)
        return len(held)

    async def _adopt(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = await self._ticket(str(params["ticket"]))
        lease = await self.lease(ticket)
        return {"node": lease.node, "epoch": lease.epoch}

    async def _caller(self, wire: dict[str, Any]) -> Caller:
        if "agent" in wire:
            agent = await self.store.agent(str(wire["agent"]))
            if agent is None:
                raise DeskError("forbidden", "unknown agent")
            return AgentCaller(agent=agent, sid=wire.get("sid"))
        site = await self.store.site(str(wire["site"]))
        if site is None:
            raise DeskError("not_found", "unknown site")
        return CustomerCaller(
            site=site,
            customer_id=wire.get("customer"),
            ticket_id=wire.get("ticket"),
            sid=wire.get("sid"),
            address=str(wire.get("address", "unknown")),
        )

    async def _ticket(self, ticket_id: str) -> TicketRecord:
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        return ticket


def caller_wire(caller: Caller) -> dict[str, Any]:
    """Who asked, as the home node can rebuild it from the store."""
    if isinstance(caller, AgentCaller):
        return {"agent": caller.agent.id, "sid": caller.sid}
    return {
        "site": caller.site.id,
        "customer": caller.customer_id,
        "ticket": caller.ticket_id,
        "sid": caller.sid,
        "address": caller.address,
    }


def _code(code: str) -> ErrorCode:
    return code if code in _CODES else "internal"  # type: ignore[return-value]
