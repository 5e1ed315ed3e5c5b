"""A site's routing as it is kept in the site's settings JSON, and whether the site is open.

``settings["routing"]`` holds ``queues`` (``{"id", "name", "skills", "priority"}``), ``rules``
(``{"queue", "url", "app", "verified"}``, first match wins), ``default`` (a queue id),
``hours`` (``{"timeZone", "weekly": [{"days": [0..6], "from": "HH:MM", "to": "HH:MM"}]}``,
Monday is 0; absent: always open) and ``maxWaiting`` (a queue longer than this is full;
absent: no limit). A site without queues has one, ``default``, needing the skills of its
``skills`` setting (what every site had before queues existed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signaling.routing.queues import QueueSpec, RoutingConfigError, RoutingRule, SiteRouting

DEFAULT_QUEUE = "default"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ID = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def site_routing(settings: Mapping[str, Any]) -> SiteRouting:
    routing = settings.get("routing") or {}
    queues = [
        QueueSpec(
            str(q["id"]),
            str(q.get("name") or q["id"]),
            frozenset(str(s) for s in q.get("skills") or ()),
            int(q.get("priority", 0)),
        )
        for q in routing.get("queues") or ()
    ]
    if not queues:
        skills = frozenset(str(s) for s in settings.get("skills") or ())
        queues = [QueueSpec(DEFAULT_QUEUE, DEFAULT_QUEUE, skills)]
    rules = [
        RoutingRule(
            str(r["queue"]),
            r.get("url"),
            {str(k): str(v) for k, v in (r.get("app") or {}).items()},
            r.get("verified"),
        )
        for r in routing.get("rules") or ()
    ]
    return SiteRouting(queues, rules, str(routing.get("default") or ""))


def _routing(settings: Mapping[str, Any]) -> dict[str, Any]:
    return dict(settings.get("routing") or {})


def _checked(settings: dict[str, Any]) -> dict[str, Any]:
    site_routing(settings)  # raises RoutingConfigError on anything that cannot work
    return settings


def with_queue(
    settings: Mapping[str, Any],
    queue_id: str,
    skills: Sequence[str],
    priority: int,
    name: str | None = None,
) -> dict[str, Any]:
    """The settings with the queue added (or replaced, same id)."""
    if not _ID.match(queue_id):
        raise RoutingConfigError(
            f"queue id {queue_id!r}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )
    routing = _routing(settings)
    queues = [q for q in routing.get("queues") or () if q["id"] != queue_id]
    queues.append(
        {
            "id": queue_id,
            "name": name or queue_id,
            "skills": sorted(set(skills)),
            "priority": priority,
        }
    )
    routing["queues"] = queues
    return _checked({**settings, "routing": routing})


def without_queue(settings: Mapping[str, Any], queue_id: str) -> dict[str, Any]:
    routing = _routing(settings)
    queues = [q for q in routing.get("queues") or () if q["id"] != queue_id]
    if len(queues) == len(routing.get("queues") or ()):
        raise RoutingConfigError(f"no queue {queue_id!r}")
    if any(r["queue"] == queue_id for r in routing.get("rules") or ()):
        raise RoutingConfigError(f"rules still send tickets to {queue_id!r}: remove them first")
    routing["queues"] = queues
    if routing.get("default") == queue_id:
        routing.pop("default")
    return _checked({**settings, "routing": routing})


def with_rule(
    settings: Mapping[str, Any],
    queue_id: str,
    url: str | None,
    app: Mapping[str, str],
    verified: bool | None,
) -> dict[str, Any]:
    """The settings with the rule appended (rules are tried in order)."""
    routing = _routing(settings)
    rule: dict[str, Any] = {"queue": queue_id, "url": url, "app": dict(app), "verified": verified}
    routing["rules"] = [*(routing.get("rules") or ()), rule]
    return _checked({**settings, "routing": routing})


def without_rule(settings: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The settings without the rule at 1-based ``index``."""
    routing = _routing(settings)
    rules = list(routing.get("rules") or ())
    if not 1 <= index <= len(rules):
        raise RoutingConfigError(f"no rule {index} (the site has {len(rules)})")
    del rules[index - 1]
    routing["rules"] = rules
    return _checked({**settings, "routing": routing})


def with_default(settings: Mapping[str, Any], queue_id: str) -> dict[str, Any]:
    routing = _routing(settings)
    routing["default"] = queue_id
    return _checked({**settings, "routing": routing})


def with_max_waiting(settings: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
    routing = _routing(settings)
    if limit is None:
        routing.pop("maxWaiting", None)
    elif limit < 1:
        raise RoutingConfigError("a queue's maximum length must be at least 1")
    else:
        routing["maxWaiting"] = limit
    return {**settings, "routing": routing}


def parse_hours(time_zone: str, spans: Sequence[str]) -> dict[str, Any]:
    """``("mon-fri 09:00-17:00", "sat 10:00-14:00")`` in ``time_zone`` as stored."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RoutingConfigError(f"unknown time zone {time_zone!r}") from exc
    weekly = []
    for span in spans:
        parts = span.lower().split()
        if len(parts) != 2 or parts[1].count("-") != 1:
            raise RoutingConfigError(f"{span!r}: write hours as 'mon-fri 09:00-17:00'")
        days_text, times = parts
        start, end = times.split("-")
        if not _TIME.match(start) or not _TIME.match(end) or start >= end:
            raise RoutingConfigError(f"{span!r}: times are HH:MM, the first before the second")
        first, _, last = days_text.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise RoutingConfigError(f"{span!r}: days are {', '.join(DAYS)} (or a range a-b)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days = list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(b + 1)]
        weekly.append({"days": days, "from": start, "to": end})
    if not weekly:
        raise RoutingConfigError("give at least one span of hours")
    return {"timeZone": time_zone, "weekly": weekly}


def with_hours(settings: Mapping[str, Any], hours: dict[str, Any] | None) -> dict[str, Any]:
    routing = _routing(settings)
    if hours is None:
        routing.pop("hours", None)
    else:
        routing["hours"] = hours
    return {**settings, "routing": routing}


def is_open(settings: Mapping[str, Any], now: float) -> bool:
    """Whether ``now`` (a Unix time) falls in the site's weekly hours; no hours: always."""
    hours = (settings.get("routing") or {}).get("hours")
    if not hours:
        return True
    local = datetime.fromtimestamp(now, ZoneInfo(hours["timeZone"]))
    clock = local.strftime("%H:%M")
    return any(
        local.weekday() in span["days"] and span["from"] <= clock < span["to"]
        for span in hours["weekly"]
    )


def max_waiting(settings: Mapping[str, Any]) -> int | None:
    limit = (settings.get("routing") or {}).get("maxWaiting")
    return int(limit) if limit else None


def describe(settings: Mapping[str, Any]) -> list[str]:
    """The site's routing in lines a person reads (``tandem site list``)."""
    routing = site_routing(settings)
    lines = []
    for queue in routing.queues:
        skills = ",".join(sorted(queue.skills)) or "-"
        default = " (default)" if queue.id == routing.default_queue else ""
        lines.append(f"queue {queue.id}{default}: skills {skills}, priority {queue.priority}")
    for number, rule in enumerate(routing.rules, start=1):
        conditions = []
        if rule.url is not None:
            conditions.append(f"url {rule.url}")
        conditions += [f"{k}={v}" for k, v in rule.app.items()]
        if rule.verified is not None:
            conditions.append("verified" if rule.verified else "not verified")
        lines.append(f"rule {number}: {' and '.join(conditions) or 'any'} -> {rule.queue}")
    hours = (settings.get("routing") or {}).get("hours")
    if hours:
        spans = "; ".join(
            f"{','.join(DAYS[d] for d in s['days'])} {s['from']}-{s['to']}" for s in hours["weekly"]
        )
        lines.append(f"hours ({hours['timeZone']}): {spans}")
    limit = max_waiting(settings)
    if limit:
        lines.append(f"at most {limit} waiting per queue")
    return lines
