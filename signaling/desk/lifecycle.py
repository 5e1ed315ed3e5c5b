"""The support desk: the lifecycle of a support session and its ticket.

request help -> ticket created (with the context) and queued -> an agent accepts (first wins) ->
chat both ways -> either side ends -> ticket closed with its transcript. Socket handlers and REST
routes call this; it talks to the durable store, the shared live state and the broadcaster, and
never to a socket directly, so any node can serve any step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from signaling import auth
from signaling.auth import file_links
from signaling.desk import access
from signaling.desk.offers import Availability, Router, RoutingRefusal, queue_of
from signaling.desk.queue_feed import QueueFeed, skills_needed
from signaling.desk.rooms import agent_room, customer_room
from signaling.desk.useragent import parse_user_agent
from signaling.live import Audience, EventLog, LiveState, MemoryEventLog, OpenTicketLimits
from signaling.protocol import (
    FIRST_MESSAGE_PREVIEW,
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
    PageVisit,
    PageVisited,
    QueueEntry,
    SessionAccepted,
    SessionEnded,
    SessionEvent,
    SessionJoined,
    SessionState,
    StoredContext,
    TicketSummary,
    TicketTimeline,
    TimelineEntry,
    TranscriptMessage,
)
from signaling.protocol.base import event_name
from signaling.protocol.jsontext import compact
from signaling.protocol.times import iso
from signaling.routing import QueueSpec
from signaling.store import (
    AgentRecord,
    AttachmentRecord,
    FileStore,
    MessageRecord,
    PageRecord,
    Sender,
    SiteRecord,
    TicketChanged,
    TicketOpening,
    TicketRecord,
    TicketStore,
    TimelineRecord,
    UploadQuota,
)

log = logging.getLogger("tandem.desk")

EndedBy = Literal["customer", "agent", "system"]
Recipients = Literal["session", "customer", "agents"]
"""Who gets a session event: everyone in it, only the customer, or only its agents."""

DEFAULT_TICKET_LIMITS = OpenTicketLimits(per_address=20, per_customer=3)

AGENT_FILE = "agent_file"
"""The attachment kind of a photo or video an agent sent the customer (``hubs.agent_files``)."""

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

    async def emit_each(self, emits: Sequence[tuple[Message, list[str]]]) -> None:
        """``emit`` of each event to its rooms, in order (on several nodes in one publish)."""
        ...

    async def enter_room(self, sid: str, room: str) -> bool:
        """Put a socket in a room; False if the socket has gone."""
        ...

    async def emit_here(self, event: Message, rooms: list[str]) -> None:
        """Send a server event to this node's sockets in any of the rooms (not through the
        bus): for what every node works out alike, so each tells its own sockets once."""
        ...

    def listening_here(self, room: str) -> bool:
        """Whether a socket of this node is in the room."""
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


def told_once(message: TranscriptMessage) -> str:
    """A chat message is numbered once per audience, whichever nodes tell it."""
    return f"chat.message:{message.id}"


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
        events: EventLog | None = None,
    ) -> None:
        self.ticket_limits = ticket_limits
        self.queue_feed = queue_feed or QueueFeed(
            broadcaster.emit, live, here=(broadcaster.emit_here, broadcaster.listening_here)
        )
        """Queue changes to agents and positions to customers (its ticks run once started)."""
        self.store = store
        self.live = live
        self.files = files
        self.broadcaster = broadcaster
        self.events: EventLog = events or MemoryEventLog()
        """Every session event, numbered, so clients resume exactly where they left off."""
        self._secret = secret
        self._customer_token_ttl = customer_token_ttl
        self.on_close: list[Callable[[str], Awaitable[None]]] = []
        """Called with the ticket id when a session ends (co-browse, media clean-up)."""
        self.router: Router | None = None
        """Agent status and offers (``desk.offers``); the app sets it."""
        self.on_agent_left: list[Callable[[TicketRecord, AgentCaller], Awaitable[None]]] = []
        """Called while an agent who handed a session over is still on it (the hubs end their
        media and their control grant)."""
        from signaling.desk.notes import Notes
        from signaling.desk.transfer import Transfers

        self.transfers = Transfers(self)
        self.notes = Notes(self)
        """Internal notes: agents only (``desk.notes``)."""
        self._contexts: OrderedDict[str, tuple[dict[str, Any], StoredContext]] = OrderedDict()
        """Per ticket, its stored context and the model read from it (``context_model``)."""
        self._suspects: set[tuple[str, str]] = set()
        """What the last patient ``reconcile_live_state`` found out of step and left alone:
        ("queue" | "members", ticket id)."""

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
                state = await self.session_state(
                    previous, "customer", token=self._token_for(previous)
                )
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
        # The routing clock: waiting time ages priority and is checked against the hours.
        now = self.router.clock() if self.router is not None else time.time()
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
        queue = queue_of(site, context, bool(customer["verified"]))
        # Written with the ticket, in one transaction: its ticket.created entry (told to its
        # agents, of whom a new ticket has none) and its first page, where the customer asked
        # for help.
        opening = TicketOpening(
            type="ticket.created",
            data={
                "url": packet.url,
                "title": packet.title,
                "previousTicketId": ticket.previous_ticket_id,
                "queue": queue.id,
                "priority": queue.priority,
            },
            url=packet.url,
            title=packet.title,
            app=packet.app,
            at=time.time(),
        )
        await self.store.create_ticket(ticket, opening)
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
        entry = self._queue_entry(ticket, site, queue)
        position = await self.live.enqueue(ticket.id, now, entry.wire())
        self.queue_feed.told_position(ticket.id, position)
        await self.queue_feed.added(entry)
        availability: Availability = "open"
        if self.router is not None:
            availability = await self.router.queued(ticket.id, site, queue, now)
        token = self._token_for(ticket)
        new_caller = CustomerCaller(
            site=site,
            customer_id=customer["id"],
            ticket_id=ticket.id,
            sid=caller.sid,
            address=caller.address,
        )
        # A ticket made just now has no messages yet: nothing to read back.
        state = await self.session_state(
            ticket, "customer", token=token, position=position, messages=[]
        )
        return state.model_copy(update={"availability": availability}), new_caller

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
        merged: list[StoredContext] = []

        def merge(stored: dict[str, Any]) -> dict[str, Any]:
            # Merged into the stored context inside the store's write, not into what this node
            # read: a patch sent at the same moment (another tab, another node) is kept.
            merged[:] = [StoredContext.model_validate({**stored, **changes})]
            return merged[0].wire()

        if await self.store.merge_context(ticket.id, merge) is None:
            raise DeskError("not_found", "no such ticket")
        await self.timeline(ticket, "context.updated", changes)
        await self.tell(ticket, ContextChanged(ticket_id=ticket.id, context=merged[0]), "agents")
        if PAGE_FIELDS & changes.keys():
            await self._visited(ticket, merged[0])
        return merged[0]

    async def _visited(self, ticket: TicketRecord, context: StoredContext) -> None:
        """The customer's page (or its app fields) changed: onto the ticket's page history,
        and to its agents; the same page again adds nothing."""
        page = await self.store.add_page(
            ticket.id, context.url, context.title, context.app, time.time()
        )
        if page is not None:
            await self.tell(
                ticket, PageVisited(ticket_id=ticket.id, page=page_visit(page)), "agents"
            )

    # ------------------------------------------------------------------ agent side

    async def queue(
        self, caller: AgentCaller | None = None, limit: int = 200, after: str | None = None
    ) -> tuple[list[QueueEntry], int]:
        """One page of the waiting sessions, oldest first, and how many wait in all; an agent
        who does not oversee sees only the queues they have the skills for."""
        if caller is None or caller.oversees:
            page, waiting = await self.live.queue_page(limit, after)
            return [QueueEntry.model_validate(entry) for entry in page], waiting
        entries = await self.live.queue()
        needed = await skills_needed(self.live, [entry["ticketId"] for entry in entries])
        skills = frozenset(caller.agent.skills)
        mine = [entry for entry in entries if needed[entry["ticketId"]] <= skills]
        start = 0
        if after is not None:
            ids = [entry["ticketId"] for entry in mine]
            start = ids.index(after) + 1 if after in ids else len(ids)
        page = mine[start : start + limit]
        return [QueueEntry.model_validate(entry) for entry in page], len(mine)

    async def accept(self, caller: AgentCaller, ticket_id: str) -> SessionState:
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        if ticket.status == "active":
            async with self.transfers.settling(ticket_id):
                pending = await self.transfers.pending(ticket_id)
                if pending is not None and self.transfers.offered_to(pending, caller.agent.id):
                    return await self.transfers.take_over(caller, ticket)
        if self.router is not None and ticket.status == "queued":
            with _refusals():
                await self.router.check_capacity(caller.agent.id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        # The claim and its timeline entry are one write.
        entry = await self.store.claim_ticket_noted(
            ticket_id, caller.ref, "session.accepted", {"agent": agent.wire()}, time.time()
        )
        if entry is None:
            raise DeskError("already_taken", "another agent accepted this session first")
        # Joined before leaving the queue: routing that sees the session gone (and ends its
        # offer) must already count it among the agent's sessions, or it offers them one more.
        await self.live.join(ticket_id, caller.agent.id)
        await self.live.dequeue(ticket_id)
        if self.router is not None:
            await self.router.accepted(ticket_id, caller.agent.id)
        ticket = await self._must_ticket(ticket_id)
        await self.tell(
            ticket, TicketTimeline(ticket_id=ticket.id, entry=timeline_entry(entry)), "agents"
        )
        await self.queue_feed.removed(ticket_id, "accepted", agent)
        await self.tell(ticket, SessionAccepted(ticket_id=ticket_id, agent=agent))
        await self.transfers.taken(ticket, caller)
        return await self.session_state(await self._must_ticket(ticket_id), "agents")

    async def join(self, caller: AgentCaller, ticket_id: str) -> SessionState:
        if not caller.oversees:
            raise DeskError("forbidden", "only supervisors and admins join sessions")
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if ticket.status != "active":
            raise DeskError("invalid_state", f"the session is {ticket.status}")
        ticket = await self.add_agent(ticket_id, caller)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.timeline(ticket, "session.joined", {"agent": agent.wire()})
        await self.tell(ticket, SessionJoined(ticket_id=ticket_id, agent=agent))
        return await self.session_state(ticket, "agents")

    async def add_agent(self, ticket_id: str, caller: AgentCaller) -> TicketRecord:
        """The agent joins an active session (a supervisor's join, a warm transfer taken): the
        ticket as it is then. The store adds nobody to a session that ended meanwhile, which is
        refused here rather than shown as joined."""
        await self.store.add_ticket_agent(ticket_id, caller.ref)
        ticket = await self._must_ticket(ticket_id)
        if not any(a.get("id") == caller.agent.id for a in ticket.agents):
            raise DeskError("invalid_state", "the session has ended")
        await self.live.join(ticket_id, caller.agent.id)
        return ticket

    async def set_status(self, caller: AgentCaller, status: str, reason: str | None) -> None:
        """The agent picks available, away (with a reason) or offline, for all their tabs."""
        if self.router is None:
            raise DeskError("invalid_state", "agent status is not kept by this server")
        with _refusals():
            await self.router.choose(caller.agent.id, status, reason)

    async def decline(self, caller: AgentCaller, ticket_id: str) -> None:
        ticket = await self.store.ticket(ticket_id)
        if ticket is not None and ticket.status == "active":
            async with self.transfers.settling(ticket_id):
                pending = await self.transfers.pending(ticket_id)
                if pending is not None and self.transfers.offered_to(pending, caller.agent.id):
                    await self.transfers.declined(caller, ticket)
                    return
        if self.router is None:
            raise DeskError("not_found", "no offer of that session rings for you")
        with _refusals():
            await self.router.decline(caller.agent.id, ticket_id)

    async def agent_connected(self, caller: AgentCaller, sid: str) -> None:
        if self.router is None:
            await self.live.agent_online(caller.agent.id, sid)
        else:
            await self.router.connected(caller.agent.id, sid)

    async def agent_arrived(self, caller: AgentCaller, sid: str) -> None:
        """Once the agent's socket is connected: their status to it, and routing."""
        if self.router is not None:
            await self.router.arrived(caller.agent.id, sid)

    async def agent_disconnected(self, caller: AgentCaller, sid: str) -> None:
        if self.router is None:
            await self.live.agent_offline(caller.agent.id, sid)
        else:
            await self.router.disconnected(caller.agent.id, sid)

    async def sessions(self, caller: AgentCaller) -> list[TicketSummary]:
        """The agent's open sessions (what a reconnecting console restores)."""
        summaries = []
        for ticket_id in sorted(await self.live.sessions_of(caller.agent.id)):
            ticket = await self.store.ticket(ticket_id)
            if ticket is not None and ticket.status == "active":
                summaries.append(await self.summary(ticket))
        return summaries

    # ------------------------------------------------------------------ both sides

    async def resume(
        self, caller: Caller, ticket_id: str | None, after_id: int, after_seq: int | None = None
    ) -> SessionState:
        """What the caller missed: the session events after ``after_seq`` replayed from the
        event log, or (without one, or when the log no longer reaches back) a snapshot from the
        store with the transcript after ``after_id``."""
        ticket = await self.ticket_for(caller, ticket_id, read_only=True)
        customer = isinstance(caller, CustomerCaller)
        audience: Audience = "customer" if customer else "agents"
        token = self._token_for(ticket) if customer else None
        if after_seq is not None:
            try:
                missed = await self.events.since(ticket.id, audience, after_seq)
            except Exception as exc:
                log.warning(
                    "event log unreadable for %s (%r): resumed from the store", ticket.id, exc
                )
                missed = None
            if missed is not None:
                position = (
                    await self.live.position(ticket.id) if ticket.status == "queued" else None
                )
                return SessionState(
                    ticket=await self.summary(ticket),
                    messages=[],
                    position=position,
                    token=token,
                    seq=missed[-1].seq if missed else after_seq,
                    events=[event.wire() for event in missed],
                )
        return await self.session_state(ticket, audience, after_id=after_id, token=token)

    async def chat(
        self, caller: Caller, ticket_id: str | None, client_msg_id: str, text: str
    ) -> tuple[TranscriptMessage, bool]:
        try:
            # The ticket as this node kept it (no read per message), written to only if unchanged.
            return await self._chat(caller, ticket_id, client_msg_id, text, kept=True)
        except (TicketChanged, DeskError):
            # Another node may have changed it (an accept, a join, a transfer, a close):
            # decided again on the ticket as stored now.
            return await self._chat(caller, ticket_id, client_msg_id, text, kept=False)

    async def _chat(
        self, caller: Caller, ticket_id: str | None, client_msg_id: str, text: str, kept: bool
    ) -> tuple[TranscriptMessage, bool]:
        ticket = await self.ticket_for(caller, ticket_id, kept=kept)
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        if isinstance(caller, CustomerCaller):
            sender: Sender = "customer"
            author_id = str(ticket.customer["id"])
            author = str(ticket.customer.get("name") or "Customer")
        else:
            sender, author_id, author = "agent", caller.agent.id, caller.agent.name
        record, new = await self.store.add_message(
            ticket.id,
            sender,
            author_id,
            author,
            text,
            client_msg_id,
            time.time(),
            as_read=ticket if kept else None,
        )
        if not new and kept:
            ticket = await self._must_ticket(ticket.id)  # a resend is not checked against it
        message = transcript_message(record)
        if new and sender == "customer" and ticket.status == "queued":
            await self._first_message_waiting(ticket.id, text)
        if new:
            await self.tell(ticket, ChatMessage(message=message), once=told_once(message))
        else:
            await self._tell_if_untold(ticket, message)
        return message, new

    async def _first_message_waiting(self, ticket_id: str, text: str) -> None:
        """The customer wrote while waiting: their first message goes onto the queue entry
        (a preview), and to the agents who see the queue."""
        preview = first_message_preview(text)

        def with_preview(entry: dict[str, Any]) -> dict[str, Any] | None:
            return None if entry.get("firstMessage") else {**entry, "firstMessage": preview}

        entry = await self.live.patch_queue_entry(ticket_id, with_preview)
        if entry is not None:
            await self.queue_feed.updated(QueueEntry.model_validate(entry))

    async def first_message(self, ticket_id: str) -> str | None:
        """The preview of the customer's first message on a ticket, if they wrote one."""
        for record in await self.store.messages(ticket_id):
            if record.sender == "customer":
                return first_message_preview(record.text)
        return None

    async def _tell_if_untold(self, ticket: TicketRecord, message: TranscriptMessage) -> None:
        """A resend of a stored message: the node that stored it may have died before telling
        it (its sender never got the ack, hence the resend). Each audience whose event log
        lacks it is told now; one whose log cannot say is not (a resume gives it a snapshot)."""
        audiences: list[Audience] = ["customer"]
        if self.agent_rooms(ticket):
            audiences.append("agents")
        for audience in audiences:
            try:
                # Not ``since(current - keep)``: a line need not start at 0 (eventlog.py).
                logged = await self.events.recent(ticket.id, audience)
            except Exception as exc:
                log.warning("event log unreadable for %s: %r", ticket.id, exc)
                continue
            if logged is None:
                continue
            ids = {e.payload["message"]["id"] for e in logged if e.name == "chat.message"}
            # The agents' numbers start when one accepts, whose state holds the messages
            # stored before: one is missing from their log only if an earlier one is in it.
            told_earlier = audience == "customer" or any(i < message.id for i in ids)
            if message.id not in ids and told_earlier:
                await self.tell(
                    ticket, ChatMessage(message=message), to=audience, once=told_once(message)
                )

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
        members = await self.live.members(ticket.id)
        if self.router is not None:
            await self.router.closed(ticket.id)
            await self.router.loads.forget(ticket.id, members)
        await self.transfers.forget(ticket.id)
        await self.live.drop_session(ticket.id)
        await self.timeline(ticket, "session.ended", data)
        if was_queued or ticket.status == "queued":
            await self.queue_feed.removed(ticket.id, "ended")
        if self.router is not None:
            await self.router.after_close(ticket.id, members)
        await self.tell(ticket, SessionEnded(ticket_id=ticket.id, by=by, at=iso(now)))
        try:
            await self.events.end(ticket.id)
        except Exception as exc:  # its lines expire on their own anyway
            log.warning("event log of %s not shortened: %r", ticket.id, exc)

    # ------------------------------------------------------------------ attachments

    async def file_attachment(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        data: bytes,
        meta: dict[str, Any],
        epoch: int | None = None,
    ) -> AttachmentInfo:
        """Store bytes content-addressed, record them on the ticket, tell everyone in it.
        ``epoch``: the home node's lease epoch, for its writes (``StaleEpoch`` if moved on)."""
        sha256, size = await self.files.put_bytes(data)
        return await self._attach(ticket_id, kind, content_type, sha256, size, meta, epoch=epoch)

    async def file_attachment_path(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        path: Path,
        meta: dict[str, Any],
        quota: UploadQuota | None = None,
        epoch: int | None = None,
    ) -> AttachmentInfo:
        """Like ``file_attachment`` for a finished file (moved into the store); with a quota,
        refused (``rate_limited``) if filing it would break the quota."""
        sha256, size = await self.files.put_file(path)
        return await self._attach(ticket_id, kind, content_type, sha256, size, meta, quota, epoch)

    async def file_stored_attachment(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        stored: tuple[str, int],
        meta: dict[str, Any],
        epoch: int | None = None,
    ) -> AttachmentInfo:
        """Like ``file_attachment_path`` for bytes already moved into the file store
        (``stored``: their digest and size), so a write the store refused (``StaleEpoch``) can
        be tried again under a later epoch without the file."""
        sha256, size = stored
        return await self._attach(ticket_id, kind, content_type, sha256, size, meta, None, epoch)

    async def _attach(
        self,
        ticket_id: str,
        kind: str,
        content_type: str,
        sha256: str,
        size: int,
        meta: dict[str, Any],
        quota: UploadQuota | None = None,
        epoch: int | None = None,
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
        if not await self.store.add_attachment(record, quota, epoch):
            # Checked again where it is filed: another upload (on any node) took the place.
            raise DeskError("rate_limited", "this ticket's upload quota is used up")
        info = attachment_info(record)
        await self.timeline(
            ticket,
            "attachment.added",
            {"attachmentId": record.id, "kind": kind, "contentType": content_type, "size": size},
            epoch,
        )
        await self.tell(ticket, AttachmentAdded(ticket_id=ticket_id, attachment=info))
        return info

    # ------------------------------------------------------------------ views

    async def session_state(
        self,
        ticket: TicketRecord,
        audience: Audience,
        after_id: int = 0,
        token: str | None = None,
        position: int | None = None,
        messages: list[TranscriptMessage] | None = None,
    ) -> SessionState:
        # The number first, then the state: an event numbered later may show in the state as
        # well (clients drop a message they hold by its id), but none can fall between the two.
        seq = await self._current_seq(ticket.id, audience)
        if ticket.status == "queued" and position is None:
            position = await self.live.position(ticket.id)
        if messages is None:
            records = await self.store.messages(ticket.id, after_id)
            messages = [transcript_message(m) for m in records]
        return SessionState(
            ticket=await self.summary(ticket),
            messages=messages,
            position=position,
            token=token,
            seq=seq,
            # Internal notes are for agents: a customer's state never holds them.
            notes=await self.notes.of(ticket.id) if audience == "agents" else None,
            files=await self._sent_files(ticket) if audience == "customer" else None,
        )

    async def _sent_files(self, ticket: TicketRecord) -> list[AttachmentInfo] | None:
        """The files agents sent the customer, each with the customer's signed link."""
        if ticket.status == "queued" and not ticket.agents:
            return None  # nobody has been able to send one yet
        sent = [a for a in await self.store.attachments(ticket.id) if a.kind == AGENT_FILE]
        return [
            attachment_info(a).model_copy(
                update={"url": file_links.file_link(self._secret, ticket.id, a.id)}
            )
            for a in sent
        ] or None

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

    async def tell(
        self,
        ticket: TicketRecord,
        event: SessionEvent,
        to: Recipients = "session",
        once: str | None = None,
    ) -> None:
        """Send a session event, numbered through the event log, to the ticket's customer, its
        agents, or both (each audience has its own numbers: the customer does not see all). The
        one way session events leave the desk and the hubs; ephemeral ones (typing, pointer,
        co-browse frames, media negotiation) go straight to the broadcaster."""
        agents = self.agent_rooms(ticket)
        # With no agent in the session yet there is nobody to number for: the one who accepts
        # gets the state, and the numbers from there.
        to_agents = to != "customer" and bool(agents)
        if to == "agents" and not to_agents:
            return
        # Made once, for the log and both audiences: the log keeps the text that is sent.
        wire = event.wire()
        text = compact(wire)
        told: list[tuple[Audience, list[str]]] = []
        if to != "agents":
            told.append(("customer", [customer_room(ticket.id)]))
        if to_agents:
            told.append(("agents", agents))
        name = event_name(type(event))
        seqs: list[int | None]
        try:
            # Both lines numbered in one call (one Redis round trip on several nodes).
            seqs = list(
                await self.events.append_lines(
                    ticket.id, [audience for audience, _ in told], name, wire, text, once
                )
            )
        except Exception as exc:
            # The log is out of reach (Redis down): the event still goes out, unnumbered, so the
            # session goes on live. The log skips the number it would have had, so a client
            # that resumes across it gets a snapshot (with the event) rather than a replay.
            log.warning("session event %s of %s sent unnumbered: %r", name, ticket.id, exc)
            seqs = [None] * len(told)
        # Not sent where numbered and sent already (``once``: by a node that told it first).
        await self.broadcaster.emit_each(
            [
                (event.numbered(seq, wire, text), rooms)
                for (_audience, rooms), seq in zip(told, seqs, strict=True)
                if seq != 0
            ]
        )

    async def _current_seq(self, ticket_id: str, audience: Audience) -> int | None:
        try:
            return await self.events.current(ticket_id, audience)
        except Exception as exc:
            # A state without a number: clients keep theirs, and find a hole in the numbers
            # (resuming from the store) once the log is back.
            log.warning("event log unreadable for %s: %r", ticket_id, exc)
            return None

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
                entry = self._queue_entry(ticket, site, first=await self.first_message(ticket.id))
                await self.live.enqueue(ticket.id, ticket.created_at, entry.wire())
        for ticket in await self.store.tickets(status="active", limit=100_000):
            for agent in ticket.agents:
                await self.live.join(ticket.id, agent["id"])

    async def reconcile_live_state(self, patient: bool = False) -> int:
        """Make the shared live state match the store again (after Redis lost it, or a node
        died between a store write and its live change); how many entries were repaired.

        Queued tickets missing from the live queue are added, and entries of tickets no
        longer queued removed. A ticket is read again after it was added: an accept or a close
        that raced the listing has committed before its own dequeue, so the second read sees
        it and the entry goes again. Sessions with no members get theirs back.

        ``patient`` (the periodic repair): a ticket missing from the queue, or a session
        without members, is repaired only if the previous patient run found it so too. Under
        load the store and the live state are out of step for a while in every accept, close
        and request; repairing those at once put accepted sessions back in the queue (to be
        offered again: accepts answered already_taken) and agents back into sessions that were
        ending (counted against their capacity for good; the push bench on Redis, 100 agents:
        77 and 363 "repairs" a run)."""
        repaired = 0
        suspects, seen = set(), self._suspects if patient else None

        def settled(kind: str, ticket_id: str) -> bool:
            if seen is None:
                return True
            suspects.add((kind, ticket_id))
            return (kind, ticket_id) in seen

        queued = await self.store.tickets(status="queued", limit=100_000)
        listed = {ticket.id for ticket in queued}
        waiting = set(await self.live.queued_ids())
        for ticket in reversed(queued):
            if ticket.id in waiting or not settled("queue", ticket.id):
                continue
            site = await self.store.site(ticket.site_id)
            if site is None:
                continue
            entry = self._queue_entry(ticket, site, first=await self.first_message(ticket.id))
            await self.live.enqueue(ticket.id, ticket.created_at, entry.wire())
            now = await self.store.ticket(ticket.id)
            if now is None or now.status != "queued":
                await self.live.dequeue(ticket.id)
            else:
                repaired += 1
        for ticket_id in waiting - listed:
            now = await self.store.ticket(ticket_id)
            if now is None or now.status != "queued":
                repaired += await self.live.dequeue(ticket_id)
        for ticket in await self.store.tickets(status="active", limit=100_000):
            if (
                ticket.agents
                and not await self.live.members(ticket.id)
                and settled("members", ticket.id)
            ):
                for agent in ticket.agents:
                    await self.live.join(ticket.id, agent["id"])
                now = await self.store.ticket(ticket.id)
                if now is None or now.status == "closed":
                    await self.live.drop_session(ticket.id)
                else:
                    repaired += 1
        if patient:
            self._suspects = suspects
        return repaired

    # ------------------------------------------------------------------ internals

    async def ticket_for(
        self, caller: Caller, ticket_id: str | None, *, read_only: bool = False, kept: bool = False
    ) -> TicketRecord:
        """The ticket a caller may act on, or the reason they may not; ``kept``: as this node
        kept it (``TicketStore.ticket_hint``)."""
        read = self.store.ticket_hint if kept else self.store.ticket
        if isinstance(caller, CustomerCaller):
            if caller.ticket_id is None:
                raise DeskError("unauthorized", "ask for help first (help.request)")
            if ticket_id is not None and ticket_id != caller.ticket_id:
                raise DeskError("forbidden", "not your session")
            ticket = await read(caller.ticket_id)
            if ticket is None or ticket.site_id != caller.site.id:
                raise DeskError("not_found", "no such session")
            return ticket
        if ticket_id is None:
            raise DeskError("malformed", "ticketId is required")
        ticket = await read(ticket_id)
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

    async def timeline(
        self, ticket: TicketRecord, type: str, data: dict[str, Any], epoch: int | None = None
    ) -> None:
        """Append to the ticket's timeline and show it to its agents; with ``epoch`` (a home
        node's write) only while that is the ticket's owner epoch (else ``StaleEpoch``)."""
        record = await self.store.add_timeline(ticket.id, type, data, time.time(), epoch)
        await self.tell(
            ticket, TicketTimeline(ticket_id=ticket.id, entry=timeline_entry(record)), "agents"
        )

    def _queue_entry(
        self,
        ticket: TicketRecord,
        site: SiteRecord,
        queue: QueueSpec | None = None,
        first: str | None = None,
    ) -> QueueEntry:
        """``first``: the preview of the customer's first message, if they wrote one."""
        if queue is None:
            queue = queue_of(site, ticket.context, bool(ticket.customer.get("verified")))
        return QueueEntry(
            queue=queue.id,
            priority=queue.priority,
            ticket_id=ticket.id,
            site=site.name,
            customer=CustomerRef.model_validate(ticket.customer),
            context=self.context_model(ticket),
            created_at=iso(ticket.created_at),
            previous_ticket_id=ticket.previous_ticket_id,
            first_message=first,
        )


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A routing refusal as the desk's own."""
    try:
        yield
    except RoutingRefusal as exc:
        raise DeskError(cast(ErrorCode, exc.code), exc.message) from None


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


PAGE_FIELDS = frozenset({"url", "title", "app"})
"""Context fields whose change is a new page of the ticket's history."""


def first_message_preview(text: str) -> str:
    """The start of a chat message as a queue entry shows it: whitespace collapsed, at most
    ``FIRST_MESSAGE_PREVIEW`` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    if len(flat) <= FIRST_MESSAGE_PREVIEW:
        return flat
    return flat[: FIRST_MESSAGE_PREVIEW - 1].rstrip() + "…"


def page_visit(record: PageRecord) -> PageVisit:
    return PageVisit(
        id=record.id,
        at=iso(record.at),
        url=record.url,
        title=record.title,
        app=record.app,
        request=record.request,
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
