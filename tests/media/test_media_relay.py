"""End-to-end forwarding over loopback: a customer, two agents, stills, clips, audio."""

from __future__ import annotations

import asyncio
import io
import time
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

from media import MediaRoom
from tests.media.media_support import (
    LOOPBACK,
    CounterVideoTrack,
    Hub,
    ToneAudioTrack,
    count_decoded_clip,
    decode_counter_image,
    hears,
    subscribed,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


async def test_customer_to_two_agents_with_voice_still_and_clip(tmp_path: Path) -> None:
    hub = Hub()
    room = MediaRoom("t1", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    camera = CounterVideoTrack(640, 480)
    cam_t = customer.add_track(camera, codec="video/vp8")
    mic_t = customer.add_track(ToneAudioTrack(440))
    await customer.negotiate(lambda: {cam_t.mid or "": "camera", mic_t.mid or "": "microphone"})

    agents = [hub.client(room, f"agent{i}", "agent") for i in (1, 2)]
    for agent in agents:
        agent.add_track(ToneAudioTrack(660))
        await agent.negotiate()
    try:
        tracks = room.tracks()
        video = next(t for t in tracks if t.participant_id == "cust" and t.kind == "video")
        assert video.source == "camera" and video.codec.lower() == "video/vp8"
        for agent in agents:
            await wait_for(partial(subscribed, agent, video.track_id), 10, "agent subscription")
            await agent.video[video.track_id].wait_frames(30, within=10)
            sink = agent.video[video.track_id]
            assert sink.sizes == {(640, 480)}
            assert sink.counters() <= set(camera.sent)

        # Voice both ways: the customer hears both agents, each agent hears the customer.
        await wait_for(lambda: len(customer.audio) == 2, 10, "customer hears agents")
        for heard in customer.audio.values():
            await heard.wait_loud(20)
        for agent in agents:
            await wait_for(partial(hears, agent, 2), 10, "agent hears others")
            audio_from_customer = next(
                s
                for tid, s in agent.audio.items()
                if any(t.track_id == tid and t.participant_id == "cust" for t in room.tracks())
            )
            await audio_from_customer.wait_loud(20)

        # Still: full resolution PNG of a frame that was sent.
        started = time.monotonic()
        still = await room.capture_still(video.track_id)
        elapsed = time.monotonic() - started
        image = Image.open(io.BytesIO(still.png))
        assert image.format == "PNG" and image.size == (640, 480) == (still.width, still.height)
        counter = decode_counter_image(image)
        assert counter is not None and counter in camera.sent
        print(f"still captured in {elapsed * 1000:.0f} ms")  # a figure, not a test of speed

        # Clip: >= 90% of the frames sent while recording.
        clip_id = await room.start_clip(video.track_id)
        first_counter = camera.counter
        await asyncio.sleep(3)
        last_counter = camera.counter
        clip = await room.stop_clip(clip_id)
        assert clip.content_type == "video/webm"
        counters, _ = count_decoded_clip(str(clip.path))
        sent_during = set(range(first_counter, last_counter))
        got = sent_during & {c for c in counters if c is not None}
        assert len(got) >= 0.9 * len(sent_during), (len(got), len(sent_during))
        assert clip.frames == len(counters)
        # The clip's timestamps span the frames it holds (the camera sends 30 a second), however
        # fast this machine ran: within two frame intervals.
        held = [c for c in counters if c is not None]
        span = (max(held) - min(held)) / 30
        assert abs(clip.duration_s - span) <= 2 / 30 + 1e-6, (clip.duration_s, span)
        assert clip.thumbnail_png and clip.thumbnail_png.startswith(b"\x89PNG")
        assert (clip.width, clip.height) == (640, 480)
    finally:
        for client in [customer, *agents]:
            await client.close()
        await room.close()
