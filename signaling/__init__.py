"""Tandem's server: auth, support sessions, queues, tickets, the REST API and the web files.

The only package that knows about aiohttp and socket.io; it uses ``media`` and ``cobrowse``,
which never import it.
"""

__all__ = ["create_app"]

from signaling.app import create_app
