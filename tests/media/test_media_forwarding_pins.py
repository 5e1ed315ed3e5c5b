"""Pin tests: fail loudly when aiortc internals that media.forwarding relies on change.

If one of these fails after an aiortc upgrade, re-read the touch points listed in the
docstring of media/forwarding.py against the new aiortc source before changing anything.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import aioice.ice
import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import h264, opus, vpx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtp import RtpPacket

from media import MediaRoom, forwarding
from tests.media.media_support import LOOPBACK, CounterVideoTrack, Hub, wait_for

pytestmark = pytest.mark.timeout(60)


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_aiortc_version_is_the_one_the_touch_points_were_checked_against() -> None:
    assert aiortc.__version__ == forwarding.TESTED_AIORTC, (
        f"aiortc {aiortc.__version__} != {forwarding.TESTED_AIORTC}: re-verify every touch "
        "point in media/forwarding.py, then update TESTED_AIORTC"
    )


def test_receiver_internals() -> None:
    # 1. The receiver feeds depayloaded packets to self.__jitter_buffer.add(packet).
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "packet._data = depayload(codec, packet.payload)" in handle
    assert "self.__jitter_buffer.add(packet)" in handle
    assert "pli_flag, encoded_frame = " in handle
    assert "if encoded_frame is not None and self.__decoder_thread:" in handle
    init = _source(RTCRtpReceiver.__init__)
    assert "self.__jitter_buffer = JitterBuffer(capacity=512, is_video=True)" in init
    # JitterBuffer state the tap walks.
    buffer = JitterBuffer(capacity=16, is_video=True)
    assert {"_origin", "_packets", "_capacity"} <= set(vars(buffer))
    assert list(inspect.signature(JitterBuffer.add).parameters) == ["self", "packet"]
    assert list(inspect.signature(JitterBuffer.remove).parameters) == ["self", "count"]
    # 2. PLI towards the publisher.
    pli = RTCRtpReceiver._send_rtcp_pli
    assert inspect.iscoroutinefunction(pli)
    assert list(inspect.signature(pli).parameters) == ["self", "media_ssrc"]


def test_sender_internals() -> None:
    # 3. PLI/FIR from a subscriber end in self._send_keyframe().
    rtcp = _source(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_PLI" in rtcp and "RTCP_PSFB_FIR" in rtcp
    assert "self._send_keyframe()" in rtcp
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]
    # 4. av.Packet from track.recv() is re-packetized with encoder.pack(), not encoded.
    nxt = _source(RTCRtpSender._next_encoded_frame)
    assert "isinstance(data, Frame)" in nxt and "self.__encoder.pack(data)" in nxt
    for encoder in (vpx.Vp8Encoder, h264.H264Encoder, opus.OpusEncoder):
        assert callable(getattr(encoder, "pack", None)), encoder
    # 5. Negotiated codecs live on the transceiver.
    assert "transceiver._codecs = common" in _source(aiortc.RTCPeerConnection.setRemoteDescription)
    # ... and an offer is made from them and the header extensions (media/numbering.py
    # renumbers the offer and puts the numbers back with set_offered_parameters).
    offer = _source(aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    assert "transceiver._codecs" in offer and "transceiver._headerExtensions" in offer


def test_ice_host_address_hook() -> None:
    # 6. aioice looks get_host_addresses up as a module global when gathering.
    assert "get_host_addresses(" in _source(aioice.ice.Connection.gather_candidates)
    assert aioice.ice.get_host_addresses.__name__ == "get_host_addresses"
    assert hasattr(aioice.ice.get_host_addresses, "_tandem_original")
    with forwarding.host_addresses(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


async def test_tap_installs_on_a_real_receiver() -> None:
    gatherer = RTCIceGatherer()
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", dtls)
    got: list[forwarding.RtpFrame] = []
    forwarding.tap_receiver(receiver, "video", got.append)
    assert forwarding.is_tapped(receiver)
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer")  # noqa: B009
    assert isinstance(buffer, JitterBuffer)
    await dtls.stop()


def _packet(seq: int, ts: int, marker: bool, data: bytes, ssrc: int = 1) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, ssrc=ssrc)
    packet.marker = int(marker)
    packet._data = data  # type: ignore[attr-defined]
    return packet


def test_tap_releases_video_frames_on_the_marker_bit() -> None:
    got: list[forwarding.RtpFrame] = []
    buffer = forwarding._TapJitterBuffer("video", got.append)
    assert buffer.add(_packet(10, 1000, False, b"a")) == (False, None)
    assert got == []
    buffer.add(_packet(11, 1000, True, b"b"))
    assert [(f.data, f.timestamp) for f in got] == [(b"ab", 1000)]
    # Reordered: the marker arrives before the middle packet.
    buffer.add(_packet(12, 4000, False, b"c"))
    buffer.add(_packet(14, 4000, True, b"e"))
    assert len(got) == 1
    buffer.add(_packet(13, 4000, False, b"d"))
    assert [f.data for f in got] == [b"ab", b"cde"]
    # Wrap-around of sequence numbers.
    buffer = forwarding._TapJitterBuffer("video", got.append)
    buffer.add(_packet(65535, 7000, False, b"x"))
    buffer.add(_packet(0, 7000, True, b"y"))
    assert got[-1].data == b"xy"


def test_tap_forwards_audio_packets_immediately_and_drops_stale_ones() -> None:
    got: list[forwarding.RtpFrame] = []
    buffer = forwarding._TapJitterBuffer("audio", got.append)
    buffer.add(_packet(5, 960, False, b"1"))
    buffer.add(_packet(7, 2880, False, b"3"))
    buffer.add(_packet(6, 1920, False, b"2"))  # late: the subscriber's jitter buffer copes
    buffer.add(_packet(7, 2880, False, b"3"))  # duplicate
    assert [f.data for f in got] == [b"1", b"3"]


async def test_relay_forwards_without_decoding_or_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publisher -> room -> one agent: exactly one VP8 decoder (the agent's) and one
    encoder (the publisher's) may exist in this process; the room only packs."""
    decoders: list[object] = []
    encoded_by: set[int] = set()
    packed_by: set[int] = set()
    decoder_init = vpx.Vp8Decoder.__init__
    encode = vpx.Vp8Encoder.encode
    pack = vpx.Vp8Encoder.pack

    def counting_decoder_init(self: vpx.Vp8Decoder) -> None:
        decoders.append(self)
        decoder_init(self)

    def counting_encode(self: vpx.Vp8Encoder, frame, force_keyframe=False):  # type: ignore[no-untyped-def]
        encoded_by.add(id(self))
        return encode(self, frame, force_keyframe)

    def counting_pack(self: vpx.Vp8Encoder, packet):  # type: ignore[no-untyped-def]
        packed_by.add(id(self))
        return pack(self, packet)

    monkeypatch.setattr(vpx.Vp8Decoder, "__init__", counting_decoder_init)
    monkeypatch.setattr(vpx.Vp8Encoder, "encode", counting_encode)
    monkeypatch.setattr(vpx.Vp8Encoder, "pack", counting_pack)

    hub = Hub()
    room = MediaRoom("pin", [], hub.send_signal, LOOPBACK, clip_dir=tmp_path)
    customer = hub.client(room, "cust", "customer")
    camera = CounterVideoTrack(320, 240)
    customer.add_track(camera)
    await customer.negotiate()
    agent = hub.client(room, "a1", "agent")
    agent.pc.addTransceiver("audio", direction="recvonly")
    await agent.negotiate()
    try:
        (video,) = room.tracks()
        await wait_for(lambda: video.track_id in agent.video, 10, "subscription")
        await agent.video[video.track_id].wait_frames(30)
        assert len(decoders) == 1, "the relay decoded video"
        assert len(encoded_by) == 1, "the relay encoded video"
        assert len(packed_by) == 1 and packed_by != encoded_by
        server_pc = room._participants["a1"].pc
        for transceiver in server_pc.getTransceivers():
            encoder = getattr(transceiver.sender, "_RTCRtpSender__encoder", None)
            assert encoder is None or getattr(encoder, "codec", None) is None
        publisher_pc = room._participants["cust"].pc
        for transceiver in publisher_pc.getTransceivers():
            assert forwarding.is_tapped(transceiver.receiver)
            queue = getattr(transceiver.receiver, "_RTCRtpReceiver__decoder_queue")  # noqa: B009
            assert queue.qsize() == 0
        # Server-added transceivers are recognisable.
        assert all(isinstance(t, RTCRtpTransceiver) for t in server_pc.getTransceivers())
        # Latency sanity: counters arrive within a few frame intervals of being made.
        sink = agent.video[video.track_id]
        delays = sorted(at - camera.sent[c] for c, at in sink.received[-20:])
        assert delays[len(delays) // 2] < 0.25, delays
    finally:
        await customer.close()
        await agent.close()
        await room.close()
