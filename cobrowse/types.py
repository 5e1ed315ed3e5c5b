"""The cobrowse protocol leaf: rrweb kinds and light typed helpers.

This module imports nothing from the rest of the package (and nothing outside the
standard library), like rrweb's ``@rrweb/types``.

Wire decision
-------------
Tandem relays rrweb ``record()`` events *verbatim*: each event stays a JSON object
``{"type": int, "data": {...}, "timestamp": number}`` exactly as rrweb 2.x emits it.
rrweb events carry no version number, so the customer's first message on a
co-browse stream (``cobrowse.start``, see :class:`StreamHello`) names the recorder,
e.g. ``{"v": 1, "recorder": "rrweb@2.0.0-alpha.18"}``. That string is copied into
the recording header so old tickets stay readable when the recorder changes.

Enums below mirror rrweb's numeric enums (``packages/types/src/index.ts``,
``packages/rrweb-snapshot/src/types.ts``). They only ever grow at the end; never
renumber or reuse a value.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any, Final, TypedDict

__all__ = [
    "PROTOCOL_VERSION",
    "Event",
    "EventType",
    "IncrementalSource",
    "NodeType",
    "StreamHello",
    "event_source",
    "event_type",
    "is_full_snapshot",
    "is_meta",
    "is_mutation",
    "parse_recorder",
]

PROTOCOL_VERSION: Final = 1
"""Version of Tandem's co-browse stream (the hello message and recording header)."""

Event = dict[str, Any]
"""One rrweb event as it travels on the wire: a JSON object."""


class EventType(IntEnum):
    """rrweb ``EventType``. Grows only at the end."""

    DOM_CONTENT_LOADED = 0
    LOAD = 1
    FULL_SNAPSHOT = 2
    INCREMENTAL_SNAPSHOT = 3
    META = 4
    CUSTOM = 5
    PLUGIN = 6
    ASSET = 7
    """Appended on rrweb master for asset capture; not accepted by default (see Limits)."""


class IncrementalSource(IntEnum):
    """rrweb ``IncrementalSource`` (``data.source`` of incremental snapshots)."""

    MUTATION = 0
    MOUSE_MOVE = 1
    MOUSE_INTERACTION = 2
    SCROLL = 3
    VIEWPORT_RESIZE = 4
    INPUT = 5
    TOUCH_MOVE = 6
    MEDIA_INTERACTION = 7
    STYLE_SHEET_RULE = 8
    CANVAS_MUTATION = 9
    FONT = 10
    LOG = 11
    DRAG = 12
    STYLE_DECLARATION = 13
    SELECTION = 14
    ADOPTED_STYLE_SHEET = 15
    CUSTOM_ELEMENT = 16


class NodeType(IntEnum):
    """rrweb-snapshot ``NodeType`` of a serialized node."""

    DOCUMENT = 0
    DOCUMENT_TYPE = 1
    ELEMENT = 2
    TEXT = 3
    CDATA = 4
    COMMENT = 5


# Plain ints of the members the per-event and per-node checks compare with: comparing with an
# ``IntEnum`` member looks it up on its class each time, several times slower than an int, for
# every event of every batch and every node of every snapshot (validate, sanitize, the mirror).
EVENT_FULL_SNAPSHOT: Final = int(EventType.FULL_SNAPSHOT)
EVENT_INCREMENTAL: Final = int(EventType.INCREMENTAL_SNAPSHOT)
EVENT_META: Final = int(EventType.META)
SOURCE_MUTATION: Final = int(IncrementalSource.MUTATION)
NODE_DOCUMENT: Final = int(NodeType.DOCUMENT)
NODE_DOCUMENT_TYPE: Final = int(NodeType.DOCUMENT_TYPE)
NODE_ELEMENT: Final = int(NodeType.ELEMENT)


class StreamHello(TypedDict):
    """First message of a co-browse stream, sent by the customer's snippet."""

    v: int
    """Tandem co-browse stream version (:data:`PROTOCOL_VERSION`)."""
    recorder: str
    """Recorder name and version, ``rrweb@2.<...>``."""


_RECORDER_RE = re.compile(r"rrweb@2\.[0-9A-Za-z.+-]{1,40}")


def parse_recorder(value: object) -> str:
    """Return ``value`` if it names a supported recorder (``rrweb@2.x``).

    Raises:
        ValueError: for anything else (other recorders, rrweb 1.x, junk).
    """
    if not isinstance(value, str) or not _RECORDER_RE.fullmatch(value):
        raise ValueError("unsupported recorder; expected 'rrweb@2.x'")
    return value


def event_type(event: Event) -> int:
    """The event's ``type`` (assumes a validated event)."""
    value: int = event["type"]
    return value


def event_source(event: Event) -> int | None:
    """``data.source`` of an incremental snapshot, else ``None``."""
    if event.get("type") != EventType.INCREMENTAL_SNAPSHOT:
        return None
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    source = data.get("source")
    return source if isinstance(source, int) and not isinstance(source, bool) else None


def is_full_snapshot(event: Event) -> bool:
    """True for a ``FullSnapshot`` event."""
    return event.get("type") == EventType.FULL_SNAPSHOT


def is_meta(event: Event) -> bool:
    """True for a ``Meta`` event."""
    return event.get("type") == EventType.META


def is_mutation(event: Event) -> bool:
    """True for an incremental ``Mutation`` event."""
    return event_source(event) == IncrementalSource.MUTATION
