"""STUN/TURN server descriptions and time-limited TURN credentials.

Credentials follow the TURN REST API draft (draft-uberti-behave-turn-rest-00 section 2.2),
which coturn checks with ``use-auth-secret`` / ``static-auth-secret``::

    username = f"{expiry_unix_time}:{user}"
    password = base64(HMAC-SHA1(secret, username))

Settings map as follows (see ``docs/deploy.md``): ``TANDEM_STUN_URLS`` and
``TANDEM_TURN_URLS`` are comma separated URL lists (RFC 7064 ``stun:``/``stuns:``, RFC 7065
``turn:``/``turns:``), ``TANDEM_TURN_SECRET`` is coturn's ``static-auth-secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import NamedTuple

from aiortc import RTCIceServer

STUN_SCHEMES = ("stun:", "stuns:")
TURN_SCHEMES = ("turn:", "turns:")
DEFAULT_TTL_S = 6 * 3600


class TurnCredentials(NamedTuple):
    """Ephemeral TURN credentials; unpacks as ``(username, password, expires_at)``."""

    username: str
    password: str
    expires_at: int
    "Unix time after which the TURN server rejects them."


def mint_turn_credentials(secret: str, user: str, ttl_s: int, now: float) -> TurnCredentials:
    """TURN REST credentials valid for ``ttl_s`` seconds from ``now`` (Unix time)."""
    if not secret:
        raise ValueError("TURN secret is empty")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    if ":" in user:
        # coturn splits at the first colon to find the expiry; keep the user part clean.
        raise ValueError("user must not contain ':'")
    expires_at = int(now) + ttl_s
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires_at)


@dataclass(frozen=True, slots=True)
class IceServer:
    """One ``RTCIceServer`` entry (W3C webrtc-pc section 4.2.1)."""

    urls: tuple[str, ...]
    "``stun:``, ``stuns:``, ``turn:`` or ``turns:`` URLs of one server."
    username: str | None = None
    "TURN only."
    credential: str | None = None
    "TURN only."

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("an ICE server needs at least one URL")
        for url in self.urls:
            if not url.startswith(STUN_SCHEMES + TURN_SCHEMES):
                raise ValueError(f"not a STUN/TURN URL: {url!r}")
            if url.startswith(TURN_SCHEMES) and (self.username is None or not self.credential):
                raise ValueError("TURN URLs need a username and credential")

    def to_json(self) -> dict[str, object]:
        """The browser form, for ``new RTCPeerConnection({iceServers: [...]})``."""
        entry: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
            entry["credential"] = self.credential
        return entry

    def to_aiortc(self) -> RTCIceServer:
        return RTCIceServer(
            urls=list(self.urls), username=self.username, credential=self.credential
        )


def parse_urls(value: str | None) -> tuple[str, ...]:
    """Split a settings value like ``"turn:a:3478?transport=udp, turns:a:443"``."""
    if not value:
        return ()
    return tuple(part for part in value.replace(",", " ").split() if part)


def ice_servers(
    *,
    stun_urls: str | tuple[str, ...] | None,
    turn_urls: str | tuple[str, ...] | None,
    turn_secret: str | None,
    user: str,
    now: float,
    ttl_s: int = DEFAULT_TTL_S,
) -> list[IceServer]:
    """The ICE servers to hand one client, minting fresh TURN credentials for ``user``.

    ``stun_urls``/``turn_urls`` take the raw ``TANDEM_STUN_URLS``/``TANDEM_TURN_URLS``
    values. TURN URLs without ``turn_secret`` are an error rather than silently skipped.
    """
    stun = parse_urls(stun_urls) if isinstance(stun_urls, str | None) else stun_urls
    turn = parse_urls(turn_urls) if isinstance(turn_urls, str | None) else turn_urls
    servers: list[IceServer] = []
    if stun:
        servers.append(IceServer(urls=stun))
    if turn:
        if not turn_secret:
            raise ValueError("TANDEM_TURN_URLS is set but TANDEM_TURN_SECRET is not")
        username, password, _ = mint_turn_credentials(turn_secret, user, ttl_s, now)
        servers.append(IceServer(urls=turn, username=username, credential=password))
    return servers
