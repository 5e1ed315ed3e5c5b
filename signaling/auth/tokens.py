"""Passwords, signed tokens and customer identity verification.

Tokens are ``v1.<payload>.<signature>``: base64url JSON claims and an HMAC-SHA256 over
``v1.<payload>`` keyed with the server secret (the construction of a JWT with ``alg=HS256``,
minus the header that lets a forger pick ``alg=none``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

_TOKEN_PREFIX = "v1"

# scrypt parameters (RFC 7914): N=2^15, r=8, p=1 costs ~32 MiB and tens of milliseconds,
# the interactive-login setting recommended by the RFC's authors.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")


class TokenError(Exception):
    """A token that is malformed, forged, of the wrong kind or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@functools.cache
def unknown_account_hash() -> str:
    """A hash to check passwords of unknown accounts against, so that they cost the same scrypt
    time as known ones and the answer's timing does not tell which accounts exist."""
    return hash_password(secrets.token_urlsafe(16))


def check_password(password: str, stored: str | None) -> bool:
    """``verify_password`` against an account's hash, or, for an account that does not exist
    (``None``), against the stand-in hash, so that the answer takes the same time. Blocking:
    call it off the event loop (the stand-in hash is itself made on first use)."""
    if stored is None:
        verify_password(password, unknown_account_hash())
        return False
    return verify_password(password, stored)


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate, _unb64(digest))


@dataclass(frozen=True)
class AgentClaims:
    agent_id: str
    role: Role
    expires_at: float
    session_id: str = ""
    """The sign-in session the token was issued for (refreshes keep it); "" in none."""


@dataclass(frozen=True)
class CustomerClaims:
    site_id: str
    customer_id: str
    ticket_id: str
    expires_at: float


def issue_agent_token(
    secret: str, agent_id: str, role: Role, ttl: int, session_id: str = ""
) -> tuple[str, float]:
    exp = time.time() + ttl
    claims = {"typ": "agent", "sub": agent_id, "role": role, "exp": exp, "sid": session_id}
    return _sign(secret, claims), exp


def issue_customer_token(
    secret: str, site_id: str, customer_id: str, ticket_id: str, ttl: int
) -> str:
    claims = {"typ": "customer", "site": site_id, "sub": customer_id, "tkt": ticket_id}
    return _sign(secret, {**claims, "exp": time.time() + ttl})


def read_agent_token(secret: str, token: str) -> AgentClaims:
    claims = _verify(secret, token, "agent")
    role = claims.get("role")
    if role not in ROLES or not isinstance(claims.get("sub"), str):
        raise TokenError("malformed")
    session_id = claims.get("sid", "")
    if not isinstance(session_id, str):
        raise TokenError("malformed")
    return AgentClaims(
        agent_id=claims["sub"],
        role=role,
        expires_at=float(claims["exp"]),
        session_id=session_id,
    )


def read_customer_token(secret: str, token: str, *, allow_expired: bool = False) -> CustomerClaims:
    claims = _verify(secret, token, "customer", allow_expired=allow_expired)
    fields = (claims.get("site"), claims.get("sub"), claims.get("tkt"))
    if not all(isinstance(value, str) for value in fields):
        raise TokenError("malformed")
    return CustomerClaims(
        site_id=claims["site"],
        customer_id=claims["sub"],
        ticket_id=claims["tkt"],
        expires_at=float(claims["exp"]),
    )


def identity_signature(site_secret: str, user_id: str) -> str:
    """What the host app's backend computes to vouch for a user id (identity validation)."""
    return hmac.new(site_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_verified(site_secret: str, user_id: str, signature: str | None) -> bool:
    if not signature:
        return False
    # Compared as bytes: compare_digest refuses non-ASCII str, and a signature is hex anyway.
    expected = identity_signature(site_secret, user_id).encode()
    return hmac.compare_digest(expected, signature.lower().encode())


def new_id(prefix: str) -> str:
    """An opaque id with 128 random bits (at least 122 are required of guessable ids)."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def _sign(secret: str, claims: dict[str, object]) -> str:
    body = _b64(json.dumps({**claims, "iat": int(time.time())}, separators=(",", ":")).encode())
    signing_input = f"{_TOKEN_PREFIX}.{body}"
    # hmac.digest: the one-shot (C) form of hmac.new(...).digest(), the same bytes.
    mac = hmac.digest(secret.encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac)}"


def _verify(secret: str, token: str, kind: str, *, allow_expired: bool = False) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
        raise TokenError("malformed")
    expected = hmac.digest(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
    try:
        given = _unb64(parts[2])
    except ValueError:
        raise TokenError("malformed") from None
    # Authenticate before parsing: unsigned bytes are never decoded.
    if not hmac.compare_digest(expected, given):
        raise TokenError("bad_signature")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed") from None
    if not isinstance(claims, dict) or claims.get("typ") != kind:
        raise TokenError("wrong_kind")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenError("malformed")
    if not allow_expired and exp < time.time():
        raise TokenError("expired")
    return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
