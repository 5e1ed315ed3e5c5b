"""Who is calling: passwords and signed tokens (``tokens``, re-exported here), agents' sign-in
sessions (``sessions``), failed-login throttling (``throttle``), creating sites and agents
(``accounts``)."""

from __future__ import annotations

from signaling.auth.tokens import (
    ROLES,
    AgentClaims,
    CustomerClaims,
    Role,
    TokenError,
    check_password,
    hash_password,
    identity_signature,
    identity_verified,
    issue_agent_token,
    issue_customer_token,
    new_id,
    read_agent_token,
    read_customer_token,
    unknown_account_hash,
    verify_password,
)

__all__ = [
    "ROLES",
    "AgentClaims",
    "CustomerClaims",
    "Role",
    "TokenError",
    "check_password",
    "hash_password",
    "identity_signature",
    "identity_verified",
    "issue_agent_token",
    "issue_customer_token",
    "new_id",
    "read_agent_token",
    "read_customer_token",
    "unknown_account_hash",
    "verify_password",
]
