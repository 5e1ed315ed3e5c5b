"""Every message that crosses Tandem's wire: socket.io payloads, acks and REST bodies.

This module is the contract (``docs/protocol.md`` documents it for client writers). It imports
nothing from Tandem, so every other module may import it.

Rules, in the manner of rrweb's protocol (append-only within a major version):

- a Socket.IO event's name equals its model's ``type`` (``domain.verb``);
- within ``PROTOCOL_VERSION`` only new event types and new *optional* fields are added; nothing is
  renamed, renumbered or reused; retired fields stay as deprecated optionals;
- the wire is camelCase (``ticketId``); Python stays snake_case through ``alias_generator``;
- unknown fields are ignored so an older server accepts a newer client's additions.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

PROTOCOL_VERSION = 2
"""Sent by every client in the socket.io ``auth`` payload as ``v``."""
MIN_PROTOCOL_VERSION = 1
"""The oldest client protocol this server still accepts."""

MAX_CHAT_TEXT = 10_000
"""Characters in one chat message (Chatwoot's limit for web messages)."""
MAX_APP_CONTEXT_BYTES = 8_192
"""The host app's free-form context fields, serialized as JSON."""
MAX_ROW_ID = 2**63 - 1
"""Ids the store numbers (chat lines) are 64-bit signed integers in PostgreSQL: a client's
"after" id beyond that is refused at the edge, not sent to the database."""
MAX_SEQ = 2**53 - 1
"""The largest ``seq`` a client may name (a JSON number every client holds exactly)."""

ShortText = Annotated[str, Field(max_length=200)]
Url = Annotated[str, Field(max_length=2048)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-:.]+$")]


class Message(BaseModel):
    """Base of every wire message."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        ser_json_inf_nan="null",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict that goes on the wire (camelCase, no ``None`` noise)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def wire_json(self) -> str | None:
        """The JSON text of ``wire()`` when it was made already (a relay of events encoded on
        their way in), else None."""
        return None


# --------------------------------------------------------------------------- handshake


Sender = Literal["customer", "agent"]
Senders = frozenset[Sender]


def _holds_nul(value: Any) -> bool:
    """Whether any string (or key) in a JSON value holds U+0000 (iterative; payloads are
    checked for depth before they reach the models)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class Inbound(Message):
    """A body a client sends (socket event or REST). No text in it may hold a NUL character:
    PostgreSQL's TEXT cannot store one (SQLite can), and a page or a person never types one.
    Bodies checked by a validator of their own (co-browse batches) opt out with ``raw_text``.
    """

    raw_text: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if not cls.raw_text and _holds_nul(data):
            raise ValueError("text holds a NUL character (U+0000)")
        return data


class ClientEvent(Inbound):
    """An event a client may send. Each declares who may send it and what it weighs, so the
    socket edge has one registry (``CLIENT_EVENTS``) and no per-event tables of its own."""

    senders: ClassVar[Senders] = frozenset()
    """The roles that may send it; others are answered ``forbidden``."""
    cost: ClassVar[float] = 1.0
    """Tokens it takes from the socket's event bucket."""
    max_frame: ClassVar[int] = 64 * 1024
    """The largest socket.io frame carrying it (checked before the frame is decoded)."""


class ConnectAuth(Inbound):
    """The socket.io ``auth`` payload of every connection."""

    v: int
    """Client protocol version (``PROTOCOL_VERSION``)."""
    role: Literal["customer", "agent"]
    site: Annotated[str, Field(max_length=128)] | None = None
    """Customer sockets: the site's public key from the embed tag."""
    token: Annotated[str, Field(max_length=4096)] | None = None
    """Agents: the bearer token from ``POST /api/auth/login``. Customers: the resumable
    session token from the ``help.request`` ack (absent before they ask for help)."""


# --------------------------------------------------------------------------- shared values


class Size(Message):
    width: Annotated[int, Field(ge=0, le=100_000)]
    height: Annotated[int, Field(ge=0, le=100_000)]


class Geo(Message):
    """Only present when the customer allowed the browser to share location."""

    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    accuracy: Annotated[float, Field(ge=0, le=1e7)] | None = None
    """Metres, as the Geolocation API reports it."""


def _check_app_fields(value: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > MAX_APP_CONTEXT_BYTES:
        raise ValueError(f"app context exceeds {MAX_APP_CONTEXT_BYTES} bytes of JSON")
    # A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 store can hold; typed
    # string fields refuse it already, the free-form app fields must too. Every surrogate is
    # written as a "\ud..." escape in the ASCII form above: only then is the text checked.
    if "\\ud" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("app context is not valid Unicode (a lone surrogate)") from None
    return value


class ContextPacket(Message):
    """What the snippet knows about the customer's situation when they ask for help."""

    url: Url
    title: Annotated[str, Field(max_length=512)] = ""
    referrer: Url = ""
    user_agent: Annotated[str, Field(max_length=1024)] = ""
    screen: Size | None = None
    viewport: Size | None = None
    language: Annotated[str, Field(max_length=35)] = ""
    time_zone: Annotated[str, Field(max_length=64)] = ""
    app: dict[str, Any] = Field(default_factory=dict)
    """The host app's own fields (product on screen, cart, plan, order id): free-form JSON,
    at most ``MAX_APP_CONTEXT_BYTES``."""
    geo: Geo | None = None
    reply_to: Email | None = None
    """An e-mail address the customer left for a reply (the widget asks for one when no agent
    can serve now)."""

    _app = field_validator("app")(_check_app_fields)


class ContextPatch(Message):
    """A later change of context (the customer navigated, the page set new app fields)."""

    url: Url | None = None
    title: Annotated[str, Field(max_length=512)] | None = None
    viewport: Size | None = None
    app: dict[str, Any] | None = None
    geo: Geo | None = None
    reply_to: Email | None = None

    @field_validator("app")
    @classmethod
    def _app_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_app_fields(value)


class Device(Message):
    """Parsed from the user agent by the server."""

    browser: str
    browser_version: str
    os: str
    os_version: str
    type: Literal["desktop", "mobile", "tablet", "bot", "unknown"]


class StoredContext(ContextPacket):
    """The context as the ticket holds it: the packet plus what the server derived."""

    device: Device


class CustomerIdentity(Message):
    """``Tandem.identify()``: the host app's user, optionally signed by its backend."""

    id: Annotated[str, Field(min_length=1, max_length=256)]
    name: ShortText | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    signature: Annotated[str, Field(max_length=256)] | None = None
    """Hex HMAC-SHA256 of ``id`` keyed with the site secret, computed by the host backend."""


class CustomerRef(Message):
    id: str
    verified: bool
    name: str | None = None
    email: str | None = None


class AgentRef(Message):
    id: str
    name: str


class TranscriptMessage(Message):
    """One line of chat as stored on the ticket."""

    id: int
    """Server-assigned, increasing: the order of the transcript."""
    ticket_id: str
    from_: Literal["customer", "agent", "system"] = Field(alias="from")
    author: str
    """Display name of the sender."""
    author_id: str
    text: str
    at: str
    """ISO 8601 UTC."""
    client_msg_id: str | None = None

    _wire_form: dict[str, Any] | None = PrivateAttr(default=None)

    def wire(self) -> dict[str, Any]:
        # A message goes out twice (the sender's ack and the session's chat.message): its wire
        # form is made once. Nobody changes it: it is encoded as soon as it is sent.
        # (Through ``__pydantic_private__``: the attribute itself costs microseconds a read.)
        private = self.__pydantic_private__
        assert private is not None
        form: dict[str, Any] | None = private.get("_wire_form")
        if form is None:
            form = private["_wire_form"] = super().wire()
        return form


class TimelineEntry(Message):
    id: int
    at: str
    type: str
    data: dict[str, Any]


class PageVisit(Message):
    """A page the customer was on during the session: the ticket keeps them in order (the page
    of the request marked), so navigating away does not lose what they asked about."""

    id: int
    """Increasing: the order visited."""
    at: str
    url: str
    title: str = ""
    app: dict[str, Any] = Field(default_factory=dict)
    """The host app's fields while on it (the product on screen, the cart)."""
    request: bool = False
    """The page the customer asked for help from."""


class AttachmentInfo(Message):
    id: str
    kind: str
    """``screenshot``, ``photo``, ``clip``, ``upload``, ``recording``."""
    content_type: str
    size: int
    sha256: str
    url: str
    created_at: str
    meta: dict[str, Any] = Field(default_factory=dict)


class NoteInfo(Message):
    """An internal note on a ticket: agents only, never sent to the customer."""

    id: int
    """Server-assigned, increasing per ticket."""
    ticket_id: str
    author: AgentRef
    text: str
    at: str
    """ISO 8601 UTC."""
    source: Literal["agent", "transfer"] = "agent"
    """``transfer``: the note a transfer carried to the next agent (``session.transfer``)."""
    client_note_id: str | None = None


TicketStatus = Literal["queued", "active", "closed"]


class TicketSummary(Message):
    id: str
    status: TicketStatus
    site: str
    created_at: str
    closed_at: str | None = None
    customer: CustomerRef
    context: StoredContext
    agents: list[AgentRef] = Field(default_factory=list)
    previous_ticket_id: str | None = None


# --------------------------------------------------------------------------- client -> server


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
    text: Annotated[str, Field(min_length=1, max_length=MAX_CHAT_TEXT)]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


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
    type: Literal["cobrowse.events"] = "cobrowse.events"
    data: Annotated[str, Field(max_length=1_000_000)]
    batch_id: Id | None = None
    """Names the batch while its parts arrive; required when ``parts > 1``."""
    part: Annotated[int, Field(ge=0, le=15)] = 0
    parts: Annotated[int, Field(ge=1, le=16)] = 1


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
    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_TEXT)]
    client_note_id: Id | None = None
    """Chosen by the client; a resend with the same id never duplicates the note."""

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


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
        AgentList,
        CallInvite,
        CallAccept,
        CallDecline,
        NoteAdd,
    )
}
"""Socket.IO event name -> payload model, for every event a client may send."""


# --------------------------------------------------------------------------- acks


ErrorCode = Literal[
    "malformed",
    "unknown_event",
    "unsupported_version",
    "unauthorized",
    "forbidden",
    "not_found",
    "already_taken",
    "invalid_state",
    "too_large",
    "rate_limited",
    "internal",
]


class ErrorBody(Message):
    code: ErrorCode
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorAck(Message):
    """The ack of every refused event; the refused event changed nothing."""

    ok: Literal[False] = False
    error: ErrorBody


class SessionState(Message):
    """The ack of ``help.request``, ``session.resume``, ``session.accept`` and ``session.join``."""

    ok: Literal[True] = True
    ticket: TicketSummary
    messages: list[TranscriptMessage]
    position: int | None = None
    """1-based place in the queue while the ticket is queued."""
    token: str | None = None
    """Customers: the resumable token for this session (store it; reconnect with it)."""
    seq: int | None = None
    """Where the client stands in the session's numbered events: the ``seq`` of the last one
    this state includes. Events with a ``seq`` up to it are already in it; the next is
    ``seq + 1``."""
    availability: Literal["open", "no_agents", "closed", "full"] | None = None
    """Only in the ack of ``help.request`` for a new ticket: whether an agent can serve it
    soon. ``no_agents``: none who serve its queue is online; ``closed``: outside the site's
    hours; ``full``: its queue is longer than the site allows. The ticket is created and waits
    either way; the widget offers to leave a message and an e-mail address."""
    events: list[dict[str, Any]] | None = None
    """Only in the ack of ``session.resume`` with ``afterSeq``, when the server still held what
    the client missed: those events, in order, each exactly as it was sent live (``type``,
    ``seq``, ...). ``messages`` is then empty; the client applies the events as if they had
    just arrived. Absent: the ack is a snapshot, and the client replaces its view of the session
    with it."""
    notes: list[NoteInfo] | None = None
    """Agents only (never in a customer's state): the ticket's internal notes, oldest first."""
    files: list[AttachmentInfo] | None = None
    """Customers only: the files agents sent them (``agent_file``), oldest first, each ``url`` a
    signed link to it (a reloaded widget shows them again)."""


class NoteAck(Message):
    """The ack of ``note.add``."""

    ok: Literal[True] = True
    note: NoteInfo
    duplicate: bool = False
    """True when this ``clientNoteId`` had already been accepted."""


class ChatAck(Message):
    ok: Literal[True] = True
    message: TranscriptMessage
    duplicate: bool = False
    """True when this ``clientMsgId`` had already been accepted."""

    def wire(self) -> dict[str, Any]:
        return {"ok": True, "message": self.message.wire(), "duplicate": self.duplicate}


class QueueEntry(Message):
    ticket_id: str
    site: str
    customer: CustomerRef
    context: StoredContext
    created_at: str
    previous_ticket_id: str | None = None
    queue: str | None = None
    """The id of the site's queue the routing rules put the ticket in."""
    priority: int | None = None
    """That queue's priority (-5..10): tickets of a higher one are offered first; waiting
    raises it by one level a minute, so none starves."""
    first_message: str | None = None
    """The start of the customer's first chat message (at most ``FIRST_MESSAGE_PREVIEW``
    characters, whitespace collapsed), once they wrote one."""


FIRST_MESSAGE_PREVIEW = 140
"""Characters of the customer's first message a queue entry shows."""


class QueueSnapshot(Message):
    ok: Literal[True] = True
    entries: list[QueueEntry]
    waiting: int | None = None
    """How many sessions wait in all (the entries are one page of them)."""


class SessionListAck(Message):
    ok: Literal[True] = True
    sessions: list[TicketSummary]


class OkAck(Message):
    ok: Literal[True] = True


class CobrowseView(Message):
    """The ack of ``cobrowse.join``: what a late joiner needs to render the page now."""

    ok: Literal[True] = True
    sharing: bool
    events: list[dict[str, Any]]
    """``[Meta, FullSnapshot, ...events since]``, or empty while a snapshot is awaited."""
    control: str
    """Remote-control state: none, requested, granted, denied, revoked, expired."""


# --------------------------------------------------------------------------- server -> client


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
            private["_wire_text"] = json.dumps(body, separators=(",", ":"))
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

    _events_json: str | None = PrivateAttr(default=None)

    def wire(self) -> dict[str, Any]:
        # The events are plain JSON already (validated and sanitized on the way in): dumping
        # them through pydantic again copied every one of them, a third of the relay's time.
        return {"type": self.type, "ticketId": self.ticket_id, "events": self.events}

    @classmethod
    def relay(
        cls, ticket_id: str, events: list[dict[str, Any]], encoded: list[bytes]
    ) -> CobrowseEventsOut:
        """Built without validation (the events passed co-browse's own validator), with each
        event's JSON as it was made on the way in (``encoded``, UTF-8), so the relay does not
        encode the batch a second time."""
        out = cls.model_construct(ticket_id=ticket_id, events=events)
        private = out.__pydantic_private__
        assert private is not None
        private["_events_json"] = "[" + b",".join(encoded).decode() + "]"
        return out

    def wire_json(self) -> str | None:
        private = self.__pydantic_private__
        events: str | None = private.get("_events_json") if private is not None else None
        if events is None:
            return None
        head = json.dumps({"type": self.type, "ticketId": self.ticket_id}, separators=(",", ":"))
        return head[:-1] + ',"events":' + events + "}"


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
    it, another agent took it, they declined it, it rang out, or the session ended."""

    type: Literal["session.offer.ended"] = "session.offer.ended"
    ticket_id: str
    reason: Literal["accepted", "taken", "declined", "expired", "ended", "offline"]


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


# --------------------------------------------------------------------------- REST bodies


class LoginRequest(Inbound):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class AgentProfile(Message):
    id: str
    name: str
    email: str
    role: Literal["agent", "supervisor", "admin"]
    skills: list[str]


class LoginResponse(Message):
    token: str
    expires_at: str
    agent: AgentProfile


class TranscriptLine(Message):
    from_: Literal["customer", "agent", "system"] = Field(alias="from")
    author: str
    text: str
    at: str


class TicketDetail(TicketSummary):
    """``GET /api/tickets/{id}``: the summary with everything the ticket holds."""

    transcript: list[TranscriptLine]
    attachments: list[AttachmentInfo]
    timeline: list[TimelineEntry]
    notes: list[NoteInfo] = Field(default_factory=list)
    """Internal notes (agents only), oldest first."""
    pages: list[PageVisit] = Field(default_factory=list)
    """Every page the customer was on during the session, in the order visited (consecutive
    repeats once; the latest 50, the page of the request always kept, marked ``request``)."""


class TicketListItem(Message):
    id: str
    status: TicketStatus
    site: str
    created_at: str
    closed_at: str | None = None
    customer: CustomerRef
    title: str
    """The page title (or URL) the customer asked for help from."""
    url: str
    message_count: int


class TicketList(Message):
    tickets: list[TicketListItem]


class ApiError(Message):
    error: ErrorBody


class NoteCreate(Inbound):
    """``POST /api/tickets/{id}/notes``: an internal note, during the session or after it."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE_TEXT)]
    client_note_id: Id | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


class NoteList(Message):
    notes: list[NoteInfo]


class NoteCreated(Message):
    note: NoteInfo
    duplicate: bool = False


Shortcut = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
MAX_CANNED_TEXT = 2_000


class CannedReplyCreate(Inbound):
    """``POST /api/sites/{site_id}/canned-replies`` (admins): add a reply, or replace the one with
    the same shortcut. Variables in ``{}`` must be known ones (``{customer.name}``...)."""

    shortcut: Shortcut
    """Typed after ``/`` in the composer: lowercase letters, digits, ``-`` and ``_``."""
    text: Annotated[str, Field(min_length=1, max_length=MAX_CANNED_TEXT)]

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


class CannedReply(Message):
    shortcut: str
    text: str
    """As written, with its variables."""
    rendered: str | None = None
    """Only for a ticket (``GET /api/tickets/{id}/canned-replies``): the text with the variables
    that ticket and the calling agent know filled in (an unknown value stays as written)."""


class CannedReplyList(Message):
    replies: list[CannedReply]
    variables: list[str] = Field(default_factory=list)
    """The variables a reply may use."""


class AttachmentCreated(Message):
    """``POST /api/tickets/{id}/files``: the file as filed on the ticket."""

    attachment: AttachmentInfo


REST_MODELS: tuple[type[Message], ...] = (
    LoginRequest,
    LoginResponse,
    TicketDetail,
    TicketList,
    ApiError,
    NoteCreate,
    NoteList,
    NoteCreated,
    CannedReplyCreate,
    CannedReplyList,
    AttachmentCreated,
)
