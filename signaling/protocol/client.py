"""Client events (client -> server), one model per socket.io event, and ``CLIENT_EVENTS``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from signaling.protocol.base import (
    MAX_CHAT_TEXT,
    MAX_ROW_ID,
    MAX_SEQ,
    Id,
    Message,
    NotBlank,
    ShortText,
    Url,
)
from signaling.protocol.handshake import ClientEvent, Inbound, Senders
from signaling.protocol.values import ContextPacket, ContextPatch, CustomerIdentity


class HelpRequest(ClientEvent):
    """Customer asks for help: a ticket exists as soon as the ack arrives."""

    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["help.request"] = "help.request"
    context: ContextPacket
    identity: CustomerIdentity | None = None
    previous_token: Annotated[str, Field(max_length=4096)] | None = None
    """The customer's token of an earlier, closed session (even an expired one): the new
    ticket links that ticket. A socket that connected with such a token links it anyway."""


class SessionResume(ClientEvent):
    """Re-enter a session after a reload or reconnect; the ack carries the state."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["session.resume"] = "session.resume"
    ticket_id: Id | None = None
    """Agents name the ticket; customers may omit it (their token names it)."""
    after_message_id: Annotated[int, Field(ge=0, le=MAX_ROW_ID)] = 0
    """Only transcript lines with a greater id are returned."""
    after_seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = None
    """The last ``seq`` the client applied for this session: the ack replays every session event
    after it (``events``), or, when the server no longer holds them, is a snapshot."""


class ChatSend(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["chat.send"] = "chat.send"
    ticket_id: Id | None = None
    client_msg_id: Id
    """Chosen by the client; a resend with the same id never duplicates the message."""
    text: Annotated[str, Field(min_length=1, max_length=MAX_CHAT_TEXT), NotBlank]


class ChatTyping(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["chat.typing"] = "chat.typing"
    ticket_id: Id | None = None
    typing: bool


class ContextUpdate(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["context.update"] = "context.update"
    context: ContextPatch


class SessionEnd(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["session.end"] = "session.end"
    ticket_id: Id | None = None


class QueueList(ClientEvent):
    """The waiting sessions, oldest first, a page at a time."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["queue.list"] = "queue.list"
    limit: Annotated[int, Field(ge=1, le=1000)] = 200
    after: Id | None = None
    """The last ticket id of the previous page."""


class SessionAccept(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["session.accept"] = "session.accept"
    ticket_id: Id


class SessionJoin(ClientEvent):
    """A supervisor (or admin) joins a live session to observe or assist."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["session.join"] = "session.join"
    ticket_id: Id


class SessionList(ClientEvent):
    """An agent's own open sessions, e.g. after reconnecting."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["session.list"] = "session.list"


class CobrowseRequest(ClientEvent):
    """An agent asks the customer to share their page."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["cobrowse.request"] = "cobrowse.request"
    ticket_id: Id


class CobrowseAccept(ClientEvent):
    """The customer agreed: recording starts (also sent again after each page load)."""

    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["cobrowse.accept"] = "cobrowse.accept"
    v: Annotated[int, Field(ge=1)] = 1
    """Co-browse stream version (``cobrowse.PROTOCOL_VERSION``)."""
    recorder: Annotated[str, Field(max_length=64)]
    """The recorder and its version, e.g. ``rrweb@2.0.0-alpha.20``."""


class CobrowseDecline(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["cobrowse.decline"] = "cobrowse.decline"


class CobrowseEvents(ClientEvent):
    """A batch of rrweb events as one JSON string (split in parts when over ~900 KB)."""

    raw_text: ClassVar[bool] = True
    senders: ClassVar[Senders] = frozenset({"customer"})
    cost: ClassVar[float] = 0.25
    max_frame: ClassVar[int] = 1_001_000
    in_reader: ClassVar[bool] = True
    type: Literal["cobrowse.events"] = "cobrowse.events"
    data: Annotated[str, Field(max_length=1_000_000)]
    batch_id: Id | None = None
    """Names the batch while its parts arrive; required when ``parts > 1``."""
    part: Annotated[int, Field(ge=0, le=15)] = 0
    parts: Annotated[int, Field(ge=1, le=16)] = 1
    checkpoint: bool = False
    """The batch answers ``cobrowse.snapshot_needed`` with a snapshot of the page the agents
    already follow (the same ``record()``, the same node ids): kept for joiners and the
    recording, not relayed to the agents following while the server holds a page. Set on
    every part; the last part's counts."""


class CobrowseStop(ClientEvent):
    """The customer stops sharing."""

    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["cobrowse.stop"] = "cobrowse.stop"


class CobrowseJoin(ClientEvent):
    """An agent opens the co-browse view: the ack brings the current page."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["cobrowse.join"] = "cobrowse.join"
    ticket_id: Id


class CobrowsePointer(ClientEvent):
    """The agent's pointer or a click-to-highlight, in the customer's page coordinates."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    cost: ClassVar[float] = 0.25
    type: Literal["cobrowse.pointer"] = "cobrowse.pointer"
    ticket_id: Id
    x: Annotated[float, Field(ge=0, le=1_000_000)]
    y: Annotated[float, Field(ge=0, le=1_000_000)]
    mode: Literal["move", "highlight", "hide"] = "move"


class ControlRequest(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["control.request"] = "control.request"
    ticket_id: Id


class ControlGrantMsg(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["control.grant"] = "control.grant"


class ControlDeny(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"customer"})
    type: Literal["control.deny"] = "control.deny"


class ControlRevoke(ClientEvent):
    """Either side ends remote control (the customer takes it back)."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["control.revoke"] = "control.revoke"
    ticket_id: Id | None = None


class ControlActionRequest(ClientEvent):
    """An agent's click, scroll, typing or key press on the customer's page."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["control.action"] = "control.action"
    ticket_id: Id
    action: dict[str, Any]
    """``{type: click|scroll|type|key, targetId, x?, y?, text?, key?, shift?}``; targetId is
    the rrweb node id in the mirror."""


class RtcJoin(ClientEvent):
    """Before the first offer: the ack carries the ICE servers (TURN credentials minted now)."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["rtc.join"] = "rtc.join"
    ticket_id: Id | None = None
    channel: Literal["call", "cobrowse"] = "call"
    """Which of the participant's connections: the call's, or the co-browse one that carries
    the customer's page elements (``<video>`` streams) to the agents' co-browse view."""


class RtcOffer(ClientEvent):
    """A client's SDP offer (first, or a renegotiation); the ack carries the answer."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["rtc.offer"] = "rtc.offer"
    ticket_id: Id | None = None
    sdp: Annotated[str, Field(max_length=100_000)]
    labels: dict[
        Annotated[str, Field(max_length=128)],
        Literal["camera", "screen", "microphone", "element"],
    ] = Field(default_factory=dict)
    """mid or track id -> what the track is (``element`` on the ``cobrowse`` channel only)."""
    channel: Literal["call", "cobrowse"] = "call"
    """Which of the participant's connections: the call's, or the co-browse one that carries
    the customer's page elements (``<video>`` streams) to the agents' co-browse view."""
    elements: Annotated[
        dict[Annotated[str, Field(max_length=128)], Annotated[int, Field(ge=1)]],
        Field(max_length=16),
    ] = Field(default_factory=dict)
    """On the ``cobrowse`` channel: mid -> the co-browse mirror's node id of the page element
    (a ``<video>``) that the track shows."""


class RtcAnswer(ClientEvent):
    """A client's answer to a server offer (``rtc.offer`` from the server)."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["rtc.answer"] = "rtc.answer"
    ticket_id: Id | None = None
    sdp: Annotated[str, Field(max_length=100_000)]
    channel: Literal["call", "cobrowse"] = "call"
    """Which of the participant's connections: the call's, or the co-browse one that carries
    the customer's page elements (``<video>`` streams) to the agents' co-browse view."""


class RtcCandidate(ClientEvent):
    """A trickled ICE candidate (``RTCIceCandidate.toJSON()``), or null at the end."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    cost: ClassVar[float] = 0.25
    type: Literal["rtc.candidate"] = "rtc.candidate"
    ticket_id: Id | None = None
    candidate: dict[str, Any] | None = None
    channel: Literal["call", "cobrowse"] = "call"
    """Which of the participant's connections: the call's, or the co-browse one that carries
    the customer's page elements (``<video>`` streams) to the agents' co-browse view."""


class RtcLeave(ClientEvent):
    """Hang up: the participant's peer connection is closed."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["rtc.leave"] = "rtc.leave"
    ticket_id: Id | None = None
    channel: Literal["call", "cobrowse"] = "call"
    """Which of the participant's connections: the call's, or the co-browse one that carries
    the customer's page elements (``<video>`` streams) to the agents' co-browse view."""


class TrackUpdate(ClientEvent):
    """Mute/unmute or relabel one of your tracks."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["media.track.update"] = "media.track.update"
    ticket_id: Id | None = None
    ref: Annotated[str, Field(max_length=128)]
    """Track id, mid, or the client's own track id."""
    source: Literal["camera", "screen", "microphone"] | None = None
    muted: bool | None = None


class CaptureStill(ClientEvent):
    """An agent captures the current frame of a video track onto the ticket."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["capture.still"] = "capture.still"
    ticket_id: Id
    track_id: Annotated[str, Field(max_length=128)]


class ClipStart(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["capture.clip.start"] = "capture.clip.start"
    ticket_id: Id
    track_id: Annotated[str, Field(max_length=128)]


class ClipStop(ClientEvent):
    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["capture.clip.stop"] = "capture.clip.stop"
    ticket_id: Id
    clip_id: Annotated[str, Field(max_length=128)]


class UploadRequest(ClientEvent):
    """An agent asks the customer for a photo or video."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["upload.request"] = "upload.request"
    ticket_id: Id
    note: Annotated[str, Field(max_length=200)] = ""


class AssetChunk(Message):
    """Bytes of one asset the server asked for, or all of them (base64, in parts when large),
    or why the browser could not get it."""

    id: Id
    """The ``id`` from ``cobrowse.assets.needed``."""
    content_type: Annotated[str, Field(max_length=100)] = ""
    """The response's ``Content-Type``; the server checks the bytes against it."""
    url: Url | None = None
    """Where the bytes finally came from (after redirects): a stylesheet's base URL."""
    data: Annotated[str, Field(max_length=920_000)] = ""
    part: Annotated[int, Field(ge=0, le=15)] = 0
    parts: Annotated[int, Field(ge=1, le=16)] = 1
    error: Annotated[str, Field(max_length=64)] | None = None
    """Set instead of ``data`` when the browser could not fetch it (the agent stops waiting)."""


class CobrowseAssetsSupply(ClientEvent):
    """The customer's browser sends assets the server could not fetch (``cobrowse.assets.needed``).
    Anything not asked for is ignored."""

    raw_text: ClassVar[bool] = True
    senders: ClassVar[Senders] = frozenset({"customer"})
    max_frame: ClassVar[int] = 1_001_000
    type: Literal["cobrowse.assets.supply"] = "cobrowse.assets.supply"
    assets: Annotated[list[AssetChunk], Field(max_length=64)]


class AgentStatusSet(ClientEvent):
    """The agent picks their status (one for all their tabs and nodes). Busy and Wrap-up are
    not chosen: they follow from the agent's sessions."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["agent.status"] = "agent.status"
    status: Literal["available", "away", "offline"]
    reason: ShortText | None = None
    """Why Away (``lunch``, ``training``...); ignored for the others."""


class SessionDecline(ClientEvent):
    """The agent declines the session offered to them (``session.offered``): it is offered to
    the next agent, never to them again."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["session.decline"] = "session.decline"
    ticket_id: Id


class TransferTarget(Inbound):
    """Where a transfer goes: one agent (``agentId``), or back to the site's queue (``queue``)."""

    agent_id: Id | None = None
    queue: bool = False


class SessionTransfer(ClientEvent):
    """An agent of the session (or a supervisor) hands it to another agent or to the queue.

    ``warm``: the sender stays until the next agent joins (the agent-only ``note`` goes to them);
    ``cold``: the sender leaves at once. To the queue the session keeps its original wait time."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["session.transfer"] = "session.transfer"
    ticket_id: Id
    to: TransferTarget
    mode: Literal["warm", "cold"] = "warm"
    note: Annotated[str, Field(max_length=2000)] | None = None


class TransferCancel(ClientEvent):
    """The agent who asked for a warm transfer (or a supervisor) takes it back before the
    colleague accepts: the session stays as it is, and the colleague's offer stops ringing."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["transfer.cancel"] = "transfer.cancel"
    ticket_id: Id


class AgentList(ClientEvent):
    """An agent asks who is online, with each one's status and load (to pick whom to hand a
    session to)."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["agent.list"] = "agent.list"


CallAsk = Literal["voice", "camera", "screen"]
"""What a call invitation asks of the invited party: to join the call with their microphone,
or to send their camera or their screen."""


class CallInvite(ClientEvent):
    """An agent of the session invites the customer into the call (``voice``) or asks for their
    camera or screen; a customer asks the session's agents for a call (``voice`` only). The
    invited party is rung (``call.invite`` from the server) and answers ``call.accept`` or
    ``call.decline``; unanswered, it expires (``--call-invite-seconds``)."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["call.invite"] = "call.invite"
    ticket_id: Id | None = None
    ask: CallAsk = "voice"


class CallAccept(ClientEvent):
    """The invited party accepts a ringing invitation (then joins the call: ``rtc.join``,
    ``rtc.offer``)."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["call.accept"] = "call.accept"
    ticket_id: Id | None = None
    invite_id: Id


class CallDecline(ClientEvent):
    """The invited party declines a ringing invitation; the inviter hears it at once."""

    senders: ClassVar[Senders] = frozenset({"customer", "agent"})
    type: Literal["call.decline"] = "call.decline"
    ticket_id: Id | None = None
    invite_id: Id


MAX_NOTE_TEXT = 5_000
"""Characters in one internal note."""


class NoteAdd(ClientEvent):
    """An agent of the session (or a supervisor) writes an internal note on the ticket, during
    the session or after it: told to the session's agents (``note.added``), never the customer."""

    senders: ClassVar[Senders] = frozenset({"agent"})
    type: Literal["note.add"] = "note.add"
    ticket_id: Id
    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_TEXT), NotBlank]
    client_note_id: Id | None = None
    """Chosen by the client; a resend with the same id never duplicates the note."""


CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    model.model_fields["type"].default: model
    for model in (
        HelpRequest,
        SessionResume,
        ChatSend,
        ChatTyping,
        ContextUpdate,
        SessionEnd,
        QueueList,
        SessionAccept,
        SessionJoin,
        SessionList,
        CobrowseRequest,
        CobrowseAccept,
        CobrowseDecline,
        CobrowseEvents,
        CobrowseStop,
        CobrowseJoin,
        CobrowsePointer,
        ControlRequest,
        ControlGrantMsg,
        ControlDeny,
        ControlRevoke,
        ControlActionRequest,
        RtcJoin,
        RtcOffer,
        RtcAnswer,
        RtcCandidate,
        RtcLeave,
        TrackUpdate,
        CaptureStill,
        ClipStart,
        ClipStop,
        UploadRequest,
        CobrowseAssetsSupply,
        AgentStatusSet,
        SessionDecline,
        SessionTransfer,
        TransferCancel,
        AgentList,
        CallInvite,
        CallAccept,
        CallDecline,
        NoteAdd,
    )
}
"""Socket.IO event name -> payload model, for every event a client may send."""
