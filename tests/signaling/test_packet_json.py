"""The JSON module of socket.io packets (``signaling/edge/packet_json.py``, ADR 0004)."""

from __future__ import annotations

import json

import pytest

from signaling.edge.packet_json import PacketJson


def test_it_writes_what_json_writes_compactly() -> None:
    payloads: list[object] = [
        ["chat.message", {"text": 'caf\u00e9 \u2028 "q" \\ \U0001f600', "seq": 3, "at": 1.5}],
        {"a": None, "b": True, "c": [], "d": {}, "e": -0.0, "f": 2**63},
        "text",
        7,
    ]
    for payload in payloads:
        text = PacketJson.dumps(payload, separators=(",", ":"))
        assert json.loads(text) == payload
        assert text == json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def test_what_orjson_cannot_write_is_written_by_json() -> None:
    odd = {1: "an int key", "big": 2**70}
    assert PacketJson.dumps(odd) == json.dumps(odd, separators=(",", ":"))


def test_it_refuses_what_json_let_through() -> None:
    for text in ("[NaN]", "[Infinity]", '["\\ud800"]', "[1e999]"):
        with pytest.raises(ValueError):
            PacketJson.loads(text)
    assert PacketJson.loads("[18446744073709551615]") == [2**64 - 1]


def test_nesting_past_the_decoder_is_a_recursion_error_as_with_json() -> None:
    with pytest.raises(RecursionError):
        PacketJson.loads("[" * 5000 + "]" * 5000)
    assert PacketJson.loads("[" * 500 + "]" * 500) is not None
