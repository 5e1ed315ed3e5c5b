"""The rooms each socket is in, kept beside python-socketio's rooms.

python-socketio's client manager keeps only ``rooms[namespace][room] -> {sid: eio_sid}``, so
``basic_disconnect`` and ``get_rooms`` look through every room on the node to find a socket's:
one disconnect costs O(rooms), about three per open session (its customer room, an agents'
room, each socket's own). Customers reload pages all day, and a node that restarts sees all
its sockets go at once: O(rooms) each makes that O(sockets x rooms) (measured in
``bench/signaling.py``'s ``disconnect`` row). With the index a socket leaves its own rooms
only.

The mixin changes no behaviour: the rooms, the callbacks and the pending lists end as the base
class leaves them (``tests/signaling/test_room_index.py`` compares the two on random
sequences of operations).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


class RoomIndex:
    """Mixed in before a python-socketio manager class (``AsyncManager``, ``AsyncRedisManager``).

    Every change to ``self.rooms`` goes through ``basic_enter_room`` and ``basic_leave_room``
    (``basic_close_room`` and the pub/sub handlers call them too), so the index follows them."""

    rooms: dict[str, dict[Hashable, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.joined: dict[tuple[str, str], set[Hashable]] = {}
        """(namespace, sid) -> the rooms that socket is in (``None``, the connected, included)."""

    def basic_enter_room(
        self, sid: str, namespace: str, room: Hashable, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self.joined.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Hashable) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        key = (namespace, sid)
        rooms = self.joined.get(key)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.joined[key]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # What ``BaseManager.basic_disconnect`` does, with the socket's rooms read from the index
        # instead of found by looking in every room.
        if namespace not in self.rooms:
            return
        for room in list(self.joined.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Hashable]:
        return [room for room in self.joined.get((namespace, sid), ()) if room is not None]
