"""Bodies of the REST API (``GET /api/openapi.json``) and ``REST_MODELS``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from signaling.protocol.acks import ErrorBody
from signaling.protocol.base import Id, Message, NotBlank
from signaling.protocol.client import MAX_NOTE_TEXT
from signaling.protocol.handshake import Inbound
from signaling.protocol.values import (
    AttachmentInfo,
    CustomerRef,
    NoteInfo,
    PageVisit,
    TicketStatus,
    TicketSummary,
    TimelineEntry,
)


class LoginRequest(Inbound):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class AgentProfile(Message):
    id: str
    name: str
    email: str
    role: Literal["agent", "supervisor", "admin"]
    skills: list[str]


class LoginResponse(Message):
    token: str
    expires_at: str
    agent: AgentProfile


class TranscriptLine(Message):
    from_: Literal["customer", "agent", "system"] = Field(alias="from")
    author: str
    text: str
    at: str


class TicketDetail(TicketSummary):
    """``GET /api/tickets/{id}``: the summary with everything the ticket holds."""

    transcript: list[TranscriptLine]
    attachments: list[AttachmentInfo]
    timeline: list[TimelineEntry]
    notes: list[NoteInfo] = Field(default_factory=list)
    """Internal notes (agents only), oldest first."""
    pages: list[PageVisit] = Field(default_factory=list)
    """Every page the customer was on during the session, in the order visited (consecutive
    repeats once; the latest 50, the page of the request always kept, marked ``request``)."""


class TicketListItem(Message):
    id: str
    status: TicketStatus
    site: str
    created_at: str
    closed_at: str | None = None
    customer: CustomerRef
    title: str
    """The page title (or URL) the customer asked for help from."""
    url: str
    message_count: int


class TicketList(Message):
    tickets: list[TicketListItem]


class ApiError(Message):
    error: ErrorBody


class NoteCreate(Inbound):
    """``POST /api/tickets/{id}/notes``: an internal note, during the session or after it."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_TEXT), NotBlank]
    client_note_id: Id | None = None


class NoteList(Message):
    notes: list[NoteInfo]


class NoteCreated(Message):
    note: NoteInfo
    duplicate: bool = False


Shortcut = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
MAX_CANNED_TEXT = 2_000


class CannedReplyCreate(Inbound):
    """``POST /api/sites/{site_id}/canned-replies`` (admins): add a reply, or replace the one with
    the same shortcut. Variables in ``{}`` must be known ones (``{customer.name}``...)."""

    shortcut: Shortcut
    """Typed after ``/`` in the composer: lowercase letters, digits, ``-`` and ``_``."""
    text: Annotated[str, Field(min_length=1, max_length=MAX_CANNED_TEXT), NotBlank]


class CannedReply(Message):
    shortcut: str
    text: str
    """As written, with its variables."""
    rendered: str | None = None
    """Only for a ticket (``GET /api/tickets/{id}/canned-replies``): the text with the variables
    that ticket and the calling agent know filled in (an unknown value stays as written)."""


class CannedReplyList(Message):
    replies: list[CannedReply]
    variables: list[str] = Field(default_factory=list)
    """The variables a reply may use."""


class AttachmentCreated(Message):
    """``POST /api/tickets/{id}/files``: the file as filed on the ticket."""

    attachment: AttachmentInfo


REST_MODELS: tuple[type[Message], ...] = (
    LoginRequest,
    LoginResponse,
    TicketDetail,
    TicketList,
    ApiError,
    NoteCreate,
    NoteList,
    NoteCreated,
    CannedReplyCreate,
    CannedReplyList,
    AttachmentCreated,
)
