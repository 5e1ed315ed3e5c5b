"""Server events (server -> client) and ``SERVER_EVENTS``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr

from signaling.protocol.acks import QueueEntry
from signaling.protocol.base import Id, Message, Url
from signaling.protocol.client import CallAsk
from signaling.protocol.jsontext import compact, compact_bytes
from signaling.protocol.values import (
    AgentRef,
    AttachmentInfo,
    NoteInfo,
    PageVisit,
    StoredContext,
    TimelineEntry,
    TranscriptMessage,
)


class SessionEvent(Message):
    """A session event that is numbered: not lost on a reconnect (docs/protocol.md, "Sequence
    numbers"). Ephemeral events (typing, pointer, co-browse frames, media negotiation) are not."""

    seq: int | None = None
    """Its place among the session's events its recipient gets: 1, 2, 3, ... per ticket, counted
    apart for the customer and for the agents (who also get the timeline)."""

    _wire_text: str | None = PrivateAttr(default=None)

    def numbered(
        self, seq: int | None, wire: dict[str, Any], text: str | None = None
    ) -> SessionEvent:
        """This event with its ``seq``, carrying its JSON made from ``wire`` (this event's own
        ``wire()``, made once for the event log and every audience): sending it then neither
        dumps the model a second time nor goes through socket.io's encoder. ``text``: the JSON
        of ``wire`` when made already (the event log keeps the same text); the ``seq`` is then
        spliced in as the last key, where ``{**wire, "seq": seq}`` puts it."""
        out = self.model_copy(update={"seq": seq})
        private = out.__pydantic_private__
        assert private is not None
        if text is None or "seq" in wire:
            body = wire if seq is None else {**wire, "seq": seq}
            private["_wire_text"] = compact(body)
        else:
            private["_wire_text"] = text if seq is None else f'{text[:-1]},"seq":{seq}}}'
        return out

    def wire_json(self) -> str | None:
        private = self.__pydantic_private__
        return private.get("_wire_text") if private is not None else None


class QueueAdded(Message):
    type: Literal["queue.added"] = "queue.added"
    entry: QueueEntry


class QueueRemoved(Message):
    type: Literal["queue.removed"] = "queue.removed"
    ticket_id: str
    reason: Literal["accepted", "ended"]
    agent: AgentRef | None = None


class QueueRemoval(Message):
    ticket_id: str
    reason: Literal["accepted", "ended"]
    agent: AgentRef | None = None


class QueueChanged(Message):
    """To agents of protocol v2: the queue's changes since the last one, sent at most every
    50 ms (v1 agents get one ``queue.added`` / ``queue.removed`` per change instead)."""

    type: Literal["queue.changed"] = "queue.changed"
    added: list[QueueEntry]
    removed: list[QueueRemoval]
    waiting: int
    updated: list[QueueEntry] | None = None
    """Entries still waiting that changed (the customer wrote their first message): replace
    the one held. Absent when none did."""


class QueuePosition(Message):
    type: Literal["queue.position"] = "queue.position"
    ticket_id: str
    position: int
    estimated_wait_seconds: int | None = None
    """How long the customer will likely wait, from the queue's recent handle times and the
    agents serving it; absent when nothing is known yet."""


class SessionAccepted(SessionEvent):
    type: Literal["session.accepted"] = "session.accepted"
    ticket_id: str
    agent: AgentRef


class SessionJoined(SessionEvent):
    """Another agent (a supervisor, or a colleague receiving a transfer) joined the session."""

    type: Literal["session.joined"] = "session.joined"
    ticket_id: str
    agent: AgentRef


class AttachmentAdded(SessionEvent):
    type: Literal["attachment.added"] = "attachment.added"
    ticket_id: str
    attachment: AttachmentInfo


class ChatMessage(SessionEvent):
    type: Literal["chat.message"] = "chat.message"
    message: TranscriptMessage

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message.wire()}
        if self.seq is not None:
            body["seq"] = self.seq
        return body


class ChatTypingNotice(Message):
    type: Literal["chat.typing"] = "chat.typing"
    ticket_id: str
    from_: Literal["customer", "agent"] = Field(alias="from")
    name: str
    typing: bool


class SessionEnded(SessionEvent):
    type: Literal["session.ended"] = "session.ended"
    ticket_id: str
    by: Literal["customer", "agent", "system"]
    at: str


class TicketTimeline(SessionEvent):
    """A new entry on a ticket's timeline (sent to the agents in the session)."""

    type: Literal["ticket.timeline"] = "ticket.timeline"
    ticket_id: str
    entry: TimelineEntry


class PageVisited(SessionEvent):
    """To the session's agents: the customer is on another page (or the same page with other
    app fields); it was added to the ticket's page history."""

    type: Literal["page.visited"] = "page.visited"
    ticket_id: str
    page: PageVisit


class ContextChanged(SessionEvent):
    type: Literal["context.changed"] = "context.changed"
    ticket_id: str
    context: StoredContext


class CobrowseRequested(SessionEvent):
    """To the customer: an agent asks to see the page."""

    type: Literal["cobrowse.requested"] = "cobrowse.requested"
    ticket_id: str
    agent: AgentRef


class CobrowseStateNotice(SessionEvent):
    """To the session: sharing started, was declined or stopped."""

    type: Literal["cobrowse.state"] = "cobrowse.state"
    ticket_id: str
    state: Literal["requested", "sharing", "declined", "stopped"]
    by: Literal["customer", "agent", "system"]


class CobrowseEventsOut(Message):
    """To the agents: sanitized rrweb events, in order."""

    type: Literal["cobrowse.events"] = "cobrowse.events"
    ticket_id: str
    events: list[dict[str, Any]]

    _events_json: bytes | None = PrivateAttr(default=None)

    def wire(self) -> dict[str, Any]:
        # The events are plain JSON already (validated and sanitized on the way in): dumping
        # them through pydantic again copied every one of them, a third of the relay's time.
        return {"type": self.type, "ticketId": self.ticket_id, "events": self.events}

    @classmethod
    def relay(
        cls, ticket_id: str, events: list[dict[str, Any]], events_json: bytes
    ) -> CobrowseEventsOut:
        """Built without validation (the events passed co-browse's own validator), with the
        events' JSON array as it was made on the way in (``events_json``, UTF-8), so the relay
        does not encode the batch a second time."""
        # What ``model_construct`` makes, made directly: its generic way (each field's default
        # looked up and deep-copied, the private attributes' too) was 50 us of a co-browse
        # batch's way to the agents, measured cold (a batch every 50 ms), against 10 us.
        out = cls.__new__(cls)
        values = {"type": "cobrowse.events", "ticket_id": ticket_id, "events": events}
        object.__setattr__(out, "__dict__", values)
        object.__setattr__(out, "__pydantic_fields_set__", {"ticket_id", "events"})
        object.__setattr__(out, "__pydantic_extra__", None)
        object.__setattr__(out, "__pydantic_private__", {"_events_json": events_json})
        return out

    def wire_json(self) -> bytes | None:
        # UTF-8, as it came: decoded to text here, it was encoded back for the websocket frame
        # (each a copy of the batch, as was the splice of text: a tenth of the relay's time).
        private = self.__pydantic_private__
        events: bytes | None = private.get("_events_json") if private is not None else None
        if events is None:
            return None
        return (
            b'{"type":"cobrowse.events","ticketId":'
            + compact_bytes(self.ticket_id)
            + (b',"events":' + events + b"}")
        )


class CobrowseSnapshotNeeded(Message):
    """To the customer: send a fresh full snapshot (``record.takeFullSnapshot()``)."""

    type: Literal["cobrowse.snapshot_needed"] = "cobrowse.snapshot_needed"
    ticket_id: str


class CobrowsePointerOut(Message):
    """To the customer: where the agent points, or a highlight ring."""

    type: Literal["cobrowse.pointer"] = "cobrowse.pointer"
    ticket_id: str
    agent: AgentRef
    x: float
    y: float
    mode: Literal["move", "highlight", "hide"]


class ControlStateNotice(SessionEvent):
    """To the session: the remote-control state changed."""

    type: Literal["control.state"] = "control.state"
    ticket_id: str
    state: Literal["none", "requested", "granted", "denied", "revoked", "expired"]
    agent: AgentRef | None = None
    expires_at: str | None = None


class ControlActionOut(Message):
    """To the customer: perform this (validated) action; the snippet checks masks again."""

    type: Literal["control.action"] = "control.action"
    ticket_id: str
    action: dict[str, Any]


class IceServerInfo(Message):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class RtcJoined(Message):
    ok: Literal[True] = True
    ice_servers: list[IceServerInfo]
    participant_id: str


class RtcAnswerAck(Message):
    ok: Literal[True] = True
    sdp: str


class ClipStarted(Message):
    ok: Literal[True] = True
    clip_id: str


class AttachmentAck(Message):
    ok: Literal[True] = True
    attachment: AttachmentInfo


class RtcOfferOut(Message):
    """To one participant: the server offers (new tracks to receive); answer with
    ``rtc.answer``. ``tracks`` says which track each m-line (mid) carries."""

    type: Literal["rtc.offer"] = "rtc.offer"
    ticket_id: str
    sdp: str
    tracks: list[dict[str, Any]]
    channel: Literal["call", "cobrowse"] = "call"
    """The connection this offer is for (see ``rtc.join``)."""


class MediaTracks(Message):
    """To the session: every published track and its state (source, muted, active)."""

    type: Literal["media.tracks"] = "media.tracks"
    ticket_id: str
    tracks: list[dict[str, Any]]
    channel: Literal["call", "cobrowse"] = "call"
    """The tracks of this channel only (an ``element`` track has ``element``: its mirror node
    id)."""


class UploadRequested(SessionEvent):
    """To the customer: the agent asks for a photo or video."""

    type: Literal["upload.requested"] = "upload.requested"
    ticket_id: str
    agent: AgentRef
    note: str = ""


class ServerRestarting(Message):
    """The node is shutting down: reconnect (with the same token) after the delay."""

    type: Literal["server.restarting"] = "server.restarting"
    reconnect_after_ms: int


class ServerResync(Message):
    """This node may have missed events meant for its sockets (its link to the other nodes broke
    and was mended): resume every open session now (``session.resume`` with ``afterSeq``), and
    agents list the queue again. Sent only when running as several nodes."""

    type: Literal["server.resync"] = "server.resync"
    reason: Literal["bus_reconnected", "bus_silent"] | None = None
    """``bus_reconnected``: the node's Redis subscription failed and was made again;
    ``bus_silent``: it stopped delivering while Redis answered, and was made again."""


class AssetWanted(Message):
    id: Id
    url: Url


class CobrowseAssetsNeeded(Message):
    """To the customer: the server could not fetch these assets of the shared page (they need the
    customer's cookies, or come from a host the server may not or cannot reach); send their bytes
    with ``cobrowse.assets.supply``."""

    type: Literal["cobrowse.assets.needed"] = "cobrowse.assets.needed"
    ticket_id: str
    assets: list[AssetWanted]


class CallReoffer(SessionEvent):
    """To the session: the call's media moved to another node (its node stopped): whoever is in
    the call closes their peer connection and joins again (``rtc.join``, then ``rtc.offer``)."""

    type: Literal["call.reoffer"] = "call.reoffer"
    ticket_id: str
    reason: Literal["home_moved"] = "home_moved"


AgentStatusName = Literal["available", "away", "busy", "wrap_up", "offline"]


class AgentStatusNotice(Message):
    """An agent's status changed: to all of that agent's sockets and to supervisors'. An agent
    socket also gets one when it connects (the status it joins with)."""

    type: Literal["agent.status"] = "agent.status"
    agent: AgentRef
    status: AgentStatusName
    reason: str | None = None
    """Why Away: the agent's own words, or ``missed offer``."""


class AgentOnline(Message):
    """One online agent in the ``agent.list`` ack."""

    agent: AgentRef
    status: AgentStatusName
    reason: str | None = None
    load: float
    """Their open sessions, weighed: a chat counts 1, a call or remote control more."""
    capacity: int
    skills: list[str]


class AgentListAck(Message):
    ok: Literal[True] = True
    agents: list[AgentOnline]


class TransferInfo(Message):
    """What an offered transfer carries to the agent it goes to (agents only: the note)."""

    mode: Literal["warm", "cold"]
    from_: AgentRef = Field(alias="from")
    note: str | None = None


class SessionOffered(Message):
    """Push routing: a waiting session is offered to this agent (to their sockets only). Accept
    with ``session.accept`` before ``expiresAt``, or ``session.decline``; past it the offer goes
    to the next agent and this one is set Away (``missed offer``)."""

    type: Literal["session.offered"] = "session.offered"
    ticket_id: str
    entry: QueueEntry
    expires_at: str
    transfer: TransferInfo | None = None
    """Set when the session is handed over to this agent (``session.transfer``)."""


class SessionOfferEnded(Message):
    """The offer of ``ticketId`` to this agent stopped ringing (every tab stops): they accepted
    it, another agent took it, they declined it, it rang out, the session ended, or the warm
    transfer it carried was taken back (``cancelled``)."""

    type: Literal["session.offer.ended"] = "session.offer.ended"
    ticket_id: str
    reason: Literal["accepted", "taken", "declined", "expired", "ended", "offline", "cancelled"]


class SessionTransferred(SessionEvent):
    """The session was handed over: ``agent`` is who the customer now talks to (None while it
    waits in the queue again). The agent-only note is never in it (it is on the timeline)."""

    type: Literal["session.transferred"] = "session.transferred"
    ticket_id: str
    mode: Literal["warm", "cold"]
    agent: AgentRef | None = None
    queued: bool = False
    left: AgentRef | None = None
    """The agent who handed the session over and has left it."""


class CallInviteInfo(Message):
    """A call invitation: who asks (``from``; ``agent`` names the agent who invited), what
    (``ask``), until when it rings."""

    id: str
    ask: CallAsk
    from_: Literal["customer", "agent"] = Field(alias="from")
    agent: AgentRef | None = None
    expires_at: str


class CallInvited(SessionEvent):
    """To the session: an invitation rings. The invited party (the customer for an agent's
    invitation, the agents for a customer's call request) shows accept and decline until
    ``invite.expiresAt``; the inviter's side shows it waiting."""

    type: Literal["call.invite"] = "call.invite"
    ticket_id: str
    invite: CallInviteInfo


class CallInviteEnded(SessionEvent):
    """To the session: an invitation stopped ringing: accepted, declined, expired, or the
    session ended. ``by`` names the agent who answered a customer's call request."""

    type: Literal["call.invite.ended"] = "call.invite.ended"
    ticket_id: str
    invite_id: str
    ask: CallAsk
    reason: Literal["accepted", "declined", "expired", "ended"]
    by: AgentRef | None = None


class CallInviteAck(Message):
    ok: Literal[True] = True
    invite: CallInviteInfo


class NoteAdded(SessionEvent):
    """An internal note was written on the ticket: to its agents only (numbered on the agents'
    line, so a resume replays it to them and never to the customer)."""

    type: Literal["note.added"] = "note.added"
    ticket_id: str
    note: NoteInfo


SERVER_EVENTS: tuple[type[Message], ...] = (
    QueueAdded,
    QueueRemoved,
    QueueChanged,
    QueuePosition,
    SessionAccepted,
    SessionJoined,
    AttachmentAdded,
    ChatMessage,
    ChatTypingNotice,
    SessionEnded,
    TicketTimeline,
    ContextChanged,
    CobrowseRequested,
    CobrowseStateNotice,
    CobrowseEventsOut,
    CobrowseSnapshotNeeded,
    CobrowsePointerOut,
    ControlStateNotice,
    ControlActionOut,
    RtcOfferOut,
    MediaTracks,
    UploadRequested,
    ServerRestarting,
    CobrowseAssetsNeeded,
    ServerResync,
    CallReoffer,
    AgentStatusNotice,
    SessionOffered,
    SessionOfferEnded,
    SessionTransferred,
    CallInvited,
    CallInviteEnded,
    NoteAdded,
    PageVisited,
)
