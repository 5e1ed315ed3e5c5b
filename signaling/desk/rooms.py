"""The socket.io rooms events are sent to (rooms reach every node through the client manager)."""

from __future__ import annotations

AGENTS_ROOM = "agents"
"""Every connected agent socket."""
SUPERVISORS_ROOM = "supervisors"
"""Supervisors' and admins' sockets: every agent's status changes go here."""
QUEUE_ROOM = "queue"
"""Agent sockets of protocol v2: coalesced queue changes (``queue.changed``) go here."""
QUEUE_V1_ROOM = "queue-v1"
"""Agent sockets of protocol v1: one ``queue.added`` / ``queue.removed`` per change."""


def agent_room(agent_id: str) -> str:
    """Every socket of one agent (tabs, nodes): session events reach agents through this."""
    return f"agent:{agent_id}"


def customer_room(ticket_id: str) -> str:
    """The customer's sockets of one session."""
    return f"customer:{ticket_id}"
