"""Live state: what several nodes must agree on while sessions run (the queue, who is in which
session, who is online, per-address counts). ``state`` has the interface and the in-memory
implementation of one node; ``eventlog`` numbers each session's events so clients resume from
exactly where they left off."""

from __future__ import annotations

from signaling.live.eventlog import (
    Audience,
    EventLog,
    LoggedEvent,
    MemoryEventLog,
    RedisEventLog,
)
from signaling.live.state import (
    AgentPresence,
    LiveState,
    MemoryLiveState,
    OpenTicketLimits,
    RingingOffer,
)

__all__ = [
    "AgentPresence",
    "Audience",
    "EventLog",
    "LiveState",
    "LoggedEvent",
    "MemoryEventLog",
    "MemoryLiveState",
    "OpenTicketLimits",
    "RedisEventLog",
    "RingingOffer",
]
