"""The desk: a support session's life (request, queue, accept, chat, end) and its ticket.

``lifecycle`` decides; ``access`` says who may read and act on a ticket; ``queue_feed`` tells
agents the queue's changes and customers their place; ``rooms`` names where events go.
Nothing here touches a socket: events leave through a ``Broadcaster``.
"""

from __future__ import annotations

from signaling.desk.lifecycle import (
    AgentCaller,
    Broadcaster,
    Caller,
    CustomerCaller,
    Desk,
    DeskError,
    attachment_info,
    page_visit,
    ticket_summary,
    timeline_entry,
    transcript_message,
)
from signaling.protocol.times import iso

__all__ = [
    "AgentCaller",
    "Broadcaster",
    "Caller",
    "CustomerCaller",
    "Desk",
    "DeskError",
    "attachment_info",
    "iso",
    "page_visit",
    "ticket_summary",
    "timeline_entry",
    "transcript_message",
]
