"""Live state: what several nodes must agree on while sessions run (the queue, who is in which
session, who is online, per-address counts). ``state`` has the interface and the in-memory
implementation of one node."""

from __future__ import annotations

from signaling.live.state import LiveState, MemoryLiveState, OpenTicketLimits

__all__ = ["LiveState", "MemoryLiveState", "OpenTicketLimits"]
