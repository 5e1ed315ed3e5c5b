"""Finding 11 of issue 8: the HTTP surface answers only what the protocol and the OpenAPI
document promise: no long-polling transport, ``limit`` within 1..500, 405 with ``Allow`` for a
wrong method, and JSON errors (never a traceback) on every ``/api`` path."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from tests.support import Running, free_port


async def test_long_polling_transport_is_refused(server: Running) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{server.base_url}/socket.io/?EIO=4&transport=polling")
        body = await response.text()
    # An engine.io open packet ("0{"sid":...") would mean a polling session was created.
    assert response.status == 400, (response.status, body)
    assert '"sid"' not in body
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            server.base_url,
            auth={"v": 1, "role": "agent", "token": await server.token("alice")},
            transports=["polling"],
            wait_timeout=5,
        )
    await client.disconnect()
    # The websocket transport still works.
    agent = await server.agent("alice")
    assert (await agent.call("queue.list"))["ok"] is True


@pytest.mark.parametrize(
    "limit", ["501", "0", "-1", "abc", "1.5", "", "1e3", "99999999999999999999999", " 5"]
)
async def test_ticket_list_limit_out_of_range_is_refused(server: Running, limit: str) -> None:
    token = await server.token("alice")
    status, body = await server.get(f"/api/tickets?limit={limit}", token)
    assert status == 400, (limit, status, body)
    assert body["error"]["code"] == "malformed"
    assert "limit" in body["error"]["message"]


async def test_ticket_search_with_nul_is_refused(server: Running) -> None:
    """PostgreSQL text holds no NUL: a search for one answered 500 there (found by the REST
    fuzz); it is refused as malformed on every store."""
    token = await server.token("alice")
    status, body = await server.get("/api/tickets?q=a%00b", token)
    assert status == 400 and body["error"]["code"] == "malformed", (status, body)


@pytest.mark.parametrize("limit", ["1", "500", "42"])
async def test_ticket_list_limit_in_range_is_served(server: Running, limit: str) -> None:
    token = await server.token("alice")
    status, body = await server.get(f"/api/tickets?limit={limit}", token)
    assert status == 200 and body == {"tickets": []}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/uploads", {"POST", "OPTIONS"}),
        ("PUT", "/api/uploads", {"POST", "OPTIONS"}),
        ("GET", "/api/auth/login", {"POST"}),
        ("DELETE", "/api/auth/refresh", {"POST"}),
        ("POST", "/api/tickets", {"GET"}),
        ("DELETE", "/api/tickets/tk_1", {"GET"}),
        ("PATCH", "/api/tickets/tk_1/attachments/at_1", {"GET"}),
        ("POST", "/api/me", {"GET"}),
        ("POST", "/api/openapi.json", {"GET"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
async def test_wrong_method_is_405_with_allow(
    server: Running, method: str, path: str, allowed: set[str]
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{server.base_url}{path}") as response,
    ):
        status, content_type = response.status, response.content_type
        allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
        body: Any = await response.json() if content_type == "application/json" else None
    assert status == 405, (method, path, status)
    # HEAD comes with every GET in aiohttp; nothing else may be offered.
    assert allowed <= allow <= allowed | {"HEAD"}, allow
    assert body is not None and body["error"]["code"] == "malformed", body
    assert method in body["error"]["message"]


async def test_unknown_api_path_is_json_404(server: Running) -> None:
    status, body = await server.get("/api/nothing-here", None)
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_unexpected_error_is_json_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The middleware on a minimal app whose only route fails: the client learns nothing of
    the failure, the log has it. (Tandem's own handlers have no known failure to trigger.)"""
    from signaling.edge.http_errors import api_errors

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret-detail-in-exception")

    app = web.Application(middlewares=[api_errors])
    app.router.add_get("/api/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.ERROR, logger="tandem"):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/api/broken") as response,
            ):
                status, text = response.status, await response.text()
                content_type = response.content_type
    finally:
        await runner.cleanup()
    assert status == 500 and content_type == "application/json"
    assert "secret-detail" not in text and "Traceback" not in text
    assert '"internal"' in text
    assert any("secret-detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_deeply_nested_json_body_is_malformed(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{server.base_url}/api/auth/login",
                data="[" * 5000 + "]" * 5000,
                headers={"Content-Type": "application/json"},
            ) as response,
        ):
            status, body = response.status, await response.json()
    assert status == 400 and body["error"]["code"] == "malformed", (status, body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
