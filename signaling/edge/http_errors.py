"""Errors on the REST surface (``/api/*``, ``/healthz``) as the OpenAPI document promises them.

Every error there is an ``ApiError`` JSON body. A wrong method on a REST path is 405 with the
``Allow`` header naming the methods it has, whatever else the router matched: the front end's
catch-all GET route would otherwise answer ``GET /api/uploads`` with a 404 page. An unexpected
exception in a handler is logged with its traceback and answered with a bare ``internal`` error,
so nothing of the failure reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.protocol import ApiError, ErrorBody, ErrorCode

log = logging.getLogger("tandem.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES: dict[int, ErrorCode] = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "malformed",
    409: "invalid_state",
    413: "too_large",
    415: "malformed",
    422: "malformed",
    429: "rate_limited",
}


def is_rest_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/healthz"


def error_response(status: int, message: str) -> web.Response:
    code: ErrorCode = _CODES.get(status, "internal" if status >= 500 else "malformed")
    body = ApiError(error=ErrorBody(code=code, message=message)).wire()
    return web.json_response(body, status=status)


async def _rest_methods(request: web.Request) -> set[str]:
    """The methods the REST routes (not the front end's catch-all) serve at this path."""
    methods: set[str] = set()
    for resource in request.app.router.resources():
        # ``canonical`` is the route's pattern ("/api/tickets/{ticket_id}").
        if is_rest_path(resource.canonical):
            _, allowed = await resource.resolve(request)
            methods |= allowed
    return methods


def _rest_route_matched(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and is_rest_path(resource.canonical)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_rest_path(request.path):
        return await handler(request)
    if not _rest_route_matched(request):
        allowed = await _rest_methods(request)
        if not allowed:
            return error_response(404, f"no such route: {request.path}")
        if request.method not in allowed:
            response = error_response(
                405,
                f"{request.method} is not allowed on {request.path}; "
                f"allowed: {', '.join(sorted(allowed))}",
            )
            response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (a body over client_max_size, ...) in the documented shape.
        response = error_response(exc.status, exc.reason)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error")
