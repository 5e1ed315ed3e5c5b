"""uvloop and orjson for a bench server process (issue 10, item 5: measure before adopting).

Both are optional: the bench passes ``--uvloop`` / ``--orjson`` to a server only when asked,
and they must be installed in the venv by hand for that measurement (they are not project
dependencies). orjson is installed the way python-socketio's own ``json=`` option does it: as
the packet classes' JSON module, for the whole process.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any


class OrjsonAsJson:
    """The two functions python-socketio and python-engineio call on their JSON module."""

    def __init__(self) -> None:
        self._orjson: Any = importlib.import_module("orjson")

    def dumps(self, obj: Any, **_options: Any) -> str:
        # Compact separators are what the packets ask for, and all orjson writes.
        return str(self._orjson.dumps(obj).decode())

    def loads(self, text: str | bytes, **_options: Any) -> Any:
        return self._orjson.loads(text)


def apply(uvloop: bool, orjson: bool) -> list[str]:
    """Switch the process to uvloop and/or orjson; returns what was applied (for the log)."""
    applied = []
    if uvloop:
        module: Any = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(module.EventLoopPolicy())
        applied.append(f"uvloop {getattr(module, '__version__', '?')}")
    if orjson:
        import engineio.packet
        import socketio.packet

        codec = OrjsonAsJson()
        socketio.packet.Packet.json = codec
        engineio.packet.Packet.json = codec
        applied.append(f"orjson {getattr(codec._orjson, '__version__', '?')}")
    return applied
