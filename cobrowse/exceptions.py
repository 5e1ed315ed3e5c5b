"""Errors raised by the cobrowse package."""

from __future__ import annotations

from typing import Any

__all__ = ["CobrowseError", "ControlError", "RecordingFormatError"]


class CobrowseError(Exception):
    """A client payload or request was refused.

    ``code`` is a short stable string meant for the wire and for metrics
    (``malformed``, ``too_large``, ``too_many_events``, ``too_deep``,
    ``too_many_nodes``, ``bad_event``, ``rate_limited``...). ``message`` is a
    human-readable reason; it never contains page text or attribute values.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ControlError(CobrowseError):
    """A remote-control request or action was refused.

    ``audit`` holds the audit entries produced while refusing (a refusal is
    audited too, and an expiry may have been recorded first); persist them.
    """

    def __init__(self, code: str, message: str, audit: list[dict[str, Any]] | None = None):
        super().__init__(code, message)
        self.audit: list[dict[str, Any]] = audit if audit is not None else []


class RecordingFormatError(CobrowseError):
    """A recording file has an unknown format, version or a corrupt body."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_recording", message)
