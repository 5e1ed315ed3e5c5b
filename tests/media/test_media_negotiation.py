"""Late joiners, renegotiation (screen share on/off), H.264, leaving."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import pytest
from aiortc import RTCRtpSender
from PIL import Image

from media import MediaRoom, NegotiationError, OfferCollision, UnknownParticipant
from tests.media.media_support import (
    LOOPBACK,
    Client,
    CounterVideoTrack,
    Hub,
    count_decoded_clip,
    decode_counter_image,
    subscribed,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def _count_keyframe_requests(client: Client) -> list[float]:
    """Record when the publisher's senders are asked for a keyframe (PLI/FIR arrived)."""
    calls: list[float] = []
    for sender in client.pc.getSenders():
        original = sender._send_keyframe

        def wrapped(original=original) -> None:  # type: ignore[no-untyped-def]
            calls.append(time.monotonic())
            original()

        sender._send_keyframe = wrapped  # type: ignore[method-assign]
    return calls


async def test_late_joiner_gets_picture_within_one_second(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t2", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    camera = CounterVideoTrack(640, 480)
    customer.add_track(camera)
    await customer.negotiate()
    first = hub.client(room, "a1", "agent")
    first.pc.addTransceiver("audio", direction="recvonly")
    await first.negotiate()
    late: Client | None = None
    try:
        (video,) = room.tracks()
        await wait_for(lambda: video.track_id in first.video, 10, "first agent subscribed")
        await first.video[video.track_id].wait_frames(15)
        # aiortc's VP8 encoder only makes keyframes on request (kf_max_dist 3000), so after
        # this pause the last keyframe is 90+ frames old: the late joiner cannot start
        # without a fresh one.
        requests = _count_keyframe_requests(customer)
        await asyncio.sleep(3)
        assert requests == []

        late = hub.client(room, "a2", "agent")
        late.pc.addTransceiver("audio", direction="recvonly")
        await late.negotiate()
        await wait_for(lambda: video.track_id in late.video, 10, "late agent subscribed")
        sink = late.video[video.track_id]
        await wait_for(lambda: sink.first_frame_at is not None, 2, "late agent picture")
        assert late.offer_received_at
        assert sink.first_frame_at is not None
        delay = sink.first_frame_at - late.offer_received_at[0]
        assert delay < 1.0, f"picture {delay:.3f}s after the subscription offer"
        assert requests, "the keyframe request never reached the publisher"
        assert sink.undecodable == 0
        await sink.wait_frames(10)
    finally:
        for client in (customer, first, late):
            if client is not None:
                await client.close()
        await room.close()


async def test_screen_share_added_then_stopped(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t3", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    camera = CounterVideoTrack(640, 480)
    customer.add_track(camera)
    await customer.negotiate()
    agents = [hub.client(room, f"a{i}", "agent") for i in (1, 2)]
    for agent in agents:
        agent.pc.addTransceiver("audio", direction="recvonly")
        await agent.negotiate()
    try:
        (cam,) = room.tracks()
        for agent in agents:
            await wait_for(partial(subscribed, agent, cam.track_id), 10, "camera subscription")

        # Screen share: a second video track, labelled through the offer.
        screen = CounterVideoTrack(1280, 720, start=500_000)
        screen_t = customer.add_track(screen)
        await customer.negotiate(lambda: {screen_t.mid or "": "screen"})
        shared = [t for t in room.tracks() if t.source == "screen"]
        assert len(shared) == 1 and shared[0].kind == "video"
        share = shared[0]
        for agent in agents:
            await wait_for(partial(subscribed, agent, share.track_id), 10, "screen subscription")
            sink = agent.video[share.track_id]
            await sink.wait_frames(10)
            assert sink.sizes == {(1280, 720)}
            assert min(sink.counters()) >= 500_000
            assert any(
                t["trackId"] == share.track_id and t["source"] == "screen"
                for t in agent.offers[-1]["tracks"]
            )
            # The camera keeps flowing next to it.
            await agent.video[cam.track_id].wait_frames(5)

        # Stop sharing: the client makes the transceiver inactive and renegotiates.
        screen_t.direction = "inactive"
        await customer.negotiate()
        assert [t.source for t in room.tracks()] == ["camera"]
        for agent in agents:
            await wait_for(partial(has_inactive_mline, agent), 10, "screen m-line made inactive")
            await wait_for(partial(lists_no_screen, agent), 5, "media.tracks without the screen")
            await agent.video[cam.track_id].wait_frames(5)
    finally:
        for client in (customer, *agents):
            await client.close()
        await room.close()


async def test_h264_forwarding_still_and_clip(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t4", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    camera = CounterVideoTrack(640, 480)
    customer.add_track(camera, codec="video/h264")
    await customer.negotiate()
    agent = hub.client(room, "a1", "agent")
    agent.pc.addTransceiver("audio", direction="recvonly")
    await agent.negotiate()
    try:
        (video,) = room.tracks()
        assert video.codec.lower() == "video/h264"
        await wait_for(lambda: video.track_id in agent.video, 10, "subscription")
        sink = agent.video[video.track_id]
        await sink.wait_frames(20)
        assert sink.counters() <= set(camera.sent)
        sdp = agent.pc.remoteDescription.sdp
        assert "H264" in sdp and "VP8" not in sdp.split("m=video")[-1]

        still = await room.capture_still(video.track_id)
        import io

        counter = decode_counter_image(Image.open(io.BytesIO(still.png)))
        assert (still.width, still.height) == (640, 480) and counter in camera.sent

        clip_id = await room.start_clip(video.track_id)
        begin = camera.counter
        await asyncio.sleep(2)
        end = camera.counter
        clip = await room.stop_clip(clip_id)
        assert clip.content_type == "video/mp4"
        counters, _ = count_decoded_clip(str(clip.path))
        in_clip = {c for c in counters if c is not None}
        # The clip holds what the relay forwarded in its time: the frames the agent decoded
        # from the same stream. Frames the camera's software encoder skipped on a busy machine
        # reached neither (judged against every frame made, it failed once at 51 of 60).
        forwarded = {c for c in sink.counters() if begin <= c < end}
        assert len(forwarded) >= 0.5 * (end - begin)
        assert len(forwarded & in_clip) >= 0.9 * len(forwarded)
    finally:
        await customer.close()
        await agent.close()
        await room.close()


async def test_agent_leaves_and_glare_is_reported(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t5", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    customer.add_track(CounterVideoTrack(320, 240))
    await customer.negotiate()
    agent = hub.client(room, "a1", "agent")
    agent.pc.addTransceiver("audio", direction="recvonly")
    # Hold the agent's inbox so the server's offer stays unanswered.
    hold = asyncio.Event()
    deliver = agent.deliver

    async def held(message: dict[str, object]) -> None:
        if message["type"] == "rtc.offer":
            await hold.wait()
        await deliver(message)

    agent.deliver = held  # type: ignore[method-assign]
    await agent.negotiate()
    try:
        participant = room._participants["a1"]
        await wait_for(lambda: participant.pc.signalingState == "have-local-offer", 10, "offer")
        with pytest.raises(OfferCollision):
            await room.handle_offer("a1", "agent", agent.pc.localDescription.sdp)
        hold.set()
        (video,) = room.tracks()
        await wait_for(lambda: video.track_id in agent.video, 10, "subscription")
        await agent.video[video.track_id].wait_frames(5)

        # Labels and mute state reach every participant through media.tracks.
        info = room.update_track("cust", video.mid, source="screen", muted=True)
        assert info is not None and info.muted and info.source == "screen"
        await wait_for(
            lambda: bool(agent.track_lists) and agent.track_lists[-1][0]["muted"] is True,
            5,
            "media.tracks with the mute",
        )
        assert room.update_track("cust", "not-yet-published", source="camera") is None
        # Trickled candidates (aiortc itself never trickles, so feed a made-up one).
        await room.add_ice_candidate(
            "a1",
            {
                "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        )
        await room.add_ice_candidate("a1", None)
        with pytest.raises(UnknownParticipant):
            await room.add_ice_candidate("nobody", None)

        await room.remove_participant("a1")
        publication = room._participants["cust"].publications
        assert all(not p._subscribers for p in publication.values())
        assert [t.participant_id for t in room.tracks()] == ["cust"]
    finally:
        await customer.close()
        await agent.close()
        await room.close()


def test_subscriber_codec_preferences_cover_negotiated_h264() -> None:
    names = {c.mimeType for c in RTCRtpSender.getCapabilities("video").codecs}
    assert {"video/VP8", "video/H264"} <= names


async def test_bad_offer_is_a_negotiation_error() -> None:
    async def send_signal(participant_id: str, message: dict[str, object]) -> None:
        pass

    room = MediaRoom("t6", [], send_signal, LOOPBACK)
    try:
        bad = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        with pytest.raises(NegotiationError):
            await room.handle_offer("c", "customer", bad)
        with pytest.raises(ValueError):
            await room.handle_offer("c", "supervisor", bad)  # type: ignore[arg-type]
        with pytest.raises(NegotiationError):
            await room.handle_answer("c", bad)
    finally:
        await room.close()


def has_inactive_mline(agent: Client) -> bool:
    return any(
        t.currentDirection == "inactive" and t.mid is not None for t in agent.pc.getTransceivers()
    )


def lists_no_screen(agent: Client) -> bool:
    return bool(agent.track_lists) and all(t["source"] != "screen" for t in agent.track_lists[-1])
