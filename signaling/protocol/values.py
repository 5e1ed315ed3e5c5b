"""Values several messages share: context, identities, transcript lines, tickets."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, PrivateAttr, field_validator

from signaling.protocol.base import MAX_APP_CONTEXT_BYTES, Email, Message, ShortText, Url


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
    try:
        size = len(orjson.dumps(value))
    except TypeError:
        # What orjson cannot write: a lone surrogate (a JSON "\ud800" escape decodes to one,
        # and no UTF-8 store can hold it; typed string fields refuse it already, the free-form
        # app fields must too), or an integer past 64 bits, which ``json`` writes.
        try:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("app context is not valid Unicode (a lone surrogate)") from None
    if size > MAX_APP_CONTEXT_BYTES:
        raise ValueError(f"app context exceeds {MAX_APP_CONTEXT_BYTES} bytes of JSON")
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
