"""Payload types and RTP header extension ids that stay put for the life of a media room.

aiortc numbers every offer it makes from its own fixed tables (``aiortc.codecs.CODECS`` and
``HEADER_EXTENSIONS``): VP8 97, its RTX 98, ``sdes:mid`` 1, ``abs-send-time`` 3, whatever the
peer chose for the same codecs and extensions before. A browser that offered first numbered
them its own way, and a later server offer that renumbers them is refused or misread:

* RFC 8829 (JSEP) section 5.2.2: a subsequent offer keeps the payload types and extension ids
  of the m-sections negotiated already; RFC 3264 section 8.3.2 says the same of an offer that
  updates a session (a payload type may not be remapped to another codec in it).
* RFC 8285 section 6 (header extensions): an id, once negotiated, names its URI for the whole
  session; with BUNDLE (RFC 8843) the id space is shared by every m-section of the transport,
  so a new m-section must reuse it too (Chrome: "RTP extension ID reassignment not supported",
  "A BUNDLE group contains a codec collision").

So the room keeps one :class:`Numbering` of its own, learned from the first peer's offer (first
come, first kept), and one per participant's connection, learned from that participant's offers
and from every offer the server made it. A server offer is renumbered with the participant's
numbers where it has them, else the room's (so every peer gets the same numbers where it can),
else aiortc's own when free, else the first free one. Pure functions over aiortc's parsed SDP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

DYNAMIC_PAYLOAD_TYPES = (*range(96, 128), *range(35, 64))
"""RFC 3551 section 6 / RFC 5761 section 4: dynamic payload types, the lower range last (it is
only safe with RTCP multiplexing, which WebRTC always uses)."""
EXTENSION_IDS = range(1, 15)
"""One-byte header extension ids (RFC 8285 section 4.2)."""


def _codec_key(codec: RTCRtpCodecParameters, by_pt: dict[int, RTCRtpCodecParameters]) -> str:
    """A codec's identity whatever its number: name, clock, channels and format parameters;
    an RTX codec is the identity of the codec it repairs (its ``apt``)."""
    if codec.mimeType.lower().endswith("/rtx"):
        base = by_pt.get(_apt(codec) or -1)
        inner = _codec_key(base, {}) if base is not None else "?"
        return f"rtx/{codec.clockRate}>{inner}"
    params = ";".join(
        f"{k}={v}" if v is not None else k
        for k, v in sorted(codec.parameters.items())
        if k != "apt"
    )
    return f"{codec.mimeType.lower()}/{codec.clockRate}/{codec.channels or 1};{params}"


def _apt(codec: RTCRtpCodecParameters) -> int | None:
    apt = codec.parameters.get("apt")
    return apt if isinstance(apt, int) else None


@dataclass
class Numbering:
    """Which payload type each codec and which id each header extension URI has."""

    payload_types: dict[str, int] = field(default_factory=dict)
    """codec identity (``_codec_key``) -> payload type"""
    extension_ids: dict[str, int] = field(default_factory=dict)
    """extension URI -> id"""
    used_payload_types: set[int] = field(default_factory=set)
    """Every payload type seen, also of codecs we never forward: none is handed to another."""

    def learn(self, description: sdp.SessionDescription) -> None:
        """Take the numbers of a description (first come, first kept)."""
        for media in description.media:
            if media.kind not in ("audio", "video"):
                continue
            for ext in media.rtp.headerExtensions:
                if ext.uri not in self.extension_ids and ext.id not in self.extension_ids.values():
                    self.extension_ids[ext.uri] = ext.id
            by_pt = {c.payloadType: c for c in media.rtp.codecs if c.payloadType is not None}
            for pt, codec in by_pt.items():
                key = _codec_key(codec, by_pt)
                if key not in self.payload_types and pt not in self.used_payload_types:
                    self.payload_types[key] = pt
                self.used_payload_types.add(pt)
            self.used_payload_types.update(p for p in media.fmt if isinstance(p, int))

    def payload_type(self, key: str, wanted: int, room: Numbering | None) -> int | None:
        """The payload type of a codec on this connection (assigned now if new)."""
        if key in self.payload_types:
            return self.payload_types[key]
        for candidate in (room.payload_types.get(key) if room else None, wanted):
            if candidate is not None and candidate not in self.used_payload_types:
                break
        else:
            candidate = next(
                (p for p in DYNAMIC_PAYLOAD_TYPES if p not in self.used_payload_types), None
            )
        if candidate is None:
            return None
        self.payload_types[key] = candidate
        self.used_payload_types.add(candidate)
        return candidate

    def extension_id(self, uri: str, wanted: int, room: Numbering | None) -> int | None:
        """The id of a header extension on this connection (assigned now if new)."""
        if uri in self.extension_ids:
            return self.extension_ids[uri]
        used = set(self.extension_ids.values())
        for candidate in (room.extension_ids.get(uri) if room else None, wanted):
            if candidate is not None and candidate not in used:
                break
        else:
            candidate = next((i for i in EXTENSION_IDS if i not in used), None)
        if candidate is None:
            return None
        self.extension_ids[uri] = candidate
        return candidate


def renumber(description: sdp.SessionDescription, own: Numbering, room: Numbering | None) -> None:
    """Renumber a server offer in place with the connection's numbers (``own``, which learns
    any number given out now), taking the room's for what the connection has none of yet."""
    for media in description.media:
        if media.kind not in ("audio", "video"):
            continue
        by_pt = {c.payloadType: c for c in media.rtp.codecs if c.payloadType is not None}
        remap: dict[int, int] = {}
        kept: list[RTCRtpCodecParameters] = []
        # Plain codecs first: an RTX codec's number follows the codec it repairs.
        ordered = sorted(media.rtp.codecs, key=lambda c: c.mimeType.lower().endswith("/rtx"))
        for codec in ordered:
            old = codec.payloadType
            if old is None:
                continue
            if codec.mimeType.lower().endswith("/rtx") and _apt(codec) not in remap:
                continue  # repairs a codec that is not offered
            new = own.payload_type(_codec_key(codec, by_pt), old, room)
            if new is None or new in remap.values():
                continue  # no number left, or two codecs one identity: offer the first only
            remap[old] = new
            kept.append(codec)
        for codec in kept:
            assert codec.payloadType is not None
            codec.payloadType = remap[codec.payloadType]
            apt = _apt(codec)
            if apt is not None:
                codec.parameters["apt"] = remap[apt]
        order = {pt: i for i, pt in enumerate(p for p in media.fmt if p in remap)}
        media.rtp.codecs = sorted(
            kept, key=lambda c: order.get(_old(remap, c.payloadType), len(order))
        )
        media.fmt = [remap[p] for p in media.fmt if p in remap]
        extensions: list[RTCRtpHeaderExtensionParameters] = []
        for ext in media.rtp.headerExtensions:
            new_id = own.extension_id(ext.uri, ext.id, room)
            if new_id is not None:
                extensions.append(RTCRtpHeaderExtensionParameters(id=new_id, uri=ext.uri))
        media.rtp.headerExtensions = extensions


def _old(remap: dict[int, int], new: int | None) -> int:
    return next((old for old, n in remap.items() if n == new), -1)
