"""MediaRoom: one selective forwarding unit per support session.

Each participant (a customer or an agent) holds ONE ``RTCPeerConnection`` to the server.
Every published track is forwarded, still encoded, to every other participant: agents get the
customer's camera, screen and microphone, and the customer gets the agents' camera and
microphone. Nothing is decoded unless a still or a clip is asked for.

Signaling contract (what the caller wires to its transport):

* Client offers (first connection and every renegotiation): ``await handle_offer(...)`` and
  send the returned answer back. ``labels`` (mid or track id -> source) may come with it.
* The server offers on its own when a participant has tracks to receive: it calls
  ``send_signal(participant_id, {"type": "rtc.offer", "sdp": ..., "tracks": [...]})``; the
  client's answer comes back through ``await handle_answer(...)``. ``tracks`` maps each
  m-line (``mid``) to the :class:`~media.types.TrackInfo` it carries.
* Whenever the set of tracks or their state changes, every participant gets
  ``{"type": "media.tracks", "tracks": [...]}`` (the tracks of its channel).
* Channels (:data:`~media.types.Channel`): a participant's connection is either for the
  ``call`` (camera, screen, microphone) or for ``cobrowse``, where the customer publishes
  elements of the co-browsed page (a ``<video>``'s ``captureStream()``) as ``element`` tracks
  tagged with the mirror's node id, and agents receive them. Tracks never cross channels. One
  person joins both channels as two participants (the caller picks distinct ids).
* Trickled client candidates: ``await add_ice_candidate(...)``. The server never trickles:
  its candidates are in its SDP.
* Glare: the server is the impolite peer of W3C "perfect negotiation". A client offer that
  crosses an unanswered server offer raises :class:`~media.exceptions.OfferCollision`; the
  client rolls back, answers the server and offers again.
* Messages for one participant must be delivered in order, and the answer returned by
  ``handle_offer`` before later ``send_signal`` messages to that participant.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription, candidate_from_sdp

from . import forwarding
from .capture import Clip, ClipWriter, Still, decode_still
from .exceptions import (
    CaptureError,
    MediaError,
    NegotiationError,
    OfferCollision,
    UnknownParticipant,
    UnknownTrack,
)
from .forwarding import ForwardedTrack, host_addresses
from .numbering import Numbering, renumber
from .publication import Publication
from .turn import IceServer
from .types import CHANNELS, ROLES, SOURCES, Channel, Kind, Role, Source, TrackInfo

logger = logging.getLogger(__name__)

SendSignal = Callable[[str, dict[str, Any]], Awaitable[None]]

FORWARDABLE = frozenset(
    {"video/vp8", "video/h264", "audio/opus", "audio/g722", "audio/pcmu", "audio/pcma"}
)
STILL_MAX_GOP_FRAMES = 30
"Decode at most this many frames for a still; beyond that, ask for a fresh keyframe."
STILL_TIMEOUT_S = 1.0
MONITOR_INTERVAL_S = 1.0

# What aiortc raises for SDP it cannot parse or apply.
_AIORTC_ERRORS = (
    ValueError,
    AssertionError,
    IndexError,
    KeyError,
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)


@dataclass(eq=False)
class _Subscription:
    publication: Publication
    transceiver: RTCRtpTransceiver
    track: ForwardedTrack


@dataclass(eq=False)
class _Participant:
    id: str
    role: Role
    pc: RTCPeerConnection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    publications: dict[str, Publication] = field(default_factory=dict)
    "Live publications by mid."
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    "By track id."
    own_transceivers: set[RTCRtpTransceiver] = field(default_factory=set)
    "Transceivers the server added to send subscriptions."
    labels: dict[str, Source] = field(default_factory=dict)
    "Source labels by mid or client track id, kept for tracks not published yet."
    channel: Channel = "call"
    elements: dict[str, int] = field(default_factory=dict)
    "On the cobrowse channel: the mirror node id each mid's track shows."
    connected: bool = False
    renegotiate: bool = False
    numbering: Numbering = field(default_factory=Numbering)
    "Payload types and extension ids of this connection (``media.numbering``)."


class MediaRoom:
    """The media side of one support session.

    :param room_id: For logs and clip file names.
    :param ice_servers: STUN/TURN servers the *server's* peer connections use; a server with a
        public address needs none (clients get theirs from :func:`media.turn.ice_servers`).
    :param send_signal: ``await send_signal(participant_id, message)`` delivers a server
        message (``rtc.offer``, ``media.tracks``) to that participant.
    :param host_addresses: Gather ICE host candidates on these addresses only (default: all
        interfaces but loopback).
    :param clip_dir: Where clips are written (default: a temporary directory).
    """

    def __init__(
        self,
        room_id: str,
        ice_servers: list[IceServer],
        send_signal: SendSignal,
        host_addresses: list[str] | None = None,
        *,
        clip_dir: Path | None = None,
        max_clip_s: float = 300.0,
    ) -> None:
        self.room_id = room_id
        self._ice_servers = [server.to_aiortc() for server in ice_servers]
        self._send_signal = send_signal
        self._host_addresses = host_addresses
        self._clip_dir = clip_dir or Path(tempfile.gettempdir()) / "tandem-clips"
        self._max_clip_s = max_clip_s
        self._participants: dict[str, _Participant] = {}
        self._clips: dict[str, tuple[Publication, ClipWriter]] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media-capture")
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._last_broadcast: list[TrackInfo] | None = None
        self._closed = False
        self._numbering = Numbering()
        """The numbers of the first peer's offer (first come, first kept), offered to later
        peers for what they have not numbered themselves (``media.numbering``)."""

    # -- public API ----------------------------------------------------------------------

    async def handle_offer(
        self,
        participant_id: str,
        role: Role,
        sdp: str,
        labels: Mapping[str, str] | None = None,
        *,
        channel: Channel = "call",
        elements: Mapping[str, int] | None = None,
    ) -> str:
        """Apply a client offer and return the server's answer SDP.

        Creates the participant on first use. ``labels`` maps a mid (``transceiver.mid``
        after the client's ``setLocalDescription``) or a client track id (the SDP msid) to
        ``"camera"``, ``"screen"`` or ``"microphone"``. Unlabelled audio is a microphone and
        unlabelled video a camera. On the ``cobrowse`` channel every track is an ``element``
        and ``elements`` maps its mid to the mirror node id it shows; a customer's track
        without one is not forwarded, and agents publish nothing there.
        """
        participant = self._participant_for_offer(participant_id, role, channel)
        async with participant.lock:
            pc = participant.pc
            if pc.signalingState == "have-local-offer":
                raise OfferCollision("an offer from the server is awaiting its answer")
            if pc.signalingState != "stable":
                raise NegotiationError(f"cannot take an offer in state {pc.signalingState}")
            self._store_labels(participant, labels)
            participant.elements.update(elements or {})
            try:
                parsed = SessionDescription.parse(sdp)
                # The client's numbers are this connection's from now on (RFC 8829 5.2.2).
                participant.numbering.learn(parsed)
                self._numbering.learn(parsed)
                with host_addresses(self._host_addresses):
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                    self._tap_receivers(participant)
                    await pc.setLocalDescription(await pc.createAnswer())
            except _AIORTC_ERRORS as exc:
                if pc.signalingState != "stable":
                    # aiortc cannot roll back: drop the connection, the client starts over.
                    self._spawn(self.remove_participant(participant_id))
                raise NegotiationError(f"bad offer: {exc}") from exc
            changed = self._sync_publications(participant)
            answer: str = pc.localDescription.sdp
        if changed:
            self._tracks_changed()
            for other in self._participants.values():
                if other is not participant:
                    self._schedule_negotiation(other)
        self._schedule_negotiation(participant)
        return answer

    async def handle_answer(self, participant_id: str, sdp: str) -> None:
        """Apply a client's answer to an ``rtc.offer`` the server sent."""
        participant = self._get(participant_id)
        async with participant.lock:
            pc = participant.pc
            if pc.signalingState != "have-local-offer":
                raise NegotiationError("no server offer is awaiting an answer")
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except _AIORTC_ERRORS as exc:
                raise NegotiationError(f"bad answer: {exc}") from exc
            self._tap_receivers(participant)
            changed = self._sync_publications(participant)
            again = participant.renegotiate
            participant.renegotiate = False
        if changed:
            self._tracks_changed()
            for other in self._participants.values():
                if other is not participant:
                    self._schedule_negotiation(other)
        if again:
            self._schedule_negotiation(participant)

    async def add_ice_candidate(
        self, participant_id: str, candidate: Mapping[str, Any] | None
    ) -> None:
        """Add a trickled client candidate (``RTCIceCandidate.toJSON()``); None ends them."""
        participant = self._get(participant_id)
        async with participant.lock:
            if candidate is None or not candidate.get("candidate"):
                await participant.pc.addIceCandidate(None)
                return
            line = str(candidate["candidate"])
            try:
                parsed = candidate_from_sdp(line.removeprefix("candidate:"))
            except (AssertionError, ValueError, IndexError) as exc:
                raise NegotiationError(f"bad candidate: {line!r}") from exc
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
            if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
                parsed.sdpMLineIndex = 0
            await participant.pc.addIceCandidate(parsed)

    def update_track(
        self,
        participant_id: str,
        ref: str,
        *,
        source: str | None = None,
        muted: bool | None = None,
    ) -> TrackInfo | None:
        """Label or (un)mute a participant's track.

        ``ref`` is a server track id, a mid or a client track id. A label for a track that
        is not published yet is kept and applied when it is. Returns the updated track, or
        None if it is not published yet.
        """
        participant = self._get(participant_id)
        if source is not None and source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        if source is not None and (source == "element") != (participant.channel == "cobrowse"):
            raise NegotiationError(f"no {source} tracks on the {participant.channel} channel")
        publication = self._find_publication(participant, ref)
        if publication is None:
            if source is not None:
                participant.labels[ref] = source
            return None
        if source is not None:
            publication.source = source
        if muted is not None:
            publication.muted = muted
        self._tracks_changed()
        return publication.info()

    def tracks(self) -> list[TrackInfo]:
        """Every live published track."""
        return [
            publication.info()
            for participant in self._participants.values()
            for publication in participant.publications.values()
            if not publication.ended
        ]

    async def capture_still(self, track_id: str) -> Still:
        """A full-resolution PNG of the track's current picture.

        Decodes the frames since the last keyframe in an executor; if there are many of them
        (or none), asks the publisher for a keyframe and decodes just that one.
        """
        publication = self._video_publication(track_id)
        taken_at = datetime.now(UTC)
        frames = publication.frames_since_keyframe()
        if not frames or len(frames) > STILL_MAX_GOP_FRAMES:
            try:
                frames = [await publication.next_keyframe(STILL_TIMEOUT_S)]
            except (TimeoutError, asyncio.CancelledError):
                frames = publication.frames_since_keyframe()
                if publication.ended or not frames:
                    raise CaptureError("no video to capture") from None
        loop = asyncio.get_running_loop()
        png, width, height = await loop.run_in_executor(
            self._executor, decode_still, publication.codec_mime, frames, publication.clock_rate
        )
        return Still(png=png, width=width, height=height, taken_at=taken_at, track_id=track_id)

    async def start_clip(self, track_id: str, max_duration_s: float | None = None) -> str:
        """Start recording a video track; returns the clip id for :meth:`stop_clip`.

        The clip starts at the next keyframe, which is requested right away.
        """
        publication = self._video_publication(track_id)
        self._clip_dir.mkdir(parents=True, exist_ok=True)
        clip_id = uuid.uuid4().hex
        writer = ClipWriter(
            clip_id=clip_id,
            track_id=track_id,
            codec_mime=publication.codec_mime,
            clock_rate=publication.clock_rate,
            directory=self._clip_dir,
            started_at=datetime.now(UTC),
            max_duration_s=min(max_duration_s or self._max_clip_s, self._max_clip_s),
        )
        publication.add_observer(writer)
        self._clips[clip_id] = (publication, writer)
        publication.request_keyframe()
        return clip_id

    def clip_ids(self) -> list[str]:
        """The clips recording now."""
        return list(self._clips)

    async def stop_clip(self, clip_id: str) -> Clip:
        """Stop a clip and return it once its file is complete."""
        entry = self._clips.pop(clip_id, None)
        if entry is None:
            raise UnknownTrack(f"no clip {clip_id!r}")
        publication, writer = entry
        publication.remove_observer(writer)
        return await writer.finish()

    async def remove_participant(self, participant_id: str) -> None:
        """Disconnect a participant; everyone else stops receiving its tracks."""
        participant = self._participants.pop(participant_id, None)
        if participant is None:
            return
        for publication in participant.publications.values():
            publication.end()
        for subscription in participant.subscriptions.values():
            subscription.publication.unsubscribe(subscription.track)
        participant.subscriptions.clear()
        await participant.pc.close()
        self._tracks_changed()
        for other in self._participants.values():
            self._schedule_negotiation(other)

    async def close(self) -> None:
        """Disconnect everybody and stop every clip (their files are left as they are)."""
        self._closed = True
        if self._monitor is not None:
            self._monitor.cancel()
        for task in list(self._tasks):
            task.cancel()
        for _publication, writer in self._clips.values():
            writer.close()
        self._clips.clear()
        for participant_id in list(self._participants):
            await self.remove_participant(participant_id)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- participants --------------------------------------------------------------------

    def _participant_for_offer(
        self, participant_id: str, role: str, channel: Channel = "call"
    ) -> _Participant:
        if self._closed:
            raise MediaError("room is closed")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        participant = self._participants.get(participant_id)
        if participant is not None:
            if participant.role != role or participant.channel != channel:
                raise ValueError(
                    f"{participant_id} is a {participant.role} on the {participant.channel}"
                    f" channel, not a {role} on the {channel} channel"
                )
            return participant
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
        participant = _Participant(id=participant_id, role=role, pc=pc, channel=channel)
        self._participants[participant_id] = participant

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not participant.connected:
                participant.connected = True
                self._schedule_negotiation(participant)
            elif state == "failed" and self._participants.get(participant_id) is participant:
                logger.info("room %s: %s connection failed", self.room_id, participant_id)
                self._spawn(self.remove_participant(participant_id))

        if self._monitor is None:
            self._monitor = asyncio.ensure_future(self._monitor_activity())
        return participant

    def _get(self, participant_id: str) -> _Participant:
        participant = self._participants.get(participant_id)
        if participant is None:
            raise UnknownParticipant(participant_id)
        return participant

    def _store_labels(self, participant: _Participant, labels: Mapping[str, str] | None) -> None:
        for ref, source in (labels or {}).items():
            if source not in SOURCES:
                raise ValueError(f"unknown source {source!r}")
            if (source == "element") != (participant.channel == "cobrowse"):
                raise NegotiationError(f"no {source} tracks on the {participant.channel} channel")
            participant.labels[ref] = source

    def _find_publication(self, participant: _Participant, ref: str) -> Publication | None:
        for mid, publication in participant.publications.items():
            if ref in (publication.track_id, mid):
                return publication
        for transceiver in participant.pc.getTransceivers():
            track = transceiver.receiver.track
            if track is not None and track.id == ref and transceiver.mid is not None:
                return participant.publications.get(transceiver.mid)
        return None

    def _video_publication(self, track_id: str) -> Publication:
        for participant in self._participants.values():
            for publication in participant.publications.values():
                if publication.track_id == track_id and not publication.ended:
                    if publication.kind != "video":
                        raise CaptureError(f"track {track_id} is not video")
                    return publication
        raise UnknownTrack(track_id)

    # -- publications ------------------------------------------------------------------

    def _tap_receivers(self, participant: _Participant) -> None:
        """Divert every receiver before media can flow; frames go nowhere until published."""
        for transceiver in participant.pc.getTransceivers():
            if not forwarding.is_tapped(transceiver.receiver):
                forwarding.tap_receiver(transceiver.receiver, transceiver.kind, _drop)

    def _sync_publications(self, participant: _Participant) -> bool:
        """Match publications to what the client now sends; True if anything changed."""
        changed = False
        for transceiver in participant.pc.getTransceivers():
            if transceiver in participant.own_transceivers or transceiver.mid is None:
                continue
            mid = transceiver.mid
            sending = transceiver.currentDirection in ("recvonly", "sendrecv")
            publication = participant.publications.get(mid)
            if publication is not None and not sending:
                publication.end()
                del participant.publications[mid]
                forwarding.tap_receiver(transceiver.receiver, transceiver.kind, _drop)
                changed = True
            elif publication is None and sending:
                publication = self._publish(participant, transceiver)
                if publication is not None:
                    participant.publications[mid] = publication
                    changed = True
        return changed

    def _publish(
        self, participant: _Participant, transceiver: RTCRtpTransceiver
    ) -> Publication | None:
        codecs = [c for c in forwarding.negotiated_codecs(transceiver) if c.name.lower() != "rtx"]
        if not codecs or codecs[0].mimeType.lower() not in FORWARDABLE:
            logger.warning("room %s: cannot forward %s", self.room_id, codecs)
            return None
        codec = codecs[0]
        kind = cast(Kind, transceiver.kind)
        mid = cast(str, transceiver.mid)
        track = transceiver.receiver.track
        source = participant.labels.get(mid) or (
            participant.labels.get(track.id) if track is not None else None
        )
        if source is None:
            source = "microphone" if kind == "audio" else "camera"
        element: int | None = None
        if participant.channel == "cobrowse":
            element = participant.elements.get(mid)
            if participant.role != "customer" or kind != "video" or element is None:
                logger.warning(
                    "room %s: %s sends a cobrowse track that is no page element",
                    self.room_id,
                    participant.id,
                )
                return None
            source = "element"
        receiver = transceiver.receiver
        publication = Publication(
            track_id=uuid.uuid4().hex[:12],
            participant_id=participant.id,
            role=participant.role,
            kind=kind,
            source=source,
            mid=mid,
            codec_mime=codec.mimeType,
            codec_parameters=dict(codec.parameters),
            clock_rate=codec.clockRate,
            payload_types=frozenset(
                c.payloadType
                for c in codecs
                if c.payloadType is not None
                and c.mimeType == codec.mimeType
                and c.parameters == codec.parameters
            ),
            send_pli=lambda ssrc: forwarding.request_keyframe(receiver, ssrc),
            element=element,
        )
        forwarding.tap_receiver(receiver, kind, publication.on_rtp_frame)
        logger.info(
            "room %s: %s publishes %s %s as %s",
            self.room_id,
            participant.id,
            source,
            codec.mimeType,
            publication.track_id,
        )
        return publication

    def _wanted_by(self, participant: _Participant) -> dict[str, Publication]:
        """The live publications ``participant`` should receive: everyone else's on its
        channel."""
        return {
            publication.track_id: publication
            for other in self._participants.values()
            if other is not participant and other.channel == participant.channel
            for publication in other.publications.values()
            if not publication.ended
        }

    # -- server-initiated negotiation --------------------------------------------------

    def _schedule_negotiation(self, participant: _Participant) -> None:
        if not self._closed:
            self._spawn(self._negotiate(participant))

    async def _negotiate(self, participant: _Participant) -> None:
        """Add/remove subscriptions and send an offer if the participant's m-lines changed."""
        async with participant.lock:
            pc = participant.pc
            if self._participants.get(participant.id) is not participant:
                return
            if not participant.connected or pc.signalingState != "stable":
                participant.renegotiate = True
                return
            wanted = self._wanted_by(participant)
            changed = False
            for track_id, subscription in list(participant.subscriptions.items()):
                if track_id not in wanted:
                    subscription.publication.unsubscribe(subscription.track)
                    subscription.transceiver.direction = "inactive"
                    del participant.subscriptions[track_id]
                    changed = True
            for track_id, publication in wanted.items():
                if track_id not in participant.subscriptions:
                    self._subscribe(participant, publication)
                    changed = True
            if not changed:
                return
            with host_addresses(self._host_addresses):
                await pc.setLocalDescription(self._renumbered(participant, await pc.createOffer()))
            message = {
                "type": "rtc.offer",
                "sdp": pc.localDescription.sdp,
                "tracks": [
                    {**s.publication.info().to_json(), "mid": s.transceiver.mid}
                    for s in participant.subscriptions.values()
                ],
            }
        await self._signal(participant.id, message)

    def _renumbered(
        self, participant: _Participant, offer: RTCSessionDescription
    ) -> RTCSessionDescription:
        """aiortc's offer with the payload types and header extension ids this connection (or
        else the room) negotiated, not aiortc's own: a subsequent offer keeps what was
        negotiated (RFC 8829 section 5.2.2, RFC 3264 section 8.3.2), and an extension id names
        one URI for the whole BUNDLE transport (RFC 8285 section 6)."""
        description = SessionDescription.parse(offer.sdp)
        renumber(description, participant.numbering, self._numbering)
        transceivers = participant.pc.getTransceivers()
        by_mid = {t.mid: t for t in transceivers if t.mid is not None}
        # Transceivers without a mid yet get theirs in this offer, in order, after the others.
        fresh = [t for t in transceivers if t.mid is None and not t.stopped]
        for media in description.media:
            if media.kind not in ("audio", "video"):
                continue
            transceiver = by_mid.get(media.rtp.muxId) or (fresh.pop(0) if fresh else None)
            if transceiver is not None:
                forwarding.set_offered_parameters(
                    transceiver, media.rtp.codecs, media.rtp.headerExtensions
                )
        return RTCSessionDescription(sdp=str(description), type="offer")

    def _subscribe(self, participant: _Participant, publication: Publication) -> None:
        track = publication.subscribe()
        transceiver = participant.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(_capabilities_for(publication))
        forwarding.on_keyframe_request(transceiver.sender, publication.request_keyframe)
        forwarding.tap_receiver(transceiver.receiver, transceiver.kind, _drop)
        participant.own_transceivers.add(transceiver)
        participant.subscriptions[publication.track_id] = _Subscription(
            publication=publication, transceiver=transceiver, track=track
        )

    # -- notifications -------------------------------------------------------------------

    def _tracks_changed(self) -> None:
        tracks = self.tracks()
        self._last_broadcast = tracks
        for participant in list(self._participants.values()):
            channel = [
                t for t in tracks if (t.source == "element") == (participant.channel == "cobrowse")
            ]
            message = {"type": "media.tracks", "tracks": [t.to_json() for t in channel]}
            self._spawn(self._signal(participant.id, message))

    async def _monitor_activity(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            if self._last_broadcast is not None and self.tracks() != self._last_broadcast:
                self._tracks_changed()

    async def _signal(self, participant_id: str, message: dict[str, Any]) -> None:
        try:
            await self._send_signal(participant_id, message)
        except Exception:
            logger.exception("room %s: send_signal to %s failed", self.room_id, participant_id)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("room %s: background task failed", self.room_id, exc_info=task.exception())


def _drop(_frame: forwarding.RtpFrame) -> None:
    """Sink for receivers that carry nothing we forward."""


def _capabilities_for(publication: Publication) -> list[RTCRtpCodecCapability]:
    """Codec preferences that make a subscriber's m-line carry exactly the forwarded codec."""
    kind = publication.kind
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    mime = publication.codec_mime.lower()
    same_mime = [c for c in capabilities if c.mimeType.lower() == mime]
    # For H.264 the profile and packetization mode must match too (RFC 6184 section 8.1).
    exact = [c for c in same_mime if c.parameters == publication.codec_parameters]
    rtx = [c for c in capabilities if c.mimeType.lower() == f"{kind}/rtx"]
    return (exact or same_mime[:1]) + rtx
