"""What a client sends first, and the base of everything a client sends."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from signaling.protocol.base import Message

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
    in_reader: ClassVar[bool] = False
    """Handled in the socket's reader, before its next frame is read, rather than in a task of
    its own: for a stream whose handler keeps its order and never waits on its own socket
    (co-browse batches). It spares a task and a pass of the event loop per frame."""


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
