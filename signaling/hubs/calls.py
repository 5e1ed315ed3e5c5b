"""Calls in a support session: one ``media.MediaRoom`` per ticket, wired to sockets and tickets.

Participants are ``customer`` and ``agent:<id>``; each holds one peer connection to the
session's home node (``home.Home``), whichever node their socket is on, per channel
(``media.Channel``): the call's, and the co-browse one that carries the customer's page elements
(``<video>`` streams) to the agents' co-browse view, whose participants are
``customer/cobrowse`` and ``agent:<id>/cobrowse``. The co-browse channel needs the customer to be
sharing their page (that consent covers it) and is closed when they stop.
Offers, answers and candidates travel over the session's sockets; what the room sends on its own
(server offers, track lists) goes to the participant's room. Captures and clips are filed on the
ticket as attachments, like customer uploads.

Invitations (``call.invite``, ``call.accept``, ``call.decline``) ring one at a time per session;
the ringing one is in live state, so any node answers it. A socket that closes ends the media
leg it negotiated at once (``socket_gone``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterable, Mapping
from typing import Any, Literal

import media
from signaling.desk import (
    AgentCaller,
    Caller,
    CustomerCaller,
    Desk,
    DeskError,
    access,
    iso,
)
from signaling.desk.rooms import agent_room, customer_room
from signaling.hubs.home import Home
from signaling.live.placement import Lease
from signaling.protocol import (
    AgentRef,
    AttachmentInfo,
    CallAsk,
    CallInvited,
    CallInviteEnded,
    CallInviteInfo,
    CallReoffer,
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

ASK_SOURCE: dict[str, str] = {"voice": "microphone", "camera": "camera", "screen": "screen"}
"""What the invited party sends once it accepts an invitation."""
ASK_WORDS: dict[str, str] = {
    "voice": "with their microphone",
    "camera": "with their camera",
    "screen": "sharing their screen",
}


InviteOutcome = Literal["accepted", "declined", "expired", "ended"]


def _invite_key(ticket_id: str) -> str:
    """The ringing invitation of a session, in live state (any node answers it)."""
    return f"call-invite:{ticket_id}"


SHARED_SOURCES = frozenset({"camera", "screen"})
"""Track sources whose first offer in a call goes on the timeline (``call.shared``)."""


def participant_id(caller: Caller, channel: media.Channel = "call") -> str:
    base = "customer" if isinstance(caller, CustomerCaller) else f"agent:{caller.agent.id}"
    return base + COBROWSE_SUFFIX if channel == "cobrowse" else base


def _channel(args: dict[str, Any]) -> media.Channel:
    """The channel a forwarded request names (validated at the edge; "call" when absent)."""
    return "cobrowse" if args.get("channel") == "cobrowse" else "call"


def _agent_name(caller: Caller) -> str:
    return caller.agent.name if isinstance(caller, AgentCaller) else "customer"


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
    """The media room of each session lives on the session's home node (``home.Home``): the
    methods below validate on the socket's node, then run the room work on the home node."""

    def __init__(self, desk: Desk, settings: Settings, home: Home) -> None:
        self.desk = desk
        self.settings = settings
        self.home = home
        self._rooms: dict[str, tuple[int, media.MediaRoom]] = {}
        """The media room of each session this node is home to, with the lease epoch."""
        self._joined: set[tuple[str, str]] = set()
        """(ticket, participant) pairs already in the call: renegotiations are not joins."""
        self._sockets: dict[tuple[str, str], str] = {}
        """(ticket, participant) -> the socket that last offered for it: the one whose going
        ends that participant's media leg (``socket_gone``)."""
        self._shared: set[tuple[str, str, str]] = set()
        """(ticket, participant, source) already on the timeline as shared (camera, screen):
        a renegotiation carrying the same source again is not a new share."""
        self._lock = asyncio.Lock()
        home.serve("calls.offer", self._offer_here)
        home.serve("calls.answer", self._answer_here)
        home.serve("calls.candidate", self._candidate_here)
        home.serve("calls.track", self._track_here)
        home.serve("calls.leave", self._leave_here)
        home.serve("calls.still", self._still_here)
        home.serve("calls.clip_start", self._clip_start_here)
        home.serve("calls.clip_stop", self._clip_stop_here)
        home.serve("calls.present", self._present_here)
        home.serve("calls.arm_invite", self._arm_invite_here)
        home.on_close.append(self.on_ticket_closed)
        home.on_lost.append(self.on_ticket_closed)
        home.on_hand_over.append(self.hand_over)
        home.on_taken.append(self._taken)
        desk.on_agent_left.append(self.agent_left)
        self._expiries: set[asyncio.Task[None]] = set()

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
        args = {"sdp": sdp, "labels": labels, "channel": channel, "elements": elements}
        reply = await self.home.run("calls.offer", caller, ticket, args)
        return str(reply["sdp"])

    async def _offer_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        room = await self._room(ticket, lease)
        role: media.Role = "customer" if isinstance(caller, CustomerCaller) else "agent"
        channel = _channel(args)
        elements = {str(mid): int(node) for mid, node in (args.get("elements") or {}).items()}
        pid = participant_id(caller, channel)
        if caller.sid:
            self._sockets[(ticket.id, pid)] = caller.sid
        try:
            answer = await room.handle_offer(
                pid,
                role,
                str(args["sdp"]),
                dict(args["labels"]),
                channel=channel,
                elements=elements,
            )
        except media.MediaError as exc:
            raise media_error(exc) from None
        if (ticket.id, pid) not in self._joined:
            self._joined.add((ticket.id, pid))
            if channel == "call":  # the co-browse channel is part of co-browse, not a call
                await self.desk.timeline(ticket, "call.joined", {"participant": pid}, lease.epoch)
                await self._weigh(caller, ticket, in_call=True)
        if channel == "call":
            await self._note_shares(ticket, pid, args["labels"], lease)
        return {"sdp": answer}

    async def _note_shares(
        self, ticket: TicketRecord, pid: str, labels: Mapping[str, str], lease: Lease
    ) -> None:
        """A participant's camera or screen first offered in this call goes on the timeline
        (``call.shared {participant, source}``), so the ticket says who showed what."""
        for source in sorted({label for label in labels.values() if label in SHARED_SOURCES}):
            if (ticket.id, pid, source) in self._shared:
                continue
            self._shared.add((ticket.id, pid, source))
            data = {"participant": pid, "source": source}
            await self.desk.timeline(ticket, "call.shared", data, lease.epoch)

    async def answer(
        self, caller: Caller, ticket_id: str | None, sdp: str, channel: media.Channel = "call"
    ) -> None:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        await self.home.run("calls.answer", caller, ticket, {"sdp": sdp, "channel": channel})

    async def _answer_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        room = self._existing(ticket, lease)
        try:
            await room.handle_answer(participant_id(caller, _channel(args)), str(args["sdp"]))
        except media.MediaError as exc:
            raise media_error(exc) from None
        return {}

    async def candidate(
        self,
        caller: Caller,
        ticket_id: str | None,
        candidate: dict[str, Any] | None,
        channel: media.Channel = "call",
    ) -> None:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        args = {"candidate": candidate, "channel": channel}
        await self.home.run("calls.candidate", caller, ticket, args)

    async def _candidate_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        room = self._existing(ticket, lease)
        try:
            await room.add_ice_candidate(participant_id(caller, _channel(args)), args["candidate"])
        except media.MediaError as exc:
            raise media_error(exc) from None
        return {}

    async def update_track(
        self,
        caller: Caller,
        ticket_id: str | None,
        ref: str,
        source: str | None,
        muted: bool | None,
    ) -> None:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        args = {"ref": ref, "source": source, "muted": muted}
        await self.home.run("calls.track", caller, ticket, args)

    async def _track_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        room = self._existing(ticket, lease)
        info = room.update_track(
            participant_id(caller), str(args["ref"]), source=args["source"], muted=args["muted"]
        )
        if info is None:
            raise DeskError("not_found", "no such track of yours")
        return {}

    async def leave(
        self, caller: Caller, ticket_id: str | None, channel: media.Channel = "call"
    ) -> None:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        if await self.home.placement.current(ticket.id) is None:
            return  # no home node: no call to leave (and none is started for it)
        await self.home.run("calls.leave", caller, ticket, {"channel": channel})

    async def _leave_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        channel = _channel(args)
        held = self._rooms.get(ticket.id)
        pid = participant_id(caller, channel)
        gone = args.get("socketGone")
        if gone is not None and self._sockets.get((ticket.id, pid)) != gone:
            return {}  # another socket (the page after a reload) holds the call now
        self._shared = {(t, p, x) for t, p, x in self._shared if (t, p) != (ticket.id, pid)}
        if held is not None and (ticket.id, pid) in self._joined:
            self._joined.discard((ticket.id, pid))
            self._sockets.pop((ticket.id, pid), None)
            await held[1].remove_participant(pid)
            if channel == "call":
                data = {"participant": pid}
                if gone is not None:
                    data["reason"] = "disconnected"
                await self.desk.timeline(ticket, "call.left", data, lease.epoch)
        if channel == "call":
            # Also when this home never saw them join (the call began on a home that went).
            await self._weigh(caller, ticket, in_call=False)
        return {}

    async def _weigh(self, caller: Caller, ticket: TicketRecord, in_call: bool) -> None:
        """An agent in a call carries more load (``--call-weight``): routing hears of it."""
        router = self.desk.router
        if router is None or not isinstance(caller, AgentCaller):
            return
        if await router.loads.mark(ticket.id, caller.agent.id, "call", in_call):
            await router.load_changed(caller.agent.id)

    async def socket_gone(self, caller: Caller) -> None:
        """A socket closed (a reload, a closed tab, a lost network). If it is the one that
        negotiated its participant's call, that media leg ends now, rather than when ICE gives
        up minutes later: the others see its tracks go and ``call.left`` (reason
        ``disconnected``) on the timeline. A reloaded page that was in the call joins again
        with a new socket."""
        if not caller.sid or (isinstance(caller, CustomerCaller) and caller.ticket_id is None):
            return
        tickets = (
            [caller.ticket_id]
            if isinstance(caller, CustomerCaller)
            else sorted(await self.desk.live.sessions_of(caller.agent.id))
        )
        for ticket_id in tickets:
            if ticket_id is None:
                continue
            try:
                ticket = await self.desk.store.ticket(ticket_id)
                if ticket is None or ticket.status != "active":
                    continue
                if await self.home.placement.current(ticket.id) is None:
                    continue
                args = {"channel": "call", "socketGone": caller.sid}
                await self.home.run("calls.leave", caller, ticket, args)
            except DeskError as exc:
                log.info("%s: ending the call leg of socket %s: %s", ticket_id, caller.sid, exc)

    async def agent_left(self, ticket: TicketRecord, caller: AgentCaller) -> None:
        """An agent handed the session over: they leave the media room (the customer's
        connection, and so their media, stays as it is)."""
        for channel in ("call", "cobrowse"):
            try:
                await self.leave(caller, ticket.id, channel)
            except DeskError as exc:
                log.info("%s: %s leaving %s: %s", ticket.id, caller.agent.id, channel, exc.message)

    async def end_cobrowse_channel(self, ticket_id: str) -> None:
        """Co-browse stopped (on this, its home node): every co-browse connection of the session
        is closed (the customer's consent to show page elements ended with it)."""
        held = self._rooms.get(ticket_id)
        gone = {(t, p) for t, p in self._joined if t == ticket_id and p.endswith(COBROWSE_SUFFIX)}
        self._joined -= gone
        for key in gone:
            self._sockets.pop(key, None)
        if held is not None:
            for _ticket, pid in gone:
                await held[1].remove_participant(pid)

    # ------------------------------------------------------------------ invitations

    async def invite(self, caller: Caller, ticket_id: str | None, ask: CallAsk) -> CallInviteInfo:
        """An agent of the session invites the customer (or asks for their camera or screen), or
        the customer asks the agents for a call. One invitation rings per session at a time."""
        ticket = await self._active(caller, ticket_id)
        present = await self._present(caller, ticket)
        if isinstance(caller, CustomerCaller):
            if ask != "voice":
                raise DeskError("forbidden", "a customer can only ask for a call (ask: voice)")
            if any(pid.startswith("agent:") for pid in present):
                raise DeskError("invalid_state", "a call is already running: join it")
        else:
            if not access.is_member(caller.agent, ticket):
                raise DeskError("forbidden", "only agents in the session can invite")
            if ASK_SOURCE[ask] in present.get("customer", ()):
                raise DeskError(
                    "invalid_state",
                    f"a call is already running: the customer is in it {ASK_WORDS[ask]}",
                )
        now = time.time()
        if await self.ringing(ticket.id, now) is not None:
            raise DeskError("invalid_state", "an invitation is already ringing in this session")
        agent = (
            AgentRef(id=caller.agent.id, name=caller.agent.name)
            if isinstance(caller, AgentCaller)
            else None
        )
        expires = now + self.settings.call_invite_seconds
        info = CallInviteInfo(
            id="ci_" + secrets.token_hex(8),
            ask=ask,
            **{"from": "agent" if agent else "customer"},
            agent=agent,
            expires_at=iso(expires),
        )
        await self.desk.live.set_routing(
            _invite_key(ticket.id), {"invite": info.wire(), "expires": expires}
        )
        await self.desk.timeline(
            ticket, "call.invited", {k: v for k, v in info.wire().items() if k != "expiresAt"}
        )
        await self.desk.tell(ticket, CallInvited(ticket_id=ticket.id, invite=info))
        # Its expiry is timed on the session's home node, which another node takes over if it
        # dies (``_taken`` arms it again there); the node taking the request may be any.
        arm = {"inviteId": info.id, "expires": expires}
        try:
            await self.home.run("calls.arm_invite", caller, ticket, arm)
        except DeskError:
            log.warning("home of %s out of reach: invitation %s timed here", ticket.id, info.id)
            self._arm_invite(ticket.id, info.id, expires)
        return info

    async def _arm_invite_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        self._arm_invite(ticket.id, str(args["inviteId"]), float(args["expires"]))
        return {}

    def _arm_invite(self, ticket_id: str, invite_id: str, expires: float) -> None:
        """End the invitation unanswered at ``expires`` (at once if that is past). Armed twice
        is harmless: one end wins (``_end_invite``), the other finds it gone."""
        after = max(0.0, expires - time.time())
        task = asyncio.ensure_future(self._expire(ticket_id, invite_id, after))
        self._expiries.add(task)
        task.add_done_callback(self._expiries.discard)

    async def answer_invite(
        self, caller: Caller, ticket_id: str | None, invite_id: str, accept: bool
    ) -> None:
        """The invited party accepts or declines: the inviter hears it at once."""
        ticket = await self.desk.ticket_for(caller, ticket_id)
        invite = await self.ringing(ticket.id, time.time())
        if invite is None or invite.id != invite_id:
            raise DeskError(
                "not_found", "no such invitation ringing (answered, declined or expired)"
            )
        invited_customer = invite.from_ == "agent"
        if invited_customer != isinstance(caller, CustomerCaller) or (
            isinstance(caller, AgentCaller) and not access.is_member(caller.agent, ticket)
        ):
            raise DeskError("forbidden", "only the invited party can answer an invitation")
        by = (
            AgentRef(id=caller.agent.id, name=caller.agent.name)
            if isinstance(caller, AgentCaller)
            else None
        )
        reason: InviteOutcome = "accepted" if accept else "declined"
        if not await self._end_invite(ticket, invite, reason, by):
            raise DeskError("not_found", "the invitation was answered already")

    async def ringing(self, ticket_id: str, now: float) -> CallInviteInfo | None:
        """The session's invitation if one rings now."""
        key = _invite_key(ticket_id)
        held = (await self.desk.live.routing_of([key])).get(key)
        if not held or float(held.get("expires", 0)) <= now:
            return None
        return CallInviteInfo.model_validate(held["invite"])

    async def _end_invite(
        self,
        ticket: TicketRecord,
        invite: CallInviteInfo,
        reason: InviteOutcome,
        by: AgentRef | None,
    ) -> bool:
        """Stop an invitation ringing; False if another answer (or the expiry) came first. The
        one winner is whoever takes its lock first, on any node."""
        if await self.desk.live.acquire(f"call-invite-end:{invite.id}", 600) is None:
            return False
        key = _invite_key(ticket.id)
        held = (await self.desk.live.routing_of([key])).get(key)
        if held and held.get("invite", {}).get("id") == invite.id:
            await self.desk.live.drop_routing([key])  # gone, not left empty
        data: dict[str, Any] = {"inviteId": invite.id, "ask": invite.ask, "reason": reason}
        if by is not None:
            data["by"] = by.wire()
        await self.desk.timeline(ticket, "call.invite.ended", data)
        await self.desk.tell(
            ticket,
            CallInviteEnded(
                ticket_id=ticket.id, invite_id=invite.id, ask=invite.ask, reason=reason, by=by
            ),
        )
        return True

    async def _expire(self, ticket_id: str, invite_id: str, after: float) -> None:
        """Ends the invitation unanswered at its expiry (on the session's home node; clients
        stop ringing at ``expiresAt`` anyway, and the server treats it as over then)."""
        await asyncio.sleep(after)
        try:
            ticket = await self.desk.store.ticket(ticket_id)
            key = _invite_key(ticket_id)
            held = (await self.desk.live.routing_of([key])).get(key)
            if ticket is None or not held or held.get("invite", {}).get("id") != invite_id:
                return
            invite = CallInviteInfo.model_validate(held["invite"])
            reason: InviteOutcome = "expired" if ticket.status == "active" else "ended"
            await self._end_invite(ticket, invite, reason, None)
        except Exception:
            log.exception("could not expire call invitation %s of %s", invite_id, ticket_id)

    async def _present(self, caller: Caller, ticket: TicketRecord) -> dict[str, list[str]]:
        """Who is in the session's call now, with what they send (from its home node)."""
        if await self.home.placement.current(ticket.id) is None:
            return {}
        reply = await self.home.run("calls.present", caller, ticket, {})
        return {str(pid): [str(s) for s in sources] for pid, sources in reply.items()}

    async def _present_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        held = self._rooms.get(ticket.id)
        if held is None or held[0] != lease.epoch:
            return {}
        inside: dict[str, list[str]] = {
            pid: []
            for t, pid in self._joined
            if t == ticket.id and not pid.endswith(COBROWSE_SUFFIX)
        }
        for track in held[1].tracks():
            if track.participant_id in inside:
                inside[track.participant_id].append(track.source)
        return inside

    # ------------------------------------------------------------------ captures

    async def still(self, caller: AgentCaller, ticket_id: str, track_id: str) -> AttachmentInfo:
        ticket = await self._active(caller, ticket_id)
        reply = await self.home.run("calls.still", caller, ticket, {"track": track_id})
        return AttachmentInfo.model_validate(reply)

    async def _still_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        track_id = str(args["track"])
        room = self._existing(ticket, lease)
        try:
            still = await room.capture_still(track_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        info = await self.desk.file_attachment(
            ticket.id,
            "screenshot",
            "image/png",
            still.png,
            {
                "width": still.width,
                "height": still.height,
                "trackId": track_id,
                "source": self._source(room, track_id),
                "by": _agent_name(caller),
            },
            epoch=lease.epoch,
        )
        return info.wire()

    async def clip_start(self, caller: AgentCaller, ticket_id: str, track_id: str) -> str:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        reply = await self.home.run("calls.clip_start", caller, ticket, {"track": track_id})
        return str(reply["clipId"])

    async def _clip_start_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        track_id = str(args["track"])
        room = self._existing(ticket, lease)
        try:
            clip_id = await room.start_clip(track_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        await self.desk.timeline(
            ticket, "clip.started", {"trackId": track_id, "clipId": clip_id}, lease.epoch
        )
        return {"clipId": clip_id}

    async def clip_stop(self, caller: AgentCaller, ticket_id: str, clip_id: str) -> AttachmentInfo:
        ticket = await self.desk.ticket_for(caller, ticket_id)
        reply = await self.home.run("calls.clip_stop", caller, ticket, {"clip": clip_id})
        return AttachmentInfo.model_validate(reply)

    async def _clip_stop_here(
        self, caller: Caller, ticket: TicketRecord, lease: Lease, args: dict[str, Any]
    ) -> dict[str, Any]:
        clip_id = str(args["clip"])
        room = self._existing(ticket, lease)
        try:
            clip = await room.stop_clip(clip_id)
        except media.MediaError as exc:
            raise media_error(exc) from None
        info = await self._file_clip(ticket.id, clip_id, clip, _agent_name(caller), lease.epoch)
        return info.wire()

    async def _file_clip(
        self, ticket_id: str, clip_id: str, clip: media.Clip, by: str, epoch: int
    ) -> AttachmentInfo:
        meta: dict[str, Any] = {
            "durationS": round(clip.duration_s, 3),
            "frames": clip.frames,
            "width": clip.width,
            "height": clip.height,
            "trackId": clip.track_id,
            "by": by,
        }
        if clip.thumbnail_png:
            thumb = await self.desk.file_attachment(
                ticket_id, "thumbnail", "image/png", clip.thumbnail_png, {"of": clip_id}, epoch
            )
            meta["thumbnailId"] = thumb.id
        return await self.desk.file_attachment_path(
            ticket_id, "clip", clip.content_type, clip.path, meta, epoch=epoch
        )

    async def hand_over(self, ticket_id: str) -> None:
        """This node gives the session up (draining): clips recording now are closed as far as
        they got and filed, then the room goes (the new home re-offers the call)."""
        held = self._rooms.get(ticket_id)
        if held is not None:
            epoch, room = held
            for clip_id in room.clip_ids():
                try:
                    clip = await room.stop_clip(clip_id)
                    await self._file_clip(ticket_id, clip_id, clip, "system", epoch)
                except Exception:
                    log.exception("could not file clip %s of %s", clip_id, ticket_id)
        await self.on_ticket_closed(ticket_id)

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
        """The session ended, or this node is no longer its home: the room goes."""
        held = self._rooms.pop(ticket_id, None)
        self._joined = {(t, p) for t, p in self._joined if t != ticket_id}
        self._sockets = {k: sid for k, sid in self._sockets.items() if k[0] != ticket_id}
        self._shared = {(t, p, x) for t, p, x in self._shared if t != ticket_id}
        if held is not None:
            await held[1].close()

    async def _taken(self, ticket: TicketRecord, lease: Lease) -> None:
        """This node became the home of a session whose earlier home is gone: an invitation
        ringing is timed here now; if a call was going, its peer connections ended with that
        node, so everyone in it offers again."""
        if ticket.status != "active":
            return
        key = _invite_key(ticket.id)
        held = (await self.desk.live.routing_of([key])).get(key)
        if held and held.get("invite", {}).get("id"):
            self._arm_invite(ticket.id, str(held["invite"]["id"]), float(held.get("expires", 0)))
        if not await self._call_going(ticket.id):
            return
        await self.desk.timeline(ticket, "call.moved", {"epoch": lease.epoch}, lease.epoch)
        # Numbered: a client reconnecting at this moment gets it on resume.
        await self.desk.tell(ticket, CallReoffer(ticket_id=ticket.id, reason="home_moved"))

    async def _call_going(self, ticket_id: str) -> bool:
        """Whether anyone is in the session's call, by its timeline (the room died with the
        earlier home node)."""
        inside: set[str] = set()
        for entry in await self.desk.store.timeline(ticket_id):
            who = entry.data.get("participant")
            if entry.type == "call.joined":
                inside.add(str(who))
            elif entry.type == "call.left":
                inside.discard(str(who))
            elif entry.type == "call.moved":
                inside = set()  # re-offered participants join again
        return bool(inside)

    async def close(self) -> None:
        for task in list(self._expiries):
            task.cancel()
        for ticket_id in list(self._rooms):
            await self.on_ticket_closed(ticket_id)

    async def _room(self, ticket: TicketRecord, lease: Lease) -> media.MediaRoom:
        async with self._lock:
            held = self._rooms.get(ticket.id)
            if held is not None and held[0] == lease.epoch:
                return held[1]
            if held is not None:
                await self.on_ticket_closed(ticket.id)
            hosts = list(self.settings.media_host_addresses) or None
            room = media.MediaRoom(
                ticket.id,
                [],  # clients bring STUN/TURN; the server's own candidates are host ones
                lambda pid, msg: self._signal(ticket.id, pid, msg),
                host_addresses=hosts,
                clip_dir=self.desk.files.temp_dir(),
            )
            self._rooms[ticket.id] = (lease.epoch, room)
            return room

    def _existing(self, ticket: TicketRecord, lease: Lease) -> media.MediaRoom:
        held = self._rooms.get(ticket.id)
        if held is None or held[0] != lease.epoch:
            raise DeskError("invalid_state", "no call in this session yet (send rtc.offer)")
        return held[1]

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
