"""The room keeps the payload types and header extension ids it negotiated (media/numbering.py).

The peers here are aiortc clients that number their offers the way Chrome does (VP8 96, its RTX
97, Opus 111; ``ssrc-audio-level`` 1, ``abs-send-time`` 2, ``sdes:mid`` 4), not aiortc's way
(Opus 96, VP8 97; ``sdes:mid`` 1, ``abs-send-time`` 3): the server's own offers must carry the
clients' numbers (RFC 8829 5.2.2, RFC 8285 6), the same to every peer, and media must flow.
"""

from __future__ import annotations

import re
from functools import partial

import pytest
from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription

from media import MediaRoom
from media.forwarding import host_addresses
from tests.media.media_support import (
    LOOPBACK,
    Client,
    CounterVideoTrack,
    Hub,
    ToneAudioTrack,
    subscribed,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

# aiortc's numbers -> a browser's (collision-free in both directions: applied in one pass).
BROWSER_PT = {96: 111, 97: 96, 98: 97, 99: 102, 100: 103, 101: 104, 102: 105}
BROWSER_EXT = {1: 4, 2: 1, 3: 2}


def browser_numbers(
    sdp: str, pts: dict[int, int] = BROWSER_PT, ids: dict[int, int] = BROWSER_EXT
) -> str:
    """An aiortc description renumbered like Chrome's (or with other tables)."""

    def pt(match: re.Match[str]) -> str:
        return str(pts.get(int(match.group(0)), int(match.group(0))))

    out = []
    for line in sdp.split("\r\n"):
        if line.startswith(("m=audio", "m=video")):
            head, fmts = line.split(" ", 3)[:3], line.split(" ", 3)[3]
            line = " ".join([*head, re.sub(r"\d+", pt, fmts)])
        elif m := re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)(.*)$", line):
            rest = re.sub(r"(?<=apt=)\d+", pt, m.group(3)) if m.group(1) == "fmtp" else m.group(3)
            number = pts.get(int(m.group(2)), int(m.group(2)))
            line = f"a={m.group(1)}:{number}{rest}"
        elif m := re.match(r"a=extmap:(\d+) (.*)$", line):
            line = f"a=extmap:{ids.get(int(m.group(1)), int(m.group(1)))} {m.group(2)}"
        out.append(line)
    return "\r\n".join(out)


async def offer_like_a_browser(
    client: Client, pts: dict[int, int] = BROWSER_PT, ids: dict[int, int] = BROWSER_EXT
) -> None:
    with host_addresses(LOOPBACK):
        offer = await client.pc.createOffer()
    sdp = browser_numbers(offer.sdp, pts, ids)
    with host_addresses(LOOPBACK):
        await client.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    local = client.pc.localDescription.sdp  # the renumbered offer, with its candidates now
    answer = await client.room.handle_offer(client.id, client.role, local)  # type: ignore[arg-type]
    await client.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


def numbers(sdp: str) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Per mid: codec (mime, with what RTX repairs) -> payload type, extension URI -> id."""
    out = {}
    for media in SessionDescription.parse(sdp).media:
        by_pt = {c.payloadType: c for c in media.rtp.codecs}
        codecs: dict[str, int] = {}
        for c in media.rtp.codecs:
            name = c.mimeType.lower()
            if name.endswith("/rtx"):
                apt = c.parameters["apt"]
                assert isinstance(apt, int)
                name += ">" + by_pt[apt].mimeType.lower()
            assert c.payloadType is not None
            codecs.setdefault(name, c.payloadType)
        exts = {e.uri: e.id for e in media.rtp.headerExtensions}
        out[str(media.rtp.muxId)] = (codecs, exts)
    return out


async def test_server_offers_keep_the_numbers_the_peers_negotiated() -> None:
    hub = Hub()
    room = MediaRoom("numbering", [], hub.send_signal, LOOPBACK)
    customer = hub.client(room, "customer", "customer")
    camera = CounterVideoTrack(320, 240)
    customer.add_track(camera, codec="video/vp8")
    customer.add_track(ToneAudioTrack(440))
    await offer_like_a_browser(customer)
    agents = [hub.client(room, f"agent:{n}", "agent") for n in (1, 2)]
    for agent in agents:
        agent.add_track(ToneAudioTrack(660))
        await offer_like_a_browser(agent)
    try:
        video = next(t for t in room.tracks() if t.kind == "video")
        for agent in agents:
            await wait_for(partial(subscribed, agent, video.track_id), 10, "the camera")
            await agent.video[video.track_id].wait_frames(10, within=10)
        # Every server offer carries the browsers' numbers, the same to both agents.
        seen: list[dict[str, tuple[dict[str, int], dict[str, int]]]] = []
        for agent in agents:
            assert agent.offers, "the server offered the customer's tracks"
            for offer in agent.offers:
                for codecs, exts in numbers(offer["sdp"]).values():
                    assert codecs.get("video/vp8", 96) == 96
                    assert codecs.get("video/rtx>video/vp8", 97) == 97
                    assert codecs.get("audio/opus", 111) == 111
                    assert exts.get("urn:ietf:params:rtp-hdrext:sdes:mid") == 4
                    if "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time" in exts:
                        assert (
                            exts["http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"] == 2
                        )
                    if "urn:ietf:params:rtp-hdrext:ssrc-audio-level" in exts:
                        assert exts["urn:ietf:params:rtp-hdrext:ssrc-audio-level"] == 1
            seen.append(numbers(agent.offers[-1]["sdp"]))
        assert seen[0] == seen[1]

        # A renegotiation (the customer shares a second video) keeps every m-line's numbers.
        before = numbers(agents[0].offers[-1]["sdp"])
        offers = len(agents[0].offers)
        customer.add_track(CounterVideoTrack(160, 120, start=5000), codec="video/vp8")
        await offer_like_a_browser(customer)
        await wait_for(lambda: len(agents[0].offers) > offers, 10, "a new server offer")
        after = numbers(agents[0].offers[-1]["sdp"])
        assert len(after) == len(before) + 1
        for mid, kept in before.items():
            assert after[mid] == kept
        second = next(
            t for t in room.tracks() if t.kind == "video" and t.track_id != video.track_id
        )
        await wait_for(partial(subscribed, agents[0], second.track_id), 10, "the second video")
        await agents[0].video[second.track_id].wait_frames(10, within=10)
    finally:
        for client in (customer, *agents):
            await client.close()
        await room.close()


async def test_a_peer_numbering_differently_keeps_its_own_numbers() -> None:
    """A later peer that numbered Opus 97 and ``sdes:mid`` 3 itself (aiortc's VP8 and
    ``abs-send-time``) keeps them: the customer's video comes to it as VP8 96 (the room's), its
    RTX on a free number (the room's 97 is this peer's Opus), ``abs-send-time`` 2 (the room's);
    no number names two codecs or two extensions on its BUNDLE transport, and media flows."""
    hub = Hub()
    room = MediaRoom("numbering2", [], hub.send_signal, LOOPBACK)
    customer = hub.client(room, "customer", "customer")
    customer.add_track(CounterVideoTrack(320, 240), codec="video/vp8")
    await offer_like_a_browser(customer)
    agent = hub.client(room, "agent:1", "agent")
    agent.add_track(ToneAudioTrack(660))
    await offer_like_a_browser(agent, {96: 97}, {1: 3, 2: 5})
    try:
        video = next(t for t in room.tracks() if t.kind == "video")
        await wait_for(partial(subscribed, agent, video.track_id), 10, "the camera")
        await agent.video[video.track_id].wait_frames(10, within=10)
        for offer in agent.offers:
            names: dict[int, set[str]] = {}
            uris: dict[int, set[str]] = {}
            for codecs, exts in numbers(offer["sdp"]).values():
                for name, number in codecs.items():
                    names.setdefault(number, set()).add(name)
                for uri, number in exts.items():
                    uris.setdefault(number, set()).add(uri)
                assert codecs.get("audio/opus", 97) == 97
                assert codecs.get("video/vp8", 96) == 96
                assert codecs.get("video/rtx>video/vp8", 98) == 98
                assert exts["urn:ietf:params:rtp-hdrext:sdes:mid"] == 3
                assert (
                    exts.get("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", 2) == 2
                )
            assert all(len(v) == 1 for v in names.values()), names
            assert all(len(v) == 1 for v in uris.values()), uris
    finally:
        for client in (customer, agent):
            await client.close()
        await room.close()
