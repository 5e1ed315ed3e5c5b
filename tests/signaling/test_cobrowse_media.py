"""The co-browse media channel through the real server: the customer's page element (a
``<video>``'s stream, here an aiortc counter track) reaches the agent's co-browse connection
tagged with its mirror node id, never the call's; it needs the customer to be sharing, and it
closes when they stop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from signaling import keys
from tests.media.media_support import Client as MediaClient
from tests.media.media_support import CounterVideoTrack, wait_for
from tests.signaling.test_cobrowse_functional import sharing_session
from tests.support import CONTEXT, Client, Running, running_server

VIDEO_NODE = 42


class ChannelRoom:
    """What the media test client needs of a room, over the socket protocol, on one channel."""

    def __init__(
        self,
        socket: Client,
        ticket_id: str,
        channel: str,
        elements: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.socket = socket
        self.ticket_id = ticket_id
        self.channel = channel
        self.elements = elements

    async def handle_offer(self, pid: str, role: str, sdp: str, labels: Any = None) -> str:
        ack = await self.socket.call(
            "rtc.offer",
            {
                "ticketId": self.ticket_id,
                "sdp": sdp,
                "labels": labels or {},
                "channel": self.channel,
                "elements": self.elements(),
            },
        )
        assert ack["ok"], ack
        return str(ack["sdp"])

    async def handle_answer(self, pid: str, sdp: str) -> None:
        ack = await self.socket.call(
            "rtc.answer", {"ticketId": self.ticket_id, "sdp": sdp, "channel": self.channel}
        )
        assert ack["ok"], ack


def channel_peer(
    socket: Client,
    ticket_id: str,
    role: str,
    channel: str,
    elements: Callable[[], dict[str, int]] = dict,
) -> MediaClient:
    room = ChannelRoom(socket, ticket_id, channel, elements)
    client = MediaClient(room, role, role)  # type: ignore[arg-type]
    # One handler per event and socket (python-socketio keeps the last): route by channel.
    peers: dict[str, MediaClient] = socket.__dict__.setdefault("media_peers", {})
    peers[channel] = client

    async def route(message: dict[str, Any]) -> None:
        target = peers.get(message.get("channel", "call"))
        if target is not None:
            await target.deliver(message)

    socket.sio.on("rtc.offer", route)
    socket.sio.on("media.tracks", route)
    return client


@pytest.fixture
async def media_server(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(tmp_path, media_host_addresses=("127.0.0.1",)) as running:
        yield running


async def test_page_element_reaches_the_agents_cobrowse_view_only_while_sharing(
    media_server: Running,
) -> None:
    server = media_server
    alice, customer, ticket_id = await sharing_session(server)
    refused = await customer.call("rtc.offer", {"sdp": "v=0", "labels": {"0": "element"}})
    assert refused["error"]["code"] == "malformed"  # an element on the call channel

    joined = await customer.call("rtc.join", {"channel": "cobrowse"})
    assert joined["ok"] and joined["participantId"] == "customer/cobrowse"
    video = CounterVideoTrack(320, 240)
    transceivers: list[Any] = []
    publisher = channel_peer(
        customer,
        ticket_id,
        "customer",
        "cobrowse",
        lambda: {str(t.mid): VIDEO_NODE for t in transceivers if t.mid is not None},
    )
    transceivers.append(publisher.add_track(video))
    await publisher.negotiate(lambda: {str(t.mid): "element" for t in transceivers})

    viewer = channel_peer(alice, ticket_id, "agent", "cobrowse")
    viewer.pc.addTransceiver("audio", direction="recvonly")
    await viewer.negotiate()
    # Alice in a call with the customer too: the call never carries the page element.
    caller = channel_peer(alice, ticket_id, "agent", "call")
    caller.pc.addTransceiver("audio", direction="recvonly")
    try:
        await caller.negotiate()
        await wait_for(lambda: bool(viewer.video), 10, "the agent to receive the element")
        sink = next(iter(viewer.video.values()))
        await sink.wait_frames(10, within=10)
        assert len(sink.counters()) > 1  # frames change

        def element_listed() -> bool:
            return any(
                t["source"] == "element" and t.get("element") == VIDEO_NODE
                for tracks in viewer.track_lists
                for t in tracks
            )

        await wait_for(element_listed, 5, "media.tracks on the cobrowse channel")
        room = server.app[keys.calls]._rooms[ticket_id][1]
        (track,) = [t for t in room.tracks() if t.source == "element"]
        assert track.participant_id == "customer/cobrowse" and track.element == VIDEO_NODE
        assert not caller.video
        assert all(t["source"] != "element" for ts in caller.track_lists for t in ts)
        # The call's timeline says nothing about the co-browse channel.
        timeline = await server.app[keys.store].timeline(ticket_id)
        joins = [e.data["participant"] for e in timeline if e.type == "call.joined"]
        assert joins == [f"agent:{server.agents['alice'].id}"]

        assert (await customer.call("cobrowse.stop", {}))["ok"]
        await wait_for(
            lambda: (
                publisher.pc.connectionState in ("closed", "failed")
                or not any(t.source == "element" for t in room.tracks())
            ),
            10,
            "the co-browse channel to close with the co-browse",
        )
        assert not any(t.source == "element" for t in room.tracks())
        again = await customer.call("rtc.join", {"channel": "cobrowse"})
        assert again["error"]["code"] == "invalid_state"  # not sharing any more
    finally:
        await publisher.close()
        await viewer.close()
        await caller.close()


async def test_cobrowse_channel_needs_sharing(media_server: Running) -> None:
    server = media_server
    alice = await server.agent("alice")
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    for who, payload in ((customer, {}), (alice, {"ticketId": ticket_id})):
        ack = await who.call("rtc.join", {**payload, "channel": "cobrowse"})
        assert ack["error"]["code"] == "invalid_state"
        ack = await who.call("rtc.offer", {**payload, "sdp": "v=0", "channel": "cobrowse"})
        assert ack["error"]["code"] == "invalid_state"
