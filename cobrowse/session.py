"""``CobrowseSession``: the one call path signaling needs per customer tab.

``ingest(raw, relay)`` runs, in order: validate (no side effects) -> rate limit ->
sanitize (in place) -> relay to the watching agents -> recording append -> mirror
append. A refused batch raises before anything is consumed, relayed or stored
(except the rate-limit budget, which is only taken once validation passed).

The relay comes before the mirror and the recording because the agents' latency is
the product: what a late joiner reads (the mirror) and the file can follow a moment
later. A console that joins meanwhile merges its catch-up with the live events by
timestamp, so an event may be in both but is never in neither.

A *checkpoint* batch is the recorder's answer to the mirror's request for a fresh snapshot
(``cobrowse.snapshot_needed``): a snapshot of the page the agents already follow, taken by the
same ``record()`` and so with the same node ids. Its Meta and FullSnapshot go to the mirror and
the recording but are not relayed while the mirror holds a snapshot: an agent's view would only
rebuild the whole page from it (a flash, every minute or every 2,000 changes), and nobody is
waiting for it, since a joiner is served the mirror's page. Without a snapshot held (none yet,
or dropped at the hard cap), it is relayed like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import NamedTuple

from .assets import AssetRewriter
from .control import AuditEntry, ControlAction, ControlGrant, ControlPolicy
from .exceptions import CobrowseError
from .mirror import AppendResult, MirrorStore
from .ratelimit import RateLimits, SessionRateLimiter
from .recording import AsyncRecordingWriter, encode_event, encode_events
from .sanitize import SanitizeContext, SanitizeReport, sanitize_batch
from .types import EVENT_FULL_SNAPSHOT, EVENT_META, Event
from .validate import Limits, check_batch

__all__ = ["CobrowseSession", "IngestResult", "Relay"]

log = logging.getLogger("cobrowse.session")

Relay = Callable[[list[Event], bytes], Awaitable[None]]
"""Sends an accepted batch on to the agents: its sanitized events and their JSON array
(UTF-8)."""


class IngestResult(NamedTuple):
    """Outcome of one accepted batch."""

    events: list[Event]
    """Sanitized events, to relay to agents (``cobrowse.events``)."""
    nbytes: int
    report: SanitizeReport
    """What was removed (counts only; log/metric it, never the content)."""
    mirror: AppendResult
    """``mirror.request_snapshot`` -> emit ``cobrowse.snapshot_needed`` to the customer."""
    encoded: list[bytes] = []
    """Each event's JSON (UTF-8), as the recording holds it (the relay got the same JSON as
    one array)."""


@contextlib.contextmanager
def _no_lone_surrogate() -> Iterator[None]:
    """Encoding a batch: a JSON "\ud800" escape decodes to a lone surrogate, not text any page
    can hold, and nothing downstream (recording, relay) could write it."""
    try:
        yield
    except UnicodeEncodeError:
        raise CobrowseError("malformed", "the batch holds a lone surrogate") from None


def _sanitize_and_encode(
    events: list[Event], context: SanitizeContext
) -> tuple[SanitizeReport, bytes]:
    """Sanitize a batch in place; the batch's JSON array, for the relay (one call: encoding
    each event for the recording waits until the agents have theirs)."""
    report = sanitize_batch(events, context=context)
    with _no_lone_surrogate():
        return report, encode_events(events)


def _sanitize_and_encode_each(
    events: list[Event], context: SanitizeContext
) -> tuple[SanitizeReport, bytes, list[bytes]]:
    """``_sanitize_and_encode`` with each event's JSON too, for a batch checked off the event
    loop (a full snapshot: encoded once, there)."""
    report = sanitize_batch(events, context=context)
    with _no_lone_surrogate():
        lines = [encode_event(event) for event in events]
    return report, b"[" + b",".join(lines) + b"]", lines


def _sizes(events: list[Event], lines: list[bytes]) -> list[int]:
    """The encoded size of each event, for the mirror's budget. Full snapshots are measured
    exactly (they are the mirror's big items); the small events of a batch share the rest of
    the batch's encoded size (``[`` + the events joined by ``,`` + ``]``)."""
    total = sum(len(line) for line in lines) + len(lines) + 1 if lines else 2
    sizes = [0] * len(events)
    exact = 0
    small = []
    for index, event in enumerate(events):
        if event.get("type") == EVENT_FULL_SNAPSHOT:
            sizes[index] = len(lines[index])
            exact += sizes[index]
        else:
            small.append(index)
    if small:
        share = max(1, (total - exact) // len(small))
        for index in small:
            sizes[index] = share
    return sizes


_PAGE_EVENTS = (EVENT_META, EVENT_FULL_SNAPSHOT)


def _without_page(relay: Relay) -> Relay:
    """``relay`` for a checkpoint batch: what the batch holds besides its Meta and FullSnapshot
    (events the recorder emitted with them, or before them in the same batch), if anything."""

    async def relay_rest(events: list[Event], events_json: bytes) -> None:
        rest = [event for event in events if event.get("type") not in _PAGE_EVENTS]
        if len(rest) == len(events):
            await relay(events, events_json)
        elif rest:
            # The whole batch was encoded already: no part of it can fail to encode.
            await relay(rest, encode_events(rest))

    return relay_rest


class CobrowseSession:
    """Per customer tab: ingestion pipeline, mirror access and remote control."""

    def __init__(
        self,
        session_id: str,
        store: MirrorStore,
        *,
        recording: AsyncRecordingWriter | None = None,
        limits: Limits | None = None,
        rate_limits: RateLimits | None = None,
        control_policy: ControlPolicy | None = None,
        offload_bytes: int = 64 * 1024,
        assets: AssetRewriter | None = None,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.recording = recording
        self.limits = limits or Limits()
        self.rate = SessionRateLimiter(rate_limits)
        self.control = ControlGrant(session_id, control_policy)
        self.offload_bytes = offload_bytes
        """Batches larger than this are validated/sanitized in a worker thread."""
        self.sanitize_context = SanitizeContext(assets=assets)
        self._closed = False
        self._in_order = asyncio.Lock()
        """Batches are taken one at a time, in arrival order: a big one checked in a thread
        must not be overtaken by the small ones sent after it (a snapshot's first mutations
        would reach the agents before the snapshot)."""
        """What sanitizing remembers between batches; ``assets`` rewrites resource URLs."""

    async def ingest(
        self, raw: object, relay: Relay | None = None, *, checkpoint: bool = False
    ) -> IngestResult:
        """Accept one batch from the customer (batches are taken in the order they came, and
        relayed in that order: ``relay`` runs inside the same turn). ``checkpoint``: the batch
        answers a snapshot request (see the module); its page events may not be relayed.

        Raises:
            CobrowseError: the batch was refused (see ``validate`` / ``ratelimit``); nothing
                was relayed or stored.
        """
        async with self._in_order:
            if self._closed:
                # Its recording is closed (sharing stopped, or the part was handed on): the
                # batch must not be acknowledged as recorded.
                raise CobrowseError("closed", "this co-browse stream is closed")
            if relay is not None and checkpoint and await self.store.has_snapshot(self.session_id):
                relay = _without_page(relay)
            return await self._ingest(raw, relay)

    async def _ingest(self, raw: object, relay: Relay | None) -> IngestResult:
        hint = len(raw) if isinstance(raw, str | bytes | bytearray) else self.offload_bytes + 1
        if hint > self.offload_bytes:
            # A full snapshot can take a second of CPU: keep the event loop responsive.
            batch = await asyncio.to_thread(check_batch, raw, self.limits)
            self.rate.check(len(batch.events), batch.nbytes)
            report, whole, lines = await asyncio.to_thread(
                _sanitize_and_encode_each, batch.events, self.sanitize_context
            )
            if relay is not None:
                await relay(batch.events, whole)
        else:
            batch = check_batch(raw, self.limits)
            self.rate.check(len(batch.events), batch.nbytes)
            report, whole = _sanitize_and_encode(batch.events, self.sanitize_context)
            if relay is not None:
                await relay(batch.events, whole)
            # Each event's line, for the recording and the mirror's budget: after the relay,
            # which needed only the whole batch.
            lines = [encode_event(event) for event in batch.events]
        sizes = _sizes(batch.events, lines)
        if self.recording is not None:
            # Queued, not awaited: the file is written in the background.
            self.recording.add_encoded(lines)
        try:
            appended = await self.store.append(self.session_id, batch.events, sizes)
        except Exception as exc:
            # The batch is relayed and recorded already: reported as taken, which it was. The
            # shared mirror (Redis) rewrites itself whole at its next successful write.
            log.warning("mirror of %s missed a batch: %r", self.session_id, exc)
            appended = AppendResult(
                needs_snapshot=False, request_snapshot=False, dropped=len(batch.events), reset=False
            )
        return IngestResult(batch.events, batch.nbytes, report, appended, lines)

    async def catch_up(self) -> list[Event]:
        """Events a late-joining agent needs (``[]``: wait for the next snapshot)."""
        return await self.store.catch_up(self.session_id)

    async def authorize_action(
        self, agent_id: str, action: object
    ) -> tuple[ControlAction, list[AuditEntry]]:
        """Validate an agent's control action against the grant and the mirror's masks."""
        target = action.get("targetId") if isinstance(action, dict) else None
        if not isinstance(target, int) or isinstance(target, bool):
            target = -1  # validation inside authorize() refuses it
        status = await self.store.target_status(self.session_id, target)
        return self.control.authorize(agent_id, action, status)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self, *, keep_mirror: bool = False) -> None:
        """Flush the recording and drop the mirror (unless ``keep_mirror``: another holder of
        the session may be filling it). A batch being taken finishes first (its events reach
        the file); batches after it are refused (``closed``)."""
        async with self._in_order:
            self._closed = True
            if self.recording is not None:
                await self.recording.aclose()
        if not keep_mirror:
            await self.store.clear(self.session_id)
