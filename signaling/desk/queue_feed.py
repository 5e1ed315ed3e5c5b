"""The queue as the people around it see it: agents get its changes, customers their position.

Sending every change to every agent at once, and a new position to every waiting customer on
every accept, made each pairing cost O(agents + queue) emits (152 ms per accept with 500
waiting). Here instead:

- agents of protocol v2 get one ``queue.changed`` per tick (50 ms after the first change of a
  quiet queue) with everything that changed in it, sent to the queue's room; a ticket added and
  taken within one tick is never sent. A node whose queue does not change does not wake for it;
- agents of protocol v1 still get ``queue.added`` / ``queue.removed`` per change, in their own
  room, so an old console keeps working (an empty room costs nothing);
- customers get ``queue.position`` on a slower tick (1 s), only when theirs changed: the cost is
  O(queue) per tick whatever the rate of accepts, and an accept itself is O(1).

The position tick runs in one task per node; a flush is scheduled by the change that needs
it. On several nodes each announces what it changed; the live state's queue is the truth
either way. Positions are worked out alike on every node, so each node tells only the
customers whose sockets it holds, and only them: a customer hears a position once, and a
node's tick costs O(its waiting customers) emits, not O(queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from signaling import background
from signaling.desk.rooms import QUEUE_ROOM, QUEUE_V1_ROOM, customer_room, queue_view_room
from signaling.live import LiveState
from signaling.protocol import (
    AgentRef,
    Message,
    QueueAdded,
    QueueChanged,
    QueueEntry,
    QueuePosition,
    QueueRemoval,
    QueueRemoved,
)

log = logging.getLogger("tandem.queue")

Emit = Callable[[Message, list[str]], Awaitable[None]]
Estimate = Callable[[list[str]], Awaitable[dict[str, float | None]]]
Views = Callable[[], Awaitable[set[frozenset[str]]]]
Here = tuple[Emit, Callable[[str], bool]]
"""Send to this node's sockets only; whether this node has a socket in a room."""


async def skills_needed(live: LiveState, ticket_ids: list[str]) -> dict[str, frozenset[str]]:
    """The skills an agent needs to serve each ticket (none when routing has not seen it)."""
    routing = await live.routing_of(ticket_ids)
    return {t: _needs(routing.get(t, {})) for t in ticket_ids}


def _needs(routing: dict[str, Any]) -> frozenset[str]:
    """The skills in a ticket's routing info (none when it has none)."""
    return frozenset(routing.get("skills") or ())


MAX_CHANGES_PER_EVENT = 100
"""Added (and removed) tickets in one ``queue.changed``; a tick with more sends several."""

EXACT_POSITIONS = 20
"""Customers this near the front are told every change of their place and wait. Further back a
change is told once it is a tenth of what they were last told: when the front moves, every
place behind it changes, and telling each one on every tick cost O(queue) events a second
(5,000 a second, a quarter of a core, with 5,000 waiting). Further back, each customer hears a
few times as their number falls by tenths, and the number they see is within about a tenth of
their real place."""


def worth_telling(told: tuple[int, int | None] | None, position: int, wait: int | None) -> bool:
    """Whether a customer last told ``told`` (place, estimated wait) is told ``position`` and
    ``wait`` now."""
    if told is None:
        return True
    told_position, told_wait = told
    if (told_position, told_wait) == (position, wait):
        return False
    if position <= EXACT_POSITIONS or (told_wait is None) != (wait is None):
        return True
    if abs(position - told_position) * 10 >= told_position:
        return True
    return wait is not None and told_wait is not None and abs(wait - told_wait) * 10 >= told_wait


class QueueFeed:
    def __init__(
        self,
        emit: Emit,
        live: LiveState,
        tick: float = 0.05,
        position_tick: float = 1.0,
        here: Here | None = None,
    ) -> None:
        self._emit = emit
        self._here = here
        self._live = live
        self.tick = tick
        self.position_tick = position_tick
        self._added: dict[str, QueueEntry] = {}
        self._removed: dict[str, QueueRemoval] = {}
        self._updated: dict[str, QueueEntry] = {}
        """Entries that changed while waiting (a first message), sent as ``updated``."""
        self._positions: dict[str, tuple[int, int | None]] = {}
        """The position and estimated wait each waiting customer was last told (which may be
        behind the real one, see ``EXACT_POSITIONS``)."""
        self.views: Views | None = None
        """The distinct skill sets of the agents online who see part of the queue only."""
        self.estimate: Estimate | None = None
        """Estimated waits of waiting tickets (the router's), when routing runs."""
        self._queue_changed = False
        self._skills: dict[str, frozenset[str]] = {}
        """The skills each waiting ticket needs, as read from routing, kept between flushes
        (``_needed``): reading them for the whole queue on every flush made an accept's cost
        grow with the queue. Forgotten for a ticket this node changes, and all of it with each
        position tick, so another node's change is seen within a second."""
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_due: asyncio.Task[None] | None = None
        """The flush a change scheduled (``_soon``), until it starts."""
        self._started = False

    async def added(self, entry: QueueEntry) -> None:
        self._skills.pop(entry.ticket_id, None)
        self._added[entry.ticket_id] = entry
        self._soon()
        self._queue_changed = True
        await self._emit(QueueAdded(entry=entry), [QUEUE_V1_ROOM])

    async def updated(self, entry: QueueEntry) -> None:
        """A waiting ticket's entry changed: agents get it with the next flush (as added, if
        they have not been told of the ticket yet)."""
        self._skills.pop(entry.ticket_id, None)
        if entry.ticket_id in self._added:
            self._added[entry.ticket_id] = entry
        else:
            self._updated[entry.ticket_id] = entry
        self._soon()

    async def removed(self, ticket_id: str, reason: str, agent: AgentRef | None = None) -> None:
        self._updated.pop(ticket_id, None)
        self._skills.pop(ticket_id, None)
        removal = QueueRemoval.model_validate(
            {"ticket_id": ticket_id, "reason": reason, "agent": agent}
        )
        if self._added.pop(ticket_id, None) is None:
            self._removed[ticket_id] = removal
            self._soon()
        self._positions.pop(ticket_id, None)
        self._queue_changed = True
        await self._emit(
            QueueRemoved(ticket_id=ticket_id, reason=removal.reason, agent=agent), [QUEUE_V1_ROOM]
        )

    def told_position(self, ticket_id: str, position: int) -> None:
        """The customer learnt its position another way (the ``help.request`` ack); its
        estimated wait, once one is known, goes with the next announcement."""
        self._positions[ticket_id] = (position, None)

    async def flush(self) -> None:
        """Send the agents what changed since the last flush."""
        if not self._added and not self._removed and not self._updated:
            return
        added, removed = list(self._added.values()), list(self._removed.values())
        updated = list(self._updated.values())
        self._added, self._removed, self._updated = {}, {}, {}
        views = await self.views() if self.views is not None else set()
        if not views:
            _, waiting = await self._live.queue_page(0, None)  # the count alone, not every id
            await self._send(added, removed, waiting, QUEUE_ROOM, updated)
            return
        waiting_ids = await self._live.queued_ids()
        await self._send(added, removed, len(waiting_ids), QUEUE_ROOM, updated)
        # Each agent sees the queues whose skills they have: the added entries and the count
        # filtered by their skills; removals go to all (an id a console does not hold is
        # ignored, and the skills of a closed ticket are gone with its routing).
        needed = await self._needed([*waiting_ids, *(e.ticket_id for e in [*added, *updated])])
        # Counted per distinct skill set the waiting need (a few), not per ticket and view.
        waiting_by_need = Counter(needed[ticket_id] for ticket_id in waiting_ids)
        for skills in views:
            mine = [entry for entry in added if needed[entry.ticket_id] <= skills]
            changed = [entry for entry in updated if needed[entry.ticket_id] <= skills]
            count = sum(n for need, n in waiting_by_need.items() if need <= skills)
            if mine or removed or changed:
                await self._send(mine, removed, count, queue_view_room(skills), changed)

    async def _needed(self, ticket_ids: list[str]) -> dict[str, frozenset[str]]:
        """``skills_needed`` of the tickets, read from routing only for those not kept yet; a
        ticket routing has not seen yet (none needed, for now) is read again next time."""
        unknown = list(dict.fromkeys(t for t in ticket_ids if t not in self._skills))
        if unknown:
            routing = await self._live.routing_of(unknown)
            for ticket_id, info in routing.items():
                self._skills[ticket_id] = _needs(info)
        return {t: self._skills.get(t, frozenset()) for t in ticket_ids}

    async def _send(
        self,
        added: list[QueueEntry],
        removed: list[QueueRemoval],
        waiting: int,
        room: str,
        updated: list[QueueEntry] | None = None,
    ) -> None:
        # A burst of requests can add thousands of tickets within one tick: they go in events
        # of a bounded size (a client's websocket refuses frames past a few megabytes, which
        # dropped the agents' sockets when 3,000 customers asked at once).
        step = MAX_CHANGES_PER_EVENT
        updated = updated or []
        for start in range(0, max(len(added), len(removed), len(updated), 1), step):
            await self._emit(
                QueueChanged(
                    added=added[start : start + step],
                    removed=removed[start : start + step],
                    waiting=waiting,
                    updated=updated[start : start + step] or None,
                ),
                [room],
            )

    async def announce_positions(self) -> int:
        """Tell each waiting customer whose position changed (further back than
        ``EXACT_POSITIONS``: by a tenth); how many were told."""
        # With estimates, every tick: a wait also changes when a session ends or an agent comes
        # or goes, with the queue unchanged (still O(queue) a tick, and only changes are sent).
        # On several nodes another node's accept moves this node's customers too: look every
        # tick (one read of the queue's ids), as with estimates.
        self._skills.clear()  # see ``_skills``: another node's change is seen from here on
        if not self._queue_changed and self.estimate is None and self._here is None:
            return 0
        self._queue_changed = False
        told = 0
        waiting = await self._live.queued_ids()
        estimates = await self.estimate(waiting) if self.estimate is not None else {}
        emit = self._emit if self._here is None else self._here[0]
        for position, ticket_id in enumerate(waiting, start=1):
            room = customer_room(ticket_id)
            if self._here is not None and not self._here[1](room):
                self._positions.pop(ticket_id, None)  # told by the node its customer is on
                continue
            seconds = estimates.get(ticket_id)
            wait = None if seconds is None else round(seconds)
            if worth_telling(self._positions.get(ticket_id), position, wait):
                self._positions[ticket_id] = (position, wait)
                await emit(
                    QueuePosition(
                        ticket_id=ticket_id, position=position, estimated_wait_seconds=wait
                    ),
                    [room],
                )
                told += 1
        if len(self._positions) > len(waiting):
            still = set(waiting)
            self._positions = {t: p for t, p in self._positions.items() if t in still}
        return told

    def start(self) -> None:
        self._started = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(self.position_tick, self.announce_positions))]

    async def close(self) -> None:
        self._started = False
        due, self._flush_due = self._flush_due, None
        await background.stop(*self._tasks, *([due] if due is not None else []))
        self._tasks = []

    def _soon(self) -> None:
        """Flush one tick from now, unless a flush is already due: the changes of a tick go out
        together, and a quiet node has no timer running for them (a 50 ms loop woke an idle
        node 20 times a second)."""
        if self._started and self._flush_due is None:
            self._flush_due = asyncio.get_running_loop().create_task(self._flush_in_a_tick())

    async def _flush_in_a_tick(self) -> None:
        await asyncio.sleep(self.tick)
        # Changes made while this flush runs schedule the next one.
        self._flush_due = None
        try:
            await self.flush()
        except Exception:
            log.exception("queue feed flush failed")

    async def _every(self, seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:
                log.exception("queue feed tick failed")
