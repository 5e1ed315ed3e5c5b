"""The support desk: the lifecycle of a support session and its ticket.

request help -> ticket created (with the context) and queued -> an agent accepts (first wins) ->
chat both ways -> either side ends -> ticket closed with its transcript. Socket handlers and REST
routes call this; it talks to the durable store, the shared live state and the broadcaster, and
never to a socket directly, so any node can serve any step.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from signaling import auth
from signaling.desk import access
from signaling.desk.queue_feed import QueueFeed
from signaling.desk.rooms import agent_room, customer_room
from signaling.desk.useragent import parse_user_agent
from signaling.live import LiveState, OpenTicketLimits
from signaling.protocol import (
    AgentRef,
    AttachmentAdded,
    AttachmentInfo,
    ChatMessage,
    ChatTypingNotice,
    ContextChanged,
    ContextPatch,
    CustomerRef,
    ErrorCode,
    HelpRequest,
    Message,
    QueueEntry,
    SessionAccepted,
    SessionEnded,
    SessionJoined,
    SessionState,
    StoredContext,
    TicketSummary,
    TicketTimeline,
    TimelineEntry,
    TranscriptMessage,
)
from signaling.store import (
    AgentRecord,
    AttachmentRecord,
    FileStore,
    MessageRecord,
    Sender,
    SiteRecord,
    TicketRecord,
    TicketStore,
    TimelineRecord,
)

log = logging.getLogger("tandem.desk")

EndedBy = Literal["customer", "agent", "system"]

DEFAULT_TICKET_LIMITS = OpenTicketLimits(per_address=20, per_customer=3)

MAX_CONTEXT_MODELS = 10_000
"""Tickets whose context model the desk keeps (``Desk.context_model``)."""


class DeskError(Exception):
    """A refused request; it changed nothing."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


class Broadcaster(Protocol):
    async def emit(self, event: Message, rooms: list[str], skip_sid: str | None = None) -> None:
        """Send a server event to every socket in any of the rooms, on every node."""
        ...

    async def enter_room(self, sid: str, room: str) -> bool:
        """Put a socket in a room; False if the socket has gone."""
        ...


@dataclass(frozen=True)
class CustomerCaller:
    """A customer socket: which site, and which session its token is scoped to (if any)."""

    site: SiteRecord
    customer_id: str | None = None
    ticket_id: str | None = None
    sid: str | None = None
    address: str = "unknown"
    """The client's address (``clientaddr``), which open-ticket limits count against."""


@dataclass(frozen=True)
class AgentCaller:
    agent: AgentRecord
    sid: str | None = None
    auth_session_id: str = ""
    """The sign-in session whose token opened this socket (``agent_sessions``)."""

    @property
    def ref(self) -> dict[str, str]:
        return {"id": self.agent.id, "name": self.agent.name}

    @property
    def oversees(self) -> bool:
        """Supervisors and admins may read and join any session."""
        return access.oversees(self.agent)


Caller = CustomerCaller | AgentCaller


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Desk:
    def __init__(
        self,
        store: TicketStore,
        live: LiveState,
        files: FileStore,
        broadcaster: Broadcaster,
        secret: str,
        customer_token_ttl: int,
        ticket_limits: OpenTicketLimits = DEFAULT_TICKET_LIMITS,
        queue_feed: QueueFeed | None = None,
    ) -> None:
        self.ticket_limits = ticket_limits
        self.queue_feed = queue_feed or QueueFeed(broadcaster.emit, live)
        """Queue changes to agents and positions to customers (its ticks run once started)."""
        self.store = store
        self.live = live
        self.files = files
        self.broadcaster = broadcaster
        self._secret = secret
        self._customer_token_ttl = customer_token_ttl
        self.on_close: list[Callable[[str], Awaitable[None]]] = []
        """Called with the ticket id when a session ends (co-browse, media clean-up)."""
        self._contexts: OrderedDict[str, tuple[dict[str, Any], StoredContext]] = OrderedDict()
        """Per ticket, its stored context and the model read from it (``context_model``)."""

    # ------------------------------------------------------------------ customer side

    async def request_help(
        self, caller: CustomerCaller, request: HelpRequest
    ) -> tuple[SessionState, CustomerCaller]:
        """Create the ticket at once, holding the context, and queue it.

        A customer whose token names a session that is still open gets that session back
        instead of a second ticket; one whose session is closed gets a new ticket linked to it.
        """
        previous: TicketRecord | None = None
        customer_id = caller.customer_id
        if caller.ticket_id:
            previous = await self.store.ticket(caller.ticket_id)
            if previous is not None and previous.status != "closed":
                state = await self.session_state(previous, token=self._token_for(previous))
                return state, caller
        if request.previous_token and previous is None:
            previous, customer_id = await self._previous_from_token(caller, request.previous_token)

        site = caller.site
        identity = request.identity
        customer: dict[str, Any]
        if identity is not None:
            verified = auth.identity_verified(site.secret, identity.id, identity.signature)
            customer = {
                "id": identity.id,
                "verified": verified,
                "name": identity.name,
                "email": identity.email,
            }
        else:
            customer = {
                "id": customer_id or auth.new_id("c"),
                "verified": False,
                "name": None,
                "email": None,
            }
        ticket_id = auth.new_id("tk")
        refused = await self.live.hold_ticket(
            ticket_id, caller.address, str(customer["id"]), self.ticket_limits
        )
        if refused is not None:
            who = "your network" if refused == "address" else "you"
            raise DeskError(
                "rate_limited",
                f"too many open conversations from {who}; finish one or wait for an agent",
            )
        try:
            return await self._open_ticket(caller, request, ticket_id, customer, previous)
        except BaseException:
            await self.live.release_ticket(ticket_id)
            raise

    async def _open_ticket(
        self,
        caller: CustomerCaller,
        request: HelpRequest,
        ticket_id: str,
        customer: dict[str, Any],
        previous: TicketRecord | None,
    ) -> tuple[SessionState, CustomerCaller]:
        site = caller.site
        now = time.time()
        packet = request.context
        # The packet was validated as it came in; the stored context is it plus the device.
        stored = StoredContext.model_construct(
            **{name: getattr(packet, name) for name in type(packet).model_fields},
            device=parse_user_agent(packet.user_agent),
        )
        context = stored.wire()
        self._remember_context(ticket_id, context, stored)
        ticket = TicketRecord(
            id=ticket_id,
            site_id=site.id,
            status="queued",
            created_at=now,
            closed_at=None,
            customer=customer,
            context=context,
            agents=(),
            previous_ticket_id=previous.id if previous else None,
        )
        await self.store.create_ticket(ticket)
        # The customer's socket is in the session's room before anyone can hear of the ticket,
        # so no accept can overtake it and leave it without its session.accepted.
        if caller.sid is not None and not await self.broadcaster.enter_room(
            caller.sid, customer_room(ticket.id)
        ):
            # The socket went while the ticket was being created: nobody holds the ticket's
            # token, so it is closed at once (and said so) rather than queued for nobody.
            await self.store.close_ticket(ticket.id, time.time())
            await self.timeline(ticket, "session.ended", {"by": "system", "reason": "left"})
            raise DeskError("invalid_state", "the connection closed before the ticket was queued")
        await self.timeline(
            ticket,
            "ticket.created",
            {
                "url": packet.url,
                "title": packet.title,
                "previousTicketId": ticket.previous_ticket_id,
            },
        )
        entry = self._queue_entry(ticket, site)
        position = await self.live.enqueue(ticket.id, now, entry.wire())
        self.queue_feed.told_position(ticket.id, position)
        await self.queue_feed.added(entry)
        token = self._token_for(ticket)
        new_caller = CustomerCaller(
            site=site,
            customer_id=customer["id"],
            ticket_id=ticket.id,
            sid=caller.sid,
            address=caller.address,
        )
        # A ticket made just now has no messages yet: nothing to read back.
        state = await self.session_state(ticket, token=token, position=position, messages=[])
        return state, new_caller

    async def _previous_from_token(
        self, caller: CustomerCaller, token: str
    ) -> tuple[TicketRecord | None, str | None]:
        try:
            claims = auth.read_customer_token(self._secret, token, allow_expired=True)
        except auth.TokenError as exc:
            raise DeskError("unauthorized", f"previous token refused: {exc.reason}") from None
        if claims.site_id != caller.site.id:
            raise DeskError("forbidden", "previous token belongs to another site")
        return await self.store.ticket(claims.ticket_id), claims.customer_id

    def _token_for(self, ticket: TicketRecord) -> str:
        return auth.issue_customer_token(
            self._secret,
            ticket.site_id,
            str(ticket.customer["id"]),
            ticket.id,
            self._customer_token_ttl,
        )

    async def update_context(self, caller: CustomerCaller, patch: ContextPatch) -> StoredContext:
        ticket = await self.ticket_for(caller, None)
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        changes = patch.wire()
        merged = StoredContext.model_validate({**ticket.context, **changes})
        await self.store.set_context(ticket.id, merged.wire())
        await self.timeline(ticket, "context.updated", changes)
        await self.broadcaster.emit(
            ContextChanged(ticket_id=ticket.id, context=merged), self.agent_rooms(ticket)
        )
        return merged

    # ------------------------------------------------------------------ agent side

    async def queue(
        self, limit: int = 200, after: str | None = None
    ) -> tuple[list[QueueEntry], int]:
        """One page of the waiting sessions, oldest first, and how many wait in all."""
        page, waiting = await self.live.queue_page(limit, after)
        return [QueueEntry.model_validate(entry) for entry in page], waiting

    async def accept(self, caller: AgentCaller, ticket_id: str) -> SessionState:
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        if not await self.store.claim_ticket(ticket_id, caller.ref):
            raise DeskError("already_taken", "another agent accepted this session first")
        await self.live.dequeue(ticket_id)
        await self.live.join(ticket_id, caller.agent.id)
        ticket = await self._must_ticket(ticket_id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.timeline(ticket, "session.accepted", {"agent": agent.wire()})
        await self.queue_feed.removed(ticket_id, "accepted", agent)
        await self.broadcaster.emit(
            SessionAccepted(ticket_id=ticket_id, agent=agent), self.rooms(ticket)
        )
        return await self.session_state(ticket)

    async def join(self, caller: AgentCaller, ticket_id: str) -> SessionState:
        if not caller.oversees:
            raise DeskError("forbidden", "only supervisors and admins join sessions")
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if ticket.status != "active":
            raise DeskError("invalid_state", f"the session is {ticket.status}")
        await self.store.add_ticket_agent(ticket_id, caller.ref)
        await self.live.join(ticket_id, caller.agent.id)
        ticket = await self._must_ticket(ticket_id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.timeline(ticket, "session.joined", {"agent": agent.wire()})
        await self.broadcaster.emit(
            SessionJoined(ticket_id=ticket_id, agent=agent), self.rooms(ticket)
        )
        return await self.session_state(ticket)

    async def sessions(self, caller: AgentCaller) -> list[TicketSummary]:
        """The agent's open sessions (what a reconnecting console restores)."""
        summaries = []
        for ticket_id in sorted(await self.live.sessions_of(caller.agent.id)):
            ticket = await self.store.ticket(ticket_id)
            if ticket is not None and ticket.status == "active":
                summaries.append(await self.summary(ticket))
        return summaries

    # ------------------------------------------------------------------ both sides

    async def resume(self, caller: Caller, ticket_id: str | None, after_id: int) -> SessionState:
        ticket = await self.ticket_for(caller, ticket_id, read_only=True)
        token = self._token_for(ticket) if isinstance(caller, CustomerCaller) else None
        return await self.session_state(ticket, after_id=after_id, token=token)

    async def chat(
        self, caller: Caller, ticket_id: str | None, client_msg_id: str, text: str
    ) -> tuple[TranscriptMessage, bool]:
        ticket = await self.ticket_for(caller, ticket_id)
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        if isinstance(caller, CustomerCaller):
            sender: Sender = "customer"
            author_id = str(ticket.customer["id"])
            author = str(ticket.customer.get("name") or "Customer")
        else:
            sender, author_id, author = "agent", caller.agent.id, caller.agent.name
        record, new = await self.store.add_message(
            ticket.id, sender, author_id, author, text, client_msg_id, time.time()
        )
        message = transcript_message(record)
        if new:
            await self.broadcaster.emit(ChatMessage(message=message), self.rooms(ticket))
        return message, new

    async def typing(self, caller: Caller, ticket_id: str | None, typing: bool) -> None:
        ticket = await self.ticket_for(caller, ticket_id)
        if ticket.status == "closed":
            return
        if isinstance(caller, CustomerCaller):
            notice = ChatTypingNotice(
                ticket_id=ticket.id,
                from_="customer",
                name=str(ticket.customer.get("name") or "Customer"),
                typing=typing,
            )
        else:
            notice = ChatTypingNotice(
                ticket_id=ticket.id, from_="agent", name=caller.agent.name, typing=typing
            )
        await self.broadcaster.emit(notice, self.rooms(ticket), skip_sid=caller.sid)

    async def end(self, caller: Caller, ticket_id: str | None) -> None:
        ticket = await self.ticket_for(caller, ticket_id)
        by: EndedBy = "customer" if isinstance(caller, CustomerCaller) else "agent"
        await self.close(ticket, by, {"by": by} | ({} if by == "customer" else caller_ref(caller)))

    async def close(self, ticket: TicketRecord, by: EndedBy, data: dict[str, Any]) -> None:
        now = time.time()
        if not await self.store.close_ticket(ticket.id, now):
            raise DeskError("invalid_state", "the session has ended already")
        for hook in self.on_close:
            try:
                await hook(ticket.id)
            except Exception:
                log.exception("close hook failed for %s", ticket.id)
        was_queued = await self.live.dequeue(ticket.id)
        await self.live.drop_session(ticket.id)
        await self.timeline(ticket, "session.ended", data)
        if was_queued or ticket.status == "queued":
            await self.queue_feed.removed(ticket.id, "ended")
        await self.broadcaster.emit(
            SessionEnded(ticket_id=ticket.id, by=by, at=iso(now)),
            self.rooms(ticket),
        )

    # ------------------------------------------------------------------ attachments

    async def file_attachment(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        data: bytes,
        meta: dict[str, Any],
    ) -> AttachmentInfo:
        """Store bytes content-addressed, record them on the ticket, tell everyone in it."""
        sha256, size = await self.files.put_bytes(data)
        return await self._attach(ticket_id, kind, content_type, sha256, size, meta)

    async def file_attachment_path(
        self, ticket_id: str, kind: str, content_type: str, path: Path, meta: dict[str, Any]
    ) -> AttachmentInfo:
        """Like ``file_attachment`` for a finished file (moved into the store)."""
        sha256, size = await self.files.put_file(path)
        return await self._attach(ticket_id, kind, content_type, sha256, size, meta)

    async def _attach(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        sha256: str,
        size: int,
        meta: dict[str, Any],
    ) -> AttachmentInfo:
        ticket = await self._must_ticket(ticket_id)
        record = AttachmentRecord(
            id=auth.new_id("at"),
            ticket_id=ticket_id,
            kind=kind,
            content_type=content_type,
            size=size,
            sha256=sha256,
            created_at=time.time(),
            meta=meta,
        )
        await self.store.add_attachment(record)
        info = attachment_info(record)
        await self.timeline(
            ticket,
            "attachment.added",
            {"attachmentId": record.id, "kind": kind, "contentType": content_type, "size": size},
        )
        await self.broadcaster.emit(
            AttachmentAdded(ticket_id=ticket_id, attachment=info), self.rooms(ticket)
        )
        return info

    # ------------------------------------------------------------------ views

    async def session_state(
        self,
        ticket: TicketRecord,
        after_id: int = 0,
        token: str | None = None,
        position: int | None = None,
        messages: list[TranscriptMessage] | None = None,
    ) -> SessionState:
        if ticket.status == "queued" and position is None:
            position = await self.live.position(ticket.id)
        if messages is None:
            records = await self.store.messages(ticket.id, after_id)
            messages = [transcript_message(m) for m in records]
        return SessionState(
            ticket=await self.summary(ticket), messages=messages, position=position, token=token
        )

    async def summary(self, ticket: TicketRecord) -> TicketSummary:
        site = await self.store.site(ticket.site_id)
        return ticket_summary(
            ticket, site.name if site else ticket.site_id, self.context_model(ticket)
        )

    def context_model(self, ticket: TicketRecord) -> StoredContext:
        """The ticket's stored context as its model, read once per ticket and content: a
        summary or queue entry is built on every accept, join and resume, and reading the
        context (its app fields measured as JSON) was the largest part of it. A pure memo: the
        model returned is the one ``StoredContext.model_validate(ticket.context)`` gives."""
        known = self._contexts.get(ticket.id)
        if known is not None and (known[0] is ticket.context or known[0] == ticket.context):
            self._contexts.move_to_end(ticket.id)
            return known[1]
        model = StoredContext.model_validate(ticket.context)
        self._remember_context(ticket.id, ticket.context, model)
        return model

    def _remember_context(
        self, ticket_id: str, context: dict[str, Any], model: StoredContext
    ) -> None:
        self._contexts[ticket_id] = (context, model)
        self._contexts.move_to_end(ticket_id)
        while len(self._contexts) > MAX_CONTEXT_MODELS:
            self._contexts.popitem(last=False)

    def rooms(self, ticket: TicketRecord) -> list[str]:
        """Every socket in a session: the customer's and each joined agent's."""
        return [customer_room(ticket.id), *self.agent_rooms(ticket)]

    def agent_rooms(self, ticket: TicketRecord) -> list[str]:
        return [agent_room(agent["id"]) for agent in ticket.agents]

    # ------------------------------------------------------------------ start-up

    async def rebuild_live_state(self) -> None:
        """Refill live state from the store (a single node after a restart)."""
        for ticket in reversed(await self.store.tickets(status="queued", limit=100_000)):
            site = await self.store.site(ticket.site_id)
            if site is not None:
                entry = self._queue_entry(ticket, site)
                await self.live.enqueue(ticket.id, ticket.created_at, entry.wire())
        for ticket in await self.store.tickets(status="active", limit=100_000):
            for agent in ticket.agents:
                await self.live.join(ticket.id, agent["id"])

    # ------------------------------------------------------------------ internals

    async def ticket_for(
        self, caller: Caller, ticket_id: str | None, *, read_only: bool = False
    ) -> TicketRecord:
        """The ticket a caller may act on, or the reason they may not."""
        if isinstance(caller, CustomerCaller):
            if caller.ticket_id is None:
                raise DeskError("unauthorized", "ask for help first (help.request)")
            if ticket_id is not None and ticket_id != caller.ticket_id:
                raise DeskError("forbidden", "not your session")
            ticket = await self.store.ticket(caller.ticket_id)
            if ticket is None or ticket.site_id != caller.site.id:
                raise DeskError("not_found", "no such session")
            return ticket
        if ticket_id is None:
            raise DeskError("malformed", "ticketId is required")
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        allowed = access.may_read if read_only else access.may_act
        if not allowed(caller.agent, ticket):
            raise DeskError("forbidden", "you are not in this session")
        return ticket

    async def _must_ticket(self, ticket_id: str) -> TicketRecord:
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        return ticket

    async def timeline(self, ticket: TicketRecord, type: str, data: dict[str, Any]) -> None:
        record = await self.store.add_timeline(ticket.id, type, data, time.time())
        await self.broadcaster.emit(
            TicketTimeline(ticket_id=ticket.id, entry=timeline_entry(record)),
            self.agent_rooms(ticket),
        )

    def _queue_entry(self, ticket: TicketRecord, site: SiteRecord) -> QueueEntry:
        return QueueEntry(
            ticket_id=ticket.id,
            site=site.name,
            customer=CustomerRef.model_validate(ticket.customer),
            context=self.context_model(ticket),
            created_at=iso(ticket.created_at),
            previous_ticket_id=ticket.previous_ticket_id,
        )


def caller_ref(caller: Caller) -> dict[str, Any]:
    if isinstance(caller, AgentCaller):
        return {"agent": caller.ref}
    return {}


def ticket_summary(
    ticket: TicketRecord, site_name: str, context: StoredContext | None = None
) -> TicketSummary:
    """``context``: the ticket's context already read (``Desk.context_model``)."""
    return TicketSummary(
        id=ticket.id,
        status=ticket.status,
        site=site_name,
        created_at=iso(ticket.created_at),
        closed_at=iso(ticket.closed_at) if ticket.closed_at else None,
        customer=CustomerRef.model_validate(ticket.customer),
        context=context if context is not None else StoredContext.model_validate(ticket.context),
        agents=[AgentRef.model_validate(agent) for agent in ticket.agents],
        previous_ticket_id=ticket.previous_ticket_id,
    )


def transcript_message(record: MessageRecord) -> TranscriptMessage:
    return TranscriptMessage(
        id=record.id,
        ticket_id=record.ticket_id,
        from_=record.sender,
        author=record.author,
        author_id=record.author_id,
        text=record.text,
        at=iso(record.at),
        client_msg_id=record.client_msg_id,
    )


def timeline_entry(record: TimelineRecord) -> TimelineEntry:
    return TimelineEntry(id=record.id, at=iso(record.at), type=record.type, data=record.data)


def attachment_info(record: AttachmentRecord) -> AttachmentInfo:
    return AttachmentInfo(
        id=record.id,
        kind=record.kind,
        content_type=record.content_type,
        size=record.size,
        sha256=record.sha256,
        url=f"/api/tickets/{record.ticket_id}/attachments/{record.id}",
        created_at=iso(record.created_at),
        meta=record.meta,
    )
