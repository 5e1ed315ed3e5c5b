"""A site's routing as kept in its settings: built, checked, and its hours read in its zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from signaling.routing import RoutingConfigError
from signaling.routing import site_config as config


def at(text: str, zone: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_site_without_queues_has_the_default_one_with_its_skills() -> None:
    routing = config.site_routing({"skills": ["en"]})
    assert [(q.id, q.skills) for q in routing.queues] == [("default", frozenset({"en"}))]
    assert routing.pick_queue("http://x/", {}, False).id == "default"


def test_rules_pick_queues_and_the_default_catches_the_rest() -> None:
    settings = config.with_queue({}, "general", [], 0)
    settings = config.with_queue(settings, "billing", ["billing", "billing"], 2)
    settings = config.with_queue(settings, "vip", ["vip"], 5)
    settings = config.with_default(settings, "general")
    settings = config.with_rule(settings, "vip", None, {"plan": "enterprise"}, True)
    settings = config.with_rule(settings, "billing", "*/checkout*", {}, None)
    routing = config.site_routing(settings)
    assert routing.queue("billing").skills == frozenset({"billing"})
    checkout = "https://shop/Checkout/pay"
    assert routing.pick_queue(checkout, {"plan": "enterprise"}, True).id == "vip"
    assert routing.pick_queue(checkout, {"plan": "enterprise"}, False).id == "billing"
    assert routing.pick_queue("https://shop/", {"plan": "free"}, True).id == "general"
    settings = config.without_rule(settings, 1)
    assert config.site_routing(settings).pick_queue(checkout, {"plan": "enterprise"}, True).id == (
        "billing"
    )


def test_bad_configuration_is_refused_with_its_reason() -> None:
    settings = config.with_queue({}, "general", [], 0)
    with pytest.raises(RoutingConfigError, match="unknown queue 'nope'"):
        config.with_rule(settings, "nope", None, {}, None)
    with pytest.raises(RoutingConfigError, match=r"outside -5\.\.10"):
        config.with_queue(settings, "x", [], 11)
    with pytest.raises(RoutingConfigError, match="queue id"):
        config.with_queue(settings, "has space", [], 0)
    with pytest.raises(RoutingConfigError, match="not one of the site's queues"):
        config.with_default(settings, "nope")
    with pytest.raises(RoutingConfigError, match="no rule 3"):
        config.without_rule(settings, 3)
    with pytest.raises(RoutingConfigError, match="at least 1"):
        config.with_max_waiting(settings, 0)
    for spans in (["mon-fri 17:00-09:00"], ["someday 09:00-10:00"], ["mon 9:00-10:00"], []):
        with pytest.raises(RoutingConfigError):
            config.parse_hours("UTC", spans)
    with pytest.raises(RoutingConfigError, match="time zone"):
        config.parse_hours("Nowhere/Town", ["mon 09:00-10:00"])


def test_hours_are_read_in_the_sites_time_zone_across_summer_time_and_wrapping_days() -> None:
    hours = config.parse_hours("Europe/Paris", ["mon-fri 09:00-17:00", "sat-sun 10:00-12:00"])
    settings = config.with_hours({}, hours)
    assert config.is_open({}, 0.0)  # no hours: always open
    # Monday 08:30 in Paris is closed, 09:00 open, 17:00 closed; in summer and in winter.
    for day in ("2026-07-06", "2026-12-07"):
        assert not config.is_open(settings, at(f"{day}T08:30", "Europe/Paris"))
        assert config.is_open(settings, at(f"{day}T09:00", "Europe/Paris"))
        assert not config.is_open(settings, at(f"{day}T17:00", "Europe/Paris"))
    assert config.is_open(settings, at("2026-07-05T11:00", "Europe/Paris"))  # a Sunday
    # The same instants given in UTC: 08:30 UTC is 10:30 in Paris (open), 10:30 UTC is 12:30.
    assert config.is_open(settings, at("2026-07-05T08:30", "UTC"))
    assert not config.is_open(settings, at("2026-07-05T10:30", "UTC"))
    wrapping = config.parse_hours("UTC", ["fri-mon 00:00-24:00"])
    assert wrapping["weekly"][0]["days"] == [4, 5, 6, 0]
