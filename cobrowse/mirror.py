"""Live mirror state for late-joining agents, and its store interface.

A :class:`MirrorState` keeps the latest ``Meta`` + ``FullSnapshot`` and the events
since (the *tail*). A late joiner renders the current page from
:meth:`MirrorState.catch_up`: ``[Meta, FullSnapshot, *tail]``.

Compaction: once the tail holds ``snapshot_after_events`` events that change the page
(pointer moves and scrolls do not count), or ``snapshot_after_bytes`` bytes of any events,
or is older than ``snapshot_after_seconds``, the
mirror reports ``needs_snapshot``; signaling then asks the customer's snippet for
``record.takeFullSnapshot()``. A new full snapshot drops the tail.

Memory bound: if the tail would exceed ``max_tail_bytes`` (the customer ignored
our snapshot requests, or a mutation storm), the mirror **drops its snapshot and
tail** and keeps requesting a snapshot. Until one arrives, ``catch_up()`` returns
``[]`` ("wait for a snapshot"). We never drop the *oldest* tail events instead:
rrweb mutations depend on every earlier one, so a gapped tail would replay wrong.
Agents already watching are unaffected (they get the live stream), and the
recording is written independently (before the mirror), so nothing accepted is
lost from the ticket's recording.

The mirror also tracks a small node index (id -> parent, masked ids) so remote
control can refuse targets that are masked or blocked (see :class:`NodeIndex`).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from .types import (
    EVENT_FULL_SNAPSHOT,
    EVENT_INCREMENTAL,
    EVENT_META,
    SOURCE_MUTATION,
    Event,
    IncrementalSource,
    NodeType,
)

__all__ = [
    "MASK_ATTRIBUTES",
    "MASK_CLASSES",
    "AppendResult",
    "InMemoryMirrorStore",
    "MirrorPolicy",
    "MirrorState",
    "MirrorStore",
    "NodeIndex",
    "TargetStatus",
]

MASK_ATTRIBUTES: Final = frozenset({"data-tandem-mask", "data-tandem-block"})
"""Attributes our snippet puts on masked/blocked elements."""
MASK_CLASSES: Final = frozenset({"rr-block", "rr-mask", "rr-ignore"})
"""rrweb's default block/mask/ignore classes."""
_BLOCK_ATTRS: Final = frozenset({"rr_width", "rr_height"})  # rrweb's blocked placeholder
_ROOT: Final = -1


class TargetStatus(enum.Enum):
    """Whether a node may be targeted by remote control, per the mirror."""

    OK = "ok"
    MASKED = "masked"
    """The node or an ancestor is masked/blocked."""
    UNKNOWN = "unknown"
    """Not in the current mirror (never seen, removed, or no snapshot yet)."""


def _self_masked(tag: str, attrs: dict[str, Any]) -> bool:
    for name in attrs:
        if name.lower() in MASK_ATTRIBUTES or name in _BLOCK_ATTRS:
            return True
    cls = attrs.get("class")
    if isinstance(cls, str) and MASK_CLASSES.intersection(cls.split()):
        return True
    typ = attrs.get("type")
    return tag.lower() == "input" and isinstance(typ, str) and typ.lower() == "password"


class NodeIndex:
    """id -> parent id, plus the set of masked node ids.

    What rrweb's serialization tells us about masking: blocked elements arrive as
    an empty element with ``rr_width``/``rr_height`` (and the block class);
    masked text and masked input values are just replaced by ``*`` with no flag,
    so a masked input is *not* recognisable from the snapshot unless it carries a
    marker. Hence the server-side check is: a node is masked if it or an ancestor
    has a :data:`MASK_ATTRIBUTES` attribute, a :data:`MASK_CLASSES` class, the
    rrweb block placeholder attributes, or is ``<input type=password>``. The
    customer's snippet remains the authority (it knows its own mask selectors and
    refuses too). Masks are sticky: removing a marker later does not unmask.
    """

    __slots__ = ("_masked", "_parent")

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._masked: set[int] = set()

    def __len__(self) -> int:
        return len(self._parent)

    def clear(self) -> None:
        """Forget everything."""
        self._parent.clear()
        self._masked.clear()

    def load_snapshot(self, node: dict[str, Any]) -> None:
        """Reset from a full snapshot's root node."""
        self.clear()
        self._add_tree(node, _ROOT)

    def _add_tree(self, root: dict[str, Any], parent: int) -> None:
        stack: list[tuple[dict[str, Any], int]] = [(root, parent)]
        while stack:
            node, pid = stack.pop()
            nid = node.get("id")
            if not isinstance(nid, int):
                continue
            self._parent[nid] = pid
            if node.get("type") == NodeType.ELEMENT:
                attrs = node.get("attributes")
                tag = node.get("tagName")
                if isinstance(attrs, dict) and isinstance(tag, str) and _self_masked(tag, attrs):
                    self._masked.add(nid)
            children = node.get("childNodes")
            if isinstance(children, list):
                stack.extend((c, nid) for c in children if isinstance(c, dict))

    def apply_mutation(self, data: dict[str, Any]) -> None:
        """Apply an incremental ``Mutation`` payload (removes, adds, attributes)."""
        for r in data.get("removes") or ():
            if isinstance(r, dict) and isinstance(r.get("id"), int):
                # Descendants stay orphaned: their ancestor walk hits a missing id,
                # so they read as UNKNOWN until the next full snapshot rebuilds us.
                self._parent.pop(r["id"], None)
        for add in data.get("adds") or ():
            if isinstance(add, dict) and isinstance(add.get("node"), dict):
                pid = add.get("parentId")
                self._add_tree(add["node"], pid if isinstance(pid, int) else _ROOT)
        for change in data.get("attributes") or ():
            if not isinstance(change, dict):
                continue
            nid, attrs = change.get("id"), change.get("attributes")
            if not isinstance(nid, int) or not isinstance(attrs, dict):
                continue
            present = {k: v for k, v in attrs.items() if v is not None}
            typ = present.get("type")
            if _self_masked("input" if typ is not None else "", present):
                self._masked.add(nid)

    def status(self, node_id: int) -> TargetStatus:
        """Masked if the node or any ancestor is masked; unknown if detached."""
        cur = node_id
        for _ in range(len(self._parent) + 1):
            if cur not in self._parent:
                return TargetStatus.UNKNOWN
            if cur in self._masked:
                return TargetStatus.MASKED
            cur = self._parent[cur]
            if cur == _ROOT:
                return TargetStatus.OK
        return TargetStatus.UNKNOWN  # cycle: refuse


@dataclass(frozen=True, slots=True)
class MirrorPolicy:
    """When to ask for a fresh full snapshot, and the hard memory cap."""

    snapshot_after_events: int = 2_000
    """Events in the tail that change the page (mutations, input, styles, canvas...). Pointer
    moves and scrolls (``REPLAYED_CHEAPLY``) do not count: a late joiner's replay of them costs
    little, their bytes count towards ``snapshot_after_bytes``, and counting them asked the
    customer's browser for a full snapshot (a walk of its whole page) every two seconds while
    its user moved the mouse."""
    snapshot_after_seconds: float = 60.0
    snapshot_after_bytes: int = 4 * 1024 * 1024
    max_tail_bytes: int = 16 * 1024 * 1024
    """Hard cap on the tail; exceeding it resets the mirror (see module docs)."""
    request_interval_seconds: float = 5.0
    """Minimum gap between two snapshot requests to the same customer."""
    track_targets: bool = True
    """Maintain the :class:`NodeIndex` used for remote-control target checks."""


class AppendResult(NamedTuple):
    """What :meth:`MirrorState.append` decided."""

    needs_snapshot: bool
    """The mirror wants a fresh full snapshot."""
    request_snapshot: bool
    """Ask the customer now (rate-limited by ``request_interval_seconds``)."""
    dropped: int
    """Events not kept in the mirror (no snapshot yet, or a hard-cap reset)."""
    reset: bool
    """The hard cap was hit and the mirror was emptied."""


REPLAYED_CHEAPLY: Final = frozenset(
    int(source)
    for source in (
        IncrementalSource.MOUSE_MOVE,
        IncrementalSource.MOUSE_INTERACTION,
        IncrementalSource.SCROLL,
        IncrementalSource.TOUCH_MOVE,
        IncrementalSource.DRAG,
    )
)
"""Incremental sources that move the pointer or the view and change no node: not counted by
``MirrorPolicy.snapshot_after_events``."""


def _size(event: Event) -> int:
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


class MirrorState:
    """Latest Meta + FullSnapshot + tail of one customer tab. Not thread-safe."""

    def __init__(
        self,
        policy: MirrorPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or MirrorPolicy()
        self._clock = clock
        self._meta: Event | None = None
        self._pending_meta: Event | None = None
        self._snapshot: Event | None = None
        self._snapshot_bytes = 0
        self._snapshot_at = 0.0
        self._tail: list[Event] = []
        self._tail_bytes = 0
        self._tail_changes = 0
        """Tail events that change the page (all but ``REPLAYED_CHEAPLY``)."""
        self._last_request: float | None = None
        self.generation = 0
        """Increments on every full snapshot or reset (cache key for derived state)."""
        self._index = NodeIndex()
        self._index_current = True
        """Whether ``_index`` describes the snapshot and tail held. It is built when control
        first asks about a node after a snapshot, not as the snapshot arrives: a page's
        snapshot is a tree of thousands of nodes, and walking it as it came held up the
        customer's next batch (it waits for this one); control is asked at human pace."""

    # ------------------------------------------------------------------ queries

    @property
    def has_snapshot(self) -> bool:
        """A full snapshot is held."""
        return self._snapshot is not None

    @property
    def tail_events(self) -> int:
        """Events held after the snapshot."""
        return len(self._tail)

    @property
    def tail_bytes(self) -> int:
        """Encoded bytes held after the snapshot."""
        return self._tail_bytes

    @property
    def total_bytes(self) -> int:
        """Bytes held (snapshot + tail)."""
        return self._snapshot_bytes + self._tail_bytes

    def needs_snapshot(self) -> bool:
        """True when a fresh full snapshot should be requested."""
        if self._snapshot is None:
            return True
        p = self.policy
        if self._tail_changes >= p.snapshot_after_events:
            return True
        if self._tail_bytes >= p.snapshot_after_bytes:
            return True
        return bool(self._tail) and self._clock() - self._snapshot_at >= p.snapshot_after_seconds

    def snapshot_request_due(self) -> bool:
        """Like ``needs_snapshot`` but rate-limited; marks the request as sent."""
        if not self.needs_snapshot():
            return False
        now = self._clock()
        last = self._last_request
        if last is not None and now - last < self.policy.request_interval_seconds:
            return False
        self._last_request = now
        return True

    def catch_up(self) -> list[Event]:
        """What a late joiner needs: ``[Meta?, FullSnapshot, *tail]``, or ``[]`` if no
        snapshot is held yet (the joiner should wait for the next one)."""
        if self._snapshot is None:
            return []
        head = [self._meta] if self._meta is not None else []
        return [*head, self._snapshot, *self._tail]

    def target_status(self, node_id: int) -> TargetStatus:
        """Mask status of a node id in the current mirror."""
        if self._snapshot is None or not self.policy.track_targets:
            return TargetStatus.UNKNOWN
        return self.index.status(node_id)

    @property
    def index(self) -> NodeIndex:
        """The node index of the snapshot and tail held (built on first use after a
        snapshot, from the snapshot and the tail's mutations)."""
        if not self._index_current:
            self._index_current = True
            data = self._snapshot.get("data") if self._snapshot is not None else None
            node = data.get("node") if isinstance(data, dict) else None
            self._index.load_snapshot(node if isinstance(node, dict) else {})
            for ev in self._tail:
                data = ev.get("data")
                if (
                    ev.get("type") == EVENT_INCREMENTAL
                    and isinstance(data, dict)
                    and data.get("source") == SOURCE_MUTATION
                ):
                    self._index.apply_mutation(data)
        return self._index

    # ------------------------------------------------------------------ updates

    def append(self, events: Sequence[Event], sizes: Sequence[int] | None = None) -> AppendResult:
        """Add validated, sanitized events in order.

        Args:
            events: the batch.
            sizes: encoded size of each event if known (else computed).
        """
        dropped = 0
        reset = False
        for i, ev in enumerate(events):
            etype = ev.get("type")
            size = sizes[i] if sizes is not None else _size(ev)
            if etype == EVENT_META:
                self._pending_meta = ev
                if self._snapshot is None:
                    continue
            elif etype == EVENT_FULL_SNAPSHOT:
                self._take_snapshot(ev, size)
                continue
            if self._snapshot is None:
                dropped += 1
                continue
            self._tail.append(ev)
            self._tail_bytes += size
            if etype == EVENT_INCREMENTAL:
                data = ev.get("data")
                source = data.get("source") if isinstance(data, dict) else None
                if source not in REPLAYED_CHEAPLY:
                    self._tail_changes += 1
                if self._index_current and self.policy.track_targets and source == SOURCE_MUTATION:
                    assert isinstance(data, dict)
                    self._index.apply_mutation(data)
            else:
                self._tail_changes += 1
            if self._tail_bytes > self.policy.max_tail_bytes:
                dropped += len(self._tail)
                self._reset()
                reset = True
        needs = self.needs_snapshot()
        return AppendResult(
            needs_snapshot=needs,
            request_snapshot=needs and self.snapshot_request_due(),
            dropped=dropped,
            reset=reset,
        )

    def _take_snapshot(self, ev: Event, size: int) -> None:
        if self._pending_meta is not None:
            self._meta = self._pending_meta
            self._pending_meta = None
        self._snapshot = ev
        self._snapshot_bytes = size
        self._snapshot_at = self._clock()
        self._tail = []
        self._tail_bytes = 0
        self._tail_changes = 0
        self._last_request = None
        self.generation += 1
        self._index_current = False  # built when control asks (``index``)

    def _reset(self) -> None:
        self._snapshot = None
        self._snapshot_bytes = 0
        self._tail = []
        self._tail_bytes = 0
        self._tail_changes = 0
        self._index.clear()
        self._index_current = True
        self.generation += 1

    def clear(self) -> None:
        """Forget everything (session ended)."""
        self._reset()
        self._meta = None
        self._pending_meta = None
        self._last_request = None


class MirrorStore(Protocol):
    """Per-session mirror storage. All methods are async so a shared store can drop in.

    Redis mapping (for a later ``RedisMirrorStore``), per session ``s``:

    * ``cb:{s}:meta`` STRING: the latest Meta event (JSON).
    * ``cb:{s}:snap`` STRING: the latest FullSnapshot event, one blob.
    * ``cb:{s}:tail`` LIST: RPUSH one JSON event per entry; ``LRANGE 0 -1`` to read.
    * ``cb:{s}:ctr`` HASH: ``events``, ``bytes`` (HINCRBY), ``snap_at``, ``last_req``,
      ``gen``.
    * A full snapshot is ``MULTI; SET snap; DEL tail; HSET ctr ...; EXEC``; the hard
      cap is checked on the HINCRBY result (a small Lua script keeps it atomic).
    * ``catch_up`` = ``MGET meta snap`` + ``LRANGE tail``; ``clear`` = ``DEL``; every
      key gets an ``EXPIRE`` so abandoned sessions vanish.
    * ``target_status`` keeps a per-worker :class:`NodeIndex` cached by ``gen`` and
      rebuilt from ``catch_up`` on a miss.
    """

    async def append(
        self, session_id: str, events: Sequence[Event], sizes: Sequence[int] | None = None
    ) -> AppendResult:
        """Add a validated, sanitized batch."""
        ...

    async def catch_up(self, session_id: str) -> list[Event]:
        """Events a late joiner needs (``[]`` if no snapshot yet)."""
        ...

    async def needs_snapshot(self, session_id: str) -> bool:
        """Whether a fresh full snapshot should be requested."""
        ...

    async def has_snapshot(self, session_id: str) -> bool:
        """Whether a full snapshot is held (a joiner gets the page, not "wait for one")."""
        ...

    async def target_status(self, session_id: str, node_id: int) -> TargetStatus:
        """Mask status of a node for remote control."""
        ...

    async def clear(self, session_id: str) -> None:
        """Drop the session's mirror."""
        ...


class InMemoryMirrorStore:
    """:class:`MirrorStore` kept in this process (single node, tests)."""

    def __init__(
        self,
        policy: MirrorPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy or MirrorPolicy()
        self._clock = clock
        self._states: dict[str, MirrorState] = {}

    def _state(self, session_id: str) -> MirrorState:
        st = self._states.get(session_id)
        if st is None:
            st = self._states[session_id] = MirrorState(self._policy, self._clock)
        return st

    def __len__(self) -> int:
        return len(self._states)

    async def append(
        self, session_id: str, events: Sequence[Event], sizes: Sequence[int] | None = None
    ) -> AppendResult:
        return self._state(session_id).append(events, sizes)

    async def catch_up(self, session_id: str) -> list[Event]:
        st = self._states.get(session_id)
        return st.catch_up() if st is not None else []

    async def needs_snapshot(self, session_id: str) -> bool:
        st = self._states.get(session_id)
        return st.needs_snapshot() if st is not None else True

    async def has_snapshot(self, session_id: str) -> bool:
        st = self._states.get(session_id)
        return st is not None and st.has_snapshot

    async def target_status(self, session_id: str, node_id: int) -> TargetStatus:
        st = self._states.get(session_id)
        return st.target_status(node_id) if st is not None else TargetStatus.UNKNOWN

    async def clear(self, session_id: str) -> None:
        self._states.pop(session_id, None)
