"""Times on the wire: RFC 3339 in UTC with milliseconds (``2026-11-30T17:05:09.123Z``)."""

from __future__ import annotations

import math
import time

__all__ = ["iso"]

_second: tuple[int, str] = (-1, "")
"""The last whole second formatted, and its text up to the seconds: most times a busy server
writes fall in the same second as the one before."""


def iso(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")`` with ``Z`` for
    ``+00:00``, the same text to the character, at a third of its cost (a pairing writes four).

    As ``datetime`` does, the fraction is rounded to the microsecond first (half to even), then
    cut to milliseconds."""
    global _second
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    seconds = int(whole)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    cached_at, text = _second
    if cached_at != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second = (seconds, text)
    return f"{text}.{micros // 1000:03d}Z"
