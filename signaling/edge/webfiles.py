"""Serving the built front end (``web/dist``) with the security headers each page needs.

Console and dashboard pages get a Content-Security-Policy without ``unsafe-inline`` and
``frame-ancestors 'none'``; every response gets ``nosniff``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

_CONSOLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The demo shop stands in for a customer's site: it may load the snippet and talk to us.
_DEMO_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
    ]
)

# The co-browse replay page (ADR 0001): rrweb rebuilds the customer's page in an about:blank
# iframe (sandbox="allow-same-origin", no scripts) that inherits this policy. Mirrored pages need
# inline styles (<style> text and style attributes set through the DOM). A mirrored page loads
# nothing over the network except images, fonts and stylesheets from our own asset route
# (/cobrowse/assets/, where the sanitizer points every resource URL; ASSET is replaced by
# "host:port/cobrowse/assets/", a path-restricted source, so no other path of ours is reachable
# either) and data:/blob: images; no connections, forms or navigation out; only our own pages
# may frame it.
_REPLAY_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'unsafe-inline' ASSET",
        "img-src data: blob: ASSET",
        "font-src data: ASSET",
        "media-src 'none'",
        "frame-src 'self'",
        "child-src 'self'",
        "connect-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)
REPLAY_PAGE = "/console/replay.html"
_public_url_key = web.AppKey("public_host", str)
"""Set by ``public_host_for``: the host of ``Settings.public_url``."""
ASSET_ROUTE = "/cobrowse/assets/"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")

_SPA_PREFIXES = ("/console", "/dashboard")


def csp_for(path: str, *hosts: str | None) -> str | None:
    """The page's policy; ``hosts`` name this server for the replay page's asset sources (the
    request's ``Host``, and the public URL's host: a proxy may not pass ``Host`` through)."""
    if path == REPLAY_PAGE:
        # Scheme-less, so they match whichever scheme the page was served over.
        named = dict.fromkeys(h for h in hosts if h and _HOST.fullmatch(h))
        assets = "".join(f" {h}{ASSET_ROUTE}" for h in named)
        return _REPLAY_CSP.replace(" ASSET", assets)
    if path.startswith(_SPA_PREFIXES) or path == "/":
        return _CONSOLE_CSP
    if path.startswith("/demo"):
        return _DEMO_CSP
    return None


@web.middleware
async def security_headers(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    public = request.app.get(_public_url_key)
    policy = csp_for(request.path, request.host, public)
    if policy is not None:
        response.headers.setdefault("Content-Security-Policy", policy)
    if isinstance(response, web.HTTPException) and response.status >= 400:
        raise response
    return response


def public_host_for(app: web.Application, public_url: str | None) -> None:
    """Remember the public URL's host, for policies that must name this server."""
    host = urlsplit(public_url).netloc if public_url else ""
    if host:
        app[_public_url_key] = host


def web_routes(dist: Path) -> list[web.RouteDef]:
    root = dist.resolve()

    async def serve(request: web.Request) -> web.StreamResponse:
        relative = request.match_info.get("path", "")
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise web.HTTPNotFound()
        if target.is_dir():
            if not request.path.endswith("/"):
                raise web.HTTPFound(request.path + "/")
            target = target / "index.html"
        if not target.is_file():
            spa = next((p for p in _SPA_PREFIXES if request.path.startswith(p + "/")), None)
            if spa is None:
                raise web.HTTPNotFound(text="not found")
            target = root / spa.strip("/") / "index.html"
            if not target.is_file():
                raise web.HTTPNotFound(text="the web front end is not built (npm run build)")
        response = web.FileResponse(target)
        # The loader must always be fresh (it names the hashed chunks of the current build);
        # the hashed chunks never change.
        if target.suffix == ".html" or request.path == "/tandem.js":
            response.headers["Cache-Control"] = "no-cache"
        elif request.path.startswith("/tandem/"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response

    return [web.get("/{path:.*}", serve)]
