"""Batch validation: schema errors and every cap."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobrowse import (
    CobrowseError,
    EventType,
    IncrementalSource,
    Limits,
    check_batch,
    validate_batch,
)
from tests.cobrowse.cobrowse_factories import add, el, full, meta, mouse_move, mutation, page, text


def _code(raw: object, limits: Limits | None = None) -> str:
    with pytest.raises(CobrowseError) as info:
        validate_batch(raw, limits or Limits())
    return info.value.code


def test_valid_batch_as_text_bytes_and_objects() -> None:
    events = [meta(), full(page(el("p", {"class": "x"}, [text("hi")]))), mouse_move()]
    raw = json.dumps(events)
    assert validate_batch(raw, Limits()) == events
    assert validate_batch(raw.encode(), Limits()) == events
    batch = check_batch(events, Limits())
    assert batch.events == events
    assert batch.has_full_snapshot
    assert batch.nbytes == len(json.dumps(events, separators=(",", ":")).encode())


@pytest.mark.parametrize("words", ["plain ascii", "caf\u00e9 \u2028 \U0001f600", "\\u00e9 escaped"])
def test_a_batchs_size_is_its_utf8_size_whatever_its_text(words: str) -> None:
    events = [full(page(el("p", {"title": words}, [text(words)])))]
    for raw in (json.dumps(events, ensure_ascii=False), json.dumps(events)):
        assert check_batch(raw, Limits()).nbytes == len(raw.encode("utf-8"))
        assert check_batch(raw.encode(), Limits()).nbytes == len(raw.encode("utf-8"))


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        b"\xff\xfe",
        "{}",
        '{"type": 2}',
        "[1, 2]",
        "[NaN]",
        '[{"type":3,"data":{},"timestamp":Infinity}]',
        object(),
    ],
)
def test_malformed(raw: object) -> None:
    assert _code(raw) in ("malformed", "bad_event")


@pytest.mark.parametrize(
    "event",
    [
        {"type": 99, "data": {}, "timestamp": 1},
        {"type": True, "data": {}, "timestamp": 1},
        {"type": "2", "data": {}, "timestamp": 1},
        {"type": 7, "data": {"url": "x", "payload": {}}, "timestamp": 1},  # Asset: not accepted
        {"type": 3, "data": {}, "timestamp": "now"},
        {"type": 3, "data": {}, "timestamp": -1},
        {"type": 3, "data": [], "timestamp": 1},
        {"type": 3, "data": {"source": 99}, "timestamp": 1},
        {"type": 3, "data": {"source": 0, "texts": []}, "timestamp": 1},
        {"type": 3, "data": {"source": 1}, "timestamp": 1, "extra": 1},
        {"type": 2, "data": {}, "timestamp": 1},
        {"type": 2, "data": {"node": {"type": 9, "id": 1}}, "timestamp": 1},
        {"type": 2, "data": {"node": {"type": 0, "id": "1", "childNodes": []}}, "timestamp": 1},
        {
            "type": 2,
            "data": {
                "node": {"type": 2, "id": 1, "tagName": "", "attributes": {}, "childNodes": []}
            },
            "timestamp": 1,
        },
        {
            "type": 2,
            "data": {
                "node": {
                    "type": 2,
                    "id": 1,
                    "tagName": "a",
                    "attributes": {"x": [1]},
                    "childNodes": [],
                }
            },
            "timestamp": 1,
        },
        {"type": 2, "data": {"node": {"type": 3, "id": 1, "textContent": 5}}, "timestamp": 1},
        {"type": 4, "data": {"href": 1, "width": 1, "height": 1}, "timestamp": 1},
        mutation(adds=[{"parentId": "5", "nextId": None, "node": text("x")}]),
        mutation(removes=[{"id": 1}]),
        mutation(attributes=[{"id": 1, "attributes": {"style": {"color": 5}}}]),
    ],
)
def test_bad_event(event: dict[str, Any]) -> None:
    assert _code([event]) == "bad_event"


def test_fast_paths_keep_the_checks_of_the_slow_ones() -> None:
    """The per-event checks test exact ints and dicts first (what ``json.loads`` makes): an
    already decoded batch with ``IntEnum`` values is still accepted, a bool is still refused,
    and a fault's location is still named, down to the item."""
    event = {
        "type": EventType.INCREMENTAL_SNAPSHOT,
        "data": {"source": IncrementalSource.MOUSE_MOVE, "positions": []},
        "timestamp": 1.5,
    }
    assert validate_batch([event], Limits()) == [event]
    for bad in (
        {"type": 3, "data": {"source": True}, "timestamp": 1},
        {"type": 3, "data": {"source": 1}, "timestamp": False},
    ):
        assert _code([mouse_move(), bad]) == "bad_event"
    with pytest.raises(CobrowseError) as info:
        validate_batch(
            [mouse_move(), mutation(texts=[{"id": 1, "value": "a"}, {"id": "2"}])], Limits()
        )
    assert "event[1].texts[1]" in str(info.value)
    with pytest.raises(CobrowseError) as info:
        validate_batch([mutation(removes=[{"id": 1, "parentId": 2}, {"id": 3}])], Limits())
    assert "event[0].removes[1]" in str(info.value)


def test_too_many_events() -> None:
    assert _code([mouse_move()] * 11, Limits(max_events_per_batch=10)) == "too_many_events"
    validate_batch([mouse_move()] * 10, Limits(max_events_per_batch=10))


def test_too_large_batch_bytes() -> None:
    events = [mouse_move()] * 50
    size = check_batch(events, Limits()).nbytes
    assert _code(events, Limits(max_batch_bytes=size - 1)) == "too_large"
    assert _code(json.dumps(events), Limits(max_batch_bytes=size - 1)) == "too_large"
    validate_batch(events, Limits(max_batch_bytes=size))


def test_snapshot_batches_get_the_bigger_cap() -> None:
    events = [full(page(el("p", {}, [text("x" * 2000)])))]
    limits = Limits(max_batch_bytes=1000, max_snapshot_batch_bytes=10_000)
    validate_batch(events, limits)
    assert _code([mutation(adds=[add(text("x" * 2000))])], limits) == "too_large"
    assert _code(events, Limits(max_batch_bytes=1000, max_snapshot_batch_bytes=1000)) == "too_large"
    # A snapshot cap below the other one still applies to a snapshot batch between the two.
    small_snapshots = Limits(max_batch_bytes=10_000, max_snapshot_batch_bytes=1000)
    assert _code(events, small_snapshots) == "too_large"
    assert check_batch(events, limits).has_full_snapshot
    assert not check_batch([mouse_move()], limits).has_full_snapshot


def test_raw_text_over_the_largest_cap_is_refused_before_parsing() -> None:
    assert (
        _code("[" + " " * 2000 + "]", Limits(max_batch_bytes=100, max_snapshot_batch_bytes=100))
        == "too_large"
    )


def _deep(depth: int) -> dict[str, Any]:
    node = el("div")
    for _ in range(depth - 1):
        node = el("div", {}, [node])
    return node


def test_node_depth_cap() -> None:
    limits = Limits(max_node_depth=50)
    validate_batch([full(_deep(50))], limits)
    assert _code([full(_deep(51))], limits) == "too_deep"
    assert _code([mutation(adds=[add(_deep(51))])], limits) == "too_deep"


def test_default_depth_cap_and_json_recursion() -> None:
    limits = Limits()
    validate_batch(json.dumps([full(_deep(limits.max_node_depth))]), limits)
    assert _code([full(_deep(limits.max_node_depth + 1))], limits) == "too_deep"
    # Deeper than CPython's JSON recursion: refused as too_deep, not a crash.
    raw = "[" * 5000 + "]" * 5000
    assert _code(raw) == "too_deep"


def test_generic_nesting_in_other_payloads_is_bounded() -> None:
    payload: Any = 1
    for _ in range(300):
        payload = [payload]
    ev = {"type": 5, "data": {"tag": "x", "payload": payload}, "timestamp": 1}
    assert _code([ev], Limits(max_node_depth=100)) == "too_deep"


def test_node_count_cap_per_batch() -> None:
    limits = Limits(max_nodes=30)
    body = [el("p") for _ in range(20)]
    validate_batch([full(page(*body))], limits)  # 5 structural + 20
    assert (
        _code(
            [full(page(*body)), mutation(adds=[add(el("p", {}, [el("b") for _ in range(9)]))])],
            limits,
        )
        == "too_many_nodes"
    )


def test_attribute_value_and_string_caps() -> None:
    limits = Limits(max_attr_value_len=100, max_string_len=100)
    validate_batch([full(page(el("p", {"class": "x" * 100})))], limits)
    assert _code([full(page(el("p", {"class": "x" * 101})))], limits) == "too_large"
    assert _code([full(page(el("p", {}, [text("y" * 101)])))], limits) == "too_large"
    assert _code([mutation(texts=[{"id": 1, "value": "y" * 101}])], limits) == "too_large"
    assert (
        _code(
            [mutation(attributes=[{"id": 1, "attributes": {"style": {"color": "z" * 101}}}])],
            limits,
        )
        == "too_large"
    )
    assert (
        _code([{"type": 5, "data": {"tag": "t", "payload": "p" * 101}, "timestamp": 1}], limits)
        == "too_large"
    )


def test_too_many_attributes() -> None:
    attrs = {f"data-{i}": "1" for i in range(11)}
    assert _code([full(page(el("p", attrs)))], Limits(max_attrs_per_element=10)) == "too_large"


def test_malformed_batch_changes_nothing() -> None:
    good = mouse_move()
    events = [good, {"type": 99, "data": {}, "timestamp": 1}]
    before = json.dumps(events)
    _code(events)
    assert json.dumps(events) == before


def test_error_messages_never_echo_content() -> None:
    secret = "4111111111111111"
    with pytest.raises(CobrowseError) as info:
        validate_batch(
            [full(page(el("p", {"class": secret * 100})))], Limits(max_attr_value_len=10)
        )
    assert secret not in str(info.value)


_TEXT = st.characters(exclude_categories=["Cs"])  # no lone surrogates: no JSON text holds one


def _nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(_TEXT, max_size=60),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_TEXT, max_size=5), inner,
    max_size=3),
    max_leaves=40,
)  # fmt: skip


_free_form = (
    _json_values | st.integers(10, 30).map(_nested) | st.text(_TEXT, min_size=41, max_size=60)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 3, 5]), _free_form), min_size=1, max_size=6),
    # Strings over a cap smaller than the batch; nesting past the walk's 18 levels in a batch
    # smaller than the string cap.
    st.sampled_from([Limits(max_string_len=40), Limits(max_string_len=10_000, max_node_depth=1)]),
)
def test_a_batch_read_from_text_is_judged_as_its_events_are(
    items: list[tuple[int, object]], limits: Limits
) -> None:
    """A batch parsed from its JSON text skips the walk over free-form fields when nothing in
    it could fail (``_walks_cannot_fail``); the verdict must be the one the full walk gives on
    the same events (a string over the cap, nesting too deep), whatever they hold."""
    events: list[dict[str, Any]] = []
    for kind, value in items:
        if kind == 5:
            events.append({"type": 5, "data": {"tag": "t", "payload": value}, "timestamp": 1})
        elif kind == 3:
            data = {"source": 3, "id": 1, "x": 0, "y": 2, "extra": value}
            events.append({"type": 3, "data": data, "timestamp": 1})
        else:
            events.append({"type": 4, "data": {"href": "h", "width": 1, "height": 2, "x": value},
                           "timestamp": 1})  # fmt: skip
    text = json.dumps(events, separators=(",", ":"), ensure_ascii=False)

    def verdict(raw: object) -> str:
        try:
            check_batch(raw, limits)
        except CobrowseError as exc:
            return exc.code
        return "ok"

    walked = verdict(events)  # decoded events: always walked
    assert verdict(text) == walked
    assert verdict(text.encode()) == walked
