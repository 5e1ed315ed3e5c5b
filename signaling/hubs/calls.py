"""Calls in a support session: one ``media.MediaRoom`` per ticket, wired to sockets and tickets.

Participants are ``customer`` and ``agent:<id>``; each holds one peer connection to this node
per channel (``media.Channel``): the call's, and the co-browse one that carries the customer's
page elements (``<video>`` streams) to the agents' co-browse view, whose participants are
``customer/cobrowse`` and ``agent:<id>/cobrowse``. The co-browse channel needs the customer to be
sharing their page (that consent covers it) and is closed when they stop.
Offers, answers and candidates travel over the session's sockets; what the room sends on its own
(server offers, track lists) goes to the participant's room. Captures and clips are filed on the
ticket as attachments, like customer uploads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Mapping
from typing import Any

import media
from signaling.desk import (
    AgentCaller,
    Caller,
    CustomerCaller,
    Desk,
    DeskError,
)
from signaling.desk.rooms import agent_room, customer_room
from signaling.protocol import (
    AgentRef,
    AttachmentInfo,
    IceServerInfo,
    MediaTracks,
    RtcOfferOut,
    UploadRequested,
)
from signaling.settings import Settings
from signaling.store import TicketRecord, UploadQuota

log = logging.getLogger("tandem.calls")

MAX_IMAGE_UPLOAD = 20 * 1024 * 1024
MAX_VIDEO_UPLOAD = 200 * 1024 * 1024
MAX_UPLOADS_IN_FLIGHT = 2
"""Uploads arriving at once for one ticket (each may use the rest of the byte quota)."""
UPLOAD_KINDS = frozenset({"photo", "video"})
"""Attachment kinds that customers upload (and that the per-ticket quotas count)."""


COBROWSE_SUFFIX = "/cobrowse"


def participant_id(caller: Caller, channel: media.Channel = "call") -> str:
    base = "customer" if isinstance(caller, CustomerCaller) else f"agent:{caller.agent.id}"
    return base + COBROWSE_SUFFIX if channel == "cobrowse" else base


def media_error(exc: media.MediaError) -> DeskError:
    if isinstance(exc, media.UnknownTrack | media.UnknownParticipant):
        return DeskError("not_found", f"{exc.code}: {exc}")
    if isinstance(exc, media.OfferCollision):
        return DeskError("invalid_state", f"glare: {exc}")
    return DeskError(
        "invalid_state" if isinstance(exc, media.CaptureError) else "malformed",
        f"{exc.code}: {exc}",
    )


class CallHub:
    def __init__(self, desk: Desk, settings: Settings) -> None:
        self.desk = desk
        self.settings = settings
        self._rooms: dict[str, media.MediaRoom] = {}
        self._joined: set[tuple[str, str]] = set()
        """(ticket, participant) pairs already in the call: renegotiations are not joins."""
        self._lock = asyncio.Lock()
        desk.on_close.append(self.on_ticket_closed)

    # ------------------------------------------------------------------ signaling

    async def join(
        self, caller: Caller, ticket_id: str | None, channel: media.Channel = "call"
    ) -> tuple[str, list[IceServerInfo]]:
        ticket = await self._active(caller, ticket_id)
        pid = participant_id(caller, channel)
        servers = media.ice_servers(
            stun_urls=self.settings.stun_urls,
            turn_urls=self.settings.turn_urls,
            turn_secret=self.settings.turn_secret,
            user=f"{ticket.id}:{pid}",
            now=time.time(),
            ttl_s=self.settings.turn_ttl,
        )
        return pid, [IceServerInfo.model_validate(s.to_json()) for s in servers]

    async def offer(
        self,
        caller: Caller,
        ticket_id: str | None,
        sdp: str,
        labels: Mapping[str, str],
        channel: media.Channel = "call",
        elements: Mapping[str, int] | None = None,
    ) -> str:
        ticket = await self._active(caller, ticket_id)
        room = await self._room(ticket)
        role: media.Role = "customer" if isinstance(caller, CustomerCaller) else "agent"
        pid = participant_id(caller, channel)
        try:
            answer = await room.handle_offer(
                pid, role, sdp, labels, channel=channel, elements=elements
            )
        except media.MediaError as exc:
            raise media_error(exc) from None
        if (ticket.id, pid) not in self._joined:
            self._joined.add((ticket.id, pid))
            if channel == "call":  # the co-browse channel is part of co-browse, not a call
                await self.desk.timeline(ticket, "call.joined", {"participant": pid})
        return answer

    async def answer(
        self, caller: Caller, ticket_id: str | None, sdp: str, channel: media.Channel = "call"
    ) -> None:
        room = await self._existing(caller, ticket_id)
        try:
            await room.handle_answer(participant_id(caller, channel), sdp)
        except media.MediaError as exc:
            raise media_error(exc) from None

    async def candidate(
        self,
        caller: Caller,
        ticket_id: str | None,
        candidate: dict[str, Any] | None,
        channel: media.Channel = "call",
    ) -> None:
        room = await self._existing(caller, ticket_id)
        try:
            await room.add_ice_candidate(participant_id(caller, channel), candidate)
        except media.MediaError as exc:
            raise media_error(exc) from None

    async def update_track(
        self,
        caller: Caller,
        ticket_id: str | None,
        ref: str,
        source: str | None,
        muted: bool | None,
    ) -> None:
        room = await self._existing(caller, ticket_id)
        info = room.update_track(participant_id(caller), ref, source=source, muted=muted)
        if info is None:
            raise DeskError("not_found", "no such track of yours")

    async def leave(
        self, caller: Caller, ticket_id: str | None, channel: media.Channel = "call"
    ) -> None:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        room = self._rooms.get(ticket.id)
        pid = participant_id(caller, channel)
        if room is not None and (ticket.id, pid) in self._joined:
            self._joined.discard((ticket.id, pid))
            await room.remove_participant(pid)
            if channel == "call":
                await self.desk.timeline(ticket, "call.left", {"participant": pid})

    async def end_cobrowse_channel(self, ticket_id: str) -> None:
        """Co-browse stopped: every co-browse connection of the session is closed (the
        customer's consent to show page elements ended with it)."""
        room = self._rooms.get(ticket_id)
        gone = {(t, p) for t, p in self._joined if t == ticket_id and p.endswith(COBROWSE_SUFFIX)}
        self._joined -= gone
        if room is not None:
            for _ticket, pid in gone:
                await room.remove_participant(pid)

    # ------------------------------------------------------------------ captures

    async def still(self, caller: AgentCaller, ticket_id: str, track_id: str) -> AttachmentInfo:
        ticket = await self._active(caller, ticket_id)
        room = await self._existing(caller, ticket.id)
        try:
            still = await room.capture_still(track_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        return await self.desk.file_attachment(
            ticket.id,
            "screenshot",
            "image/png",
            still.png,
            {
                "width": still.width,
                "height": still.height,
                "trackId": track_id,
                "source": self._source(room, track_id),
                "by": caller.agent.name,
            },
        )

    async def clip_start(self, caller: AgentCaller, ticket_id: str, track_id: str) -> str:
        room = await self._existing(caller, ticket_id)
        try:
            clip_id = await room.start_clip(track_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        ticket = await self.desk.ticket_for(caller, ticket_id)
        await self.desk.timeline(ticket, "clip.started", {"trackId": track_id, "clipId": clip_id})
        return clip_id

    async def clip_stop(self, caller: AgentCaller, ticket_id: str, clip_id: str) -> AttachmentInfo:
        room = await self._existing(caller, ticket_id)
        try:
            clip = await room.stop_clip(clip_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        meta: dict[str, Any] = {
            "durationS": round(clip.duration_s, 3),
            "frames": clip.frames,
            "width": clip.width,
            "height": clip.height,
            "trackId": clip.track_id,
            "by": caller.agent.name,
        }
        if clip.thumbnail_png:
            thumb = await self.desk.file_attachment(
                ticket_id, "thumbnail", "image/png", clip.thumbnail_png, {"of": clip_id}
            )
            meta["thumbnailId"] = thumb.id
        return await self.desk.file_attachment_path(
            ticket_id, "clip", clip.content_type, clip.path, meta
        )

    async def request_upload(self, caller: AgentCaller, ticket_id: str, note: str) -> None:
        ticket = await self._active(caller, ticket_id)
        agent = AgentRef(id=caller.agent.id, name=caller.agent.name)
        await self.desk.timeline(ticket, "upload.requested", {"agent": agent.wire(), "note": note})
        await self.desk.tell(
            ticket, UploadRequested(ticket_id=ticket.id, agent=agent, note=note), "customer"
        )

    async def upload(
        self, caller: CustomerCaller, declared_type: str, body: AsyncIterable[bytes]
    ) -> AttachmentInfo:
        """A customer's photo or video, validated while it streams in, filed on the ticket."""
        ticket = await self.desk.ticket_for(caller, None)
        if ticket.status == "closed":
            raise DeskError("invalid_state", "the session has ended")
        live = self.desk.live
        if not await live.begin_upload(ticket.id, MAX_UPLOADS_IN_FLIGHT):
            raise DeskError("rate_limited", "another upload is still arriving; try again after it")
        try:
            limit = await self._upload_allowance(ticket, declared_type)
            upload = await media.receive_upload(
                body, declared_type, limit, self.desk.files.temp_dir()
            )
            return await self._file_upload(ticket, upload)
        finally:
            await live.end_upload(ticket.id)

    def _quota(self, ticket: TicketRecord) -> UploadQuota:
        """The ticket's upload quota (docs/security.md): a few files while the ticket waits for
        an agent, more once one has joined."""
        settings = self.settings
        return UploadQuota(
            kinds=tuple(sorted(UPLOAD_KINDS)),
            max_count=(
                settings.max_uploads_while_queued
                if ticket.status == "queued"
                else settings.max_uploads_per_ticket
            ),
            max_bytes=settings.max_upload_bytes_per_ticket,
        )

    async def _upload_allowance(self, ticket: TicketRecord, declared_type: str) -> int:
        """Bytes this upload may have, after the per-ticket quotas. Checked again, atomically,
        when the upload is filed (``_file_upload``): uploads arriving at once may pass here."""
        quota = self._quota(ticket)
        uploads = [
            a for a in await self.desk.store.attachments(ticket.id) if a.kind in UPLOAD_KINDS
        ]
        if len(uploads) >= quota.max_count:
            when = "before an agent joins" if ticket.status == "queued" else "on this ticket"
            raise DeskError("rate_limited", f"at most {quota.max_count} uploads {when}")
        left = quota.max_bytes - sum(a.size for a in uploads)
        if left <= 0:
            raise DeskError("too_large", "this ticket's upload quota is used up")
        cap = MAX_VIDEO_UPLOAD if declared_type.startswith("video/") else MAX_IMAGE_UPLOAD
        return min(cap, left)

    async def _file_upload(
        self, ticket: TicketRecord, upload: media.ValidatedUpload
    ) -> AttachmentInfo:
        meta: dict[str, Any] = {
            "width": upload.width,
            "height": upload.height,
            "originalSha256": upload.original_sha256,
            "removed": list(upload.removed_metadata),
        }
        if upload.duration_s is not None:
            meta["durationS"] = round(upload.duration_s, 3)
        if upload.thumbnail_png and upload.content_type.startswith("video/"):
            # A photo is its own preview; a video gets a still of its first frame.
            thumb = await self.desk.file_attachment(
                ticket.id, "thumbnail", "image/png", upload.thumbnail_png, {"of": upload.upload_id}
            )
            meta["thumbnailId"] = thumb.id
        kind = "video" if upload.content_type.startswith("video/") else "photo"
        # The ticket as it is now: an agent may have joined while the upload arrived.
        current = await self.desk.store.ticket(ticket.id) or ticket
        return await self.desk.file_attachment_path(
            ticket.id, kind, upload.content_type, upload.path, meta, self._quota(current)
        )

    # ------------------------------------------------------------------ lifecycle

    async def on_ticket_closed(self, ticket_id: str) -> None:
        room = self._rooms.pop(ticket_id, None)
        self._joined = {(t, p) for t, p in self._joined if t != ticket_id}
        if room is not None:
            await room.close()

    async def close(self) -> None:
        for ticket_id in list(self._rooms):
            await self.on_ticket_closed(ticket_id)

    async def _room(self, ticket: TicketRecord) -> media.MediaRoom:
        async with self._lock:
            room = self._rooms.get(ticket.id)
            if room is None:
                hosts = list(self.settings.media_host_addresses) or None
                room = media.MediaRoom(
                    ticket.id,
                    [],  # clients bring STUN/TURN; the server's own candidates are host ones
                    lambda pid, msg: self._signal(ticket.id, pid, msg),
                    host_addresses=hosts,
                    clip_dir=self.desk.files.temp_dir(),
                )
                self._rooms[ticket.id] = room
            return room

    async def _existing(self, caller: Caller, ticket_id: str | None) -> media.MediaRoom:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        room = self._rooms.get(ticket.id)
        if room is None:
            raise DeskError("invalid_state", "no call in this session yet (send rtc.offer)")
        return room

    async def _active(self, caller: Caller, ticket_id: str | None) -> TicketRecord:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        if ticket.status != "active":
            raise DeskError("invalid_state", "calls need an active session")
        return ticket

    async def _signal(self, ticket_id: str, pid: str, message: dict[str, Any]) -> None:
        channel: media.Channel = "cobrowse" if pid.endswith(COBROWSE_SUFFIX) else "call"
        person = pid.removesuffix(COBROWSE_SUFFIX)
        agent_id = person.removeprefix("agent:")
        rooms = [customer_room(ticket_id)] if person == "customer" else [agent_room(agent_id)]
        kind = message.get("type")
        if kind == "rtc.offer":
            await self.desk.broadcaster.emit(
                RtcOfferOut(
                    ticket_id=ticket_id,
                    sdp=message["sdp"],
                    tracks=message["tracks"],
                    channel=channel,
                ),
                rooms,
            )
        elif kind == "media.tracks":
            await self.desk.broadcaster.emit(
                MediaTracks(ticket_id=ticket_id, tracks=message["tracks"], channel=channel),
                rooms,
            )
        else:
            log.warning("unexpected media signal %r", kind)

    @staticmethod
    def _source(room: media.MediaRoom, track_id: str) -> str | None:
        return next((t.source for t in room.tracks() if t.track_id == track_id), None)


async def chunks_of(stream: Any, size: int = 64 * 1024) -> AsyncIterable[bytes]:
    """An aiohttp request body as chunks (never more than ``size`` bytes buffered)."""
    async for chunk in stream.iter_chunked(size):
        yield chunk
