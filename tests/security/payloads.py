"""Payloads for the fuzz tests: JSON of every shape, and JSON the stdlib encoder will not write
(nesting thousands of levels deep, 5,000-digit numbers, ``NaN``), spliced in as ``Raw`` text."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from signaling.protocol import CLIENT_EVENTS

SERVER_LOGGERS = ("tandem", "socketio", "engineio", "aiohttp", "asyncio")


@dataclass(frozen=True)
class Raw:
    """JSON text put into a frame as it is (what ``json.dumps`` will not write)."""

    text: str

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 40 else f"{self.text[:20]}...({len(self.text)})"
        return f"Raw({shown!r})"


def encode(value: Any) -> str:
    """JSON text of ``value`` with every ``Raw`` spliced in verbatim."""
    raws: dict[str, str] = {}

    def splice(obj: Any) -> str:
        if not isinstance(obj, Raw):
            raise TypeError(type(obj))
        key = f"\x00raw{len(raws)}\x00"
        raws[key] = obj.text
        return key

    text = json.dumps(value, default=splice, separators=(",", ":"))
    for key, raw in raws.items():
        text = text.replace(json.dumps(key), raw, 1)
    return text


def nested(depth: int, shape: str) -> Raw:
    if shape == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def _field_names() -> list[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for model in CLIENT_EVENTS.values():
        walk(model.model_json_schema())
    return sorted(names)


FIELD_NAMES = _field_names()
texts = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
        st.sampled_from("<>\"'\\\x00\u202e\ufeff"),
    ),
    max_size=40,
)
odd_numbers = st.sampled_from(
    [
        Raw("NaN"),
        Raw("Infinity"),
        Raw("-Infinity"),
        Raw("1e400"),
        Raw("-0"),
        Raw("9" * 5000),  # past Python's int-string limit
        Raw("0." + "1" * 5000),
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    odd_numbers,
)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), texts), kids, max_size=5),
    ),
    max_leaves=25,
)


class ErrorLog(logging.Handler):
    """Every ERROR the server side logs (a traceback is logged at ERROR)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def since(self, start: int) -> list[str]:
        return [self.format(r) for r in self.records[start:]]
