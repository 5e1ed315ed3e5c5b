"""Which queue a new ticket waits in, and in what order waiting tickets are served.

A site has queues, each with the skills an agent needs to serve it and a priority. Routing
rules pick a ticket's queue from its context (the page it was asked from, the host app's fields,
whether the customer is verified); the first rule that matches wins, else the site's default
queue. Priority ages with waiting time, so a low-priority ticket is never starved: after
``ageing_seconds`` of waiting it counts one priority level higher (the CCAI "wait-time
escalation" of ../shared/reference/contact-center.md, without a ceiling).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_PRIORITY = -5
MAX_PRIORITY = 10
"""Queue priorities run from -5 to +10, default 0, as CCAI's do."""


class RoutingConfigError(ValueError):
    """A queue or rule that cannot work (unknown queue, bad pattern, bad priority)."""


@dataclass(frozen=True)
class QueueSpec:
    id: str
    name: str
    skills: frozenset[str] = frozenset()
    """An agent serves the queue only if they have every one of these skills."""
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            raise RoutingConfigError("a queue needs an id")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise RoutingConfigError(
                f"queue {self.id!r}: priority {self.priority} is outside "
                f"{MIN_PRIORITY}..{MAX_PRIORITY}"
            )


@dataclass(frozen=True)
class RoutingRule:
    """Send matching tickets to ``queue``. Every condition given must hold; none given matches
    every ticket."""

    queue: str
    url: str | None = None
    """A shell-style pattern on the page URL (``*/checkout*``), matched case-insensitively."""
    app: Mapping[str, str] = field(default_factory=dict)
    """The host app's fields that must equal these values (``{"plan": "enterprise"}``);
    compared as text, so ``{"seats": "5"}`` matches the number 5."""
    verified: bool | None = None
    """True: only identified customers whose signature checked; False: only the others."""

    def matches(self, url: str, app: Mapping[str, Any], verified: bool) -> bool:
        if self.verified is not None and self.verified != verified:
            return False
        if self.url is not None and not fnmatch.fnmatchcase(url.lower(), self.url.lower()):
            return False
        for key, wanted in self.app.items():
            value = app.get(key)
            if value is None or isinstance(value, dict | list) or _text(value) != wanted:
                return False
        return True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class SiteRouting:
    """A site's queues and rules, checked once when it is configured."""

    queues: Sequence[QueueSpec]
    rules: Sequence[RoutingRule] = ()
    default_queue: str = ""

    def __post_init__(self) -> None:
        ids = [queue.id for queue in self.queues]
        if not ids:
            raise RoutingConfigError("a site needs at least one queue")
        if len(set(ids)) != len(ids):
            raise RoutingConfigError("queue ids must be unique")
        default = self.default_queue or ids[0]
        if default not in ids:
            raise RoutingConfigError(f"default queue {default!r} is not one of the site's queues")
        object.__setattr__(self, "default_queue", default)
        for rule in self.rules:
            if rule.queue not in ids:
                raise RoutingConfigError(f"a rule sends tickets to unknown queue {rule.queue!r}")

    def queue(self, queue_id: str) -> QueueSpec:
        for queue in self.queues:
            if queue.id == queue_id:
                return queue
        raise KeyError(queue_id)

    def pick_queue(self, url: str, app: Mapping[str, Any], verified: bool) -> QueueSpec:
        """The queue of the first matching rule, else the default queue."""
        for rule in self.rules:
            if rule.matches(url, app, verified):
                return self.queue(rule.queue)
        return self.queue(self.default_queue)


@dataclass(frozen=True)
class Waiting:
    """A ticket in a queue."""

    ticket_id: str
    queue: str
    priority: int
    since: float
    """When it started waiting (a transferred ticket keeps its original time)."""


def effective_priority(waiting: Waiting, now: float, ageing_seconds: float) -> float:
    """The ticket's priority plus one level per ``ageing_seconds`` waited."""
    waited = max(0.0, now - waiting.since)
    return waiting.priority + (waited / ageing_seconds if ageing_seconds > 0 else 0.0)


def serving_order(waiting: Iterable[Waiting], now: float, ageing_seconds: float) -> list[Waiting]:
    """Waiting tickets, the one to serve first first: highest effective priority, then the
    longest waiting, then by id (so every node orders ties the same way)."""
    if ageing_seconds <= 0:
        return sorted(waiting, key=lambda w: (-w.priority, w.since, w.ticket_id))

    def key(w: Waiting) -> tuple[float, float, str]:
        # ``effective_priority`` inlined: a routing pass orders every waiting ticket.
        waited = now - w.since
        return (
            -(w.priority + (waited / ageing_seconds if waited > 0 else 0.0)),
            w.since,
            w.ticket_id,
        )

    return sorted(waiting, key=key)


def estimated_wait(
    position: int, recent_handle_seconds: Sequence[float], slots: int, free_slots: int = 0
) -> float | None:
    """Seconds until a ticket at ``position`` (1-based) is likely taken. ``slots`` is the
    sessions the agents serving its queue can hold at once, ``free_slots`` how many of those
    are free now. A ticket a free slot can take waits only for the offer (0); the others wait
    for sessions to end: every ``slots`` tickets ahead of it cost one mean handle time, and the
    sessions running now are, on average, half done. None when nothing is known (nobody
    serving, or no session has ended yet)."""
    if position < 1 or slots < 1:
        return None
    if position <= free_slots:
        return 0.0
    if not recent_handle_seconds:
        return None
    mean = sum(recent_handle_seconds) / len(recent_handle_seconds)
    ahead = position - 1 - free_slots
    return ahead // slots * mean + mean / 2
