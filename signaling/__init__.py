"""Tandem's server: auth, support sessions, queues, tickets, the REST API and the web files.

The only package that knows about aiohttp and socket.io; it uses ``media`` and ``cobrowse``,
which never import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signaling.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # The app is imported when asked for, not with the package: a module of it (the protocol,
    # the store, a CLI command) then loads without aiohttp, socket.io, aiortc and every hub
    # (1 s of imports).
    if name == "create_app":
        from signaling.app import create_app

        return create_app
    raise AttributeError(f"module 'signaling' has no attribute {name!r}")
