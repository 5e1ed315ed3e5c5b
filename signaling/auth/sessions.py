"""Agent sign-in sessions: what makes an agent token revocable.

A login starts a session (a row in the store); every token issued from it, by the login and by
each refresh, names it. A token is accepted only while its session is open and younger than
``agent_session_max_age``: logging out ends the session, and changing an agent's password or
removing the agent ends all of theirs. So refreshing cannot go on forever, and a stolen or
left-behind token dies with its session instead of living until the last refresh stops.
Both edges (REST and the socket handshake) check tokens here.
"""

from __future__ import annotations

import time

from signaling import auth
from signaling.store import AgentRecord, AuthSessionRecord, TicketStore


async def start(store: TicketStore, agent: AgentRecord) -> AuthSessionRecord:
    session = AuthSessionRecord(
        id=auth.new_id("as"), agent_id=agent.id, created_at=time.time(), revoked_at=None
    )
    await store.add_auth_session(session)
    return session


async def authenticate(
    store: TicketStore, secret: str, token: str, max_age: float
) -> tuple[AgentRecord, auth.AgentClaims]:
    """The agent a token speaks for, or ``auth.TokenError`` saying why not."""
    claims = auth.read_agent_token(secret, token)
    await check_open(store, claims, max_age)
    agent = await store.agent(claims.agent_id)
    if agent is None:
        raise auth.TokenError("no_such_agent")
    return agent, claims


async def check_open(store: TicketStore, claims: auth.AgentClaims, max_age: float) -> None:
    if not claims.session_id:
        raise auth.TokenError("no_session")
    session = await store.auth_session(claims.session_id)
    if session is None or session.agent_id != claims.agent_id:
        raise auth.TokenError("no_session")
    if session.revoked_at is not None:
        raise auth.TokenError("revoked")
    if time.time() - session.created_at > max_age:
        raise auth.TokenError("session_expired")
