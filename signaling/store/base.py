"""The storage interface and the records it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TicketStatus = Literal["queued", "active", "closed"]
Sender = Literal["customer", "agent", "system"]


class DuplicateError(Exception):
    """A unique value (site key, agent email) is taken already."""


class TicketChanged(Exception):
    """A write made on a ticket as it was read (``as_read``) found its status or agents changed
    since: nothing was written; read the ticket again and decide again."""


class StaleEpoch(Exception):
    """A home node's write carried an older lease epoch than the ticket's: another node is the
    session's home now, and the write was refused (nothing changed)."""


@dataclass(frozen=True)
class SiteRecord:
    id: str
    name: str
    public_key: str
    secret: str
    origins: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentRecord:
    id: str
    email: str
    name: str
    password_hash: str
    role: Literal["agent", "supervisor", "admin"]
    skills: tuple[str, ...]


@dataclass(frozen=True)
class AuthSessionRecord:
    """One sign-in of an agent: every token refreshed from it names it, so it can be ended."""

    id: str
    agent_id: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class TicketRecord:
    id: str
    site_id: str
    status: TicketStatus
    created_at: float
    closed_at: float | None
    customer: dict[str, Any]
    """``{id, verified, name, email}``."""
    context: dict[str, Any]
    """The stored context packet (wire form, camelCase)."""
    agents: tuple[dict[str, str], ...]
    """``{id, name}`` of every agent who joined, in join order (the claiming agent first)."""
    previous_ticket_id: str | None


@dataclass(frozen=True)
class MessageRecord:
    id: int
    ticket_id: str
    sender: Sender
    author_id: str
    author: str
    text: str
    client_msg_id: str | None
    at: float


@dataclass(frozen=True)
class TimelineRecord:
    id: int
    ticket_id: str
    at: float
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class PageRecord:
    """A page the customer was on during a session (``TicketStore.add_page``)."""

    id: int
    ticket_id: str
    at: float
    url: str
    title: str
    app: dict[str, Any]
    """The host app's fields while on it (the product on screen, the cart)."""
    request: bool
    """The page they asked for help from."""


@dataclass(frozen=True)
class TicketOpening:
    """What a ticket a customer asked for starts with, written in the same transaction as the
    ticket (``TicketStore.create_ticket``): its first timeline entry and the page they asked
    from (a request page)."""

    type: str
    data: dict[str, Any]
    url: str
    title: str
    app: dict[str, Any]
    at: float


MAX_PAGES = 50
"""Pages a ticket keeps: past it the oldest go, the page of the request stays."""


@dataclass(frozen=True)
class AttachmentRecord:
    id: str
    ticket_id: str
    kind: str
    content_type: str
    size: int
    sha256: str
    created_at: float
    meta: dict[str, Any]


@dataclass(frozen=True)
class NoteRecord:
    """An agent-only note on a ticket (never sent to the customer)."""

    id: int
    ticket_id: str
    author_id: str
    author: str
    text: str
    source: Literal["agent", "transfer"]
    """``transfer``: the note a warm or cold transfer carried to the next agent."""
    client_note_id: str | None
    at: float


@dataclass(frozen=True)
class CannedRecord:
    """A site's canned reply: ``/shortcut`` in the console's composer, and its text (with
    ``{customer.name}``-style variables)."""

    site_id: str
    shortcut: str
    text: str
    created_by: str
    created_at: float


@dataclass(frozen=True)
class UploadQuota:
    """Bounds on a ticket's attachments of some kinds (customer uploads), checked by the insert
    itself: concurrent uploads (on any node) cannot both take the last place."""

    kinds: tuple[str, ...]
    max_count: int
    max_bytes: int


class TicketStore(Protocol):
    """Everything Tandem keeps durably. Every method is safe to call from several nodes."""

    async def close(self) -> None: ...

    # sites and agents
    async def add_site(self, site: SiteRecord) -> None: ...
    async def site_by_key(self, public_key: str) -> SiteRecord | None: ...
    async def site(self, site_id: str) -> SiteRecord | None: ...
    async def sites(self) -> list[SiteRecord]: ...
    async def set_site_settings(self, site_id: str, settings: dict[str, Any]) -> None: ...
    async def add_agent(self, agent: AgentRecord) -> None: ...
    async def agent_by_email(self, email: str) -> AgentRecord | None: ...
    async def agent(self, agent_id: str) -> AgentRecord | None: ...
    async def set_password(self, agent_id: str, password_hash: str, at: float) -> bool:
        """Change an agent's password and end all their sign-in sessions; False if unknown."""
        ...

    async def remove_agent(self, agent_id: str, at: float) -> bool:
        """Remove an agent and end all their sign-in sessions; False if unknown."""
        ...

    # sign-in sessions (agent tokens name one; ended by logout, password change, removal)
    async def add_auth_session(self, session: AuthSessionRecord) -> None: ...
    async def auth_session(self, session_id: str) -> AuthSessionRecord | None: ...
    async def revoke_auth_session(self, session_id: str, at: float) -> bool:
        """End one sign-in session; False if it had ended already."""
        ...

    # tickets
    async def create_ticket(
        self, ticket: TicketRecord, opening: TicketOpening | None = None
    ) -> TimelineRecord | None:
        """Write a new ticket; with ``opening``, its first timeline entry and request page in
        the same transaction (the entry is returned)."""
        ...

    async def ticket(self, ticket_id: str) -> TicketRecord | None: ...
    async def ticket_hint(self, ticket_id: str) -> TicketRecord | None:
        """The ticket, maybe as it was before another node changed it: only for a write
        made ``as_read`` (see ``CachedTicketStore``)."""
        ...

    async def tickets(
        self,
        *,
        status: str | None = None,
        text: str | None = None,
        limit: int = 100,
        member_id: str | None = None,
    ) -> list[TicketRecord]:
        """Newest first; with ``member_id``, only tickets that agent has joined."""
        ...

    async def claim_ticket(self, ticket_id: str, agent: dict[str, str]) -> bool:
        """Move a queued ticket to active with this agent. False if it was not queued: the
        first claim wins, across nodes, because the condition is checked in one statement."""
        ...

    async def claim_ticket_noted(
        self, ticket_id: str, agent: dict[str, str], type: str, data: dict[str, Any], at: float
    ) -> TimelineRecord | None:
        """``claim_ticket`` with its timeline entry written in the same transaction (one write
        for the accept instead of two); the entry, or None (and nothing written) when the
        ticket was not queued."""
        ...

    async def add_ticket_agent(self, ticket_id: str, agent: dict[str, str]) -> None:
        """Add an agent to an active ticket's agents, in one atomic statement: concurrent joins
        (from any node) all land, a second join of the same agent changes nothing, and a ticket
        that is not active (closed meanwhile) gains nobody."""
        ...

    async def close_ticket(self, ticket_id: str, at: float) -> bool:
        """False if it was closed already."""
        ...

    async def requeue_ticket(self, ticket_id: str) -> bool:
        """Move an active ticket back to queued (a transfer to the queue), keeping its agents and
        its created_at (its place in the queue). False if it was not active."""
        ...

    async def remove_ticket_agent(self, ticket_id: str, agent_id: str) -> bool:
        """Take an agent off a ticket (they handed it over); False if they were not on it."""
        ...

    async def set_context(self, ticket_id: str, context: dict[str, Any]) -> None: ...
    async def merge_context(
        self, ticket_id: str, merge: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Replace a ticket's context by ``merge(stored context)``, read and written in one
        write with the row locked: concurrent patches (from any node) all land. The new
        context, or None if there is no such ticket. ``merge`` must be quick and pure."""
        ...

    # transcript, timeline, attachments
    async def add_message(
        self,
        ticket_id: str,
        sender: Sender,
        author_id: str,
        author: str,
        text: str,
        client_msg_id: str | None,
        at: float,
        as_read: TicketRecord | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Append a message; returns it and whether it is new. A message with the same
        ``(ticket, author_id, client_msg_id)`` is returned as it was first stored. With
        ``as_read``, a new message is written only while the ticket's status and its agents
        (what a chat message is decided on) are still those of that record, checked by the
        insert itself, else ``TicketChanged``."""
        ...

    async def messages(self, ticket_id: str, after_id: int = 0) -> list[MessageRecord]: ...
    async def message_counts(self, ticket_ids: list[str]) -> dict[str, int]: ...
    async def add_timeline(
        self, ticket_id: str, type: str, data: dict[str, Any], at: float, epoch: int | None = None
    ) -> TimelineRecord:
        """Append a timeline entry. With ``epoch`` (a home node's write), only if the ticket's
        owner epoch is still that one, else ``StaleEpoch``: checked in the same statement."""
        ...

    async def timeline(self, ticket_id: str) -> list[TimelineRecord]: ...
    async def add_page(
        self,
        ticket_id: str,
        url: str,
        title: str,
        app: dict[str, Any],
        at: float,
        request: bool = False,
        keep: int = MAX_PAGES,
    ) -> PageRecord | None:
        """Append a page to the ticket's history, unless it is the page the history ends with
        (same URL, title and app fields): then None. Past ``keep`` pages the oldest go, but
        never the page of the request. Read and written in one write with the ticket's row
        locked, so pages arriving at once (from any node) are compared in the order they land."""
        ...

    async def pages(self, ticket_id: str) -> list[PageRecord]:
        """The ticket's pages in the order visited."""
        ...

    async def add_attachment(
        self,
        attachment: AttachmentRecord,
        quota: UploadQuota | None = None,
        epoch: int | None = None,
    ) -> bool:
        """File an attachment; with a quota that counts its kind, only if the ticket's
        attachments of those kinds stay within it (False otherwise, and nothing is filed);
        ``epoch`` as for ``add_timeline``."""
        ...

    # home-node fencing (``signaling.live.placement``)
    async def advance_owner_epoch(self, ticket_id: str, epoch: int) -> bool:
        """Record that the lease holder of ``epoch`` is the ticket's home now: raises the
        ticket's owner epoch to ``epoch``, in one statement. False if the ticket's epoch is
        already higher (the lease moved on) or the ticket is unknown."""
        ...

    async def owner_epoch(self, ticket_id: str) -> int:
        """The ticket's owner epoch (0 if no home node ever wrote; unknown tickets too)."""
        ...

    async def attachments(self, ticket_id: str) -> list[AttachmentRecord]: ...
    async def attachment(self, ticket_id: str, attachment_id: str) -> AttachmentRecord | None: ...

    # notes and canned replies
    async def add_note(
        self,
        ticket_id: str,
        author_id: str,
        author: str,
        text: str,
        source: Literal["agent", "transfer"],
        client_note_id: str | None,
        at: float,
    ) -> tuple[NoteRecord, bool]:
        """Append a note; returns it and whether it is new (a resend with the same
        ``(ticket, author_id, client_note_id)`` returns the first)."""
        ...

    async def notes(self, ticket_id: str) -> list[NoteRecord]: ...
    async def put_canned(self, reply: CannedRecord) -> None:
        """Add a canned reply, or replace the site's reply with the same shortcut."""
        ...

    async def canned(self, site_id: str) -> list[CannedRecord]: ...
    async def remove_canned(self, site_id: str, shortcut: str) -> bool: ...
