"""Tandem media: a forwarding WebRTC relay, captures, uploads and TURN credentials.

A library for the signaling server; it never imports ``signaling``, aiohttp or socketio.

Public API (everything else is internal):

* :class:`MediaRoom` (``media.room``): one per support session. ``handle_offer``,
  ``handle_answer``, ``add_ice_candidate``, ``update_track``, ``tracks``, ``capture_still``,
  ``start_clip``/``stop_clip``, ``remove_participant``, ``close``.
* Value types: :class:`TrackInfo`, :class:`Still`, :class:`Clip`, :class:`IceServer`,
  :class:`TurnCredentials`, :class:`ValidatedUpload`; literals ``Role``, ``Source``, ``Kind``.
* :func:`receive_upload` (``media.uploads``): stream, cap, sniff and sanitize an upload.
* :func:`mint_turn_credentials`, :func:`ice_servers` (``media.turn``): TURN REST credentials
  and the ``iceServers`` list for a client.
* Exceptions (``media.exceptions``): :class:`MediaError` and subclasses, each with a ``code``.

Every use of aiortc internals is confined to ``media.forwarding``.
"""

from .capture import Clip, Still
from .exceptions import (
    CaptureError,
    CorruptUpload,
    ImageBomb,
    MediaError,
    NegotiationError,
    OfferCollision,
    TypeMismatch,
    UnknownParticipant,
    UnknownTrack,
    UnsupportedType,
    UploadError,
    UploadTooLarge,
)
from .room import MediaRoom
from .turn import IceServer, TurnCredentials, ice_servers, mint_turn_credentials
from .types import CHANNELS, Channel, Kind, Role, Source, TrackInfo
from .uploads import ValidatedUpload, receive_upload

__all__ = [
    "CHANNELS",
    "CaptureError",
    "Channel",
    "Clip",
    "CorruptUpload",
    "IceServer",
    "ImageBomb",
    "Kind",
    "MediaError",
    "MediaRoom",
    "NegotiationError",
    "OfferCollision",
    "Role",
    "Source",
    "Still",
    "TrackInfo",
    "TurnCredentials",
    "TypeMismatch",
    "UnknownParticipant",
    "UnknownTrack",
    "UnsupportedType",
    "UploadError",
    "UploadTooLarge",
    "ValidatedUpload",
    "ice_servers",
    "mint_turn_credentials",
    "receive_upload",
]
