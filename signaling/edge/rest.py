"""The REST API: login, tickets, attachments, the OpenAPI document and the health check."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

import media
from signaling import auth, keys
from signaling.auth import sessions as agent_sessions
from signaling.auth.accounts import origin_of
from signaling.desk import (
    AgentCaller,
    CustomerCaller,
    DeskError,
    access,
    attachment_info,
    iso,
    page_visit,
    ticket_summary,
    timeline_entry,
)
from signaling.edge.blobs import stream_blob
from signaling.edge.clientaddr import client_address
from signaling.edge.openapi import openapi_document
from signaling.hubs.calls import chunks_of
from signaling.protocol import (
    AgentProfile,
    ApiError,
    ErrorBody,
    ErrorCode,
    LoginRequest,
    LoginResponse,
    TicketDetail,
    TicketList,
    TicketListItem,
    TranscriptLine,
)
from signaling.store import AgentRecord, TicketRecord

routes = web.RouteTableDef()

_STATUS: dict[ErrorCode, int] = {
    "malformed": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "too_large": 413,
    "rate_limited": 429,
    "invalid_state": 409,
    "already_taken": 409,
}


def api_error(code: ErrorCode, message: str) -> web.Response:
    body = ApiError(error=ErrorBody(code=code, message=message)).wire()
    return web.json_response(body, status=_STATUS.get(code, 500))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_caller_key = web.RequestKey("caller", AgentCaller)
_claims_key = web.RequestKey("claims", auth.AgentClaims)


def agent_only(handler: Handler) -> Handler:
    """Require a valid agent bearer token; the caller is put on the request."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return api_error("unauthorized", "missing bearer token")
        app = request.app
        try:
            agent, claims = await agent_sessions.authenticate(
                app[keys.store],
                app[keys.secret],
                header[7:].strip(),
                app[keys.settings].agent_session_max_age,
            )
        except auth.TokenError as exc:
            return api_error("unauthorized", f"token refused: {exc.reason}")
        request[_caller_key] = AgentCaller(agent=agent)
        request[_claims_key] = claims
        return await handler(request)

    return wrapped


HEALTH_CHECK_SECONDS = 1.0
"""How long ``/healthz`` waits for the store and Redis (HAProxy's ``timeout check``)."""


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Ready (200) when the store and the shared state (Redis, if any) answer and the node is
    not draining; else 503 with what is wrong, so a load balancer sends new clients elsewhere."""
    app = request.app
    nodes = app[keys.nodes]
    store_ok = await _answers(app[keys.store].owner_epoch("-"))
    shared_ok = await _answers(nodes.ping()) if nodes.shared else True
    ready = store_ok and shared_ok and nodes.state == "serving"
    body = {
        "status": "ok" if ready else "unavailable",
        "time": iso(time.time()),
        "version": "0.1.0",
        "node": nodes.node,
        "state": nodes.state,
        "store": store_ok,
        "redis": shared_ok if nodes.shared else None,
    }
    return web.json_response(body, status=200 if ready else 503)


async def _answers(check: Awaitable[object]) -> bool:
    try:
        async with asyncio.timeout(HEALTH_CHECK_SECONDS):
            await check
    except Exception:
        return False
    return True


def request_address(request: web.Request) -> str:
    settings = request.app[keys.settings]
    return client_address(
        request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxies
    )


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    try:
        body = LoginRequest.model_validate(await request.json())
    except (ValueError, ValidationError, RecursionError):
        return api_error("malformed", "expected JSON {email, password}")
    throttle = request.app[keys.login_throttle]
    address = request_address(request)
    # The attempt is reserved before the password is looked at: once the account's or the
    # address's allowance is spent, even the right password gets 429 until it refills.
    wait = await throttle.reserve(body.email, address)
    if wait is not None:
        response = api_error("rate_limited", "too many failed logins; wait and try again")
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    store = request.app[keys.store]
    agent = await store.agent_by_email(body.email)
    # scrypt takes ~100 ms of CPU by design: never on the event loop. Unknown accounts are
    # checked against a stand-in hash so that both answers take the same time.
    stored = agent.password_hash if agent is not None else None
    valid = await asyncio.to_thread(auth.check_password, body.password, stored)
    if agent is None or not valid:
        return api_error("unauthorized", "wrong email or password")
    await throttle.succeeded(body.email, address)
    session = await agent_sessions.start(store, agent)
    return web.json_response(_login_response(request, agent, session.id))


@routes.post("/api/auth/refresh")
@agent_only
async def refresh(request: web.Request) -> web.Response:
    """A fresh token for a still-valid one (the console refreshes before expiry), in the same
    sign-in session: refreshing ends when the session does (``agent_session_max_age``)."""
    agent, claims = request[_caller_key].agent, request[_claims_key]
    return web.json_response(_login_response(request, agent, claims.session_id))


@routes.post("/api/auth/logout")
@agent_only
async def logout(request: web.Request) -> web.Response:
    """End this sign-in session: its tokens are refused from now on, and its sockets closed."""
    session_id = request[_claims_key].session_id
    await request.app[keys.store].revoke_auth_session(session_id, time.time())
    await request.app[keys.socket_api].close_auth_session(session_id)
    return web.Response(status=204)


def _profile(agent: AgentRecord) -> AgentProfile:
    return AgentProfile(
        id=agent.id, name=agent.name, email=agent.email, role=agent.role, skills=list(agent.skills)
    )


def _login_response(request: web.Request, agent: AgentRecord, session_id: str) -> dict[str, Any]:
    settings = request.app[keys.settings]
    token, exp = auth.issue_agent_token(
        request.app[keys.secret], agent.id, agent.role, settings.agent_token_ttl, session_id
    )
    return LoginResponse(token=token, expires_at=iso(exp), agent=_profile(agent)).wire()


@routes.get("/api/me")
@agent_only
async def me(request: web.Request) -> web.Response:
    return web.json_response(_profile(request[_caller_key].agent).wire())


MAX_TICKET_LIST = 500
"""The most tickets one ``GET /api/tickets`` returns (the OpenAPI ``limit`` maximum)."""


def _ticket_limit(raw: str) -> int | None:
    """``limit`` as documented (digits only, 1..500); anything else is refused, not clamped."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 3:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_TICKET_LIST else None


@routes.get("/api/tickets")
@agent_only
async def list_tickets(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status not in (None, "queued", "active", "closed"):
        return api_error("malformed", "status must be queued, active or closed")
    limit = _ticket_limit(request.query.get("limit", "100"))
    if limit is None:
        return api_error("malformed", f"limit must be an integer from 1 to {MAX_TICKET_LIST}")
    text = request.query.get("q") or None
    if text is not None and "\x00" in text:
        # PostgreSQL text cannot hold NUL (it answered 500); no ticket holds one to find.
        return api_error("malformed", "q must not contain NUL characters")
    store = request.app[keys.store]
    agent = request[_caller_key].agent
    tickets = await store.tickets(
        status=status,
        text=text,
        limit=limit,
        # access.may_read: plain agents list the tickets they joined; overseers list all.
        member_id=None if access.oversees(agent) else agent.id,
    )
    counts = await store.message_counts([t.id for t in tickets])
    sites = {site.id: site.name for site in await store.sites()}
    items = [
        TicketListItem(
            id=t.id,
            status=t.status,
            site=sites.get(t.site_id, t.site_id),
            created_at=iso(t.created_at),
            closed_at=iso(t.closed_at) if t.closed_at else None,
            customer=ticket_summary(t, "").customer,
            title=str(t.context.get("title") or t.context.get("url") or ""),
            url=str(t.context.get("url") or ""),
            message_count=counts.get(t.id, 0),
        )
        for t in tickets
    ]
    return web.json_response(TicketList(tickets=items).wire())


async def _readable_ticket(request: web.Request, ticket_id: str) -> TicketRecord | web.Response:
    """The ticket if the caller may read it (the socket's ``access.may_read``), else the
    error to answer with."""
    if "\x00" in ticket_id:
        # PostgreSQL text cannot hold NUL (it answered 500); no ticket id holds one.
        return api_error("not_found", "no such ticket")
    ticket = await request.app[keys.store].ticket(ticket_id)
    if ticket is None:
        return api_error("not_found", "no such ticket")
    if not access.may_read(request[_caller_key].agent, ticket):
        return api_error("forbidden", "you are not in this session")
    return ticket


@routes.get("/api/tickets/{ticket_id}")
@agent_only
async def get_ticket(request: web.Request) -> web.Response:
    store = request.app[keys.store]
    ticket = await _readable_ticket(request, request.match_info["ticket_id"])
    if isinstance(ticket, web.Response):
        return ticket
    site = await store.site(ticket.site_id)
    summary = ticket_summary(ticket, site.name if site else ticket.site_id)
    detail = TicketDetail(
        **summary.model_dump(),
        transcript=[
            TranscriptLine(from_=m.sender, author=m.author, text=m.text, at=iso(m.at))
            for m in await store.messages(ticket.id)
        ],
        attachments=[attachment_info(a) for a in await store.attachments(ticket.id)],
        timeline=[timeline_entry(t) for t in await store.timeline(ticket.id)],
        notes=await request.app[keys.desk].notes.of(ticket.id),
        pages=[page_visit(p) for p in await store.pages(ticket.id)],
    )
    return web.json_response(detail.wire())


@routes.get("/api/tickets/{ticket_id}/attachments/{attachment_id}")
@agent_only
async def get_attachment(request: web.Request) -> web.StreamResponse:
    store = request.app[keys.store]
    ticket = await _readable_ticket(request, request.match_info["ticket_id"])
    if isinstance(ticket, web.Response):
        return ticket
    record = await store.attachment(ticket.id, request.match_info["attachment_id"])
    if record is None:
        return api_error("not_found", "no such attachment")
    headers = {
        "Content-Disposition": f'attachment; filename="{record.id}"',
        "Cache-Control": "private, max-age=3600",
    }
    files = request.app[keys.files]
    path = files.local_path(record.sha256)
    if path is not None:
        if not path.exists():
            return api_error("not_found", "attachment bytes are missing")
        response = web.FileResponse(path, headers=headers)
        response.content_type = record.content_type
        return response
    size = await files.size(record.sha256)
    if size is None:
        return api_error("not_found", "attachment bytes are missing")
    return await stream_blob(request, files, record.sha256, size, record.content_type, headers)


_UPLOAD_CORS = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
    "Vary": "Origin",
}


async def _site_origin(request: web.Request, site_id: str | None = None) -> str | None:
    """The request's Origin if it is on a site's list (that site's, when one is named)."""
    origin = request.headers.get("Origin")
    if not origin:
        return None
    wanted = origin_of(origin)
    for site in await request.app[keys.store].sites():
        if (site_id is None or site.id == site_id) and wanted in site.origins:
            return origin
    return None


@routes.options("/api/uploads")
async def upload_preflight(request: web.Request) -> web.Response:
    """CORS preflight: the widget uploads from the customer's page, on the site's origin."""
    origin = await _site_origin(request)
    if origin is None:
        return api_error("forbidden", "origin is not on any site's list")
    return web.Response(status=204, headers={**_UPLOAD_CORS, "Access-Control-Allow-Origin": origin})


@routes.post("/api/uploads")
async def upload(request: web.Request) -> web.Response:
    response = await _upload(request)
    claims_site = request.get(_upload_site_key)
    origin = await _site_origin(request, claims_site) if claims_site else None
    if origin is not None:
        response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
    return response


_upload_site_key = web.RequestKey("upload_site", str)


async def _upload(request: web.Request) -> web.Response:
    """A customer's photo or video for their session: ``Authorization: Bearer <customer token>``,
    the raw bytes as the body, their type as ``Content-Type``. Checked while it streams in."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return api_error("unauthorized", "missing bearer token (the customer's session token)")
    store = request.app[keys.store]
    try:
        claims = auth.read_customer_token(request.app[keys.secret], header[7:].strip())
    except auth.TokenError as exc:
        return api_error("unauthorized", f"token refused: {exc.reason}")
    site = await store.site(claims.site_id)
    if site is None:
        return api_error("unauthorized", "unknown site")
    request[_upload_site_key] = site.id
    caller = CustomerCaller(site=site, customer_id=claims.customer_id, ticket_id=claims.ticket_id)
    declared = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        info = await request.app[keys.calls].upload(caller, declared, chunks_of(request.content))
    except DeskError as exc:
        return api_error(exc.code, exc.message)
    except media.UploadError as exc:
        body = ApiError(error=ErrorBody(code="malformed", message=f"{exc.code}: {exc}")).wire()
        body["error"]["reason"] = exc.code
        return web.json_response(body, status=exc.http_status)
    return web.json_response({"attachment": info.wire()}, status=201)


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
