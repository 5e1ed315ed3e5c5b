"""Signed links to one file an agent sent a customer (``/api/files/{ticket}/{attachment}``).

A customer has no bearer token an ``<img>`` or a download link could send, so the customer's
copy of a sent file carries a link whose query holds an expiry and an HMAC of (ticket,
attachment, expiry) under a key derived from the server secret for these links only: a link's
MAC can never pass as a token's, or the reverse. The route serves nothing but agent-sent files.
"""

from __future__ import annotations

import hashlib
import hmac
import time

LINK_TTL = 7 * 24 * 3600
"""Seconds a customer's link to a sent file stays valid."""
_LINK_KEY = b"tandem/agent-file-link/v1"


def _mac(secret: str, ticket_id: str, attachment_id: str, expires: int) -> str:
    key = hmac.new(secret.encode(), _LINK_KEY, hashlib.sha256).digest()
    message = f"{ticket_id}\n{attachment_id}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def file_link(secret: str, ticket_id: str, attachment_id: str, now: float | None = None) -> str:
    """The customer's URL (relative to the server) of one sent file."""
    expires = int((now if now is not None else time.time()) + LINK_TTL)
    sig = _mac(secret, ticket_id, attachment_id, expires)
    return f"/api/files/{ticket_id}/{attachment_id}?exp={expires}&sig={sig}"


def link_valid(secret: str, ticket_id: str, attachment_id: str, exp: str, sig: str) -> bool:
    if not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        return False
    expires = int(exp)
    if expires < time.time():
        return False
    expected = _mac(secret, ticket_id, attachment_id, expires)
    return hmac.compare_digest(expected.encode(), sig.encode("ascii", "replace"))
