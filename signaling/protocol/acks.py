"""What the server answers a client event with (socket.io acks)."""

from __future__ import annotations

from typing import Any, Literal

from signaling.protocol.base import Message
from signaling.protocol.values import (
    AttachmentInfo,
    CustomerRef,
    NoteInfo,
    StoredContext,
    TicketSummary,
    TranscriptMessage,
)

ErrorCode = Literal[
    "malformed",
    "unknown_event",
    "unsupported_version",
    "unauthorized",
    "forbidden",
    "not_found",
    "already_taken",
    "invalid_state",
    "too_large",
    "rate_limited",
    "internal",
]


class ErrorBody(Message):
    code: ErrorCode
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorAck(Message):
    """The ack of every refused event; the refused event changed nothing."""

    ok: Literal[False] = False
    error: ErrorBody


class SessionState(Message):
    """The ack of ``help.request``, ``session.resume``, ``session.accept`` and ``session.join``."""

    ok: Literal[True] = True
    ticket: TicketSummary
    messages: list[TranscriptMessage]
    position: int | None = None
    """1-based place in the queue while the ticket is queued."""
    token: str | None = None
    """Customers: the resumable token for this session (store it; reconnect with it)."""
    seq: int | None = None
    """Where the client stands in the session's numbered events: the ``seq`` of the last one
    this state includes. Events with a ``seq`` up to it are already in it; the next is
    ``seq + 1``."""
    availability: Literal["open", "no_agents", "closed", "full"] | None = None
    """Only in the ack of ``help.request`` for a new ticket: whether an agent can serve it
    soon. ``no_agents``: none who serve its queue is online; ``closed``: outside the site's
    hours; ``full``: its queue is longer than the site allows. The ticket is created and waits
    either way; the widget offers to leave a message and an e-mail address."""
    events: list[dict[str, Any]] | None = None
    """Only in the ack of ``session.resume`` with ``afterSeq``, when the server still held what
    the client missed: those events, in order, each exactly as it was sent live (``type``,
    ``seq``, ...). ``messages`` is then empty; the client applies the events as if they had
    just arrived. Absent: the ack is a snapshot, and the client replaces its view of the session
    with it."""
    notes: list[NoteInfo] | None = None
    """Agents only (never in a customer's state): the ticket's internal notes, oldest first."""
    files: list[AttachmentInfo] | None = None
    """Customers only: the files agents sent them (``agent_file``), oldest first, each ``url`` a
    signed link to it (a reloaded widget shows them again)."""


class NoteAck(Message):
    """The ack of ``note.add``."""

    ok: Literal[True] = True
    note: NoteInfo
    duplicate: bool = False
    """True when this ``clientNoteId`` had already been accepted."""


class ChatAck(Message):
    ok: Literal[True] = True
    message: TranscriptMessage
    duplicate: bool = False
    """True when this ``clientMsgId`` had already been accepted."""

    def wire(self) -> dict[str, Any]:
        return {"ok": True, "message": self.message.wire(), "duplicate": self.duplicate}


class QueueEntry(Message):
    ticket_id: str
    site: str
    customer: CustomerRef
    context: StoredContext
    created_at: str
    previous_ticket_id: str | None = None
    queue: str | None = None
    """The id of the site's queue the routing rules put the ticket in."""
    priority: int | None = None
    """That queue's priority (-5..10): tickets of a higher one are offered first; waiting
    raises it by one level a minute, so none starves."""
    first_message: str | None = None
    """The start of the customer's first chat message (at most ``FIRST_MESSAGE_PREVIEW``
    characters, whitespace collapsed), once they wrote one."""


FIRST_MESSAGE_PREVIEW = 140
"""Characters of the customer's first message a queue entry shows."""


class QueueSnapshot(Message):
    ok: Literal[True] = True
    entries: list[QueueEntry]
    waiting: int | None = None
    """How many sessions wait in all (the entries are one page of them)."""


class SessionListAck(Message):
    ok: Literal[True] = True
    sessions: list[TicketSummary]


class OkAck(Message):
    ok: Literal[True] = True


class CobrowseView(Message):
    """The ack of ``cobrowse.join``: what a late joiner needs to render the page now."""

    ok: Literal[True] = True
    sharing: bool
    events: list[dict[str, Any]]
    """``[Meta, FullSnapshot, ...events since]``, or empty while a snapshot is awaited."""
    control: str
    """Remote-control state: none, requested, granted, denied, revoked, expired."""
