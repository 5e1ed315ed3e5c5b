"""Remote-control domain logic: consent state machine, action validation, audit.

Pure and synchronous; signaling calls it and persists the audit entries it returns.

State machine (one :class:`ControlGrant` per co-browse session)::

    none|denied|revoked|expired --request(agent)--> requested   (TTL 30 s)
    requested --grant(customer)--> granted                      (TTL 5 min)
    requested --deny(customer)--> denied
    requested|granted --revoke(customer, or the requesting agent)--> revoked
    requested|granted --TTL elapsed--> expired

Every transition, refusal and action produces exactly one audit entry (an
expiry noticed during a call produces its own entry first). Entries are
hash-chained per session (``prev``/``hash``, SHA-256 over canonical JSON) so an
append-only store can prove nothing was removed or edited. Entries never contain
typed text, only its length.

Masked elements cannot be targeted: :meth:`ControlGrant.authorize` takes the
mirror's :class:`~cobrowse.mirror.TargetStatus` for the target and refuses
``MASKED`` and ``UNKNOWN``. The customer's snippet refuses masked targets too.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict

from .exceptions import ControlError
from .mirror import TargetStatus
from .ratelimit import TokenBucket

__all__ = [
    "ALLOWED_KEYS",
    "AuditEntry",
    "ControlAction",
    "ControlGrant",
    "ControlPolicy",
    "ControlState",
    "validate_control_action",
    "verify_audit_chain",
]

AuditEntry = dict[str, Any]
"""``{seq, ts, session_id, event, actor, role, result, reason, state, action?, prev, hash}``"""

ALLOWED_KEYS: Final = frozenset(
    {
        "Enter", "Tab", "Backspace", "Delete", "Escape", "ArrowUp", "ArrowDown",
        "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown", " ",
    }
)  # fmt: skip
"""Keys an agent may press. No Ctrl/Alt/Meta combinations."""

_BAD_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_GENESIS: Final = "0" * 64


class ControlState(enum.StrEnum):
    """Remote-control consent state."""

    NONE = "none"
    REQUESTED = "requested"
    GRANTED = "granted"
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ControlAction(TypedDict):
    """A validated agent action, with only known fields."""

    type: Literal["click", "scroll", "type", "key"]
    targetId: int
    x: NotRequired[float]
    y: NotRequired[float]
    text: NotRequired[str]
    key: NotRequired[str]
    shift: NotRequired[bool]


@dataclass(frozen=True, slots=True)
class ControlPolicy:
    """TTLs and caps."""

    request_ttl: float = 30.0
    grant_ttl: float = 300.0
    max_text_len: int = 256
    max_coord: float = 100_000.0
    """Click coordinates (CSS px in the customer's viewport)."""
    max_scroll: float = 10_000_000.0
    actions_per_second: float = 20.0
    action_burst: float = 40.0
    allowed_keys: frozenset[str] = field(default=ALLOWED_KEYS)


def _num(action: dict[str, Any], key: str, hi: float) -> float:
    v = action.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ControlError("bad_action", f"{key} must be a finite number")
    if not 0 <= v <= hi:
        raise ControlError("bad_action", f"{key} out of range")
    return float(v)


def validate_control_action(action: object, policy: ControlPolicy | None = None) -> ControlAction:
    """Validate an agent action and return a normalised copy (unknown fields dropped).

    Shapes: ``{type: "click", targetId, x, y}``, ``{type: "scroll", targetId, x, y}``
    (scroll position), ``{type: "type", targetId, text}``,
    ``{type: "key", targetId, key, shift?}``.

    Raises:
        ControlError: ``bad_action``.
    """
    p = policy or ControlPolicy()
    if not isinstance(action, dict):
        raise ControlError("bad_action", "action must be an object")
    kind = action.get("type")
    target = action.get("targetId")
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ControlError("bad_action", "targetId must be a non-negative integer")
    if kind == "click":
        return {
            "type": "click",
            "targetId": target,
            "x": _num(action, "x", p.max_coord),
            "y": _num(action, "y", p.max_coord),
        }
    if kind == "scroll":
        return {
            "type": "scroll",
            "targetId": target,
            "x": _num(action, "x", p.max_scroll),
            "y": _num(action, "y", p.max_scroll),
        }
    if kind == "type":
        text = action.get("text")
        if not isinstance(text, str) or not text:
            raise ControlError("bad_action", "text must be a non-empty string")
        if len(text) > p.max_text_len:
            raise ControlError("bad_action", f"text longer than {p.max_text_len}")
        if _BAD_TEXT.search(text):
            raise ControlError("bad_action", "text contains control characters")
        return {"type": "type", "targetId": target, "text": text}
    if kind == "key":
        key = action.get("key")
        if not isinstance(key, str) or key not in p.allowed_keys:
            raise ControlError("bad_action", "key not allowed")
        shift = action.get("shift", False)
        if not isinstance(shift, bool):
            raise ControlError("bad_action", "shift must be a boolean")
        return {"type": "key", "targetId": target, "key": key, "shift": shift}
    raise ControlError("bad_action", "unknown action type")


def _action_summary(action: object) -> dict[str, Any]:
    """What goes into the audit log about an action: never the typed text."""
    if not isinstance(action, dict):
        return {"type": None}
    out: dict[str, Any] = {}
    for key in ("type", "targetId", "x", "y", "key"):
        v = action.get(key)
        if isinstance(v, str | int | float | bool) and not (isinstance(v, str) and len(v) > 32):
            out[key] = v
    text = action.get("text")
    if isinstance(text, str):
        out["text_len"] = len(text)
    return out


def _entry_hash(entry: AuditEntry) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def verify_audit_chain(entries: list[AuditEntry], prev: str = _GENESIS) -> bool:
    """True if ``entries`` form an unbroken hash chain starting after ``prev``."""
    for e in entries:
        if e.get("prev") != prev or e.get("hash") != _entry_hash(e):
            return False
        prev = e["hash"]
    return True


class ControlGrant:
    """Remote-control consent for one session. Not thread-safe; one per session."""

    def __init__(
        self,
        session_id: str,
        policy: ControlPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_id = session_id
        self.policy = policy or ControlPolicy()
        self._clock = clock
        self.state = ControlState.NONE
        self.agent_id: str | None = None
        """The agent who requested / holds control."""
        self.expires_at: float | None = None
        self._seq = 0
        self._prev = _GENESIS
        self._bucket = TokenBucket(self.policy.actions_per_second, self.policy.action_burst, clock)

    # ------------------------------------------------------------------ audit

    def _audit(
        self,
        event: str,
        actor: str,
        role: str,
        *,
        result: str = "ok",
        reason: str | None = None,
        action: dict[str, Any] | None = None,
    ) -> AuditEntry:
        self._seq += 1
        entry: AuditEntry = {
            "seq": self._seq,
            "ts": self._clock(),
            "session_id": self.session_id,
            "event": event,
            "actor": actor,
            "role": role,
            "result": result,
            "reason": reason,
            "state": self.state.value,
            "prev": self._prev,
        }
        if action is not None:
            entry["action"] = action
        entry["hash"] = _entry_hash(entry)
        self._prev = entry["hash"]
        return entry

    def _refuse(
        self,
        log: list[AuditEntry],
        event: str,
        actor: str,
        role: str,
        code: str,
        message: str,
        action: dict[str, Any] | None = None,
    ) -> ControlError:
        log.append(self._audit(event, actor, role, result="refused", reason=code, action=action))
        return ControlError(code, message, log)

    def _expire(self) -> list[AuditEntry]:
        if self.state not in (ControlState.REQUESTED, ControlState.GRANTED):
            return []
        assert self.expires_at is not None
        if self._clock() < self.expires_at:
            return []
        self.state = ControlState.EXPIRED
        self.expires_at = None
        return [self._audit("control.expire", "system", "system")]

    # ------------------------------------------------------------------ transitions

    @property
    def active(self) -> bool:
        """Control is granted and its TTL has not elapsed (a read: no transition)."""
        return (
            self.state == ControlState.GRANTED
            and self.expires_at is not None
            and self._clock() < self.expires_at
        )

    def tick(self) -> list[AuditEntry]:
        """Apply TTL expiry now; call from a periodic timer. Returns audit entries."""
        return self._expire()

    def request(self, agent_id: str) -> list[AuditEntry]:
        """An agent asks for control."""
        log = self._expire()
        if self.state == ControlState.REQUESTED:
            raise self._refuse(
                log, "control.request", agent_id, "agent", "already_requested",
                "a control request is already pending",
            )  # fmt: skip
        if self.state == ControlState.GRANTED:
            raise self._refuse(
                log, "control.request", agent_id, "agent", "already_granted",
                "control is already granted",
            )  # fmt: skip
        self.state = ControlState.REQUESTED
        self.agent_id = agent_id
        self.expires_at = self._clock() + self.policy.request_ttl
        log.append(self._audit("control.request", agent_id, "agent"))
        return log

    def grant(self, customer_id: str) -> list[AuditEntry]:
        """The customer accepts the pending request."""
        log = self._expire()
        if self.state != ControlState.REQUESTED:
            code = "request_expired" if self.state == ControlState.EXPIRED else "no_request"
            raise self._refuse(
                log, "control.grant", customer_id, "customer", code, "no pending request"
            )
        self.state = ControlState.GRANTED
        self.expires_at = self._clock() + self.policy.grant_ttl
        log.append(self._audit("control.grant", customer_id, "customer"))
        return log

    def deny(self, customer_id: str) -> list[AuditEntry]:
        """The customer refuses the pending request."""
        log = self._expire()
        if self.state != ControlState.REQUESTED:
            raise self._refuse(
                log, "control.deny", customer_id, "customer", "no_request", "no pending request"
            )
        self.state = ControlState.DENIED
        self.expires_at = None
        log.append(self._audit("control.deny", customer_id, "customer"))
        return log

    def revoke(
        self, actor_id: str, role: Literal["customer", "agent", "system"]
    ) -> list[AuditEntry]:
        """End a pending request or a grant. The customer (or system) can always
        revoke; an agent only its own request/grant (releasing control)."""
        log = self._expire()
        if self.state not in (ControlState.REQUESTED, ControlState.GRANTED):
            raise self._refuse(
                log, "control.revoke", actor_id, role, "not_active", "nothing to revoke"
            )
        if role == "agent" and actor_id != self.agent_id:
            raise self._refuse(
                log, "control.revoke", actor_id, role, "not_holder", "not this agent's control"
            )
        self.state = ControlState.REVOKED
        self.expires_at = None
        log.append(self._audit("control.revoke", actor_id, role))
        return log

    def authorize(
        self, agent_id: str, action: object, target: TargetStatus
    ) -> tuple[ControlAction, list[AuditEntry]]:
        """Check and normalise an agent action before it is forwarded to the customer.

        Args:
            agent_id: the authenticated agent (from the token, never the payload).
            action: the raw action payload.
            target: the mirror's status for ``action.targetId``.

        Raises:
            ControlError: ``not_granted``, ``rate_limited``, ``bad_action``,
                ``masked_target`` or ``unknown_target`` (with ``audit``).
        """
        log = self._expire()
        summary = _action_summary(action)
        if self.state != ControlState.GRANTED or agent_id != self.agent_id:
            raise self._refuse(
                log, "control.action", agent_id, "agent", "not_granted",
                "control is not granted to this agent", summary,
            )  # fmt: skip
        if not self._bucket.can_take(1):
            raise self._refuse(
                log, "control.action", agent_id, "agent", "rate_limited",
                "too many control actions", summary,
            )  # fmt: skip
        self._bucket.take(1)
        try:
            valid = validate_control_action(action, self.policy)
        except ControlError as exc:
            raise self._refuse(
                log, "control.action", agent_id, "agent", exc.code, exc.message, summary
            ) from None
        if target is TargetStatus.MASKED:
            raise self._refuse(
                log, "control.action", agent_id, "agent", "masked_target",
                "the target element is masked", summary,
            )  # fmt: skip
        if target is not TargetStatus.OK:
            raise self._refuse(
                log, "control.action", agent_id, "agent", "unknown_target",
                "the target element is not in the mirror", summary,
            )  # fmt: skip
        log.append(self._audit("control.action", agent_id, "agent", action=summary))
        return valid, log
