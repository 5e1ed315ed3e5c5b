"""The room index (``signaling/edge/room_index.py``) changes nothing but the cost: on any
sequence of connects, room changes, closes and disconnects, a manager with it ends with the same
rooms, callbacks and pending lists as python-socketio's own, and says the same rooms per socket.
And a disconnect no longer looks through every room on the node."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.edge.room_index import RoomIndex
from signaling.edge.socketserver import DirectManager

SIDS = [f"s{i}" for i in range(5)]
ROOMS = ["tk_1", "tk_2", "agents:tk_1", "queue"]
NAMESPACES = ["/", "/other"]


def _manager(cls: type[Any]) -> Any:
    return cls()


def _state(manager: Any) -> tuple[Any, ...]:
    rooms = {
        ns: {room: dict(members) for room, members in by_room.items()}
        for ns, by_room in manager.rooms.items()
    }
    return rooms, dict(manager.callbacks), manager.pending_connect, manager.pending_disconnect


def _apply(manager: Any, op: tuple[Any, ...]) -> Any:
    kind, ns, sid, room = op
    connected = sid in manager.rooms.get(ns, {}).get(None, {})
    if kind == "connect" and not connected:
        manager.basic_enter_room(sid, ns, None, eio_sid="e" + sid)
        manager.basic_enter_room(sid, ns, sid)
        manager.callbacks[sid] = {1: "ack"}
    elif kind == "pending" and connected:
        manager.pending_disconnect.setdefault(ns, []).append(sid)
    elif kind == "enter" and connected:
        manager.basic_enter_room(sid, ns, room)
    elif kind == "leave":
        manager.basic_leave_room(sid, ns, room)
    elif kind == "close":
        manager.basic_close_room(room, ns)
    elif kind == "disconnect":
        manager.basic_disconnect(sid, ns)
    return sorted(map(str, manager.get_rooms(sid, ns)))


operations = st.lists(
    st.tuples(
        st.sampled_from(["connect", "enter", "enter", "leave", "close", "pending", "disconnect"]),
        st.sampled_from(NAMESPACES),
        st.sampled_from(SIDS),
        st.sampled_from(ROOMS),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_the_index_ends_where_python_socketio_does(ops: list[tuple[Any, ...]]) -> None:
    ours, theirs = _manager(DirectManager), _manager(socketio.AsyncManager)
    for op in ops:
        assert _apply(ours, op) == _apply(theirs, op), op
        assert _state(ours) == _state(theirs), op
    # Every socket's entry goes with its last room.
    assert all(ours.joined.values())


class _CountingRooms(dict[Hashable, Any]):
    """A namespace's rooms that count how often something looks through all of them."""

    scans = 0

    def items(self) -> Any:
        _CountingRooms.scans += 1
        return super().items()

    def copy(self) -> dict[Hashable, Any]:
        _CountingRooms.scans += 1
        return dict(self)


def test_a_disconnect_leaves_only_its_own_rooms() -> None:
    manager = _manager(DirectManager)
    for i in range(200):
        sid = f"s{i}"
        manager.basic_enter_room(sid, "/", None, eio_sid="e" + sid)
        manager.basic_enter_room(sid, "/", sid)
        manager.basic_enter_room(sid, "/", f"tk_{i}")
    manager.rooms["/"] = _CountingRooms(manager.rooms["/"])
    _CountingRooms.scans = 0
    manager.basic_disconnect("s7", "/")
    assert _CountingRooms.scans == 0
    assert "tk_7" not in manager.rooms["/"] and "s7" not in manager.rooms["/"]
    assert "s7" not in manager.rooms["/"][None]
    assert len(manager.rooms["/"][None]) == 199
    assert isinstance(manager, RoomIndex)
