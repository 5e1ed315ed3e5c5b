"""``docs/protocol.schema.json`` is what the models of ``signaling.protocol`` say, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from signaling.protocol import CLIENT_EVENTS
from signaling.schema import protocol_schema, render

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == render(), (
        "regenerate: .venv/bin/python -m signaling.schema > docs/protocol.schema.json"
    )


def test_schema_names_every_event_and_its_senders() -> None:
    schema = protocol_schema()
    assert set(schema["clientEvents"]) == set(CLIENT_EVENTS)
    assert schema["clientEvents"]["help.request"]["senders"] == ["customer"]
    chat = schema["$defs"][schema["clientEvents"]["chat.send"]["payload"].split("/")[-1]]
    assert {"clientMsgId", "text"} <= set(chat["required"])
    assert "session.accepted" in schema["serverEvents"]
    json.dumps(schema)  # plain JSON
