"""Compact JSON text of wire payloads, made by orjson (ADR 0004).

The same JSON values as ``json.dumps(obj, separators=(",", ":"))``; characters past ASCII are
written as UTF-8, not ``\\u`` escapes (both read back the same). What orjson cannot write (a
dict key that is not a string, an integer past 64 bits) is written by ``json`` instead."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["compact", "compact_bytes"]


def compact(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def compact_bytes(obj: Any) -> bytes:
    """``compact`` as UTF-8."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()
