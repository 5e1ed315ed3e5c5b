"""The one-node manager's short cuts (issue 10): an event is sent to each recipient without a
task per recipient, and a co-browse relay carries the events' JSON as made on the way in. Both
must put on the wire what python-socketio's own path would have put there."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType
from engineio import packet as eio_packet
from socketio import packet

from cobrowse.recording import encode_events
from signaling.edge.eio_socket import TextFrame, _decoded, _frame_writer
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
    # Made without ``model_construct``, the relay is the model it would have made.
    made = CobrowseEventsOut.model_construct(ticket_id="tk_1", events=EVENTS)
    assert made.__pydantic_private__ is not None
    made.__pydantic_private__["_events_json"] = encode_events(EVENTS)
    assert out == made and out.model_fields_set == made.model_fields_set
    assert out.model_dump() == plain.model_dump() and out.model_extra is None
    assert out != plain  # the JSON made on the way in is part of it
    assert CobrowseEventsOut.model_validate(out.wire()) == plain
    assert out.model_copy(update={"ticket_id": "tk_2"}).ticket_id == "tk_2"


class _Eio:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_packet(self, eio_sid: str, pkt: eio_packet.Packet) -> None:
        if eio_sid == "gone":
            raise KeyError(eio_sid)
        encoded = pkt.encode()  # engine.io's message type, then socket.io's packet
        assert encoded[0] == "4"
        self.sent.append((eio_sid, encoded[1:]))


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


class _AiohttpSocket:
    """The send methods of aiohttp's websocket, each frame kept with its kind."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str | bytes]] = []

    async def send_str(self, frame: str) -> None:
        self.frames.append(("str", frame))

    async def send_bytes(self, frame: bytes) -> None:
        self.frames.append(("binary", frame))

    async def send_frame(self, frame: bytes, opcode: WSMsgType) -> None:
        self.frames.append((opcode.name.lower(), frame))


class _EngineWebSocket:
    def __init__(self, sock: _AiohttpSocket) -> None:
        self._sock = sock


async def test_a_frame_made_as_utf8_goes_out_as_the_same_text_frame() -> None:
    """A relay's JSON stays UTF-8 to the socket: written as a text frame (not a binary one),
    the same text socket.io's own path writes, and engine.io's own loops read it as text."""
    payload = CobrowseEventsOut.relay("tk_1", EVENTS, encode_events(EVENTS))
    raw = payload.wire_json()
    assert isinstance(raw, bytes)
    manager = DirectManager()
    server = _Server()
    manager.set_server(server)
    manager.initialize()
    manager.basic_enter_room("a", "/", None, eio_sid="ea")
    manager.basic_enter_room("a", "/", "r1")
    frames: list[eio_packet.Packet] = []

    async def keep(eio_sid: str, pkt: eio_packet.Packet) -> None:
        frames.append(pkt)

    server.eio.send_packet = keep  # type: ignore[method-assign]
    await manager.emit_json("cobrowse.events", raw, "r1")
    (frame,) = frames
    assert isinstance(frame, TextFrame)

    sock = _AiohttpSocket()
    write = _frame_writer(_EngineWebSocket(sock))
    await write(frame)
    await write(eio_packet.Packet(eio_packet.MESSAGE, '2["x"]'))
    expected = TextPacket(packet.EVENT, namespace="/", data=["cobrowse.events", payload.wire()])
    (kind, sent), plain = sock.frames
    assert kind == "text" and isinstance(sent, bytes)
    assert decoded(sent.decode()[1:]) == decoded(expected.encode())
    assert frame.encode() == sent.decode()  # long-polling or an upgrade: the same text
    assert plain == ("str", '42["x"]')


def test_a_message_frame_is_read_as_engineio_reads_it() -> None:
    """``_decoded`` takes a message frame as it is, as engine.io's decoder does for every
    socket.io packet; other frames go to that decoder."""
    frames: list[str | bytes] = ['42["x",{"a":1}]', "40", "4", '43["ok"]', "3", "2probe", b"\x01"]
    for frame in frames:
        ours, theirs = _decoded(frame), eio_packet.Packet(encoded_packet=frame)
        assert (ours.packet_type, ours.data, ours.binary) == (
            theirs.packet_type,
            theirs.data,
            theirs.binary,
        ), frame
    # A message engine.io would have read as JSON (no socket.io packet is) stays text: the
    # socket.io layer refuses it as unreadable rather than meeting a dict.
    assert _decoded('4{"a":1}').data == '{"a":1}'
