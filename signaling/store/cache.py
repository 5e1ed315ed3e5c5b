"""What live sessions read on every message, served from memory: tickets, sites, agents.

The desk reads a session's ticket on every chat message, typing notice and context change, and
the socket edge reads the site and agent on every connection. ``CachedTicketStore`` wraps the
SQL store and answers those reads from memory, so the chat hot path costs one write and no read.

On ONE node every write that changes a ticket goes through this object, which drops the
ticket's entry when the write is done (the next read loads it again). A read that was already on
its way to the database when such a write finished does not put what it read into the cache
(``_Lru.load``), so a change is visible through ``ticket()`` as soon as its write returns.
With several nodes (``cache_tickets=False``) ``ticket()`` is not served from memory: another
node's accept or close would leave an entry here stale (a chat message sent to the rooms of a
ticket without its agent), and an invalidation over the lossy bus could arrive after the next
read. Every ``ticket()`` goes to the database. What it read is kept all the same, as a hint
(``ticket_hint``) for the one write that checks it: a chat message is written only while the
ticket's status and its agents (all a message is decided on: who may write, whether the session
is open, which rooms hear it; the customer and site never change) are still the hint's, checked
by the insert itself (``add_message``'s ``as_read``); else nothing is written, the hint is
dropped (``TicketChanged``) and the desk decides again on the ticket read anew. So a chat
message costs one statement and no read, and is never decided on a ticket older than the one a
read just before its insert would have given (the race that read had is unchanged). The check
is on the rows themselves, so it holds whatever build of a node made the change.

Sites and agents are also changed by the ``tandem site|agent`` commands, which run in another
process and so cannot invalidate this cache: their entries live ``RECORD_TTL`` seconds. (An
agent removed or given a new password that way also has every sign-in session ended, which
``agent_sessions`` checks uncached, so a stale agent entry cannot let a token in.) Absent
records are never cached: a site or agent added meanwhile is found at once.

Two writes on the pairing path leave the ticket cached rather than read again at once: a new
ticket is cached as it was written (nobody else knows its id before ``create_ticket`` returns),
and a claim that succeeds replaces the cached ticket by the same ticket made active with its
agent, when the claim was the ticket's only write from start to end (``_changing_ticket``);
otherwise the entry is dropped as by every other write. The stored form is what was written:
the desk writes JSON-ready dicts, and ``claim_ticket``'s agent row is ``{id, name}`` at the
end of the ticket's agents. The accept's state also reads the transcript: of a ticket created
here that no message was written to since (messages are written only through ``add_message``),
it is known to be empty without a read; so are its internal notes (``add_note``).

The records are shared, not copied: they are frozen dataclasses, and their dict fields (a
ticket's customer and context, a site's settings) must not be mutated by readers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

from signaling.store.base import (
    MAX_PAGES,
    AgentRecord,
    AttachmentRecord,
    AuthSessionRecord,
    CannedRecord,
    MessageRecord,
    NoteRecord,
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

MAX_TICKETS = 10_000
MAX_RECORDS = 10_000
RECORD_TTL = 10.0
"""Seconds a site or agent entry is trusted (other processes may change them)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


class _Lru(Generic[K, V]):
    """A bounded map filled by reads and emptied by writes, safe against a read that overlaps a
    write: ``load`` caches what it read only if no ``drop`` of that key happened meanwhile.

    With ``evict_first``, entries it accepts are evicted before all others (closed tickets)."""

    def __init__(
        self,
        limit: int,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        evict_first: Callable[[V], bool] | None = None,
    ) -> None:
        self._limit = limit
        self._ttl = ttl
        self._clock = clock
        self._evict_first = evict_first
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._spare: OrderedDict[K, tuple[V, float]] = OrderedDict()
        """Entries ``evict_first`` accepts, evicted before ``_entries``."""
        self._loading: dict[K, int] = {}
        """Reads of a key on their way to the database, and how many."""
        self._dropped: dict[K, int] = {}
        """For keys being loaded: the drop count when the key was last dropped."""
        self._drops = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries) + len(self._spare)

    def get(self, key: K) -> V | None:
        for entries in (self._entries, self._spare):
            found = entries.get(key)
            if found is None:
                continue
            value, expires = found
            if self._ttl is not None and self._clock() >= expires:
                del entries[key]
                return None
            entries.move_to_end(key)
            return value
        return None

    async def load(self, key: K, read: Callable[[], Awaitable[V | None]]) -> V | None:
        value = self.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        started = self._drops
        self._loading[key] = self._loading.get(key, 0) + 1
        try:
            value = await read()
        finally:
            dropped_at = self._dropped.get(key, -1)
            left = self._loading[key] - 1
            if left:
                self._loading[key] = left
            else:
                del self._loading[key]
                self._dropped.pop(key, None)
        if value is not None and dropped_at <= started:
            self.put(key, value)
        return value

    async def reload(self, key: K, read: Callable[[], Awaitable[V | None]]) -> V | None:
        """``load`` that reads even when the key is cached (and keeps what it read)."""
        self._entries.pop(key, None)
        self._spare.pop(key, None)
        return await self.load(key, read)

    def put(self, key: K, value: V) -> None:
        self._entries.pop(key, None)
        self._spare.pop(key, None)
        expires = self._clock() + self._ttl if self._ttl is not None else 0.0
        spare = self._evict_first is not None and self._evict_first(value)
        (self._spare if spare else self._entries)[key] = (value, expires)
        while len(self) > self._limit:
            (self._spare or self._entries).popitem(last=False)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)
        self._spare.pop(key, None)
        self._drops += 1
        if key in self._loading:
            self._dropped[key] = self._drops

    def clear(self) -> None:
        for key in [*self._entries, *self._spare]:
            self.drop(key)


def _dropped(ticket: TicketRecord, result: object) -> None:
    """After a ticket write that has no cheaper outcome: the entry is dropped."""
    return None


class CachedTicketStore:
    """``TicketStore`` with tickets, sites and agents served from memory; see the module."""

    def __init__(
        self,
        inner: TicketStore,
        *,
        max_tickets: int = MAX_TICKETS,
        max_records: int = MAX_RECORDS,
        record_ttl: float = RECORD_TTL,
        clock: Callable[[], float] = time.monotonic,
        cache_tickets: bool = True,
    ) -> None:
        self.inner = inner
        self.cache_tickets = cache_tickets
        """False when other nodes change tickets too (see the module)."""
        self.tickets_cache: _Lru[str, TicketRecord] = _Lru(
            max_tickets, evict_first=lambda ticket: ticket.status == "closed"
        )
        self.sites_cache: _Lru[str, SiteRecord] = _Lru(max_records, ttl=record_ttl, clock=clock)
        self.site_keys_cache: _Lru[str, SiteRecord] = _Lru(max_records, ttl=record_ttl, clock=clock)
        self.agents_cache: _Lru[str, AgentRecord] = _Lru(max_records, ttl=record_ttl, clock=clock)
        self._ticket_writes: dict[str, list[int]] = {}
        """Per ticket with writes on their way: ``[in flight, started so far]``."""
        self._silent: OrderedDict[str, None] = OrderedDict()
        """Tickets created here that no message has been written to since (the newest
        ``max_tickets``): their transcript is read as empty without asking the database (an
        accept's state reads it)."""
        self._unnoted: OrderedDict[str, None] = OrderedDict()
        """Likewise for internal notes (written only through ``add_note``): an accept's state
        reads them too."""
        self._max_silent = max_tickets

    async def close(self) -> None:
        await self.inner.close()

    async def _changing(self, change: Awaitable[R], drop: Callable[[], None]) -> R:
        """Run a write that changes cached records; drop their entries once it is done.

        The write runs as a task of its own and the entries are dropped when it ends, even if
        this caller is cancelled meanwhile: the write may still commit, and an entry read
        before that must not outlive it."""
        task = asyncio.ensure_future(change)
        task.add_done_callback(lambda _task: drop())
        return await asyncio.shield(task)

    # ------------------------------------------------------------------ sites and agents

    async def add_site(self, site: SiteRecord) -> None:
        def drop() -> None:
            self.sites_cache.drop(site.id)
            self.site_keys_cache.drop(site.public_key)

        await self._changing(self.inner.add_site(site), drop)

    async def site_by_key(self, public_key: str) -> SiteRecord | None:
        return await self.site_keys_cache.load(
            public_key, lambda: self.inner.site_by_key(public_key)
        )

    async def site(self, site_id: str) -> SiteRecord | None:
        return await self.sites_cache.load(site_id, lambda: self.inner.site(site_id))

    async def sites(self) -> list[SiteRecord]:
        return await self.inner.sites()

    async def set_site_settings(self, site_id: str, settings: dict[str, Any]) -> None:
        site = await self.inner.site(site_id)

        def drop() -> None:
            self.sites_cache.drop(site_id)
            if site is not None:
                self.site_keys_cache.drop(site.public_key)

        await self._changing(self.inner.set_site_settings(site_id, settings), drop)

    async def add_agent(self, agent: AgentRecord) -> None:
        await self._changing(self.inner.add_agent(agent), lambda: self.agents_cache.drop(agent.id))

    async def agent_by_email(self, email: str) -> AgentRecord | None:
        # Sign-in reads the password hash here: always from the database.
        return await self.inner.agent_by_email(email)

    async def agent(self, agent_id: str) -> AgentRecord | None:
        return await self.agents_cache.load(agent_id, lambda: self.inner.agent(agent_id))

    async def set_password(self, agent_id: str, password_hash: str, at: float) -> bool:
        return await self._changing(
            self.inner.set_password(agent_id, password_hash, at),
            lambda: self.agents_cache.drop(agent_id),
        )

    async def remove_agent(self, agent_id: str, at: float) -> bool:
        return await self._changing(
            self.inner.remove_agent(agent_id, at), lambda: self.agents_cache.drop(agent_id)
        )

    # ------------------------------------------------------------------ sign-in sessions
    # Not cached: a session is read once per connection or request, and ending one (logout,
    # ``tandem agent password`` in another process) must take effect at once.

    async def add_auth_session(self, session: AuthSessionRecord) -> None:
        await self.inner.add_auth_session(session)

    async def auth_session(self, session_id: str) -> AuthSessionRecord | None:
        return await self.inner.auth_session(session_id)

    async def revoke_auth_session(self, session_id: str, at: float) -> bool:
        return await self.inner.revoke_auth_session(session_id, at)

    # ------------------------------------------------------------------ tickets

    async def _changing_ticket(
        self,
        ticket_id: str,
        change: Awaitable[R],
        after: Callable[[TicketRecord, R], TicketRecord | None],
    ) -> R:
        """Like ``_changing`` for one ticket's write, except that when the write succeeded, was
        the ticket's only write from its start to its end, and the ticket was cached at its
        start, the entry becomes ``after(cached, result)`` (None: dropped) instead of dropped,
        so the next read need not go to the database."""
        writes = self._ticket_writes.get(ticket_id)
        alone = writes is None
        if writes is None:
            writes = self._ticket_writes[ticket_id] = [0, 0]
        writes[0] += 1
        writes[1] += 1
        started = writes[1]
        before = self.tickets_cache.get(ticket_id) if alone and self.cache_tickets else None

        def done(task: asyncio.Future[R]) -> None:
            writes[0] -= 1
            fresh = None
            if (
                before is not None
                and writes[1] == started
                and not task.cancelled()
                and task.exception() is None
            ):
                fresh = after(before, task.result())
            if writes[0] == 0:
                self._ticket_writes.pop(ticket_id, None)
            self.tickets_cache.drop(ticket_id)
            if fresh is not None:
                self.tickets_cache.put(ticket_id, fresh)

        task = asyncio.ensure_future(change)
        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def create_ticket(
        self, ticket: TicketRecord, opening: TicketOpening | None = None
    ) -> TimelineRecord | None:
        # A new id: no other write or read of it can overlap this one (nobody knows the id
        # before it returns), so it needs none of ``_changing_ticket``'s bookkeeping, and the
        # ticket is cached as written (one created with agents is left to be read, for their
        # stored form). Cancelled on its way, nothing is cached and a read asks the database.
        entry = await self.inner.create_ticket(ticket, opening)
        if not ticket.agents:
            # With several nodes only a hint (``ticket_hint``).
            self.tickets_cache.put(ticket.id, ticket)
        if self.cache_tickets:
            # A new ticket has no messages; one written from now on goes through add_message.
            for fresh in (self._silent, self._unnoted):
                fresh[ticket.id] = None
                while len(fresh) > self._max_silent:
                    fresh.popitem(last=False)
        return entry

    async def ticket(self, ticket_id: str) -> TicketRecord | None:
        if not self.cache_tickets:
            # Read through, and kept for ``ticket_hint``.
            return await self.tickets_cache.reload(ticket_id, lambda: self.inner.ticket(ticket_id))
        return await self.tickets_cache.load(ticket_id, lambda: self.inner.ticket(ticket_id))

    async def ticket_hint(self, ticket_id: str) -> TicketRecord | None:
        """The ticket as this node last read or wrote it, maybe changed since on another node
        (with several nodes): fit only for a write made ``as_read`` (``add_message``), which
        the store refuses if its status or agents changed. On one node the same as
        ``ticket``."""
        return await self.tickets_cache.load(ticket_id, lambda: self.inner.ticket(ticket_id))

    async def tickets(
        self,
        *,
        status: str | None = None,
        text: str | None = None,
        limit: int = 100,
        member_id: str | None = None,
    ) -> list[TicketRecord]:
        return await self.inner.tickets(status=status, text=text, limit=limit, member_id=member_id)

    async def claim_ticket(self, ticket_id: str, agent: dict[str, str]) -> bool:
        def claimed(ticket: TicketRecord, won: bool) -> TicketRecord | None:
            if not won or ticket.status != "queued":
                return None
            joined = {"id": agent["id"], "name": agent["name"]}
            return dataclasses.replace(ticket, status="active", agents=(*ticket.agents, joined))

        return await self._changing_ticket(
            ticket_id, self.inner.claim_ticket(ticket_id, agent), claimed
        )

    async def claim_ticket_noted(
        self, ticket_id: str, agent: dict[str, str], type: str, data: dict[str, Any], at: float
    ) -> TimelineRecord | None:
        def claimed(ticket: TicketRecord, entry: TimelineRecord | None) -> TicketRecord | None:
            if entry is None or ticket.status != "queued":
                return None
            joined = {"id": agent["id"], "name": agent["name"]}
            return dataclasses.replace(ticket, status="active", agents=(*ticket.agents, joined))

        return await self._changing_ticket(
            ticket_id, self.inner.claim_ticket_noted(ticket_id, agent, type, data, at), claimed
        )

    async def add_ticket_agent(self, ticket_id: str, agent: dict[str, str]) -> None:
        await self._changing_ticket(
            ticket_id, self.inner.add_ticket_agent(ticket_id, agent), _dropped
        )

    async def requeue_ticket(self, ticket_id: str) -> bool:
        return await self._changing_ticket(
            ticket_id, self.inner.requeue_ticket(ticket_id), _dropped
        )

    async def remove_ticket_agent(self, ticket_id: str, agent_id: str) -> bool:
        return await self._changing_ticket(
            ticket_id, self.inner.remove_ticket_agent(ticket_id, agent_id), _dropped
        )

    async def close_ticket(self, ticket_id: str, at: float) -> bool:
        return await self._changing_ticket(
            ticket_id, self.inner.close_ticket(ticket_id, at), _dropped
        )

    async def set_context(self, ticket_id: str, context: dict[str, Any]) -> None:
        await self._changing_ticket(ticket_id, self.inner.set_context(ticket_id, context), _dropped)

    async def merge_context(
        self, ticket_id: str, merge: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        return await self._changing_ticket(
            ticket_id, self.inner.merge_context(ticket_id, merge), _dropped
        )

    # ------------------------------------------------------------------ transcript
    # Messages, timeline entries and attachments are not part of a ticket record: their
    # writes leave the cache alone.

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
        # Before the write starts: a read from here on may see the message, so it asks.
        self._silent.pop(ticket_id, None)
        if self.cache_tickets:
            # Every change of a ticket is made here: what this node keeps is the ticket.
            as_read = None
        try:
            return await self.inner.add_message(
                ticket_id, sender, author_id, author, text, client_msg_id, at, as_read
            )
        except TicketChanged:
            self.tickets_cache.drop(ticket_id)  # changed on another node: read it again
            raise

    async def messages(self, ticket_id: str, after_id: int = 0) -> list[MessageRecord]:
        if ticket_id in self._silent:
            return []
        return await self.inner.messages(ticket_id, after_id)

    async def message_counts(self, ticket_ids: list[str]) -> dict[str, int]:
        return await self.inner.message_counts(ticket_ids)

    async def add_timeline(
        self, ticket_id: str, type: str, data: dict[str, Any], at: float, epoch: int | None = None
    ) -> TimelineRecord:
        return await self.inner.add_timeline(ticket_id, type, data, at, epoch)

    async def timeline(self, ticket_id: str) -> list[TimelineRecord]:
        return await self.inner.timeline(ticket_id)

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
        return await self.inner.add_page(ticket_id, url, title, app, at, request, keep)

    async def pages(self, ticket_id: str) -> list[PageRecord]:
        return await self.inner.pages(ticket_id)

    async def add_attachment(
        self,
        attachment: AttachmentRecord,
        quota: UploadQuota | None = None,
        epoch: int | None = None,
    ) -> bool:
        return await self.inner.add_attachment(attachment, quota, epoch)

    # The owner epoch is not part of the cached ticket record: read and written through.

    async def advance_owner_epoch(self, ticket_id: str, epoch: int) -> bool:
        return await self.inner.advance_owner_epoch(ticket_id, epoch)

    async def owner_epoch(self, ticket_id: str) -> int:
        return await self.inner.owner_epoch(ticket_id)

    async def attachments(self, ticket_id: str) -> list[AttachmentRecord]:
        return await self.inner.attachments(ticket_id)

    async def attachment(self, ticket_id: str, attachment_id: str) -> AttachmentRecord | None:
        return await self.inner.attachment(ticket_id, attachment_id)

    # Notes and canned replies are not part of a cached record: read and written through.

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
        self._unnoted.pop(ticket_id, None)
        return await self.inner.add_note(
            ticket_id, author_id, author, text, source, client_note_id, at
        )

    async def notes(self, ticket_id: str) -> list[NoteRecord]:
        if ticket_id in self._unnoted:
            return []
        return await self.inner.notes(ticket_id)

    async def put_canned(self, reply: CannedRecord) -> None:
        await self.inner.put_canned(reply)

    async def canned(self, site_id: str) -> list[CannedRecord]:
        return await self.inner.canned(site_id)

    async def remove_canned(self, site_id: str, shortcut: str) -> bool:
        return await self.inner.remove_canned(site_id, shortcut)
