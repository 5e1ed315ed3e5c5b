"""Small value types shared by the :mod:`media` modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["customer", "agent"]
"""A participant's role. Customers publish; agents subscribe and may publish too."""

Kind = Literal["audio", "video"]
"""Media kind of a track, as in the SDP ``m=`` line."""

Source = Literal["camera", "screen", "microphone", "element"]
"""What a published track shows, as stated by the client (see ``MediaRoom.update_track``).
``element`` is one element of the customer's co-browsed page (a ``<video>``'s own
``captureStream()``), published on the ``cobrowse`` channel only."""

Channel = Literal["call", "cobrowse"]
"""What a participant's peer connection is for. A ``call`` connection sends and receives the
call's camera, screen and microphone; a ``cobrowse`` connection carries only ``element`` tracks
(the customer's page elements shown as video in the agent's co-browse view), so starting or
stopping one never touches the call, and a call never carries page elements."""

ROLES: tuple[Role, ...] = get_args(Role)
SOURCES: tuple[Source, ...] = get_args(Source)
CHANNELS: tuple[Channel, ...] = get_args(Channel)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """A published track as the room sees it."""

    track_id: str
    "Server-assigned id, stable for the life of the publication."
    participant_id: str
    "Who publishes it."
    role: Role
    "The publisher's role."
    kind: Kind
    "audio or video."
    source: Source
    "camera, screen, microphone or element."
    mid: str
    "The publisher's SDP ``a=mid`` of the transceiver carrying it."
    codec: str
    "MIME type being forwarded, e.g. ``video/VP8``."
    muted: bool
    "The client said it muted the track (``MediaRoom.update_track``)."
    active: bool
    "Media arrived within the last two seconds."
    element: int | None = None
    "For an ``element`` track: the co-browse mirror's node id of the element it shows."

    def to_json(self) -> dict[str, object]:
        """The wire form (camelCase keys), as sent in ``media.tracks`` and ``rtc.offer``."""
        extra: dict[str, object] = {} if self.element is None else {"element": self.element}
        return {
            "trackId": self.track_id,
            "participantId": self.participant_id,
            "role": self.role,
            "kind": self.kind,
            "source": self.source,
            "mid": self.mid,
            "codec": self.codec,
            "muted": self.muted,
            "active": self.active,
            **extra,
        }
