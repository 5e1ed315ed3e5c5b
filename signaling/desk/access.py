"""Who may see and act on a ticket: one policy for the socket edge and the REST edge.

- A customer reaches only the session their token is scoped to, on their own site.
- An agent reads and acts on the tickets they have joined (accepted, or been added to).
- Supervisors and admins read every ticket and may join any live session; they act on a
  session only once they have joined it.
"""

from __future__ import annotations

from signaling.store import AgentRecord, TicketRecord

OVERSEEING_ROLES = frozenset({"supervisor", "admin"})


def oversees(agent: AgentRecord) -> bool:
    return agent.role in OVERSEEING_ROLES


def is_member(agent: AgentRecord, ticket: TicketRecord) -> bool:
    return any(member["id"] == agent.id for member in ticket.agents)


def may_read(agent: AgentRecord, ticket: TicketRecord) -> bool:
    """Transcript, timeline, context and attachments."""
    return is_member(agent, ticket) or oversees(agent)


def may_act(agent: AgentRecord, ticket: TicketRecord) -> bool:
    """Chat, end, co-browse, calls, captures."""
    return is_member(agent, ticket)
