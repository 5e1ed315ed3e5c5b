"""The socket.io rooms events are sent to (rooms reach every node through the client manager)."""

from __future__ import annotations

AGENTS_ROOM = "agents"
"""Every connected agent socket."""
SUPERVISORS_ROOM = "supervisors"
"""Supervisors' and admins' sockets: every agent's status changes go here."""
QUEUE_ROOM = "queue"
"""Supervisors' sockets of protocol v2: every coalesced queue change (``queue.changed``)."""
QUEUE_V1_ROOM = "queue-v1"
"""Agent sockets of protocol v1: one ``queue.added`` / ``queue.removed`` per change."""


def agent_room(agent_id: str) -> str:
    """Every socket of one agent (tabs, nodes): session events reach agents through this."""
    return f"agent:{agent_id}"


def customer_room(ticket_id: str) -> str:
    """The customer's sockets of one session."""
    return f"customer:{ticket_id}"


def queue_view_room(skills: frozenset[str]) -> str:
    """v2 sockets of the agents (not supervisors) with exactly these skills: the queue changes
    of the queues they can serve. One room per distinct set of skills, not per queue, so a
    queue configured while they are connected reaches them without joining anything."""
    return "queue-view:" + ",".join(sorted(skills))
