"""Sending an event whose JSON is made already to this node's sockets in some rooms.

Session events carry their JSON from the moment they are numbered (``SessionEvent.numbered``:
the event log keeps the same text). python-socketio's ``emit`` would encode the payload again
for every emit; here the socket.io packet is that text spliced in, what ``Packet.encode`` would
write (``2[name,arg]``), put on each recipient's queue in turn without a task per recipient."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from engineio import packet as eio_packet
from socketio import packet

from signaling.edge.eio_socket import TextFrame

log = logging.getLogger("tandem.sockets")


@functools.lru_cache(maxsize=256)
def _name_json(event: str) -> str:
    """An event name as JSON (a handful of names, each sent many times)."""
    return json.dumps(event)


class TextEmits:
    """Mixed in before a python-socketio manager class (``DirectManager``, ``NodeBus``)."""

    # The manager's (annotations only: nothing here may shadow them).
    rooms: dict[str, dict[Any, Any]]
    server: Any
    get_participants: Callable[[str, Any], Iterable[tuple[str, str]]]

    async def emit_json(
        self,
        event: str,
        text: str | bytes,
        room: Any,
        skip_sid: str | None = None,
        namespace: str = "/",
    ) -> None:
        """To this node's sockets in ``room`` (a room or a list of them): like ``emit`` of one
        argument whose JSON is ``text`` (text, or UTF-8 bytes)."""
        if namespace not in self.rooms:
            return
        recipients = [
            eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid != skip_sid
        ]
        if not recipients:
            return
        prefix = "" if namespace == "/" else namespace + ","
        frame: eio_packet.Packet
        if isinstance(text, bytes):
            # engine.io's message type, then socket.io's packet, whole, as UTF-8.
            head = f"{eio_packet.MESSAGE}{packet.EVENT}{prefix}[{_name_json(event)},"
            frame = TextFrame(head.encode() + text + b"]")
        else:
            encoded = f"{packet.EVENT}{prefix}[{_name_json(event)},{text}]"
            frame = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        eio = self.server.eio
        for eio_sid in recipients:
            try:
                await eio.send_packet(eio_sid, frame)
            except Exception:  # the socket closed meanwhile: as with a failed task
                log.debug("emit %s to %s failed", event, eio_sid, exc_info=True)
