"""Channels of one media room over loopback: the call's tracks and the co-browse page elements
never cross, an element track carries its mirror node id, and only the customer's labelled
video is forwarded on the co-browse channel."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription

from media import Channel, MediaRoom, NegotiationError
from media.forwarding import host_addresses
from tests.media.media_support import (
    LOOPBACK,
    Client,
    CounterVideoTrack,
    Hub,
    subscribed,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


class ChannelClient(Client):
    """A test client whose offers name its channel and its page elements."""

    def __init__(
        self,
        room: MediaRoom,
        participant_id: str,
        role: str,
        channel: Channel,
        elements: Callable[[], dict[str, int]] = dict,
    ) -> None:
        super().__init__(room, participant_id, role)
        self.channel: Channel = channel
        self.elements = elements

    async def negotiate(self, labels: Callable[[], dict[str, str]] | None = None) -> None:
        with host_addresses(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.room.handle_offer(
            self.id,
            self.role,  # type: ignore[arg-type]
            self.pc.localDescription.sdp,
            labels() if labels else None,
            channel=self.channel,
            elements=self.elements(),
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


def join(
    hub: Hub,
    room: MediaRoom,
    pid: str,
    role: str,
    channel: Channel,
    elements: Callable[[], dict[str, int]] = dict,
) -> ChannelClient:
    client = ChannelClient(room, pid, role, channel, elements)
    hub.clients[pid] = client
    return client


async def test_call_and_page_elements_never_cross(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t1", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    clients: list[ChannelClient] = []
    try:
        customer = join(hub, room, "cust", "customer", "call")
        clients.append(customer)
        camera = customer.add_track(CounterVideoTrack(320, 240), codec="video/vp8")
        await customer.negotiate(lambda: {camera.mid or "": "camera"})

        page = join(hub, room, "cust/cb", "customer", "cobrowse", lambda: {video.mid or "": 7})
        clients.append(page)
        video = page.add_track(CounterVideoTrack(200, 150), codec="video/vp8")
        await page.negotiate(lambda: {video.mid or "": "element"})

        agent_call = join(hub, room, "a1", "agent", "call")
        agent_view = join(hub, room, "a1/cb", "agent", "cobrowse")
        clients += [agent_call, agent_view]
        agent_call.pc.addTransceiver("audio", direction="recvonly")
        await agent_call.negotiate()
        # An agent's video on the co-browse channel is nobody's page element: not forwarded.
        agent_view.add_track(CounterVideoTrack(64, 48), codec="video/vp8")
        await agent_view.negotiate()

        tracks = {t.source: t for t in room.tracks()}
        assert set(tracks) == {"camera", "element"}
        element = tracks["element"]
        assert (element.participant_id, element.element) == ("cust/cb", 7)
        assert element.to_json()["element"] == 7 and "element" not in tracks["camera"].to_json()

        await wait_for(partial(subscribed, agent_view, element.track_id), 10, "element")
        await agent_view.video[element.track_id].wait_frames(10, within=10)
        assert agent_view.video[element.track_id].sizes == {(200, 150)}
        await wait_for(partial(subscribed, agent_call, tracks["camera"].track_id), 10, "camera")
        assert set(agent_call.video) == {tracks["camera"].track_id}
        assert set(agent_view.video) == {element.track_id}
        assert not customer.video and not page.video

        def listed(client: ChannelClient) -> set[str]:
            return {t["source"] for t in client.track_lists[-1]} if client.track_lists else set()

        await wait_for(lambda: listed(agent_view) == {"element"}, 5, "the element list")
        await wait_for(lambda: listed(agent_call) == {"camera"}, 5, "the call's list")

        with pytest.raises(NegotiationError):
            room.update_track("cust", camera.mid or "", source="element")
        with pytest.raises(NegotiationError):
            await customer.negotiate(lambda: {camera.mid or "": "element"})
    finally:
        for client in clients:
            await client.close()
        await room.close()
