"""Just enough codec bitstream parsing to forward and remux without decoding."""

from __future__ import annotations

VP8 = "video/vp8"
H264 = "video/h264"

# H.264 NAL unit types (ITU-T H.264 table 7-1).
_NAL_IDR = 5
_NAL_SPS = 7


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded video frame can be decoded on its own.

    Audio frames always are. ``data`` is a whole frame as depayloaded by aiortc: VP8 frame
    data, or H.264 Annex B (start-code separated NAL units).
    """
    mime = mime_type.lower()
    if mime == VP8:
        # RFC 6386 section 9.1: bit 0 of the frame tag is 0 for key frames.
        return len(data) >= 10 and not data[0] & 1
    if mime == H264:
        return any(nal in (_NAL_IDR, _NAL_SPS) for nal in h264_nal_types(data))
    return not mime.startswith("video/")


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B buffer (RFC 6184 section 1.3)."""
    types: list[int] = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        types.append(data[pos + 3] & 0x1F)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return types


def vp8_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 section 9.1), else None."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height
