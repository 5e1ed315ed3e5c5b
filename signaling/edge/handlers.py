"""What each role's client events do: thin calls into the desk and the hubs.

Handlers are found by name, as python-socketio namespaces find theirs: event ``chat.send`` is
``on_chat_send`` of the sender's role (``CustomerEvents`` or ``AgentEvents``; events both roles
send live in ``SharedEvents``). Which roles may send an event is declared once, on its model
(``ClientEvent.senders``); ``routes()`` pairs the two and refuses to start if they disagree.
A handler gets the socket's ``Connection`` (its caller already typed for the role) and the
validated message, and returns the ack, or None for a bare ``{ok: true}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from signaling.desk import AgentCaller, Caller, CustomerCaller, Desk, DeskError
from signaling.desk.rooms import customer_room
from signaling.edge.ratelimit import TokenBucket
from signaling.edge.socketserver import GuardedServer
from signaling.hubs.calls import CallHub
from signaling.hubs.cobrowse import CobrowseHub
from signaling.protocol import (
    CLIENT_EVENTS,
    AgentList,
    AgentListAck,
    AgentStatusSet,
    AttachmentAck,
    CallAccept,
    CallDecline,
    CallInvite,
    CallInviteAck,
    CaptureStill,
    ChatAck,
    ChatSend,
    ChatTyping,
    ClientEvent,
    ClipStart,
    ClipStarted,
    ClipStop,
    CobrowseAccept,
    CobrowseAssetsSupply,
    CobrowseDecline,
    CobrowseEvents,
    CobrowseJoin,
    CobrowsePointer,
    CobrowseRequest,
    CobrowseStop,
    ContextUpdate,
    ControlActionRequest,
    ControlDeny,
    ControlGrantMsg,
    ControlRequest,
    ControlRevoke,
    HelpRequest,
    Message,
    NoteAck,
    NoteAdd,
    QueueList,
    QueueSnapshot,
    RtcAnswer,
    RtcAnswerAck,
    RtcCandidate,
    RtcJoin,
    RtcJoined,
    RtcLeave,
    RtcOffer,
    Sender,
    SessionAccept,
    SessionDecline,
    SessionEnd,
    SessionJoin,
    SessionList,
    SessionListAck,
    SessionResume,
    SessionTransfer,
    TrackUpdate,
    TransferCancel,
    UploadRequest,
)

C = TypeVar("C", bound=CustomerCaller | AgentCaller)


@dataclass
class Connection(Generic[C]):
    """What this node knows about one of its sockets (kept in the socket.io session)."""

    caller: C
    bucket: TokenBucket

    @property
    def sid(self) -> str:
        return self.caller.sid or ""


@dataclass(frozen=True)
class Hubs:
    """What handlers call: the domain, and the socket server for room and budget changes."""

    desk: Desk
    cobrowse: CobrowseHub
    calls: CallHub
    sio: GuardedServer


Route = tuple[type[ClientEvent], Callable[[Any, Any], Awaitable[Message | None]]]


class SharedEvents:
    """Events both customers and agents send (each checks its caller's right in the desk)."""

    def __init__(self, hubs: Hubs) -> None:
        self.desk = hubs.desk
        self.cobrowse = hubs.cobrowse
        self.calls = hubs.calls
        self.sio = hubs.sio

    async def on_session_resume(self, conn: Connection[Caller], msg: SessionResume) -> Message:
        return await self.desk.resume(
            conn.caller, msg.ticket_id, msg.after_message_id, msg.after_seq
        )

    async def on_chat_send(self, conn: Connection[Caller], msg: ChatSend) -> Message:
        message, new = await self.desk.chat(conn.caller, msg.ticket_id, msg.client_msg_id, msg.text)
        return ChatAck(message=message, duplicate=not new)

    async def on_chat_typing(self, conn: Connection[Caller], msg: ChatTyping) -> None:
        await self.desk.typing(conn.caller, msg.ticket_id, msg.typing)

    async def on_session_end(self, conn: Connection[Caller], msg: SessionEnd) -> None:
        await self.desk.end(conn.caller, msg.ticket_id)

    async def on_control_revoke(self, conn: Connection[Caller], msg: ControlRevoke) -> None:
        await self.cobrowse.control_revoke(conn.caller, msg.ticket_id)

    async def on_call_invite(self, conn: Connection[Caller], msg: CallInvite) -> Message:
        invite = await self.calls.invite(conn.caller, msg.ticket_id, msg.ask)
        return CallInviteAck(invite=invite)

    async def on_call_accept(self, conn: Connection[Caller], msg: CallAccept) -> None:
        await self.calls.answer_invite(conn.caller, msg.ticket_id, msg.invite_id, accept=True)

    async def on_call_decline(self, conn: Connection[Caller], msg: CallDecline) -> None:
        await self.calls.answer_invite(conn.caller, msg.ticket_id, msg.invite_id, accept=False)

    async def on_rtc_join(self, conn: Connection[Caller], msg: RtcJoin) -> Message:
        if msg.channel == "cobrowse":
            await self.cobrowse.require_sharing(conn.caller, msg.ticket_id)
        pid, servers = await self.calls.join(conn.caller, msg.ticket_id, msg.channel)
        return RtcJoined(ice_servers=servers, participant_id=pid)

    async def on_rtc_offer(self, conn: Connection[Caller], msg: RtcOffer) -> Message:
        if msg.channel == "cobrowse":
            await self.cobrowse.require_sharing(conn.caller, msg.ticket_id)
        answer = await self.calls.offer(
            conn.caller, msg.ticket_id, msg.sdp, msg.labels, msg.channel, msg.elements
        )
        return RtcAnswerAck(sdp=answer)

    async def on_rtc_answer(self, conn: Connection[Caller], msg: RtcAnswer) -> None:
        await self.calls.answer(conn.caller, msg.ticket_id, msg.sdp, msg.channel)

    async def on_rtc_candidate(self, conn: Connection[Caller], msg: RtcCandidate) -> None:
        await self.calls.candidate(conn.caller, msg.ticket_id, msg.candidate, msg.channel)

    async def on_rtc_leave(self, conn: Connection[Caller], msg: RtcLeave) -> None:
        await self.calls.leave(conn.caller, msg.ticket_id, msg.channel)

    async def on_media_track_update(self, conn: Connection[Caller], msg: TrackUpdate) -> None:
        await self.calls.update_track(conn.caller, msg.ticket_id, msg.ref, msg.source, msg.muted)


class CustomerEvents(SharedEvents):
    async def on_help_request(self, conn: Connection[CustomerCaller], msg: HelpRequest) -> Message:
        state, caller = await self.desk.request_help(conn.caller, msg)
        if caller.ticket_id != conn.caller.ticket_id:
            # The desk has put the socket in the new session's room already.
            if conn.caller.ticket_id:
                await self.sio.leave_room(conn.sid, customer_room(conn.caller.ticket_id))
            conn.caller = caller
        return state

    async def on_context_update(self, conn: Connection[CustomerCaller], msg: ContextUpdate) -> None:
        await self.desk.update_context(conn.caller, msg.context)

    async def on_cobrowse_accept(
        self, conn: Connection[CustomerCaller], msg: CobrowseAccept
    ) -> None:
        await self.cobrowse.accept(conn.caller, msg.v, msg.recorder)

    async def on_cobrowse_decline(
        self, conn: Connection[CustomerCaller], msg: CobrowseDecline
    ) -> None:
        await self.cobrowse.decline(conn.caller)

    async def on_cobrowse_events(
        self, conn: Connection[CustomerCaller], msg: CobrowseEvents
    ) -> None:
        try:
            await self.cobrowse.ingest(
                conn.caller, conn.sid, msg.data, msg.batch_id, msg.part, msg.parts, msg.checkpoint
            )
        except DeskError:
            # A refused batch was read and parsed for nothing: it costs the sender ten times
            # its size, so a stream of invalid batches is throttled at the frame, unread.
            self.sio.penalize(conn.sid, 10 * len(msg.data))
            raise

    async def on_cobrowse_assets_supply(
        self, conn: Connection[CustomerCaller], msg: CobrowseAssetsSupply
    ) -> None:
        await self.cobrowse.supply_assets(conn.caller, msg.assets)

    async def on_cobrowse_stop(self, conn: Connection[CustomerCaller], msg: CobrowseStop) -> None:
        await self.cobrowse.stop_by_customer(conn.caller)

    async def on_control_grant(
        self, conn: Connection[CustomerCaller], msg: ControlGrantMsg
    ) -> None:
        await self.cobrowse.control_grant(conn.caller, True)

    async def on_control_deny(self, conn: Connection[CustomerCaller], msg: ControlDeny) -> None:
        await self.cobrowse.control_grant(conn.caller, False)


class AgentEvents(SharedEvents):
    async def on_queue_list(self, conn: Connection[AgentCaller], msg: QueueList) -> Message:
        entries, waiting = await self.desk.queue(conn.caller, msg.limit, msg.after)
        return QueueSnapshot(entries=entries, waiting=waiting)

    async def on_session_accept(self, conn: Connection[AgentCaller], msg: SessionAccept) -> Message:
        return await self.desk.accept(conn.caller, msg.ticket_id)

    async def on_session_decline(self, conn: Connection[AgentCaller], msg: SessionDecline) -> None:
        await self.desk.decline(conn.caller, msg.ticket_id)

    async def on_agent_status(self, conn: Connection[AgentCaller], msg: AgentStatusSet) -> None:
        await self.desk.set_status(conn.caller, msg.status, msg.reason)

    async def on_session_join(self, conn: Connection[AgentCaller], msg: SessionJoin) -> Message:
        return await self.desk.join(conn.caller, msg.ticket_id)

    async def on_session_transfer(
        self, conn: Connection[AgentCaller], msg: SessionTransfer
    ) -> None:
        await self.desk.transfers.transfer(
            conn.caller, msg.ticket_id, msg.to.agent_id, msg.to.queue, msg.mode, msg.note
        )

    async def on_transfer_cancel(self, conn: Connection[AgentCaller], msg: TransferCancel) -> None:
        await self.desk.transfers.cancel(conn.caller, msg.ticket_id)

    async def on_agent_list(self, conn: Connection[AgentCaller], msg: AgentList) -> Message:
        return AgentListAck(agents=await self.desk.transfers.online())

    async def on_session_list(self, conn: Connection[AgentCaller], msg: SessionList) -> Message:
        return SessionListAck(sessions=await self.desk.sessions(conn.caller))

    async def on_cobrowse_request(
        self, conn: Connection[AgentCaller], msg: CobrowseRequest
    ) -> None:
        await self.cobrowse.request(conn.caller, msg.ticket_id)

    async def on_cobrowse_join(self, conn: Connection[AgentCaller], msg: CobrowseJoin) -> Message:
        return await self.cobrowse.join(conn.caller, msg.ticket_id)

    async def on_cobrowse_pointer(
        self, conn: Connection[AgentCaller], msg: CobrowsePointer
    ) -> None:
        await self.cobrowse.pointer(conn.caller, msg.ticket_id, msg.x, msg.y, msg.mode)

    async def on_control_request(self, conn: Connection[AgentCaller], msg: ControlRequest) -> None:
        await self.cobrowse.control_request(conn.caller, msg.ticket_id)

    async def on_control_action(
        self, conn: Connection[AgentCaller], msg: ControlActionRequest
    ) -> None:
        await self.cobrowse.control_action(conn.caller, msg.ticket_id, msg.action)

    async def on_capture_still(self, conn: Connection[AgentCaller], msg: CaptureStill) -> Message:
        still = await self.calls.still(conn.caller, msg.ticket_id, msg.track_id)
        return AttachmentAck(attachment=still)

    async def on_capture_clip_start(self, conn: Connection[AgentCaller], msg: ClipStart) -> Message:
        clip_id = await self.calls.clip_start(conn.caller, msg.ticket_id, msg.track_id)
        return ClipStarted(clip_id=clip_id)

    async def on_capture_clip_stop(self, conn: Connection[AgentCaller], msg: ClipStop) -> Message:
        clip = await self.calls.clip_stop(conn.caller, msg.ticket_id, msg.clip_id)
        return AttachmentAck(attachment=clip)

    async def on_upload_request(self, conn: Connection[AgentCaller], msg: UploadRequest) -> None:
        await self.calls.request_upload(conn.caller, msg.ticket_id, msg.note)

    async def on_note_add(self, conn: Connection[AgentCaller], msg: NoteAdd) -> Message:
        note, new = await self.desk.notes.add(
            conn.caller, msg.ticket_id, msg.text, msg.client_note_id
        )
        return NoteAck(note=note, duplicate=not new)


def handler_name(event: str) -> str:
    return "on_" + event.replace(".", "_")


def routes(hubs: Hubs) -> dict[Sender, dict[str, Route]]:
    """Per role, every event it may send with its model and handler. Raises if an event's
    declared senders and the handler classes disagree, so a mismatch cannot start."""
    handlers: dict[Sender, SharedEvents] = {
        "customer": CustomerEvents(hubs),
        "agent": AgentEvents(hubs),
    }
    table: dict[Sender, dict[str, Route]] = {role: {} for role in handlers}
    for name, model in CLIENT_EVENTS.items():
        for role, events in handlers.items():
            handler = getattr(events, handler_name(name), None)
            if role in model.senders and handler is None:
                raise TypeError(f"{type(events).__name__} has no {handler_name(name)}")
            if role not in model.senders and handler is not None:
                raise TypeError(f"{name} is handled for {role}s but not declared for them")
            if handler is not None:
                table[role][name] = (model, handler)
    known = {handler_name(name) for name in CLIENT_EVENTS}
    for events in handlers.values():
        strays = {n for n in dir(events) if n.startswith("on_")} - known
        if strays:
            raise TypeError(f"handlers without an event: {sorted(strays)}")
    return table
