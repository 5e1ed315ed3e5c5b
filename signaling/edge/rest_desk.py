"""REST around the conversation: internal notes, canned replies, and files agents send.

- ``/api/tickets/{id}/notes``: read (whoever may read the ticket) and write (an agent of the
  session, or a supervisor or admin) internal notes; agents only, never a customer.
- ``/api/sites/{site}/canned-replies``: admins list, add and remove a site's canned replies;
  ``/api/tickets/{id}/canned-replies``: an agent's composer gets them filled in for that ticket.
- ``/api/tickets/{id}/files``: an agent of the live session sends the customer a photo or video;
  ``/api/files/{ticket}/{attachment}``: the customer's signed link to it.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

import media
from signaling import keys
from signaling.auth import file_links
from signaling.desk import DeskError
from signaling.desk import canned as canned_replies
from signaling.desk.lifecycle import AGENT_FILE
from signaling.edge.blobs import stream_blob
from signaling.edge.rest import _caller_key, _readable_ticket, agent_only, api_error
from signaling.hubs import agent_files
from signaling.hubs.calls import chunks_of
from signaling.protocol import (
    ApiError,
    AttachmentCreated,
    CannedReplyCreate,
    CannedReplyList,
    ErrorBody,
    NoteCreate,
    NoteCreated,
    NoteList,
)

routes = web.RouteTableDef()


# ---------------------------------------------------------------------- notes


@routes.get("/api/tickets/{ticket_id}/notes")
@agent_only
async def list_notes(request: web.Request) -> web.Response:
    ticket = await _readable_ticket(request, request.match_info["ticket_id"])
    if isinstance(ticket, web.Response):
        return ticket
    notes = await request.app[keys.desk].notes.of(ticket.id)
    return web.json_response(NoteList(notes=notes).wire())


@routes.post("/api/tickets/{ticket_id}/notes")
@agent_only
async def add_note(request: web.Request) -> web.Response:
    try:
        body = NoteCreate.model_validate(await request.json())
    except (ValueError, ValidationError, RecursionError):
        return api_error("malformed", "expected JSON {text, clientNoteId?}; text 1-5000 characters")
    if "\x00" in request.match_info["ticket_id"]:  # PostgreSQL text cannot hold NUL
        return api_error("not_found", "no such ticket")
    try:
        note, new = await request.app[keys.desk].notes.add(
            request[_caller_key], request.match_info["ticket_id"], body.text, body.client_note_id
        )
    except DeskError as exc:
        return api_error(exc.code, exc.message)
    return web.json_response(
        NoteCreated(note=note, duplicate=not new).wire(), status=201 if new else 200
    )


# ---------------------------------------------------------------------- canned replies


async def _admin_site(request: web.Request) -> str | web.Response:
    """The path's site id if the caller is an admin and the site exists, else the answer."""
    if request[_caller_key].agent.role != "admin":
        return api_error("forbidden", "only admins manage canned replies")
    site_id = request.match_info["site_id"]
    # PostgreSQL text cannot hold NUL; no site id holds one.
    if "\x00" in site_id or await request.app[keys.store].site(site_id) is None:
        return api_error("not_found", "no such site")
    return site_id


@routes.get("/api/sites/{site_id}/canned-replies")
@agent_only
async def list_site_canned(request: web.Request) -> web.Response:
    site_id = await _admin_site(request)
    if isinstance(site_id, web.Response):
        return site_id
    store = request.app[keys.store]
    replies = [canned_replies.reply(r) for r in await store.canned(site_id)]
    body = CannedReplyList(replies=replies, variables=list(canned_replies.VARIABLES))
    return web.json_response(body.wire())


@routes.post("/api/sites/{site_id}/canned-replies")
@agent_only
async def add_site_canned(request: web.Request) -> web.Response:
    site_id = await _admin_site(request)
    if isinstance(site_id, web.Response):
        return site_id
    store = request.app[keys.store]
    try:
        body = CannedReplyCreate.model_validate(await request.json())
    except (ValueError, ValidationError, RecursionError):
        return api_error(
            "malformed", "expected JSON {shortcut, text}; shortcut: a-z, 0-9, '-', '_'"
        )
    try:
        record = await canned_replies.put(
            store, site_id, body.shortcut, body.text, request[_caller_key].agent.id
        )
    except canned_replies.CannedError as exc:
        return api_error("malformed", str(exc))
    return web.json_response(canned_replies.reply(record).wire(), status=201)


@routes.delete("/api/sites/{site_id}/canned-replies/{shortcut}")
@agent_only
async def remove_site_canned(request: web.Request) -> web.Response:
    site_id = await _admin_site(request)
    if isinstance(site_id, web.Response):
        return site_id
    shortcut = request.match_info["shortcut"]
    store = request.app[keys.store]
    if "\x00" in shortcut or not await store.remove_canned(site_id, shortcut):
        return api_error("not_found", "no such canned reply")
    return web.Response(status=204)


@routes.get("/api/tickets/{ticket_id}/canned-replies")
@agent_only
async def ticket_canned(request: web.Request) -> web.Response:
    """The ticket's site's replies, each rendered for this ticket and the calling agent."""
    ticket = await _readable_ticket(request, request.match_info["ticket_id"])
    if isinstance(ticket, web.Response):
        return ticket
    store = request.app[keys.store]
    site = await store.site(ticket.site_id)
    values = canned_replies.values_for(ticket, request[_caller_key].agent, site)
    replies = [canned_replies.reply(r, values) for r in await store.canned(ticket.site_id)]
    body = CannedReplyList(replies=replies, variables=list(canned_replies.VARIABLES))
    return web.json_response(body.wire())


# ---------------------------------------------------------------------- files to the customer


@routes.post("/api/tickets/{ticket_id}/files")
@agent_only
async def send_file(request: web.Request) -> web.Response:
    """An agent of the live session sends the customer a photo or video: the raw bytes as the
    body, their type as ``Content-Type``; checked like a customer's upload."""
    app = request.app
    if "\x00" in request.match_info["ticket_id"]:  # PostgreSQL text cannot hold NUL
        return api_error("not_found", "no such ticket")
    declared = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        info = await agent_files.send_file(
            app[keys.desk],
            app[keys.settings],
            app[keys.secret],
            request[_caller_key],
            request.match_info["ticket_id"],
            declared,
            chunks_of(request.content),
        )
    except DeskError as exc:
        return api_error(exc.code, exc.message)
    except media.UploadError as exc:
        body = ApiError(error=ErrorBody(code="malformed", message=f"{exc.code}: {exc}")).wire()
        body["error"]["reason"] = exc.code
        return web.json_response(body, status=exc.http_status)
    return web.json_response(AttachmentCreated(attachment=info).wire(), status=201)


@routes.get("/api/files/{ticket_id}/{attachment_id}")
async def customer_file(request: web.Request) -> web.StreamResponse:
    """A file an agent sent, by the signed link the customer was given (no other file)."""
    app = request.app
    ticket_id = request.match_info["ticket_id"]
    attachment_id = request.match_info["attachment_id"]
    exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
    if not file_links.link_valid(app[keys.secret], ticket_id, attachment_id, exp, sig):
        return api_error("forbidden", "this link is not valid (or has expired)")
    record = await app[keys.store].attachment(ticket_id, attachment_id)
    if record is None or record.kind != AGENT_FILE:
        return api_error("not_found", "no such file")
    headers = {
        "Content-Disposition": f'inline; filename="{record.id}"',
        "Cache-Control": "private, max-age=3600",
        # Shown by the widget on the customer's page: another origin than this server's.
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    files = app[keys.files]
    size = await files.size(record.sha256)
    if size is None:
        return api_error("not_found", "file bytes are missing")
    return await stream_blob(request, files, record.sha256, size, record.content_type, headers)
