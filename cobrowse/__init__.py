"""Tandem co-browse: pure-Python handling of rrweb event streams.

Validation, sanitisation, the live mirror for late joiners, recordings filed on
tickets, rate limits, and remote-control consent. No I/O framework: this package
never imports ``signaling``, aiohttp or socketio.
"""

from .assets import (
    AssetKind,
    AssetRewriter,
    resolve_url,
    split_fragment,
    svg_data_url_ok,
    svg_document_ok,
)
from .control import (
    AuditEntry,
    ControlAction,
    ControlGrant,
    ControlPolicy,
    ControlState,
    validate_control_action,
    verify_audit_chain,
)
from .exceptions import CobrowseError, ControlError, RecordingFormatError
from .mirror import (
    AppendResult,
    InMemoryMirrorStore,
    MirrorPolicy,
    MirrorState,
    MirrorStore,
    NodeIndex,
    TargetStatus,
)
from .ratelimit import RateLimits, SessionRateLimiter, TokenBucket
from .recording import (
    AsyncRecordingWriter,
    RecordingReader,
    RecordingWriter,
    make_header,
    read_recording,
)
from .sanitize import (
    BLOCKED_URL,
    SanitizeContext,
    SanitizeReport,
    sanitize_batch,
    sanitize_css,
    sanitize_event,
    sanitize_node,
    sanitize_url,
)
from .session import CobrowseSession, IngestResult
from .types import (
    PROTOCOL_VERSION,
    Event,
    EventType,
    IncrementalSource,
    NodeType,
    StreamHello,
    parse_recorder,
)
from .validate import Batch, Limits, check_batch, validate_batch

__all__ = [
    "BLOCKED_URL",
    "PROTOCOL_VERSION",
    "AppendResult",
    "AssetKind",
    "AssetRewriter",
    "AsyncRecordingWriter",
    "AuditEntry",
    "Batch",
    "CobrowseError",
    "CobrowseSession",
    "ControlAction",
    "ControlError",
    "ControlGrant",
    "ControlPolicy",
    "ControlState",
    "Event",
    "EventType",
    "InMemoryMirrorStore",
    "IncrementalSource",
    "IngestResult",
    "Limits",
    "MirrorPolicy",
    "MirrorState",
    "MirrorStore",
    "NodeIndex",
    "NodeType",
    "RateLimits",
    "RecordingFormatError",
    "RecordingReader",
    "RecordingWriter",
    "SanitizeContext",
    "SanitizeReport",
    "SessionRateLimiter",
    "StreamHello",
    "TargetStatus",
    "TokenBucket",
    "check_batch",
    "make_header",
    "parse_recorder",
    "read_recording",
    "resolve_url",
    "sanitize_batch",
    "sanitize_css",
    "sanitize_event",
    "sanitize_node",
    "sanitize_url",
    "split_fragment",
    "svg_data_url_ok",
    "svg_document_ok",
    "validate_batch",
    "validate_control_action",
    "verify_audit_chain",
]
