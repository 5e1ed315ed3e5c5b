"""Schema and size validation of rrweb event batches from the customer's browser.

Everything here is pure and synchronous. A batch is either accepted whole or
refused whole with a :class:`~cobrowse.exceptions.CobrowseError`; refusing a
batch has no side effects, so a malformed batch changes nothing.

Error messages name the event index and the offending field, never page text or
attribute values (privacy).

Prefer passing the batch as the raw JSON text (``str``/``bytes``) the client sent:
its size is then checked *before* it is parsed, and parsing depth is bounded here
rather than inside the transport.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from .exceptions import CobrowseError
from .types import (
    EVENT_FULL_SNAPSHOT,
    EVENT_INCREMENTAL,
    EVENT_META,
    NODE_DOCUMENT,
    NODE_DOCUMENT_TYPE,
    NODE_ELEMENT,
    SOURCE_MUTATION,
    Event,
    EventType,
    IncrementalSource,
    NodeType,
)

__all__ = ["Batch", "Limits", "check_batch", "validate_batch"]

KIB: Final = 1024
MIB: Final = 1024 * KIB

_DEFAULT_TYPES: Final = frozenset(
    {
        EventType.DOM_CONTENT_LOADED,
        EventType.LOAD,
        EventType.FULL_SNAPSHOT,
        EventType.INCREMENTAL_SNAPSHOT,
        EventType.META,
        EventType.CUSTOM,
        EventType.PLUGIN,
    }
)
_EVENT_KEYS: Final = frozenset({"type", "data", "timestamp", "delay"})
_NODE_TYPES: Final = frozenset(int(t) for t in NodeType)
_SOURCES: Final = frozenset(int(s) for s in IncrementalSource)


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps applied to every batch. Defaults suit one customer tab."""

    max_events_per_batch: int = 2_000
    """Events in one batch (rrweb emits a few per animation frame)."""
    max_batch_bytes: int = 512 * KIB
    """Encoded size (UTF-8 JSON) of a batch without a full snapshot."""
    max_snapshot_batch_bytes: int = 8 * MIB
    """Encoded size of a batch that carries a ``FullSnapshot`` (big pages are MBs)."""
    max_node_depth: int = 400
    """Nesting of serialized nodes. Each level is two JSON levels, and CPython's JSON
    codec is recursive (default recursion limit 1,000), so this must stay well under 500."""
    max_nodes: int = 100_000
    """Serialized nodes in one batch (full snapshot plus mutation adds)."""
    max_attr_value_len: int = 1 * MIB
    """Characters in one attribute value (``_cssText`` and canvas data URLs are big)."""
    max_string_len: int = 1 * MIB
    """Characters in any other string (text nodes, CSS rules, hrefs...)."""
    max_attrs_per_element: int = 512
    max_name_len: int = 256
    """Characters in a tag or attribute name."""
    accepted_types: frozenset[int] = field(default=_DEFAULT_TYPES)
    """Event types accepted; rrweb's ``Asset`` (7) is refused until sanitised."""

    @property
    def max_json_depth(self) -> int:
        """Nesting of free-form JSON the generic walk allows: two JSON levels per node level,
        and some room for the event around them."""
        return 2 * self.max_node_depth + 16

    @property
    def max_raw_bytes(self) -> int:
        """Largest payload worth parsing at all."""
        return max(self.max_batch_bytes, self.max_snapshot_batch_bytes)


class Batch(NamedTuple):
    """A validated batch."""

    events: list[Event]
    nbytes: int
    """Encoded size in bytes (for rate limits and memory accounting)."""
    has_full_snapshot: bool


def validate_batch(raw: object, limits: Limits) -> list[Event]:
    """Validate a batch of rrweb events and return the events.

    Args:
        raw: the JSON text the client sent (``str``/``bytes``), or the already
            decoded list of event objects.
        limits: caps to enforce.

    Raises:
        CobrowseError: ``malformed``, ``too_large``, ``too_many_events``,
            ``too_deep``, ``too_many_nodes`` or ``bad_event``.
    """
    return check_batch(raw, limits).events


def check_batch(raw: object, limits: Limits) -> Batch:
    """Like :func:`validate_batch` but also returns the size and snapshot flag."""
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if len(data) > limits.max_raw_bytes:
            raise CobrowseError("too_large", f"batch of {len(data)} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CobrowseError("malformed", "batch is not UTF-8") from None
        events_obj = _loads(text)
        nbytes = len(data)
        clean = _walks_cannot_fail(text, nbytes, limits)
    elif isinstance(raw, str):
        if len(raw) > limits.max_raw_bytes:  # chars <= bytes: a cheap early bound
            raise CobrowseError("too_large", f"batch of {len(raw)}+ bytes")
        events_obj = _loads(raw)
        # An ASCII string's UTF-8 is as long as it is (``isascii`` reads a flag CPython keeps):
        # nearly every batch, not copied just to be measured.
        nbytes = len(raw) if raw.isascii() else len(raw.encode("utf-8"))
        clean = _walks_cannot_fail(raw, nbytes, limits)
    else:
        events_obj = raw
        nbytes = _encoded_size(raw)
        clean = False

    if not isinstance(events_obj, list):
        raise CobrowseError("malformed", "batch must be a JSON array of events")
    if len(events_obj) > limits.max_events_per_batch:
        raise CobrowseError("too_many_events", f"{len(events_obj)} events in one batch")

    if nbytes > min(limits.max_batch_bytes, limits.max_snapshot_batch_bytes):
        # Which cap applies is known before any event is checked (a pass over the batch
        # that a batch under both caps, nearly every one, need not make).
        full = any(
            isinstance(ev, dict) and ev.get("type") == EVENT_FULL_SNAPSHOT for ev in events_obj
        )
        cap = limits.max_snapshot_batch_bytes if full else limits.max_batch_bytes
        if nbytes > cap:
            raise CobrowseError("too_large", f"batch of {nbytes} bytes (cap {cap})")

    budget = _NodeBudget(limits.max_nodes)
    has_full = False
    for i, ev in enumerate(events_obj):
        if _check_event(ev, i, limits, budget, clean) == EVENT_FULL_SNAPSHOT:
            has_full = True
    return Batch(events=list(events_obj), nbytes=nbytes, has_full_snapshot=has_full)


# --------------------------------------------------------------------------- parsing


def _loads(text: str) -> object:
    """The batch's JSON, parsed by orjson (three times as fast as ``json`` on a batch of small
    events, and stricter where it matters here: it refuses ``NaN`` and ``Infinity``, lone
    surrogates and nesting past 1,024 levels). An integer past 64 bits becomes a float, which
    the checks below refuse wherever an id or a count is expected."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise CobrowseError("too_deep", "batch JSON nests too deeply") from None
        raise CobrowseError("malformed", "batch is not valid JSON") from None


def _encoded_size(obj: object) -> int:
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise CobrowseError("too_deep", "batch nests too deeply") from None
    except (TypeError, ValueError):
        raise CobrowseError("malformed", "batch is not JSON-serialisable") from None
    return len(text.encode("utf-8", errors="surrogatepass"))


def _walks_cannot_fail(text: str, nbytes: int, limits: Limits) -> bool:
    """Whether the generic walk (``_check_strings``) could refuse nothing in a batch orjson
    parsed from ``text``: it checks JSON types, which orjson makes only (finite floats, string
    keys), string lengths, which no string of a batch smaller than the cap can exceed, and
    nesting, which cannot reach the cap when the batch holds fewer opening brackets than that
    (brackets inside strings only count more). Most batches qualify, and their small events
    are then not walked at all (the walk was a third of a batch's validation)."""
    if nbytes > limits.max_string_len:
        return False
    return text.count("[") + text.count("{") < limits.max_json_depth


# --------------------------------------------------------------------------- helpers


class _NodeBudget:
    __slots__ = ("left", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def take(self, where: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise CobrowseError("too_many_nodes", f"more than {self.total} nodes ({where})")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v)


def _bad(where: str, what: str) -> CobrowseError:
    return CobrowseError("bad_event", f"{where}: {what}")


def _check_str(v: object, where: str, cap: int, *, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str):
        raise _bad(where, "expected a string")
    if len(v) > cap:
        raise CobrowseError("too_large", f"{where}: string of {len(v)} chars (cap {cap})")


def _strings_clean(obj: object, max_string: int, max_depth: int) -> bool:
    """True only when ``_check_strings`` would pass ``obj``: the same checks, in one quick
    walk over exact JSON types (what ``json.loads`` makes). Anything else, and any fault,
    answers False, and the full walk then finds and names the fault."""
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        cur, depth = stack.pop()
        if depth >= max_depth:  # its children would be too deep: let the full walk judge
            return False
        kind = type(cur)
        if kind is dict:
            assert isinstance(cur, dict)
            for key in cur:
                if type(key) is not str:
                    return False
            values: Any = cur.values()
        elif kind is list:
            values = cur
        else:
            return False
        for value in values:
            kind = type(value)
            if kind is str:
                if len(value) > max_string:
                    return False
            elif kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif not (kind is int or kind is bool or value is None):
                return False
    return True


def _check_strings(obj: object, where: str, limits: Limits) -> None:
    """Generic walk: every string under ``obj`` within the string cap, JSON types only."""
    if type(obj) is dict and _strings_clean(obj, limits.max_string_len, limits.max_json_depth):
        return
    stack: list[tuple[object, int]] = [(obj, 0)]
    max_depth = limits.max_json_depth
    while stack:
        cur, depth = stack.pop()
        if depth > max_depth:
            raise CobrowseError("too_deep", f"{where}: nests too deeply")
        if isinstance(cur, str):
            if len(cur) > limits.max_string_len:
                raise CobrowseError("too_large", f"{where}: string of {len(cur)} chars")
        elif isinstance(cur, dict):
            for k, v in cur.items():
                if not isinstance(k, str):
                    raise CobrowseError("malformed", f"{where}: non-string key")
                if isinstance(v, dict | list | str):
                    stack.append((v, depth + 1))
                elif not (v is None or isinstance(v, bool) or _is_num(v)):
                    raise CobrowseError("malformed", f"{where}: non-JSON value")
        elif isinstance(cur, list):
            for v in cur:
                if isinstance(v, dict | list | str):
                    stack.append((v, depth + 1))
                elif not (v is None or isinstance(v, bool) or _is_num(v)):
                    raise CobrowseError("malformed", f"{where}: non-JSON value")


# --------------------------------------------------------------------------- events


def _check_event(ev: object, i: int, limits: Limits, budget: _NodeBudget, clean: bool) -> int:
    """Check one event; its type. ``clean``: the generic walk could refuse nothing in this
    batch (``_walks_cannot_fail``), so it is not made."""
    # The checks come first and the error text (``event[i]...``) is made only for a fault:
    # formatting it for every event and item cost as much as the checks themselves.
    if not isinstance(ev, dict):
        raise _bad(f"event[{i}]", "not an object")
    if not _EVENT_KEYS.issuperset(ev):
        raise _bad(f"event[{i}]", "unknown top-level key")
    etype: int = ev.get("type")  # type: ignore[assignment]  # an int, checked just below
    if type(etype) is not int and not _is_int(etype):  # exact int first: json.loads's
        raise _bad(f"event[{i}]", "type must be an integer")
    if etype not in limits.accepted_types:
        raise _bad(f"event[{i}]", f"event type {etype} not accepted")
    ts = ev.get("timestamp")
    kind = type(ts)
    if not (kind is int or (kind is float and math.isfinite(ts)) or _is_num(ts)) or ts < 0:  # type: ignore[arg-type,operator]
        raise _bad(f"event[{i}]", "timestamp must be a finite non-negative number")
    if "delay" in ev and not _is_num(ev["delay"]):
        raise _bad(f"event[{i}]", "delay must be a number")
    data = ev.get("data")
    if not isinstance(data, dict):
        raise _bad(f"event[{i}]", "data must be an object")

    if etype == EVENT_INCREMENTAL:
        source = data.get("source")
        if (type(source) is not int and not _is_int(source)) or source not in _SOURCES:
            raise _bad(f"event[{i}]", "unknown incremental source")
        if source == SOURCE_MUTATION:
            _check_mutation(data, f"event[{i}]", limits, budget, clean)
        elif not clean and not _strings_clean(data, limits.max_string_len, limits.max_json_depth):
            _check_strings(data, f"event[{i}]", limits)
        return etype
    where = f"event[{i}]"
    if etype == EVENT_FULL_SNAPSHOT:
        if "node" not in data:
            raise _bad(where, "full snapshot without node")
        _check_node_tree(data["node"], f"{where}.data.node", limits, budget)
        off = data.get("initialOffset")
        if off is not None and not (
            isinstance(off, dict) and all(_is_num(off.get(k, 0)) for k in ("top", "left"))
        ):
            raise _bad(where, "initialOffset must be {top, left}")
        if not clean:
            _check_strings({k: v for k, v in data.items() if k != "node"}, where, limits)
    elif etype == EVENT_META:
        _check_str(data.get("href"), f"{where}.data.href", limits.max_string_len)
        if not (_is_num(data.get("width")) and _is_num(data.get("height"))):
            raise _bad(where, "meta width/height must be numbers")
        if not clean:
            _check_strings(data, where, limits)
    elif not clean:
        _check_strings(data, where, limits)
    return etype


def _check_mutation(
    data: dict[str, Any], where: str, limits: Limits, budget: _NodeBudget, clean: bool
) -> None:
    for key in ("texts", "attributes", "removes", "adds"):
        if not isinstance(data.get(key), list):
            raise _bad(where, f"mutation.{key} must be a list")
    max_string = limits.max_string_len
    for j, t in enumerate(data["texts"]):
        if not isinstance(t, dict) or not _is_int(t.get("id")):
            raise _bad(f"{where}.texts[{j}]", "expected {id, value}")
        value = t.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > max_string):
            _check_str(value, f"{where}.texts[{j}]", max_string, optional=True)
    for j, a in enumerate(data["attributes"]):
        if not isinstance(a, dict) or not _is_int(a.get("id")):
            raise _bad(f"{where}.attributes[{j}]", "expected {id, attributes}")
        attrs = a.get("attributes")
        if not isinstance(attrs, dict):
            raise _bad(f"{where}.attributes[{j}]", "attributes must be an object")
        _check_attr_map(attrs, f"{where}.attributes[{j}]", limits, allow_style_om=True)
    for j, r in enumerate(data["removes"]):
        if not isinstance(r, dict) or not _is_int(r.get("id")) or not _is_int(r.get("parentId")):
            raise _bad(f"{where}.removes[{j}]", "expected {parentId, id}")
    for j, add in enumerate(data["adds"]):
        if not isinstance(add, dict) or not _is_int(add.get("parentId")):
            raise _bad(f"{where}.adds[{j}]", "expected {parentId, nextId, node}")
        nxt = add.get("nextId")
        if nxt is not None and not _is_int(nxt):
            raise _bad(f"{where}.adds[{j}]", "nextId must be an integer or null")
        prev = add.get("previousId")
        if prev is not None and not _is_int(prev):
            raise _bad(f"{where}.adds[{j}]", "previousId must be an integer or null")
        _check_node_tree(add.get("node"), f"{where}.adds[{j}].node", limits, budget)
    if not clean:
        rest = {
            k: v for k, v in data.items() if k not in ("texts", "attributes", "removes", "adds")
        }
        _check_strings(rest, where, limits)


def _check_attr_map(
    attrs: dict[str, Any], where: str, limits: Limits, *, allow_style_om: bool
) -> None:
    if len(attrs) > limits.max_attrs_per_element:
        raise CobrowseError("too_large", f"{where}: {len(attrs)} attributes")
    for name, value in attrs.items():
        if not isinstance(name, str) or not name or len(name) > limits.max_name_len:
            raise _bad(where, "bad attribute name")
        if isinstance(value, str):
            if len(value) > limits.max_attr_value_len:
                raise CobrowseError("too_large", f"{where}: attribute value of {len(value)} chars")
        elif value is None or isinstance(value, bool) or _is_num(value):
            continue
        elif allow_style_om and isinstance(value, dict):
            # rrweb styleOMValue: {prop: value | [value, priority] | false}
            for prop, pv in value.items():
                _check_str(prop, where, limits.max_name_len)
                if pv is False:
                    continue
                if isinstance(pv, list):
                    if len(pv) > 2:
                        raise _bad(where, "bad style value")
                    for part in pv:
                        _check_str(part, where, limits.max_attr_value_len)
                else:
                    _check_str(pv, where, limits.max_attr_value_len)
        else:
            raise _bad(where, "bad attribute value")


def _check_node_tree(root: object, where: str, limits: Limits, budget: _NodeBudget) -> None:
    # The same checks as node by node with the helpers, in the same order (so the same fault is
    # named), with the common case inlined: a full snapshot is thousands of nodes, checked in
    # the customer's socket reader while the batches behind it wait (the helpers, a call or two
    # per node and per attribute, were half of a snapshot's check).
    max_depth = limits.max_node_depth
    max_name = limits.max_name_len
    max_string = limits.max_string_len
    stack: list[tuple[object, int]] = [(root, 1)]
    pop, extend = stack.pop, stack.extend
    while stack:
        node, depth = pop()
        if depth > max_depth:
            raise CobrowseError("too_deep", f"{where}: node depth over {max_depth}")
        if not isinstance(node, dict):
            raise _bad(where, "node must be an object")
        budget.take(where)
        get = node.get
        ntype = get("type")
        if (type(ntype) is not int and not _is_int(ntype)) or ntype not in _NODE_TYPES:
            raise _bad(where, "unknown node type")
        node_id = get("id")
        if type(node_id) is not int and not _is_int(node_id):
            raise _bad(where, "node id must be an integer")
        if "rootId" in node:
            root_id = node["rootId"]
            if root_id is not None and not _is_int(root_id):
                raise _bad(where, "rootId must be an integer")
        if ntype == NODE_ELEMENT or ntype == NODE_DOCUMENT:
            children = get("childNodes")
            if not isinstance(children, list):
                raise _bad(where, "childNodes must be a list")
            if ntype == NODE_ELEMENT:
                tag = get("tagName")
                if type(tag) is not str or len(tag) > max_name:
                    _check_str(tag, where, max_name)
                if not tag:
                    raise _bad(where, "empty tagName")
                attrs = get("attributes")
                if not isinstance(attrs, dict):
                    raise _bad(where, "attributes must be an object")
                if attrs:
                    _check_attr_map(attrs, where, limits, allow_style_om=False)
            if children:
                below = depth + 1
                extend([(child, below) for child in children])
        elif ntype == NODE_DOCUMENT_TYPE:
            for key in ("name", "publicId", "systemId"):
                _check_str(get(key, ""), where, max_name * 4)
        else:
            text_content = get("textContent")
            if type(text_content) is not str or len(text_content) > max_string:
                _check_str(text_content, where, max_string)
