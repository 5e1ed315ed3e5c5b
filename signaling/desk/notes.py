"""Internal notes: what agents write on a ticket for each other, never for the customer.

A note is stored on the ticket (``ticket_notes``) and told to the session's agents only
(``Desk.tell`` to ``agents``: numbered on the agents' line, so a resume with ``afterSeq``
replays it to them and the customer's line never holds it). Agents get the ticket's notes in
their session state (accept, join, a resume snapshot) and in ``GET /api/tickets/{id}``; a
customer's state, replay or REST path never carries them.

The note of a transfer (``session.transfer``'s ``note``) is filed as a note too, from the
handing-over agent (``source`` ``transfer``): the agent who takes the session finds it with
the others.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from signaling.desk import access
from signaling.protocol import AgentRef, NoteAdded, NoteInfo
from signaling.store import NoteRecord, TicketRecord

if TYPE_CHECKING:
    from signaling.desk.lifecycle import AgentCaller, Desk


def note_info(record: NoteRecord) -> NoteInfo:
    from signaling.protocol.times import iso

    return NoteInfo(
        id=record.id,
        ticket_id=record.ticket_id,
        author=AgentRef(id=record.author_id, name=record.author),
        text=record.text,
        at=iso(record.at),
        source=record.source,
        client_note_id=record.client_note_id,
    )


class Notes:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def add(
        self, caller: AgentCaller, ticket_id: str, text: str, client_note_id: str | None = None
    ) -> tuple[NoteInfo, bool]:
        """An agent of the session writes a note (while it waits, runs, or after it ended);
        a supervisor or admin may write on any ticket they may read."""
        from signaling.desk.lifecycle import DeskError

        desk = self.desk
        ticket = await desk.store.ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", "no such ticket")
        if not access.may_read(caller.agent, ticket):
            raise DeskError("forbidden", "you are not in this session")
        return await self.file(ticket, caller.ref, text, "agent", client_note_id)

    async def file(
        self,
        ticket: TicketRecord,
        author: dict[str, str],
        text: str,
        source: Literal["agent", "transfer"],
        client_note_id: str | None = None,
    ) -> tuple[NoteInfo, bool]:
        """Store a note and tell the session's agents (only them)."""
        record, new = await self.desk.store.add_note(
            ticket.id, author["id"], author["name"], text, source, client_note_id, time.time()
        )
        info = note_info(record)
        if new:
            await self.desk.tell(ticket, NoteAdded(ticket_id=ticket.id, note=info), "agents")
        return info, new

    async def of(self, ticket_id: str) -> list[NoteInfo]:
        return [note_info(record) for record in await self.desk.store.notes(ticket_id)]
