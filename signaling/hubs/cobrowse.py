"""Co-browse in a support session: consent, the event stream, late joiners, pointer, control.

The pure work (validation, sanitizing, the live mirror, the recording format, the control grant)
is in ``cobrowse``; this module connects it to sessions, rooms and tickets:

    agent  cobrowse.request -> customer sees the request -> cobrowse.accept starts recording
    customer cobrowse.events -> CobrowseSession.ingest -> cobrowse.events to the agents
    agent  cobrowse.join -> the mirror's catch-up (Meta + FullSnapshot + tail) in the ack
    cobrowse.stop / session end -> the recording is filed on the ticket
    GET /cobrowse/assets/... the server cannot fetch -> cobrowse.assets.needed to the customer
    customer cobrowse.assets.supply -> the asset service (``signaling.assets.service``)

A ``CobrowseSession`` (its recording file and its control grant) lives on the node that holds the
customer's socket, which is where the events arrive; the mirror sits behind ``MirrorStore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cobrowse
from signaling.assets.service import AssetService
from signaling.desk import AgentCaller, CustomerCaller, Desk, DeskError, iso
from signaling.desk.rooms import customer_room
from signaling.protocol import (
    AgentRef,
    AssetChunk,
    AssetWanted,
    CobrowseAssetsNeeded,
    CobrowseEventsOut,
    CobrowsePointerOut,
    CobrowseRequested,
    CobrowseSnapshotNeeded,
    CobrowseStateNotice,
    CobrowseView,
    ControlActionOut,
    ControlStateNotice,
    ErrorCode,
)
from signaling.store import TicketRecord

log = logging.getLogger("tandem.cobrowse")

RECORDING_TYPE = "application/x-tandem-cobrowse+gzip"
_MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_PENDING_PART_BYTES = 32 * 1024 * 1024
"""Bytes of unfinished multi-part batches all sockets of a node may hold together."""
PART_TIMEOUT_SECONDS = 30.0
"""An unfinished batch older than this is dropped (its sender gets a new snapshot request)."""
"""A reassembled batch (a large full snapshot) may be this big."""

_CODES: dict[str, ErrorCode] = {
    "too_large": "too_large",
    "rate_limited": "rate_limited",
    "not_granted": "forbidden",
    "masked_target": "forbidden",
    "unknown_target": "forbidden",
    "wrong_agent": "forbidden",
}


def cobrowse_error(exc: cobrowse.CobrowseError) -> DeskError:
    """A co-browse refusal as the desk's error, keeping the precise reason in the message."""
    code = _CODES.get(exc.code)
    if code is None:
        code = "invalid_state" if isinstance(exc, cobrowse.ControlError) else "malformed"
    return DeskError(code, f"{exc.code}: {exc}")


@dataclass
class _Parts:
    batch_id: str
    parts: list[str | None]
    size: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Live:
    session: cobrowse.CobrowseSession
    recording_path: Path
    recorder: str
    events: int = 0


class CobrowseHub:
    def __init__(
        self,
        desk: Desk,
        mirror: cobrowse.MirrorStore,
        work_dir: Path,
        rate_limits: cobrowse.RateLimits | None = None,
        assets: AssetService | None = None,
    ) -> None:
        self.desk = desk
        self.mirror = mirror
        self.work_dir = work_dir
        self.rate_limits = rate_limits
        self.assets = assets
        if assets is not None:
            assets.ask_browser = self._ask_browser
            assets.sharing = lambda ticket_id: ticket_id in self._live
        self._live: dict[str, _Live] = {}
        self._parts: dict[str, _Parts] = {}
        self._pending_bytes = 0
        self._ticker: asyncio.Task[None] | None = None
        desk.on_close.append(self.on_ticket_closed)

    # ------------------------------------------------------------------ consent

    async def request(self, caller: AgentCaller, ticket_id: str) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.desk.timeline(ticket, "cobrowse.requested", {"agent": agent.wire()})
        await self.desk.broadcaster.emit(
            CobrowseRequested(ticket_id=ticket.id, agent=agent), [customer_room(ticket.id)]
        )

    async def accept(self, caller: CustomerCaller, v: int, recorder: str) -> None:
        ticket = await self._open_ticket(caller, None)
        if v != cobrowse.PROTOCOL_VERSION:
            raise DeskError("malformed", f"co-browse stream v{v} is not supported")
        try:
            recorder = cobrowse.parse_recorder(recorder)
        except ValueError as exc:
            raise DeskError("malformed", str(exc)) from None
        if ticket.id in self._live:
            return  # a page load on the same site: the stream goes on with a new snapshot
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{ticket.id}-{int(time.time() * 1000)}.tcb.gz"
        writer = cobrowse.AsyncRecordingWriter(path, recorder)
        session = cobrowse.CobrowseSession(
            ticket.id,
            self.mirror,
            recording=writer,
            rate_limits=self.rate_limits,
            assets=self.assets.rewriter(ticket.id) if self.assets is not None else None,
        )
        self._live[ticket.id] = _Live(session=session, recording_path=path, recorder=recorder)
        await self.desk.timeline(ticket, "cobrowse.started", {"recorder": recorder})
        await self._announce(ticket, "sharing", "customer")
        self._ensure_ticker()

    async def decline(self, caller: CustomerCaller) -> None:
        ticket = await self._open_ticket(caller, None)
        await self.desk.timeline(ticket, "cobrowse.declined", {})
        await self._announce(ticket, "declined", "customer")

    # ------------------------------------------------------------------ the stream

    async def ingest(
        self,
        caller: CustomerCaller,
        sid: str,
        data: str,
        batch_id: str | None,
        part: int,
        parts: int,
    ) -> None:
        ticket = await self._open_ticket(caller, None)
        live = self._live.get(ticket.id)
        if live is None:
            raise DeskError("invalid_state", "co-browse is not running; accept a request first")
        whole = self._reassemble(sid, data, batch_id, part, parts)
        if whole is None:
            return
        try:
            result = await live.session.ingest(whole)
        except cobrowse.CobrowseError as exc:
            raise cobrowse_error(exc) from None
        live.events += len(result.events)
        if result.report.total:
            log.info("sanitized %s: %s", ticket.id, result.report.as_dict())
        await self.desk.broadcaster.emit(
            # Built without validation: the events passed cobrowse's own validator just now,
            # and carrying their JSON as made for the recording (not encoded a second time).
            CobrowseEventsOut.relay(ticket.id, result.events, result.encoded),
            self.desk.agent_rooms(ticket),
        )
        if result.mirror.request_snapshot:
            await self._need_snapshot(ticket.id)

    def _reassemble(
        self, sid: str, data: str, batch_id: str | None, part: int, parts: int
    ) -> str | None:
        if parts == 1:
            return data
        if batch_id is None or part >= parts:
            raise DeskError("malformed", "a batch in parts needs batchId and part < parts")
        self._expire_parts(time.monotonic())
        pending = self._parts.get(sid)
        if pending is None or pending.batch_id != batch_id:
            self.forget_socket(sid)  # a socket has one unfinished batch at most
            pending = _Parts(batch_id=batch_id, parts=[None] * parts)
            self._parts[sid] = pending
        if len(pending.parts) != parts or pending.parts[part] is not None:
            self.forget_socket(sid)
            raise DeskError("malformed", "inconsistent batch parts")
        if pending.size + len(data) > _MAX_BATCH_BYTES:
            self.forget_socket(sid)
            raise DeskError("too_large", f"batch exceeds {_MAX_BATCH_BYTES} bytes")
        if self._pending_bytes + len(data) > MAX_PENDING_PART_BYTES:
            # Parts wait in memory until their batch is whole: all sockets together may hold
            # only so much, so unfinished batches cannot grow the node's memory.
            self.forget_socket(sid)
            raise DeskError("rate_limited", "too many unfinished co-browse batches; resend later")
        pending.parts[part] = data
        pending.size += len(data)
        self._pending_bytes += len(data)
        if any(chunk is None for chunk in pending.parts):
            return None
        self.forget_socket(sid)
        return "".join(chunk or "" for chunk in pending.parts)

    def _expire_parts(self, now: float) -> None:
        for sid, pending in list(self._parts.items()):
            if now - pending.started > PART_TIMEOUT_SECONDS:
                self.forget_socket(sid)

    @property
    def pending_part_bytes(self) -> int:
        """Bytes of unfinished multi-part batches held on this node."""
        return self._pending_bytes

    def forget_socket(self, sid: str) -> None:
        pending = self._parts.pop(sid, None)
        if pending is not None:
            self._pending_bytes -= pending.size

    async def join(self, caller: AgentCaller, ticket_id: str) -> CobrowseView:
        ticket = await self.desk.ticket_for(caller, ticket_id, read_only=True)
        live = self._live.get(ticket.id)
        if live is None:
            return CobrowseView(sharing=False, events=[], control="none")
        events = await live.session.catch_up()
        if not events:
            await self._need_snapshot(ticket.id)
        return CobrowseView(sharing=True, events=events, control=live.session.control.state.value)

    async def stop(self, ticket_id: str, by: str) -> None:
        live = self._live.pop(ticket_id, None)
        if live is None:
            return
        await live.session.close()
        ticket = await self.desk.store.ticket(ticket_id)
        if ticket is None:
            return
        if live.events:
            await self.desk.file_attachment_path(
                ticket_id,
                "recording",
                RECORDING_TYPE,
                live.recording_path,
                {
                    "format": "tandem-cobrowse",
                    "v": 1,
                    "recorder": live.recorder,
                    "events": live.events,
                },
            )
        else:
            with contextlib.suppress(FileNotFoundError):
                live.recording_path.unlink()
        if self.assets is not None:
            counts = self.assets.take_counts(ticket_id)
            if counts:
                # How the agent's view got the page's images, fonts and stylesheets.
                await self.desk.timeline(ticket, "cobrowse.assets", counts)
        await self.desk.timeline(ticket, "cobrowse.stopped", {"by": by})
        await self._announce(ticket, "stopped", by)

    async def stop_by_customer(self, caller: CustomerCaller) -> None:
        ticket = await self.desk.ticket_for(caller, None)
        await self.stop(ticket.id, "customer")

    async def on_ticket_closed(self, ticket_id: str) -> None:
        await self.stop(ticket_id, "system")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for ticket_id in list(self._live):
            await self.stop(ticket_id, "system")

    # ------------------------------------------------------------------ assets

    async def supply_assets(self, caller: CustomerCaller, assets: list[AssetChunk]) -> int:
        ticket = await self._open_ticket(caller, None)
        self._require_live(ticket)
        if self.assets is None:
            return 0
        return await self.assets.supply(ticket.id, [a.model_dump() for a in assets])

    async def _ask_browser(self, ticket_id: str, wanted: list[tuple[str, str]]) -> None:
        await self.desk.broadcaster.emit(
            CobrowseAssetsNeeded(
                ticket_id=ticket_id, assets=[AssetWanted(id=i, url=u) for i, u in wanted]
            ),
            [customer_room(ticket_id)],
        )

    # ------------------------------------------------------------------ pointer and control

    async def pointer(
        self, caller: AgentCaller, ticket_id: str, x: float, y: float, mode: str
    ) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        if ticket.id not in self._live:
            raise DeskError("invalid_state", "the customer is not sharing their page")
        await self.desk.broadcaster.emit(
            CobrowsePointerOut(
                ticket_id=ticket.id,
                agent=AgentRef(id=caller.agent.id, name=caller.agent.name),
                x=x,
                y=y,
                mode=mode,
            ),
            [customer_room(ticket.id)],
        )

    async def control_request(self, caller: AgentCaller, ticket_id: str) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        live = self._require_live(ticket)
        await self._control(ticket, live, lambda g: g.request(caller.agent.id))

    async def control_grant(self, caller: CustomerCaller, grant: bool) -> None:
        ticket = await self._open_ticket(caller, None)
        live = self._require_live(ticket)
        customer_id = str(ticket.customer["id"])
        await self._control(
            ticket, live, lambda g: g.grant(customer_id) if grant else g.deny(customer_id)
        )

    async def control_revoke(
        self, caller: AgentCaller | CustomerCaller, ticket_id: str | None
    ) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        live = self._require_live(ticket)
        if isinstance(caller, AgentCaller):
            agent_id = caller.agent.id
            await self._control(ticket, live, lambda g: g.revoke(agent_id, "agent"))
        else:
            customer_id = str(ticket.customer["id"])
            await self._control(ticket, live, lambda g: g.revoke(customer_id, "customer"))

    async def control_action(
        self, caller: AgentCaller, ticket_id: str, action: dict[str, Any]
    ) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        live = self._require_live(ticket)
        try:
            clean, audit = await live.session.authorize_action(caller.agent.id, action)
        except cobrowse.ControlError as exc:
            await self._file_audit(ticket, exc.audit or [])
            raise cobrowse_error(exc) from None
        await self._file_audit(ticket, audit)
        await self.desk.broadcaster.emit(
            ControlActionOut(ticket_id=ticket.id, action=dict(clean)), [customer_room(ticket.id)]
        )

    async def _control(
        self,
        ticket: TicketRecord,
        live: _Live,
        step: Callable[[cobrowse.ControlGrant], list[dict[str, Any]]],
    ) -> None:
        grant = live.session.control
        try:
            audit = step(grant)
        except cobrowse.ControlError as exc:
            await self._file_audit(ticket, exc.audit or [])
            raise cobrowse_error(exc) from None
        await self._file_audit(ticket, audit)
        await self._announce_control(ticket, grant)

    async def _announce_control(self, ticket: TicketRecord, grant: cobrowse.ControlGrant) -> None:
        agent = next((a for a in ticket.agents if a["id"] == grant.agent_id), None)
        await self.desk.broadcaster.emit(
            ControlStateNotice(
                ticket_id=ticket.id,
                state=grant.state.value,
                agent=AgentRef.model_validate(agent) if agent else None,
                expires_at=iso(grant.expires_at) if grant.expires_at else None,
            ),
            self.desk.rooms(ticket),
        )

    async def _file_audit(self, ticket: TicketRecord, entries: list[dict[str, Any]]) -> None:
        """Every consent and control transition goes onto the ticket's timeline, hash-chained."""
        for entry in entries:
            data = {k: v for k, v in entry.items() if k not in ("event", "session_id", "ts")}
            await self.desk.timeline(ticket, str(entry["event"]), data)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        """Expire control requests and grants on time, even when nobody acts."""
        while self._live:
            await asyncio.sleep(1)
            for ticket_id, live in list(self._live.items()):
                expired = live.session.control.tick()
                if not expired:
                    continue
                ticket = await self.desk.store.ticket(ticket_id)
                if ticket is not None:
                    await self._file_audit(ticket, expired)
                    await self._announce_control(ticket, live.session.control)

    # ------------------------------------------------------------------ internals

    async def _open_ticket(
        self, caller: AgentCaller | CustomerCaller, ticket_id: str | None
    ) -> TicketRecord:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        if ticket.status != "active":
            raise DeskError("invalid_state", "co-browse needs an active session")
        return ticket

    def _require_live(self, ticket: TicketRecord) -> _Live:
        live = self._live.get(ticket.id)
        if live is None:
            raise DeskError("invalid_state", "the customer is not sharing their page")
        return live

    async def _need_snapshot(self, ticket_id: str) -> None:
        await self.desk.broadcaster.emit(
            CobrowseSnapshotNeeded(ticket_id=ticket_id), [customer_room(ticket_id)]
        )

    async def _announce(self, ticket: TicketRecord, state: str, by: str) -> None:
        await self.desk.broadcaster.emit(
            CobrowseStateNotice(ticket_id=ticket.id, state=state, by=by),
            self.desk.rooms(ticket),
        )
