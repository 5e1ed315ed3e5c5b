"""The ground every wire message stands on: protocol versions, limits, value types, ``Message``."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
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


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text is blank")
    return value


NotBlank = AfterValidator(_not_blank)
"""A text field's check that it holds more than white space (chat lines, notes, canned
replies): ``Annotated[str, Field(...), NotBlank]``."""


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

    def wire_json(self) -> str | bytes | None:
        """The JSON of ``wire()`` when it was made already, as text or UTF-8 (a relay of events
        encoded on their way in), else None."""
        return None


@functools.cache
def event_name(model: type[Message]) -> str:
    """The socket.io event name of a message class (its ``type``), looked up once per class:
    pydantic's ``model_fields`` is a property that builds its answer on each read, and every
    event sent asks."""
    return str(model.model_fields["type"].default)
