"""The routing decision on its own: queue rules, serving order with ageing, eligibility,
scoring and ties, capacity, and the offers one pass makes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.routing import (
    CHOOSABLE,
    AgentLoad,
    AgentStatus,
    QueueSpec,
    RoutingConfigError,
    RoutingRule,
    SessionLoad,
    SiteRouting,
    Waiting,
    Weights,
    choose_agent,
    current_status,
    eligible,
    estimated_wait,
    plan_offers,
    serving_order,
    session_weight,
)
from signaling.routing.agents import automatic_status, queues_served
from signaling.routing.queues import effective_priority

BILLING = QueueSpec("billing", "Billing", frozenset({"billing"}), priority=2)
GENERAL = QueueSpec("general", "General")
FRENCH = QueueSpec("fr", "French", frozenset({"fr"}), priority=0)


def agent(
    agent_id: str,
    *,
    skills: set[str] | None = None,
    status: AgentStatus = AgentStatus.AVAILABLE,
    sessions: int = 0,
    calls: int = 0,
    capacity: float = 3,
    idle_since: float = 0.0,
    declined: set[str] | None = None,
) -> AgentLoad:
    loads = [SessionLoad()] * sessions + [SessionLoad(call=True)] * calls
    return AgentLoad(
        agent_id,
        frozenset(skills or ()),
        status,
        tuple(loads),
        capacity,
        idle_since,
        frozenset(declined or ()),
    )


# -- queues and rules --------------------------------------------------------------------------


def site_routing() -> SiteRouting:
    return SiteRouting(
        queues=[GENERAL, BILLING, FRENCH],
        rules=[
            RoutingRule("billing", url="*/checkout*"),
            RoutingRule("billing", app={"plan": "enterprise"}, verified=True),
            RoutingRule("fr", app={"language": "fr"}),
        ],
        default_queue="general",
    )


@pytest.mark.parametrize(
    ("url", "app", "verified", "queue"),
    [
        ("https://shop.example/checkout/pay", {}, False, "billing"),
        ("https://shop.example/CHECKOUT", {}, False, "billing"),  # case-insensitive
        ("https://shop.example/item/1", {"plan": "enterprise"}, True, "billing"),
        ("https://shop.example/item/1", {"plan": "enterprise"}, False, "general"),
        ("https://shop.example/item/1", {"language": "fr"}, False, "fr"),
        ("https://shop.example/item/1", {"language": ["fr"]}, False, "general"),
        ("https://shop.example/item/1", {}, False, "general"),
        # first match wins
        ("https://shop.example/checkout", {"language": "fr"}, False, "billing"),
    ],
)
def test_rules_pick_the_queue_from_the_context(
    url: str, app: dict[str, object], verified: bool, queue: str
) -> None:
    assert site_routing().pick_queue(url, app, verified).id == queue


def test_app_fields_compare_as_text() -> None:
    routing = SiteRouting(
        [GENERAL, BILLING], [RoutingRule("billing", app={"seats": "5", "trial": "true"})]
    )
    assert routing.pick_queue("https://x", {"seats": 5, "trial": True}, False).id == "billing"
    assert routing.pick_queue("https://x", {"seats": 6, "trial": True}, False).id == "general"


def test_the_first_queue_is_the_default_when_none_is_named() -> None:
    assert SiteRouting([GENERAL, BILLING]).pick_queue("https://x", {}, False).id == "general"


@pytest.mark.parametrize(
    "build",
    [
        lambda: SiteRouting([]),
        lambda: SiteRouting([GENERAL, GENERAL]),
        lambda: SiteRouting([GENERAL], default_queue="nope"),
        lambda: SiteRouting([GENERAL], [RoutingRule("nope")]),
        lambda: QueueSpec("q", "Q", priority=11),
        lambda: QueueSpec("q", "Q", priority=-6),
        lambda: QueueSpec("", "Q"),
    ],
)
def test_configurations_that_cannot_work_are_refused(build: object) -> None:
    with pytest.raises(RoutingConfigError):
        build()  # type: ignore[operator]


# -- serving order and ageing ------------------------------------------------------------------


def test_higher_priority_is_served_first_then_the_longest_waiting() -> None:
    tickets = [
        Waiting("late-general", "general", 0, since=100.0),
        Waiting("early-general", "general", 0, since=50.0),
        Waiting("billing", "billing", 2, since=110.0),
    ]
    order = [w.ticket_id for w in serving_order(tickets, now=120.0, ageing_seconds=600)]
    assert order == ["billing", "early-general", "late-general"]


def test_waiting_ages_a_low_priority_ticket_past_a_fresh_high_priority_one() -> None:
    old_low = Waiting("old-low", "general", 0, since=0.0)
    new_high = Waiting("new-high", "billing", 2, since=1_000.0)
    # After 1,000 s at one level per 300 s, the old ticket counts 3.3 > 2 + 0.
    order = serving_order([new_high, old_low], now=1_000.0, ageing_seconds=300)
    assert [w.ticket_id for w in order] == ["old-low", "new-high"]
    # Without ageing the fresh high-priority ticket would win for ever.
    order = serving_order([new_high, old_low], now=1_000.0, ageing_seconds=0)
    assert [w.ticket_id for w in order] == ["new-high", "old-low"]


@given(
    st.lists(st.tuples(st.integers(-5, 10), st.floats(0, 10_000)), max_size=30),
    st.floats(1, 600),
    st.floats(0, 1e6),
)
def test_a_waiting_ticket_is_never_overtaken_by_later_arrivals_for_ever(
    arrivals: list[tuple[int, float]], ageing: float, extra: float
) -> None:
    """No starvation: a lowest-priority ticket can be overtaken only by tickets that arrive
    within (10 - -5) ageing periods after it; anything arriving later, at any priority, is
    served after it, however long both wait."""
    starving = Waiting("starving", "q", -5, since=0.0)
    later = [
        Waiting(f"t{i}", "q", priority, since=15 * ageing + 1 + offset)
        for i, (priority, offset) in enumerate(arrivals)
    ]
    now = max((w.since for w in later), default=0.0) + extra
    assert serving_order([*later, starving], now, ageing)[0] is starving


@given(
    st.lists(
        st.tuples(st.integers(-5, 10), st.floats(0, 10_000), st.sampled_from("abc")), max_size=40
    ),
    st.floats(0, 600),
    st.floats(0, 20_000),
)
def test_the_serving_order_is_by_effective_priority_then_age_then_id(
    tickets: list[tuple[int, float, str]], ageing: float, now: float
) -> None:
    """The order a pass uses (its key written out for speed) is the one the rule gives:
    highest ``effective_priority`` first, then the longest waiting, then by id."""
    waiting = [
        Waiting(f"{name}{i}", "q", priority, since)
        for i, (priority, since, name) in enumerate(tickets)
    ]
    expected = sorted(
        waiting, key=lambda w: (-effective_priority(w, now, ageing), w.since, w.ticket_id)
    )
    assert serving_order(waiting, now, ageing) == expected


def test_ties_are_broken_by_ticket_id_so_every_node_agrees() -> None:
    a = Waiting("a", "q", 0, since=5.0)
    b = Waiting("b", "q", 0, since=5.0)
    assert serving_order([b, a], 10.0, 60) == serving_order([a, b], 10.0, 60) == [a, b]


def test_estimated_wait() -> None:
    handle = [240.0, 360.0]  # mean 300 s
    assert estimated_wait(1, handle, slots=6, free_slots=2) == 0.0
    assert estimated_wait(3, handle, slots=6, free_slots=2) == 150.0  # half a session
    assert estimated_wait(9, handle, slots=6, free_slots=2) == 450.0  # a round, then half
    assert estimated_wait(1, handle, slots=0) is None  # nobody serves the queue
    assert estimated_wait(2, [], slots=3) is None  # nothing measured yet


# -- eligibility, scoring, ties ----------------------------------------------------------------


def test_only_available_agents_with_the_skills_and_room_are_eligible() -> None:
    assert eligible(agent("a", skills={"billing"}), BILLING, "t")
    assert not eligible(agent("a"), BILLING, "t")  # skill missing
    assert eligible(agent("a", skills={"billing", "fr"}), GENERAL, "t")  # no skill needed
    for status in (AgentStatus.AWAY, AgentStatus.BUSY, AgentStatus.WRAP_UP, AgentStatus.OFFLINE):
        assert not eligible(agent("a", status=status), GENERAL, "t")
    assert not eligible(agent("a", sessions=3), GENERAL, "t")  # at capacity 3
    assert not eligible(agent("a", sessions=1, calls=1), GENERAL, "t")  # 1 + 2 = 3
    assert eligible(agent("a", sessions=2), GENERAL, "t")
    assert not eligible(agent("a", declined={"t"}), GENERAL, "t")  # declined this one
    assert eligible(agent("a", declined={"other"}), GENERAL, "t")


def test_the_agent_with_the_fewest_sessions_wins_then_the_longest_idle() -> None:
    agents = [
        agent("busy", sessions=2, idle_since=0.0),
        agent("recent", sessions=1, idle_since=500.0),
        agent("idle", sessions=1, idle_since=100.0),
    ]
    chosen = choose_agent(agents, GENERAL, "t")
    assert chosen is not None and chosen.agent_id == "idle"


def test_a_call_weighs_more_than_a_chat_at_equal_session_counts() -> None:
    agents = [agent("on-call", calls=1, idle_since=0.0), agent("chatting", sessions=1)]
    chosen = choose_agent(agents, GENERAL, "t")
    assert chosen is not None and chosen.agent_id == "chatting"


def test_full_ties_go_to_the_agent_id() -> None:
    agents = [agent("b"), agent("a"), agent("c")]
    chosen = choose_agent(reversed(agents), GENERAL, "t")
    assert chosen is not None and chosen.agent_id == "a"


def test_nobody_eligible_means_no_offer() -> None:
    assert choose_agent([agent("a", status=AgentStatus.AWAY)], GENERAL, "t") is None
    assert choose_agent([], GENERAL, "t") is None


def test_session_weights() -> None:
    assert session_weight(SessionLoad()) == 1
    assert session_weight(SessionLoad(call=True)) == 2
    assert session_weight(SessionLoad(controlling=True)) == 2
    assert session_weight(SessionLoad(call=True, controlling=True)) == 2


def test_configured_weights_decide_who_has_room() -> None:
    heavy = Weights(call=3, control=1.5)
    assert session_weight(SessionLoad(call=True), heavy) == 3
    assert session_weight(SessionLoad(controlling=True), heavy) == 1.5
    assert session_weight(SessionLoad(call=True, controlling=True), heavy) == 3
    in_call = AgentLoad("a", frozenset(), AgentStatus.AVAILABLE, (SessionLoad(call=True),), 3.0)
    assert in_call.load == 2 and in_call.has_room()
    at_capacity = AgentLoad(
        "a", frozenset(), AgentStatus.AVAILABLE, (SessionLoad(call=True),), 3.0, weights=heavy
    )
    assert at_capacity.load == 3 and not at_capacity.has_room()
    assert automatic_status(at_capacity) is AgentStatus.BUSY
    assert choose_agent([at_capacity], GENERAL, "t") is None


def test_busy_follows_capacity_and_other_states_stay() -> None:
    assert automatic_status(agent("a", sessions=3)) is AgentStatus.BUSY
    assert automatic_status(agent("a", sessions=2, status=AgentStatus.BUSY)) is (
        AgentStatus.AVAILABLE
    )
    assert automatic_status(agent("a", sessions=3, status=AgentStatus.AWAY)) is AgentStatus.AWAY
    assert automatic_status(agent("a", status=AgentStatus.WRAP_UP)) is AgentStatus.WRAP_UP


def test_agents_see_only_the_queues_they_can_serve() -> None:
    queues = [GENERAL, BILLING, FRENCH]
    assert queues_served(frozenset(), queues) == ["general"]
    assert queues_served(frozenset({"fr", "billing"}), queues) == ["general", "billing", "fr"]


# -- one pass of offers ------------------------------------------------------------------------


QUEUES = {q.id: q for q in (GENERAL, BILLING, FRENCH)}


def test_a_pass_offers_each_ticket_to_a_different_agent_in_serving_order() -> None:
    waiting = [
        Waiting("g1", "general", 0, since=10.0),
        Waiting("b1", "billing", 2, since=20.0),
        Waiting("g2", "general", 0, since=15.0),
    ]
    agents = [agent("x", skills={"billing"}, idle_since=5.0), agent("y", idle_since=1.0)]
    offers = plan_offers(waiting, QUEUES, agents, now=30.0, ageing_seconds=600)
    # b1 first (priority); only x can serve billing. g1 next goes to y. g2 waits: both ring.
    assert [(o.ticket_id, o.agent_id) for o in offers] == [("b1", "x"), ("g1", "y")]


def test_a_ringing_agent_gets_no_second_offer() -> None:
    waiting = [Waiting("g1", "general", 0, since=10.0)]
    offers = plan_offers(waiting, QUEUES, [agent("y")], 30.0, 600, ringing={"y"})
    assert offers == []


def test_skills_mismatch_leaves_the_ticket_waiting() -> None:
    waiting = [Waiting("f1", "fr", 0, since=10.0), Waiting("g1", "general", 0, since=11.0)]
    offers = plan_offers(waiting, QUEUES, [agent("y")], 30.0, 600)
    assert [(o.ticket_id, o.agent_id) for o in offers] == [("g1", "y")]


def test_a_ticket_of_an_unknown_queue_is_skipped_not_crashed_on() -> None:
    waiting = [Waiting("z", "gone", 0, since=1.0), Waiting("g1", "general", 0, since=2.0)]
    offers = plan_offers(waiting, QUEUES, [agent("y")], 30.0, 600)
    assert [(o.ticket_id, o.agent_id) for o in offers] == [("g1", "y")]


def test_a_declined_ticket_goes_to_the_next_agent() -> None:
    waiting = [Waiting("g1", "general", 0, since=10.0)]
    agents = [agent("a", declined={"g1"}), agent("b", sessions=2)]
    offers = plan_offers(waiting, QUEUES, agents, 30.0, 600)
    assert [(o.ticket_id, o.agent_id) for o in offers] == [("g1", "b")]


# -- the status an agent shows -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chosen", "online", "wrap_until", "has_room", "shown"),
    [
        (AgentStatus.AVAILABLE, True, 0.0, True, AgentStatus.AVAILABLE),
        (AgentStatus.AVAILABLE, False, 0.0, True, AgentStatus.OFFLINE),  # no socket
        (AgentStatus.OFFLINE, True, 0.0, True, AgentStatus.OFFLINE),
        (AgentStatus.AWAY, True, 200.0, False, AgentStatus.AWAY),  # Away wins over the rest
        (AgentStatus.AVAILABLE, True, 200.0, False, AgentStatus.WRAP_UP),
        (AgentStatus.AVAILABLE, True, 100.0, True, AgentStatus.AVAILABLE),  # the timer ran out
        (AgentStatus.AVAILABLE, True, 0.0, False, AgentStatus.BUSY),
    ],
)
def test_the_status_shown_follows_the_choice_and_the_facts(
    chosen: AgentStatus, online: bool, wrap_until: float, has_room: bool, shown: AgentStatus
) -> None:
    assert current_status(chosen, online, wrap_until, 100.0, has_room) is shown


def test_agents_choose_only_available_away_and_offline() -> None:
    assert {AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE} == CHOOSABLE
