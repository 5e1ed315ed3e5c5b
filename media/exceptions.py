"""Every exception the :mod:`media` package raises on purpose.

Each error carries a stable ``code`` string that the signaling layer can put on the wire,
and upload errors carry the HTTP status the upload endpoint should answer with.
"""

from __future__ import annotations

from typing import ClassVar


class MediaError(Exception):
    """Base class of every error raised by :mod:`media`."""

    code: ClassVar[str] = "media_error"


class UnknownParticipant(MediaError):
    """No participant with this id is in the room."""

    code = "unknown_participant"


class UnknownTrack(MediaError):
    """No live track (or clip) with this id is in the room."""

    code = "unknown_track"


class NegotiationError(MediaError):
    """An offer/answer arrived that does not fit the current signaling state."""

    code = "negotiation_error"


class OfferCollision(NegotiationError):
    """The client offered while the server's own offer is still unanswered ("glare").

    The server is the *impolite* peer of the W3C "perfect negotiation" pattern: it ignores
    the colliding offer. The client, being polite, rolls back its offer, answers the server's
    offer, and offers again afterwards.
    """

    code = "offer_collision"


class CaptureError(MediaError):
    """A still or clip could not be produced (no video yet, decode failure, ...)."""

    code = "capture_failed"


class UploadError(MediaError):
    """Base class of upload validation failures; ``http_status`` is the suggested reply."""

    code = "upload_error"
    http_status: ClassVar[int] = 422


class UploadTooLarge(UploadError):
    """The upload exceeded ``max_bytes``; reading stopped as soon as that was known."""

    code = "too_large"
    http_status = 413


class UnsupportedType(UploadError):
    """Neither the declared type nor the content is in the allowlist."""

    code = "unsupported_type"
    http_status = 415


class TypeMismatch(UploadError):
    """The content's magic bytes do not match the declared Content-Type."""

    code = "type_mismatch"
    http_status = 415


class ImageBomb(UploadError):
    """The image declares more pixels than allowed (decompression bomb)."""

    code = "image_bomb"
    http_status = 422


class CorruptUpload(UploadError):
    """The content has a valid signature but cannot be decoded."""

    code = "corrupt"
    http_status = 422
