"""Live state: the queue, who is in which session, who is online.

Everything here is what several nodes must agree on while sessions run, so it sits behind one
small interface: ``MemoryLiveState`` for a single node now, a Redis implementation for several.
Nothing here is durable; after a restart of a single node ``rebuild`` refills it from the store.
Handlers never keep such state in their own dicts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol


class LiveState(Protocol):
    async def enqueue(self, ticket_id: str, created_at: float, entry: dict[str, Any]) -> None:
        """Add a waiting ticket; ``entry`` is its wire ``QueueEntry``."""
        ...

    async def dequeue(self, ticket_id: str) -> bool:
        """Remove a ticket from the queue; True only for the one caller that removed it."""
        ...

    async def queue(self) -> list[dict[str, Any]]:
        """Waiting entries, oldest first."""
        ...

    async def queued_ids(self) -> list[str]: ...

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
    async def close(self) -> None: ...


class MemoryLiveState:
    """Single-node live state in plain dicts (all calls run on the one event loop)."""

    def __init__(self) -> None:
        self._queue: dict[str, tuple[float, dict[str, Any]]] = {}
        self._members: defaultdict[str, set[str]] = defaultdict(set)
        self._sessions: defaultdict[str, set[str]] = defaultdict(set)
        self._sockets: defaultdict[str, set[str]] = defaultdict(set)

    async def enqueue(self, ticket_id: str, created_at: float, entry: dict[str, Any]) -> None:
        self._queue[ticket_id] = (created_at, entry)

    async def dequeue(self, ticket_id: str) -> bool:
        return self._queue.pop(ticket_id, None) is not None

    async def queue(self) -> list[dict[str, Any]]:
        return [entry for _, entry in sorted(self._queue.values(), key=lambda item: item[0])]

    async def queued_ids(self) -> list[str]:
        return sorted(self._queue, key=lambda tid: self._queue[tid][0])

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

    async def close(self) -> None:
        return None
