"""An agent sends the customer a file: a photo or a video, through the customers' upload policy.

The bytes go through ``media.receive_upload`` like a customer's (the same types, size caps,
magic-byte check and metadata stripping), only from an agent of the live session
(``access.may_act``), within the ticket's quota for sent files. The file is filed on the ticket
(kind ``agent_file``, ``meta.by`` naming the agent) and told to the session: the agents get the
attachment as any other; the customer's copy of the event carries, as its ``url``, a signed link
to that one file (``auth.file_links``), since a customer has no bearer token an ``<img>`` could
send. A customer's session state lists the files sent so far (``SessionState.files``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable
from typing import Any

import media
from signaling import auth
from signaling.auth.file_links import file_link
from signaling.desk import AgentCaller, Desk, DeskError, attachment_info
from signaling.desk.lifecycle import AGENT_FILE
from signaling.hubs.calls import MAX_IMAGE_UPLOAD, MAX_UPLOADS_IN_FLIGHT, MAX_VIDEO_UPLOAD
from signaling.protocol import AttachmentAdded, AttachmentInfo
from signaling.settings import Settings
from signaling.store import AttachmentRecord, UploadQuota


def quota(settings: Settings) -> UploadQuota:
    """Files agents send on one ticket: as many, and as many bytes, as a customer may upload."""
    return UploadQuota(
        kinds=(AGENT_FILE,),
        max_count=settings.max_uploads_per_ticket,
        max_bytes=settings.max_upload_bytes_per_ticket,
    )


async def send_file(
    desk: Desk,
    settings: Settings,
    secret: str,
    caller: AgentCaller,
    ticket_id: str,
    declared_type: str,
    body: AsyncIterable[bytes],
    name: str | None = None,
) -> AttachmentInfo:
    """Validate the file while it streams in, file it on the ticket, tell the session."""
    ticket = await desk.ticket_for(caller, ticket_id)
    if ticket.status != "active":
        raise DeskError("invalid_state", "files go to a customer in a live session")
    limits = quota(settings)
    sent = [a for a in await desk.store.attachments(ticket.id) if a.kind == AGENT_FILE]
    if len(sent) >= limits.max_count:
        raise DeskError("rate_limited", f"at most {limits.max_count} files sent on a ticket")
    left = limits.max_bytes - sum(a.size for a in sent)
    if left <= 0:
        raise DeskError("too_large", "this ticket's quota of sent files is used up")
    cap = MAX_VIDEO_UPLOAD if declared_type.startswith("video/") else MAX_IMAGE_UPLOAD
    live = desk.live
    if not await live.begin_upload(ticket.id, MAX_UPLOADS_IN_FLIGHT):
        raise DeskError("rate_limited", "another upload is still arriving; try again after it")
    try:
        upload = await media.receive_upload(
            body, declared_type, min(cap, left), desk.files.temp_dir()
        )
    finally:
        await live.end_upload(ticket.id)
    sha256, size = await desk.files.put_file(upload.path)
    meta: dict[str, Any] = {
        "by": caller.ref,
        "width": upload.width,
        "height": upload.height,
        "removed": list(upload.removed_metadata),
    }
    if name:
        meta["name"] = name
    if upload.duration_s is not None:
        meta["durationS"] = round(upload.duration_s, 3)
    record = AttachmentRecord(
        id=auth.new_id("at"),
        ticket_id=ticket.id,
        kind=AGENT_FILE,
        content_type=upload.content_type,
        size=size,
        sha256=sha256,
        created_at=time.time(),
        meta=meta,
    )
    if not await desk.store.add_attachment(record, limits):
        raise DeskError("rate_limited", "this ticket's quota of sent files is used up")
    info = attachment_info(record)
    await desk.timeline(
        ticket,
        "attachment.added",
        {
            "attachmentId": record.id,
            "kind": AGENT_FILE,
            "contentType": record.content_type,
            "size": size,
            "by": caller.ref,
        },
    )
    await desk.tell(ticket, AttachmentAdded(ticket_id=ticket.id, attachment=info), "agents")
    for_customer = info.model_copy(update={"url": file_link(secret, ticket.id, record.id)})
    await desk.tell(
        ticket, AttachmentAdded(ticket_id=ticket.id, attachment=for_customer), "customer"
    )
    return info
