"""Routing: which queue a ticket waits in, the order tickets are served, and which agent is
offered which ticket. Pure decisions over plain values; the desk applies them."""

from signaling.routing.agents import (
    CHOOSABLE,
    AgentLoad,
    AgentStatus,
    Offer,
    SessionLoad,
    Weights,
    choose_agent,
    current_status,
    eligible,
    plan_offers,
    session_weight,
)
from signaling.routing.queues import (
    QueueSpec,
    RoutingConfigError,
    RoutingRule,
    SiteRouting,
    Waiting,
    effective_priority,
    estimated_wait,
    serving_order,
)

__all__ = [
    "CHOOSABLE",
    "AgentLoad",
    "AgentStatus",
    "Offer",
    "QueueSpec",
    "RoutingConfigError",
    "RoutingRule",
    "SessionLoad",
    "SiteRouting",
    "Waiting",
    "Weights",
    "choose_agent",
    "current_status",
    "effective_priority",
    "eligible",
    "estimated_wait",
    "plan_offers",
    "serving_order",
    "session_weight",
]
