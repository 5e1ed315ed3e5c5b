"""The one-node manager's short cuts (issue 10): an event is sent to each recipient without a
task per recipient, and a co-browse relay carries the events' JSON as made on the way in. Both
must put on the wire what python-socketio's own path would have put there."""

from __future__ import annotations

import json
from typing import Any

from engineio import packet as eio_packet
from socketio import packet

from cobrowse.recording import encode_events
from signaling.edge.socketserver import DirectManager, TextPacket
from signaling.protocol import CobrowseEventsOut

EVENTS: list[dict[str, Any]] = [
    {
        "type": 3,
        "data": {"source": 5, "text": 'caf\u00e9 \u2028 "q" \\ \U0001f600'},
        "timestamp": 1.5,
    },
    {"type": 3, "data": {"source": 1, "positions": [{"x": 1, "y": 2, "id": 3}]}, "timestamp": 2},
]


def decoded(frame: str) -> Any:
    pkt = TextPacket(encoded_packet=frame)
    return pkt.packet_type, pkt.namespace, pkt.data


def test_a_relay_carries_the_same_json_as_its_wire_form() -> None:
    out = CobrowseEventsOut.relay("tk_1", EVENTS, encode_events(EVENTS))
    text = out.wire_json()
    assert text is not None
    assert (
        json.loads(text)
        == out.wire()
        == {
            "type": "cobrowse.events",
            "ticketId": "tk_1",
            "events": EVENTS,
        }
    )
    plain = CobrowseEventsOut.model_construct(ticket_id="tk_1", events=EVENTS)
    assert plain.wire_json() is None  # built the usual way: encoded by socket.io as before


class _Eio:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_packet(self, eio_sid: str, pkt: eio_packet.Packet) -> None:
        if eio_sid == "gone":
            raise KeyError(eio_sid)
        self.sent.append((eio_sid, pkt.data))


class _Server:
    packet_class = TextPacket

    def __init__(self) -> None:
        self.eio = _Eio()


async def test_direct_emits_match_socketio_packets() -> None:
    manager = DirectManager()
    server = _Server()
    manager.set_server(server)
    manager.initialize()
    for sid, eio_sid, room in [("a", "ea", "r1"), ("b", "eb", "r2"), ("c", "gone", "r1")]:
        manager.basic_enter_room(sid, "/", None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, "/", room)
    payload = CobrowseEventsOut.relay("tk_1", EVENTS, encode_events(EVENTS))
    expected = TextPacket(packet.EVENT, namespace="/", data=["cobrowse.events", payload.wire()])

    await manager.emit("cobrowse.events", payload.wire(), "/", to=["r1", "r2"], skip_sid="b")
    text = payload.wire_json()
    assert text is not None
    await manager.emit_json("cobrowse.events", text, ["r1", "r2"], skip_sid="b")

    sent = server.eio.sent
    assert [sid for sid, _ in sent] == ["ea", "ea"]  # b skipped; the gone socket ignored
    for _, frame in sent:
        assert decoded(frame) == decoded(expected.encode())
    assert manager.reaches_nobody(["r3"]) and not manager.reaches_nobody(["r3", "r2"])
