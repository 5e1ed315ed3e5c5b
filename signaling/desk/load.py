"""What each of an agent's open sessions weighs against their capacity: a chat counts one, a
session in which they are in the call, or hold remote control of the customer's page, counts
its weight (``routing.Weights``).

The facts are set by the session's home node (the media room and the control grant live there)
and kept in live state, one entry per (ticket, agent, kind), so routing on any node reads the
same load. An entry is there only while the fact holds: it is dropped when the call or the
control ends, and with every member's entries when the session ends.
"""

from __future__ import annotations

from typing import Literal

from signaling.live import LiveState
from signaling.routing import SessionLoad, Weights

Kind = Literal["call", "control"]
KINDS: tuple[Kind, ...] = ("call", "control")


def load_key(ticket_id: str, agent_id: str, kind: Kind) -> str:
    return f"load:{ticket_id}:{agent_id}:{kind}"


class Loads:
    def __init__(self, live: LiveState, weights: Weights) -> None:
        self.live = live
        self.weights = weights

    async def mark(self, ticket_id: str, agent_id: str, kind: Kind, on: bool) -> bool:
        """Record that ``agent_id`` is (or no longer is) in the call or in control of
        ``ticket_id``; whether that changed anything."""
        key = load_key(ticket_id, agent_id, kind)
        was = bool(await self.live.routing_of([key]))
        if was == on:
            return False
        if on:
            await self.live.set_routing(key, {"on": True})
        else:
            await self.live.drop_routing([key])
        return True

    async def sessions(self, agent_id: str) -> tuple[SessionLoad, ...]:
        """One ``SessionLoad`` per open session of the agent."""
        tickets = await self.live.sessions_of(agent_id)
        return (await self.many({agent_id: tickets}))[agent_id]

    async def many(self, sessions: dict[str, set[str]]) -> dict[str, tuple[SessionLoad, ...]]:
        """``sessions`` of several agents whose open sessions are known (agent -> tickets), in
        one read of live state (a routing pass weighs every free agent)."""
        keys = [
            load_key(t, agent_id, kind)
            for agent_id, tickets in sessions.items()
            for t in tickets
            for kind in KINDS
        ]
        held = await self.live.routing_of(keys) if keys else {}
        return {
            agent_id: tuple(
                SessionLoad(
                    call=load_key(t, agent_id, "call") in held,
                    controlling=load_key(t, agent_id, "control") in held,
                )
                for t in sorted(tickets)
            )
            for agent_id, tickets in sessions.items()
        }

    async def forget(self, ticket_id: str, agent_ids: set[str]) -> None:
        """The session ended (or these agents left it): their entries go."""
        keys = [load_key(ticket_id, a, kind) for a in agent_ids for kind in KINDS]
        if keys:
            await self.live.drop_routing(keys)
