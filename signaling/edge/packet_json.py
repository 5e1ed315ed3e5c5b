"""The JSON module of Tandem's socket.io and engine.io packets: orjson (ADR 0004).

python-socketio takes any module with ``dumps`` and ``loads`` (its ``json=`` option). Every
client frame is decoded here before any guard of the handlers runs, and every event sent is
encoded here, so this is on every path: orjson does both in a third to a tenth of the time of
``json`` (a 6 KB co-browse packet: 120 us -> 53 us to decode, measured in the server).

What orjson does differently, and what is done about it:

- it refuses ``NaN``, ``Infinity`` and lone surrogates (``json`` accepted them, and a lone
  surrogate then failed wherever the text was encoded again): the frame is refused as
  ``malformed`` before anything runs;
- past 1,024 levels of nesting it raises ``JSONDecodeError``: turned into the
  ``RecursionError`` that ``json`` raised, so the guard still answers "nested too deeply";
- an integer past 64 bits is read as a float (every field that needs an integer refuses it);
- it cannot write a dict key that is not a string, nor an integer past 64 bits: such a payload
  (none of Tandem's) is written by ``json`` instead, as before.
"""

from __future__ import annotations

from typing import Any

import orjson

from signaling.protocol.jsontext import compact

__all__ = ["PacketJson"]


class PacketJson:
    """``json``'s ``dumps`` and ``loads``, as python-socketio and python-engineio call them.

    Their keyword options (``separators``) are what orjson always writes: compact JSON."""

    @staticmethod
    def dumps(obj: Any, **_options: Any) -> str:
        return compact(obj)

    @staticmethod
    def loads(text: str | bytes, **_options: Any) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):
                raise RecursionError("JSON nests too deeply") from None
            raise
