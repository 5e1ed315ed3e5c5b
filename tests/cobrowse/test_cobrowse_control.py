"""Remote-control state machine, expiry with an injected clock, actions, audit chain."""

from __future__ import annotations

from typing import Any

import pytest

from cobrowse import (
    ControlError,
    ControlGrant,
    ControlPolicy,
    ControlState,
    TargetStatus,
    validate_control_action,
    verify_audit_chain,
)
from tests.cobrowse.cobrowse_factories import FakeClock

CLICK = {"type": "click", "targetId": 42, "x": 10, "y": 20}


def _grant(**kw: Any) -> tuple[ControlGrant, FakeClock, list[dict[str, Any]]]:
    clock = FakeClock()
    return ControlGrant("sess-1", ControlPolicy(**kw), clock), clock, []


def _refused(log: list[dict[str, Any]], fn: Any, *args: Any) -> str:
    with pytest.raises(ControlError) as info:
        fn(*args)
    log.extend(info.value.audit)
    return info.value.code


def test_happy_path_and_audit_chain() -> None:
    g, _, log = _grant()
    assert state_of(g) is ControlState.NONE
    log += g.request("agent-a")
    assert state_of(g) is ControlState.REQUESTED
    log += g.grant("cust")
    assert state_of(g) is ControlState.GRANTED and g.active
    action, entries = g.authorize("agent-a", {**CLICK, "junk": "dropped"}, TargetStatus.OK)
    log += entries
    assert action == {"type": "click", "targetId": 42, "x": 10.0, "y": 20.0}
    log += g.revoke("cust", "customer")
    assert state_of(g) is ControlState.REVOKED
    assert [e["event"] for e in log] == [
        "control.request",
        "control.grant",
        "control.action",
        "control.revoke",
    ]
    assert all(e["result"] == "ok" and e["session_id"] == "sess-1" for e in log)
    assert [e["seq"] for e in log] == [1, 2, 3, 4]
    assert verify_audit_chain(log)
    tampered = [dict(e) for e in log]
    tampered[2]["action"] = {"type": "click", "targetId": 1}
    assert not verify_audit_chain(tampered)
    assert not verify_audit_chain(log[:1] + log[2:])  # a removed entry breaks the chain


def test_request_expires_after_ttl() -> None:
    g, clock, log = _grant(request_ttl=30)
    log += g.request("agent-a")
    clock.advance(29.9)
    assert g.tick() == []
    clock.advance(0.2)
    assert _refused(log, g.grant, "cust") == "request_expired"
    assert state_of(g) is ControlState.EXPIRED
    assert [e["event"] for e in log][-2:] == ["control.expire", "control.grant"]
    assert log[-1]["result"] == "refused"
    log += g.request("agent-a")  # may ask again
    assert state_of(g) is ControlState.REQUESTED
    assert verify_audit_chain(log)


def test_grant_expires_and_actions_are_refused() -> None:
    g, clock, log = _grant(grant_ttl=300)
    log += g.request("agent-a") + g.grant("cust")
    clock.advance(299)
    log += g.authorize("agent-a", CLICK, TargetStatus.OK)[1]
    clock.advance(2)
    assert not g.active
    assert _refused(log, g.authorize, "agent-a", CLICK, TargetStatus.OK) == "not_granted"
    assert state_of(g) is ControlState.EXPIRED
    assert [e["event"] for e in log][-2:] == ["control.expire", "control.action"]


def test_tick_records_expiry_once() -> None:
    g, clock, _ = _grant()
    g.request("a")
    g.grant("c")
    clock.advance(301)
    assert [e["event"] for e in g.tick()] == ["control.expire"]
    assert g.tick() == []


def test_deny_and_invalid_transitions() -> None:
    g, _, log = _grant()
    assert _refused(log, g.grant, "cust") == "no_request"
    assert _refused(log, g.deny, "cust") == "no_request"
    assert _refused(log, g.revoke, "cust", "customer") == "not_active"
    log += g.request("agent-a")
    assert _refused(log, g.request, "agent-b") == "already_requested"
    log += g.deny("cust")
    assert state_of(g) is ControlState.DENIED
    assert _refused(log, g.authorize, "agent-a", CLICK, TargetStatus.OK) == "not_granted"
    log += g.request("agent-a") + g.grant("cust")
    assert _refused(log, g.request, "agent-b") == "already_granted"
    assert verify_audit_chain(log)
    assert all(e["result"] == "refused" for e in log if e.get("reason"))


def test_revoke_by_agent_only_its_own() -> None:
    g, _, log = _grant()
    g.request("agent-a")
    g.grant("cust")
    assert _refused(log, g.authorize, "agent-b", CLICK, TargetStatus.OK) == "not_granted"
    assert _refused(log, g.revoke, "agent-b", "agent") == "not_holder"
    g.revoke("agent-a", "agent")
    assert state_of(g) is ControlState.REVOKED
    assert _refused(log, g.authorize, "agent-a", CLICK, TargetStatus.OK) == "not_granted"


def test_masked_and_unknown_targets_refused() -> None:
    g, _, log = _grant()
    g.request("a")
    g.grant("c")
    assert _refused(log, g.authorize, "a", CLICK, TargetStatus.MASKED) == "masked_target"
    assert _refused(log, g.authorize, "a", CLICK, TargetStatus.UNKNOWN) == "unknown_target"
    assert all(e["result"] == "refused" for e in log)


def test_typed_text_never_reaches_the_audit_log() -> None:
    g, _, _ = _grant()
    g.request("a")
    g.grant("c")
    action, entries = g.authorize(
        "a", {"type": "type", "targetId": 3, "text": "hunter2"}, TargetStatus.OK
    )
    assert action["text"] == "hunter2"
    assert "hunter2" not in repr(entries)
    assert entries[-1]["action"]["text_len"] == 7


def test_action_rate_limit() -> None:
    g, clock, log = _grant(actions_per_second=1, action_burst=3)
    g.request("a")
    g.grant("c")
    for _ in range(3):
        g.authorize("a", CLICK, TargetStatus.OK)
    assert _refused(log, g.authorize, "a", CLICK, TargetStatus.OK) == "rate_limited"
    clock.advance(1.0)
    g.authorize("a", CLICK, TargetStatus.OK)


@pytest.mark.parametrize(
    "action",
    [
        None,
        [],
        {"type": "drag", "targetId": 1},
        {"type": "click", "targetId": -1, "x": 1, "y": 1},
        {"type": "click", "targetId": True, "x": 1, "y": 1},
        {"type": "click", "targetId": "1", "x": 1, "y": 1},
        {"type": "click", "targetId": 1, "x": 1},
        {"type": "click", "targetId": 1, "x": float("nan"), "y": 1},
        {"type": "click", "targetId": 1, "x": 1e9, "y": 1},
        {"type": "click", "targetId": 1, "x": -5, "y": 1},
        {"type": "scroll", "targetId": 1, "x": 0, "y": 1e12},
        {"type": "type", "targetId": 1, "text": ""},
        {"type": "type", "targetId": 1, "text": "x" * 257},
        {"type": "type", "targetId": 1, "text": "a\x00b"},
        {"type": "type", "targetId": 1, "text": "abc\u202e"},
        {"type": "type", "targetId": 1, "text": 5},
        {"type": "key", "targetId": 1, "key": "F5"},
        {"type": "key", "targetId": 1, "key": "w", "ctrl": True},
        {"type": "key", "targetId": 1, "key": "Enter", "shift": "yes"},
    ],
)
def test_validate_control_action_rejects(action: object) -> None:
    with pytest.raises(ControlError) as info:
        validate_control_action(action)
    assert info.value.code == "bad_action"


def test_validate_control_action_accepts() -> None:
    assert validate_control_action({"type": "scroll", "targetId": 1, "x": 0, "y": 900}) == {
        "type": "scroll",
        "targetId": 1,
        "x": 0.0,
        "y": 900.0,
    }
    assert validate_control_action({"type": "key", "targetId": 1, "key": "Enter"}) == {
        "type": "key",
        "targetId": 1,
        "key": "Enter",
        "shift": False,
    }
    assert (
        validate_control_action({"type": "type", "targetId": 1, "text": "line\nnext\tx"})["text"]
        == "line\nnext\tx"
    )


def state_of(grant: ControlGrant) -> ControlState:
    """The grant's state, read afresh (an assert on ``grant.state`` would narrow its type)."""
    return grant.state
