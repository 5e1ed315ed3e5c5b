"""The client's address, as far as it can be trusted.

Behind a reverse proxy every connection comes from the proxy; its ``X-Forwarded-For`` names the
client only when the proxy is one we trust (``TANDEM_TRUSTED_PROXIES``). The right-most address
not added by a trusted proxy is the one that connected to our edge; anything to its left was
written by the client and is ignored.
"""

from __future__ import annotations

from collections.abc import Collection


def client_address(peer: str | None, forwarded_for: str | None, trusted: Collection[str]) -> str:
    address = peer or "unknown"
    if address not in trusted or not forwarded_for:
        return address
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    while hops:
        hop = hops.pop()
        if hop not in trusted:
            return hop
    return address
