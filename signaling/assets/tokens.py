"""Signed asset URLs: what the sanitizer puts in a mirrored page instead of a customer's URL.

``/cobrowse/assets/<token>``: the token carries the original absolute URL, what it is used as
(image, stylesheet, image-or-font), the co-browse session (ticket) it was issued for and an expiry,
HMAC-signed with the server secret (a key derived for this purpose only). The asset route serves
only what a valid token names, so it is never an open proxy: a URL nobody's page contained cannot
be asked for, and a token from one session does not name anything in another.

Expiry is rounded up to the hour so that one URL gets one token for an hour (the agent's browser
caches it, and sanitizing an event twice gives the same result).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cobrowse import AssetKind, split_fragment

ASSET_PATH: Final = "/cobrowse/assets/"
DEFAULT_TTL: Final = 6 * 3600.0
"""Seconds a token stays valid at least (a recording replayed later still shows its images)."""
_MAC_BYTES: Final = 16
_ROUND: Final = 3600


class AssetTokenError(Exception):
    """A token that is malformed, forged or expired (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AssetClaim:
    session_id: str
    url: str
    kind: AssetKind
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AssetSigner:
    def __init__(
        self, secret: str, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(secret.encode(), b"tandem/cobrowse-asset/v1", hashlib.sha256).digest()
        self.ttl = ttl
        self.clock = clock

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, session_id: str, url: str, kind: AssetKind) -> str:
        expires = (int(self.clock() + self.ttl) // _ROUND + 1) * _ROUND
        payload = f"{session_id}\n{kind.value}\n{expires}\n{url}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> AssetClaim:
        body, dot, mac = token.partition(".")
        if not dot or not body or not mac:
            raise AssetTokenError("malformed")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise AssetTokenError("malformed") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise AssetTokenError("bad_signature")
        try:
            session_id, kind, expires, url = payload.decode().split("\n", 3)
            claim = AssetClaim(session_id, url, AssetKind(kind), int(expires))
        except ValueError:
            raise AssetTokenError("malformed") from None
        if claim.expires < self.clock():
            raise AssetTokenError("expired")
        return claim

    def rewriter(self, session_id: str) -> SessionAssetRewriter:
        return SessionAssetRewriter(self, session_id)


class SessionAssetRewriter:
    """``cobrowse.AssetRewriter`` for one co-browse session (the ticket id)."""

    def __init__(self, signer: AssetSigner, session_id: str) -> None:
        self.signer = signer
        self.session_id = session_id

    def asset_url(self, url: str, kind: AssetKind) -> str | None:
        return ASSET_PATH + self.signer.sign(self.session_id, url, kind)

    def is_asset_url(self, url: str) -> bool:
        path, _ = split_fragment(url)
        if not path.startswith(ASSET_PATH):
            return False
        try:
            claim = self.signer.verify(path[len(ASSET_PATH) :])
        except AssetTokenError:
            return False
        return claim.session_id == self.session_id
