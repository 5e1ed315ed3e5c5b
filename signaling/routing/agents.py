"""Agent status and capacity, and which agent a waiting ticket is offered to.

The choice follows what the balanced routers of Intercom and Chatwoot EE do
(../shared/reference/contact-center.md): among the agents who may take the ticket (they have
the queue's skills, are Available, have room under their capacity, and have not declined or
missed this ticket), the one with the fewest open sessions wins, then the lighter load (a call
weighs more than a chat); ties go to the one idle longest, then to the agent id, so every node
picks the same agent from the same facts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from signaling.routing.queues import QueueSpec, Waiting, serving_order


class AgentStatus(enum.StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    """Set by the agent (with a reason), or after missing an offer."""
    BUSY = "busy"
    """At capacity: set and cleared automatically, never chosen by the agent."""
    WRAP_UP = "wrap_up"
    """For a set time after a session ends: no offers while the agent finishes notes."""
    OFFLINE = "offline"


CHOOSABLE = frozenset({AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE})
"""The states an agent may pick; Busy and Wrap-up follow from their sessions."""


@dataclass(frozen=True)
class SessionLoad:
    """What one open session weighs against an agent's capacity."""

    call: bool = False
    controlling: bool = False
    """The agent holds remote control of the customer's page."""


CHAT_WEIGHT = 1.0
CALL_WEIGHT = 2.0
CONTROL_WEIGHT = 2.0
"""A call or a co-browse with control needs the agent's full attention: it counts as two chats.
Both at once count as the heavier one, not the sum (the agent is doing one thing)."""


@dataclass(frozen=True)
class Weights:
    """What a session in a call, or with remote control held, counts against a capacity given
    in chats (``--call-weight``, ``--control-weight``)."""

    call: float = CALL_WEIGHT
    control: float = CONTROL_WEIGHT


def session_weight(load: SessionLoad, weights: Weights = Weights()) -> float:
    weight = CHAT_WEIGHT
    if load.call:
        weight = max(weight, weights.call)
    if load.controlling:
        weight = max(weight, weights.control)
    return weight


@dataclass(frozen=True)
class AgentLoad:
    """One agent as routing sees them."""

    agent_id: str
    skills: frozenset[str]
    status: AgentStatus
    sessions: Sequence[SessionLoad] = ()
    capacity: float = 3.0
    """Chats at once; a session in a call or under control counts its weight (``weights``)."""
    idle_since: float = 0.0
    """When their last session ended or they became Available, whichever is later."""
    declined: frozenset[str] = field(default_factory=frozenset)
    """Tickets this agent declined or let ring out: never offered to them again."""
    weights: Weights = Weights()

    @property
    def load(self) -> float:
        return sum(session_weight(session, self.weights) for session in self.sessions)

    def has_room(self, extra: float = CHAT_WEIGHT) -> bool:
        return self.load + extra <= self.capacity

    def serves(self, queue: QueueSpec) -> bool:
        return queue.skills <= self.skills


def automatic_status(agent: AgentLoad) -> AgentStatus:
    """Busy at capacity, Available again below it; other states are left alone."""
    if agent.status is AgentStatus.AVAILABLE and not agent.has_room():
        return AgentStatus.BUSY
    if agent.status is AgentStatus.BUSY and agent.has_room():
        return AgentStatus.AVAILABLE
    return agent.status


def current_status(
    chosen: AgentStatus, online: bool, wrap_until: float, now: float, has_room: bool
) -> AgentStatus:
    """The one status an agent shows, from what they chose (Available, Away or Offline) and the
    facts: no socket is Offline whatever was chosen; Away stays Away; Wrap-up runs until its
    timer ends; at capacity is Busy."""
    if not online or chosen is AgentStatus.OFFLINE:
        return AgentStatus.OFFLINE
    if chosen is AgentStatus.AWAY:
        return AgentStatus.AWAY
    if wrap_until > now:
        return AgentStatus.WRAP_UP
    if not has_room:
        return AgentStatus.BUSY
    return AgentStatus.AVAILABLE


def eligible(agent: AgentLoad, queue: QueueSpec, ticket_id: str) -> bool:
    return (
        agent.status is AgentStatus.AVAILABLE
        and agent.serves(queue)
        and agent.has_room()
        and ticket_id not in agent.declined
    )


def choose_agent(agents: Iterable[AgentLoad], queue: QueueSpec, ticket_id: str) -> AgentLoad | None:
    """The agent to offer ``ticket_id`` to, or None if nobody may take it now."""
    candidates = [agent for agent in agents if eligible(agent, queue, ticket_id)]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (len(a.sessions), a.load, a.idle_since, a.agent_id))


@dataclass(frozen=True)
class Offer:
    ticket_id: str
    agent_id: str


def plan_offers(
    waiting: Iterable[Waiting],
    queues: dict[str, QueueSpec],
    agents: Iterable[AgentLoad],
    now: float,
    ageing_seconds: float,
    ringing: Iterable[str] = (),
) -> list[Offer]:
    """Offers to make now: tickets in serving order, each to the best agent left. An agent rings
    for one ticket at a time: one already ringing (``ringing``) or chosen earlier in this pass
    gets nothing more until they answer, so a pass never offers more than an agent can take."""
    busy = set(ringing)
    # Only agents who could take some ticket now: a pass over a long queue while everyone is
    # Busy, Away or ringing then costs nothing per ticket (it ran once per accept and end).
    pool = {
        agent.agent_id: agent
        for agent in agents
        if agent.agent_id not in busy and agent.status is AgentStatus.AVAILABLE and agent.has_room()
    }
    offers: list[Offer] = []
    if not pool:
        return offers
    for ticket in serving_order(waiting, now, ageing_seconds):
        if not pool:
            break  # every agent left got an offer in this pass
        queue = queues.get(ticket.queue)
        if queue is None:
            continue
        agent = choose_agent(pool.values(), queue, ticket.ticket_id)
        if agent is None:
            continue
        offers.append(Offer(ticket.ticket_id, agent.agent_id))
        del pool[agent.agent_id]  # one ringing offer per agent at a time
    return offers


def queues_served(agent_skills: frozenset[str], queues: Iterable[QueueSpec]) -> list[str]:
    """The queues an agent can see: those whose skills they have."""
    return [queue.id for queue in queues if queue.skills <= agent_skills]
