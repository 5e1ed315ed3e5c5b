"""Co-browse in a support session: consent, the event stream, late joiners, pointer, control.

The pure work (validation, sanitizing, the live mirror, the recording format, the control grant)
is in ``cobrowse``; this module connects it to sessions, rooms and tickets:

    agent  cobrowse.request -> customer sees the request -> cobrowse.accept starts recording
    customer cobrowse.events -> CobrowseSession.ingest -> cobrowse.events to the agents
    agent  cobrowse.join -> the mirror's catch-up (Meta + FullSnapshot + tail) in the ack
    cobrowse.stop / session end -> the recording is filed on the ticket
    GET /cobrowse/assets/... the server cannot fetch -> cobrowse.assets.needed to the customer
    customer cobrowse.assets.supply -> the asset service (``signaling.assets.service``)

A ``CobrowseSession`` (its recording file and its control grant) lives on the session's home node
(``home.Home``): the handlers validate on the socket's node and run the work there. When the home
node changes, the new one starts a new recording part from a fresh snapshot it asks the customer
for, and a control grant ends (audited). The mirror sits behind ``MirrorStore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cobrowse
from signaling import background
from signaling.assets.service import AssetService
from signaling.desk import AgentCaller, Caller, CustomerCaller, Desk, DeskError, iso
from signaling.desk.rooms import customer_room
from signaling.hubs.home import Home
from signaling.live.placement import Lease
from signaling.live.rpc import RpcRefused, RpcUnavailable
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
from signaling.store import StaleEpoch, TicketRecord

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
    "closed": "invalid_state",
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
    epoch: int
    """The lease epoch of the home node holding it: its writes carry it."""
    part: int = 1
    """Which part of the session's recording this is (a new one after the home node moved)."""
    share: str | None = None
    """Names the co-browse (from ``cobrowse.started`` to ``cobrowse.stopped``) all its parts
    belong to, so the console plays them in sequence (None: a co-browse started before parts
    were named)."""
    events: int = 0
    stored: tuple[str, int] | None = None
    """Once closed, the part's bytes in the file store (digest, size), until it is filed."""

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "format": "tandem-cobrowse",
            "v": 1,
            "recorder": self.recorder,
            "events": self.events,
            "part": self.part,
        }
        if self.share is not None:
            meta["share"] = self.share
        return meta


@dataclass
class _Sharing:
    """What the ticket's timeline says about its co-browse (the store is the truth)."""

    recorder: str | None = None
    """The recorder of the co-browse going on (None: nobody is sharing)."""
    share: str | None = None
    parts: int = 0
    """How many parts it has begun so far."""
    control: str = "none"


class CobrowseHub:
    def __init__(
        self,
        desk: Desk,
        mirror: cobrowse.MirrorStore,
        work_dir: Path,
        home: Home,
        rate_limits: cobrowse.RateLimits | None = None,
        assets: AssetService | None = None,
    ) -> None:
        self.desk = desk
        self.home = home
        self.mirror = mirror
        self.work_dir = work_dir
        self.rate_limits = rate_limits
        self.assets = assets
        if assets is not None:
            assets.ask_browser = self._ask_browser
            assets.sharing = lambda ticket_id: ticket_id in self._live
        self._live: dict[str, _Live] = {}
        self._unfiled: dict[str, list[_Live]] = {}
        """Closed parts this node could not file yet: its lease had moved on when it let them
        go. Filed when this node is the session's home again (they are on its disk)."""
        self._setting_up: dict[str, asyncio.Lock] = {}
        """One change of a session's parts at a time (start, move, let go, stop): a batch or an
        accept arriving meanwhile waits for it rather than seeing no part, or starting one."""
        self._parts: dict[str, _Parts] = {}
        self._pending_bytes = 0
        self._ticker: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.on_stopped: list[Callable[[str], Awaitable[None]]] = []
        """Called on the home node with the ticket id when a co-browse ends (the co-browse media
        channel closes with it)."""
        for method, work in {
            "cobrowse.accept": self._accept_here,
            "cobrowse.ingest": self._ingest_here,
            "cobrowse.join": self._join_here,
            "cobrowse.stop": self._stop_here,
            "cobrowse.sharing": self._sharing_here,
            "cobrowse.supply": self._supply_here,
            "cobrowse.pointer": self._pointer_here,
            "control.request": self._control_request_here,
            "control.grant": self._control_grant_here,
            "control.revoke": self._control_revoke_here,
            "control.action": self._control_action_here,
            "control.release": self._control_release_here,
        }.items():
            home.serve(method, work)
        home.rpc.register("cobrowse.file_parts", self._file_parts_here)
        home.on_close.append(self.on_ticket_closed)
        home.on_lost.append(self.drop)
        home.on_hand_over.append(self.hand_over)
        home.on_taken.append(self._taken)
        desk.on_agent_left.append(self.agent_left)

    # ------------------------------------------------------------------ consent

    async def request(self, caller: AgentCaller, ticket_id: str) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.desk.timeline(ticket, "cobrowse.requested", {"agent": agent.wire()})
        await self.desk.tell(
            ticket, CobrowseRequested(ticket_id=ticket.id, agent=agent), "customer"
        )

    async def accept(self, caller: CustomerCaller, v: int, recorder: str) -> None:
        ticket = await self._open_ticket(caller, None)
        if v != cobrowse.PROTOCOL_VERSION:
            raise DeskError("malformed", f"co-browse stream v{v} is not supported")
        try:
            recorder = cobrowse.parse_recorder(recorder)
        except ValueError as exc:
            raise DeskError("malformed", str(exc)) from None
        await self.home.run("cobrowse.accept", caller, ticket, {"recorder": recorder})

    async def _accept_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        async with self._changing(ticket.id):
            if self._live_at(ticket.id, lease) is not None:
                return {}  # a page load on the same site: the stream goes on with a new snapshot
            sharing = await self._sharing(ticket.id)
            if sharing.recorder is not None and (
                ticket.id in self._live or ticket.id in self._unfiled
            ):
                # This node recorded the co-browse under an earlier lease of its own (the
                # lease lapsed and was taken again): the co-browse goes on in a new part.
                await self._move_here(ticket, lease, sharing)
                return {}
            recorder = str(args["recorder"])
            share = secrets.token_hex(8)
            await self._start(ticket.id, recorder, lease, part=1, share=share)
            await self.desk.timeline(
                ticket, "cobrowse.started", {"recorder": recorder, "share": share}, lease.epoch
            )
        await self._announce(ticket, "sharing", "customer")
        return {}

    async def _start(
        self, ticket_id: str, recorder: str, lease: Lease, part: int, share: str | None
    ) -> _Live:
        """Begin a recording part under ``lease``. A part this node still holds from an earlier
        lease is closed first and filed, like the parts it could not file before, under this
        lease (they come before the new one: nothing acknowledged is lost)."""
        old = self._live.pop(ticket_id, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.session.close()
            self._unfiled.setdefault(ticket_id, []).append(old)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{ticket_id}-{time.time_ns()}-{part}.tcb.gz"
        writer = cobrowse.AsyncRecordingWriter(path, recorder)
        # The file is made now, not at the stream's first flush: a disk that cannot take it
        # refuses the start, and the stream's first seconds do not wait on a worker thread
        # making it (with the GIL, a batch waited up to 5 ms behind it).
        await writer.open()
        session = cobrowse.CobrowseSession(
            ticket_id,
            self.mirror,
            recording=writer,
            rate_limits=self.rate_limits,
            assets=self.assets.rewriter(ticket_id) if self.assets is not None else None,
        )
        live = _Live(
            session=session,
            recording_path=path,
            recorder=recorder,
            epoch=lease.epoch,
            part=part,
            share=share,
        )
        self._live[ticket_id] = live
        self._ensure_ticker()
        with contextlib.suppress(StaleEpoch):  # kept for the next try; the new part runs on
            await self._file_unfiled(ticket_id, lease.epoch)
        return live

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
        checkpoint: bool = False,
    ) -> None:
        ticket = await self._open_ticket(caller, None)
        whole = self._reassemble(sid, data, batch_id, part, parts)
        if whole is None:
            return
        args = {"data": whole, "checkpoint": True} if checkpoint else {"data": whole}
        await self.home.run("cobrowse.ingest", caller, ticket, args)

    async def _ingest_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        live = await self._live_now(ticket.id, lease)
        if live is None:
            raise DeskError("invalid_state", "co-browse is not running; accept a request first")
        rooms = self.desk.agent_rooms(ticket)

        async def relay(events: list[cobrowse.Event], events_json: bytes) -> None:
            # Built without validation: the events passed cobrowse's own validator just now,
            # and carrying their JSON as co-browse made it (not encoded a second time).
            await self.desk.broadcaster.emit(
                CobrowseEventsOut.relay(ticket.id, events, events_json), rooms
            )

        try:
            result = await live.session.ingest(
                str(args["data"]), relay, checkpoint=args.get("checkpoint") is True
            )
        except cobrowse.CobrowseError as exc:
            raise cobrowse_error(exc) from None
        live.events += len(result.events)
        if result.report.total:
            log.info("sanitized %s: %s", ticket.id, result.report.as_dict())
        if result.mirror.request_snapshot:
            await self._need_snapshot(ticket.id)
        return {}

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
        if await self.home.placement.current(ticket.id) is None:
            # No home node: nothing is shared here. The customer's events may still have been
            # folded into the shared mirror by a home node that is gone: show those (the
            # control grant went with that node, so none is reported).
            shared = await self.mirror.catch_up(ticket.id)
            return CobrowseView(sharing=bool(shared), events=shared, control="none")
        return CobrowseView.model_validate(await self.home.run("cobrowse.join", caller, ticket, {}))

    async def _join_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        live = await self._live_now(ticket.id, lease)
        if live is None:
            return CobrowseView(sharing=False, events=[], control="none").wire()
        events = await live.session.catch_up()
        if not events:
            await self._need_snapshot(ticket.id)
        view = CobrowseView(sharing=True, events=events, control=live.session.control.state.value)
        return view.wire()

    async def require_sharing(self, caller: Caller, ticket_id: str | None) -> None:
        """Refuse unless the customer is sharing their page in this session (asked of the
        session's home node, which holds the stream)."""
        ticket = await self.desk.ticket_for(caller, ticket_id)
        if await self.home.placement.current(ticket.id) is None:
            raise DeskError("invalid_state", "the customer is not sharing their page")
        await self.home.run("cobrowse.sharing", caller, ticket, {})

    async def _sharing_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        await self._require_live(ticket, lease)
        return {}

    async def stop(self, ticket_id: str, by: str) -> None:
        """Stop sharing on this (home) node: the recording part is filed on the ticket (after
        any earlier part this node could not file yet)."""
        async with self._changing(ticket_id):
            live = self._live.pop(ticket_id, None)
            if live is None:
                return
            for stopped in self.on_stopped:
                await stopped(ticket_id)
            await self._file_unfiled(ticket_id, live.epoch)
            ticket = await self._file_part(live)
        if ticket is None:
            return
        if self.assets is not None:
            counts = self.assets.take_counts(ticket_id)
            if counts:
                # How the agent's view got the page's images, fonts and stylesheets.
                await self.desk.timeline(ticket, "cobrowse.assets", counts, live.epoch)
        await self.desk.timeline(ticket, "cobrowse.stopped", {"by": by}, live.epoch)
        await self._announce(ticket, "stopped", by)
        if self.desk.router is not None and ticket.status == "active":
            for agent in ticket.agents:  # sharing stopped: nobody controls the page any more
                if await self.desk.router.loads.mark(ticket.id, str(agent["id"]), "control", False):
                    await self.desk.router.load_changed(str(agent["id"]))

    async def _file_part(self, live: _Live, epoch: int | None = None) -> TicketRecord | None:
        """Close a recording part and file it on the ticket under ``epoch`` (default its own;
        an empty part is thrown away). ``StaleEpoch`` if the store has a later one: the part
        stays in the file store, ready to be filed again (``live.stored``)."""
        if not live.session.closed:
            # (Closing also clears the session's mirror: never again once a later part runs.)
            await live.session.close()
        ticket_id = live.session.session_id
        ticket = await self.desk.store.ticket(ticket_id)
        if ticket is None:
            return None
        if not live.events:
            with contextlib.suppress(FileNotFoundError):
                live.recording_path.unlink()
            return ticket
        if live.stored is None:
            live.stored = await self.desk.files.put_file(live.recording_path)
        elif any(
            a.kind == "recording" and a.sha256 == live.stored[0]
            for a in await self.desk.store.attachments(ticket_id)
        ):
            return ticket  # filed already (its timeline entry was the write refused)
        await self.desk.file_stored_attachment(
            ticket_id,
            "recording",
            RECORDING_TYPE,
            live.stored,
            live.meta(),
            epoch=live.epoch if epoch is None else epoch,
        )
        return ticket

    async def _file_unfiled(self, ticket_id: str, epoch: int) -> None:
        """File, under this node's lease (``epoch``), the parts it let go of earlier without
        filing them. One the store refuses stays for the next try."""
        waiting = self._unfiled.pop(ticket_id, [])
        for index, live in enumerate(waiting):
            try:
                await self._file_part(live, epoch)
            except StaleEpoch:
                self._unfiled.setdefault(ticket_id, []).extend(waiting[index:])
                raise
            except Exception:
                log.exception("could not file part %d of %s", live.part, ticket_id)

    async def hand_over(self, ticket_id: str) -> None:
        """This node gives the session up (draining): its recording part is filed, and the
        next home node records the next part."""
        async with self._changing(ticket_id):
            live = self._live.pop(ticket_id, None)
            if live is not None:
                await self._file_unfiled(ticket_id, live.epoch)
                await self._file_part(live)

    async def stop_by_customer(self, caller: CustomerCaller) -> None:
        ticket = await self.desk.ticket_for(caller, None)
        if (
            await self.home.placement.current(ticket.id) is None
            and await self.home.here(ticket.id) is None
        ):
            # Nobody holds the session (this node still does while its lapsed lease is not yet
            # found lost: its part is filed now, not left to the session's end).
            return
        await self.home.run("cobrowse.stop", caller, ticket, {})

    async def _stop_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        await self.stop(ticket.id, "customer")
        return {}

    async def on_ticket_closed(self, ticket_id: str) -> None:
        await self.stop(ticket_id, "system")

    async def drop(self, ticket_id: str) -> None:
        """This node's lease of the session was lost: let go of the stream. Its recording part
        is filed only if the store still has this node's epoch (nobody took the session since:
        e.g. the lease lapsed while the node was busy), so nothing stale is written; else it is
        kept, and filed if this node becomes the session's home again."""
        async with self._changing(ticket_id):
            live = self._live.pop(ticket_id, None)
            if live is None:
                return
            try:
                # The mirror is left alone: the session's new home may be filling it already.
                await live.session.close(keep_mirror=True)
                await self._file_part(live)
            except StaleEpoch:
                self._unfiled.setdefault(ticket_id, []).append(live)
                log.info("%s: part %d kept unfiled (epoch %d)", ticket_id, live.part, live.epoch)
                # Another node holds the session now: its bytes are in the shared file store,
                # so that node files it (in the background: the renewal loop runs this).
                task = asyncio.get_running_loop().create_task(self._send_unfiled_home(ticket_id))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            except Exception:
                log.exception("could not file part %d of %s", live.part, ticket_id)

    async def _send_unfiled_home(self, ticket_id: str) -> None:
        """Ask the session's home node (another node) to file the parts this node recorded
        under an earlier lease and could not file itself."""
        lease = await self.home.placement.current(ticket_id)
        if lease is None or lease.node == self.home.node:
            return  # nobody, or this node again: filed when it starts its next part
        async with self._changing(ticket_id):
            parts = [p for p in self._unfiled.get(ticket_id, []) if p.stored is not None]
            if not parts:
                return
            wire = [{"stored": list(p.stored or ()), "meta": p.meta()} for p in parts]
            try:
                reply = await self.home.rpc.call(
                    lease.node, "cobrowse.file_parts", {"ticket": ticket_id, "parts": wire}
                )
            except (RpcRefused, RpcUnavailable) as exc:
                log.warning("%s: %s did not file its earlier parts: %s", ticket_id, lease.node, exc)
                return
            filed = set(reply.get("filed", []))
            left = [
                p
                for p in self._unfiled.pop(ticket_id, [])
                if p.stored is None or p.stored[0] not in filed
            ]
            if left:
                self._unfiled[ticket_id] = left

    async def _file_parts_here(self, params: dict[str, Any]) -> dict[str, Any]:
        """On the session's home node: file the parts another node recorded under an earlier
        lease (their bytes are in the shared file store), under this node's lease."""
        ticket_id = str(params["ticket"])
        lease = await self.home.here(ticket_id)
        if lease is None:
            raise DeskError("invalid_state", "this node is not the session's home")
        filed: list[str] = []
        async with self._changing(ticket_id):
            known = {a.sha256 for a in await self.desk.store.attachments(ticket_id)}
            for part in params["parts"]:
                sha256, size = str(part["stored"][0]), int(part["stored"][1])
                if sha256 not in known:
                    if await self.desk.files.size(sha256) != size:
                        # Not in a file store this node reads (each node keeps its own files):
                        # the part stays with the node that recorded it.
                        log.warning("%s: a part's bytes are not in this node's files", ticket_id)
                        continue
                    await self.desk.file_stored_attachment(
                        ticket_id,
                        "recording",
                        RECORDING_TYPE,
                        (sha256, size),
                        dict(part["meta"]),
                        epoch=lease.epoch,
                    )
                filed.append(sha256)
        return {"filed": filed}

    async def _taken(self, ticket: TicketRecord, lease: Lease) -> None:
        """This node became the home of a session whose earlier home is gone. If the customer
        was sharing, sharing goes on here in a new recording part from a fresh snapshot, and a
        control grant (or request) of the old home ends, on the timeline."""
        async with self._changing(ticket.id):
            if ticket.status != "active":
                await self._file_unfiled(ticket.id, lease.epoch)
                return
            sharing = await self._sharing(ticket.id)
            if sharing.recorder is None:
                await self._file_unfiled(ticket.id, lease.epoch)
                return
            await self._move_here(ticket, lease, sharing)

    async def _sharing(self, ticket_id: str) -> _Sharing:
        sharing = _Sharing()
        for entry in await self.desk.store.timeline(ticket_id):
            if entry.type == "cobrowse.started":
                sharing.recorder = str(entry.data.get("recorder", ""))
                sharing.share = entry.data.get("share")
                sharing.parts = 1
            elif entry.type == "cobrowse.moved":
                sharing.parts = int(entry.data.get("part", sharing.parts + 1))
            elif entry.type == "cobrowse.stopped":
                sharing.recorder = None
            elif entry.type.startswith("control.") and entry.data.get("result") == "ok":
                sharing.control = str(entry.data.get("state", sharing.control))
        return sharing

    async def _move_here(self, ticket: TicketRecord, lease: Lease, sharing: _Sharing) -> None:
        """The co-browse goes on here under ``lease`` in its next part, from a fresh snapshot;
        a control grant (or request) of the earlier lease ends, on the timeline."""
        recorder = sharing.recorder or ""
        earlier = [p.part for p in self._unfiled.get(ticket.id, [])]
        if ticket.id in self._live:
            earlier.append(self._live[ticket.id].part)
        part = max([sharing.parts, *earlier]) + 1
        live = await self._start(ticket.id, recorder, lease, part=part, share=sharing.share)
        await self.desk.timeline(
            ticket, "cobrowse.moved", {"epoch": lease.epoch, "part": live.part}, lease.epoch
        )
        control = sharing.control
        if control in ("requested", "granted"):
            await self.desk.timeline(
                ticket,
                "control.revoke",
                {
                    "actor": "system",
                    "role": "system",
                    "result": "ok",
                    "reason": "home_moved",
                    "state": "revoked",
                },
                lease.epoch,
            )
            await self.desk.broadcaster.emit(
                ControlStateNotice(ticket_id=ticket.id, state="revoked"), self.desk.rooms(ticket)
            )
        await self._need_snapshot(ticket.id)

    async def close(self) -> None:
        await background.stop(self._ticker, *self._sending)
        for ticket_id in list(self._live):
            await self.stop(ticket_id, "system")

    # ------------------------------------------------------------------ assets

    async def supply_assets(self, caller: CustomerCaller, assets: list[AssetChunk]) -> int:
        ticket = await self._open_ticket(caller, None)
        args = {"assets": [a.model_dump() for a in assets]}
        reply = await self.home.run("cobrowse.supply", caller, ticket, args)
        return int(reply["stored"])

    async def _supply_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        await self._require_live(ticket, lease)
        if self.assets is None:
            return {"stored": 0}
        return {"stored": await self.assets.supply(ticket.id, list(args["assets"]))}

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
        await self.home.run("cobrowse.pointer", caller, ticket, {"x": x, "y": y, "mode": mode})

    async def _pointer_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        assert isinstance(caller, AgentCaller)
        await self._require_live(ticket, lease)
        await self.desk.broadcaster.emit(
            CobrowsePointerOut(
                ticket_id=ticket.id,
                agent=AgentRef(id=caller.agent.id, name=caller.agent.name),
                x=float(args["x"]),
                y=float(args["y"]),
                mode=str(args["mode"]),
            ),
            [customer_room(ticket.id)],
        )
        return {}

    async def control_request(self, caller: AgentCaller, ticket_id: str) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        await self.home.run("control.request", caller, ticket, {})

    async def _control_request_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        assert isinstance(caller, AgentCaller)
        live = await self._require_live(ticket, lease)
        await self._control(ticket, live, lambda g: g.request(caller.agent.id))
        return {}

    async def control_grant(self, caller: CustomerCaller, grant: bool) -> None:
        ticket = await self._open_ticket(caller, None)
        await self.home.run("control.grant", caller, ticket, {"grant": grant})

    async def _control_grant_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        live = await self._require_live(ticket, lease)
        customer_id = str(ticket.customer["id"])
        grant = bool(args["grant"])
        await self._control(
            ticket, live, lambda g: g.grant(customer_id) if grant else g.deny(customer_id)
        )
        return {}

    async def control_revoke(
        self, caller: AgentCaller | CustomerCaller, ticket_id: str | None
    ) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        await self.home.run("control.revoke", caller, ticket, {})

    async def _control_revoke_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        live = await self._require_live(ticket, lease)
        if isinstance(caller, AgentCaller):
            agent_id = caller.agent.id
            await self._control(ticket, live, lambda g: g.revoke(agent_id, "agent"))
        else:
            customer_id = str(ticket.customer["id"])
            await self._control(ticket, live, lambda g: g.revoke(customer_id, "customer"))
        return {}

    async def agent_left(self, ticket: TicketRecord, caller: AgentCaller) -> None:
        """Remote control does not move with a transfer: a request or grant held by the agent
        who leaves ends (audited); the next agent asks the customer again."""
        if await self.home.placement.current(ticket.id) is None:
            return
        await self.home.run("control.release", caller, ticket, {})

    async def _control_release_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        assert isinstance(caller, AgentCaller)
        live = self._live.get(ticket.id)
        if live is None or live.epoch != lease.epoch:
            return {}
        grant = live.session.control
        if grant.agent_id != caller.agent.id or grant.state not in (
            cobrowse.ControlState.REQUESTED,
            cobrowse.ControlState.GRANTED,
        ):
            return {}
        agent_id = caller.agent.id
        await self._control(ticket, live, lambda g: g.revoke(agent_id, "agent"))
        return {}

    async def control_action(
        self, caller: AgentCaller, ticket_id: str, action: dict[str, Any]
    ) -> None:
        ticket = await self._open_ticket(caller, ticket_id)
        await self.home.run("control.action", caller, ticket, {"action": action})

    async def _control_action_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        assert isinstance(caller, AgentCaller)
        live = await self._require_live(ticket, lease)
        try:
            clean, audit = await live.session.authorize_action(
                caller.agent.id, dict(args["action"])
            )
        except cobrowse.ControlError as exc:
            await self._file_audit(ticket, exc.audit or [], live.epoch)
            raise cobrowse_error(exc) from None
        await self._file_audit(ticket, audit, live.epoch)
        await self.desk.broadcaster.emit(
            ControlActionOut(ticket_id=ticket.id, action=dict(clean)), [customer_room(ticket.id)]
        )
        return {}

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
            await self._file_audit(ticket, exc.audit or [], live.epoch)
            raise cobrowse_error(exc) from None
        await self._file_audit(ticket, audit, live.epoch)
        await self._announce_control(ticket, grant)

    async def _announce_control(self, ticket: TicketRecord, grant: cobrowse.ControlGrant) -> None:
        await self._weigh_control(ticket, grant)
        agent = next((a for a in ticket.agents if a["id"] == grant.agent_id), None)
        await self.desk.tell(
            ticket,
            ControlStateNotice(
                ticket_id=ticket.id,
                state=grant.state.value,
                agent=AgentRef.model_validate(agent) if agent else None,
                expires_at=iso(grant.expires_at) if grant.expires_at else None,
            ),
        )

    async def _weigh_control(self, ticket: TicketRecord, grant: cobrowse.ControlGrant) -> None:
        """The agent holding control carries more load (``--control-weight``); once the grant
        ends (revoked, expired, denied, another agent's turn) they no longer do."""
        router = self.desk.router
        if router is None:
            return
        holder = grant.agent_id if grant.state is cobrowse.ControlState.GRANTED else None
        for agent in ticket.agents:
            agent_id = str(agent["id"])
            if await router.loads.mark(ticket.id, agent_id, "control", agent_id == holder):
                await router.load_changed(agent_id)

    async def _file_audit(
        self, ticket: TicketRecord, entries: list[dict[str, Any]], epoch: int
    ) -> None:
        """Every consent and control transition goes onto the ticket's timeline, hash-chained."""
        for entry in entries:
            data = {k: v for k, v in entry.items() if k not in ("event", "session_id", "ts")}
            await self.desk.timeline(ticket, str(entry["event"]), data, epoch)

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
                if ticket is None:
                    continue
                try:
                    await self._file_audit(ticket, expired, live.epoch)
                except StaleEpoch:
                    # The session moved to another node while this one was away: let go.
                    await self.drop(ticket_id)
                    continue
                await self._announce_control(ticket, live.session.control)

    # ------------------------------------------------------------------ internals

    async def _open_ticket(
        self, caller: AgentCaller | CustomerCaller, ticket_id: str | None
    ) -> TicketRecord:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        if ticket.status != "active":
            raise DeskError("invalid_state", "co-browse needs an active session")
        return ticket

    def _live_at(self, ticket_id: str, lease: Lease) -> _Live | None:
        """The stream this node holds for the session under this lease (none from an earlier
        lease of its own: that one was dropped when the lease was lost)."""
        live = self._live.get(ticket_id)
        return live if live is not None and live.epoch == lease.epoch else None

    async def _live_now(self, ticket_id: str, lease: Lease) -> _Live | None:
        """``_live_at``, once a change of the session's parts under way is done (a batch that
        arrives while a new part is being set up goes into it rather than being refused)."""
        live = self._live_at(ticket_id, lease)
        if live is not None:
            return live
        changing = self._setting_up.get(ticket_id)
        if changing is None or not changing.locked():
            return None
        async with changing:
            return self._live_at(ticket_id, lease)

    def _changing(self, ticket_id: str) -> asyncio.Lock:
        return self._setting_up.setdefault(ticket_id, asyncio.Lock())

    async def _require_live(self, ticket: TicketRecord, lease: Lease) -> _Live:
        live = await self._live_now(ticket.id, lease)
        if live is None:
            raise DeskError("invalid_state", "the customer is not sharing their page")
        return live

    async def _need_snapshot(self, ticket_id: str) -> None:
        await self.desk.broadcaster.emit(
            CobrowseSnapshotNeeded(ticket_id=ticket_id), [customer_room(ticket_id)]
        )

    async def _announce(self, ticket: TicketRecord, state: str, by: str) -> None:
        await self.desk.tell(ticket, CobrowseStateNotice(ticket_id=ticket.id, state=state, by=by))
