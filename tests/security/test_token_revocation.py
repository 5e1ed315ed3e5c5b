"""Agent tokens end (issue 8, finding 10): they could be refreshed forever and not revoked, with
no logout, and no effect of removing an agent or changing their password."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from signaling import keys
from signaling.app import socket_api_key
from signaling.auth import accounts
from tests.support import Client, Running, running_server


async def post(server: Running, path: str, token: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body


async def wait_disconnected(client: Any) -> None:
    async with asyncio.timeout(5):
        while client.sio.connected:
            await asyncio.sleep(0.05)


async def test_logout_ends_the_token_its_refreshes_and_its_sockets(server: Running) -> None:
    token = await server.token("alice")
    status, refreshed = await post(server, "/api/auth/refresh", token)
    assert status == 200
    other_session = await server.token("alice")  # another browser: stays signed in
    socket = await server.agent("alice")
    # The socket above signed in separately; one of this session's own:
    own = Client()
    await own.connect(server.base_url, {"v": 1, "role": "agent", "token": refreshed["token"]})
    server.clients.append(own)

    assert (await post(server, "/api/auth/logout", token))[0] == 204
    for dead in (token, refreshed["token"]):
        status, body = await server.get("/api/me", dead)
        assert status == 401 and "revoked" in body["error"]["message"]
        assert (await post(server, "/api/auth/refresh", dead))[0] == 401
    await wait_disconnected(own)
    assert socket.sio.connected
    assert (await server.get("/api/me", other_session))[0] == 200


async def test_a_revoked_token_cannot_open_a_socket(server: Running) -> None:
    token = await server.token("bob")
    assert (await post(server, "/api/auth/logout", token))[0] == 204
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.base_url, {"v": 1, "role": "agent", "token": token})
    assert client.refusal["data"]["code"] == "unauthorized"


@pytest.fixture
async def short_sessions(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(tmp_path, agent_session_max_age=1) as running:
        yield running


async def test_refreshing_ends_with_the_sign_in_session(short_sessions: Running) -> None:
    token = await short_sessions.token("alice")
    assert (await post(short_sessions, "/api/auth/refresh", token))[0] == 200
    await asyncio.sleep(1.2)
    status, body = await post(short_sessions, "/api/auth/refresh", token)
    assert status == 401 and "session_expired" in body["error"]["message"]


async def test_password_change_signs_the_agent_out_everywhere(server: Running) -> None:
    token = await server.token("alice")
    socket = await server.agent("alice")
    store = server.app[keys.store]
    await accounts.set_password(store, "alice@tandem.test", "a brand new password")
    assert (await server.get("/api/me", token))[0] == 401
    # Sockets opened before are closed by the node's sweep (which runs every 30 s).
    assert await server.app[socket_api_key].sweep_auth_sessions() == 1
    await wait_disconnected(socket)


async def test_removed_agent_is_refused(server: Running) -> None:
    token = await server.token("bob")
    await accounts.remove_agent(server.app[keys.store], "bob@tandem.test")
    assert (await server.get("/api/me", token))[0] == 401
    async with aiohttp.ClientSession() as http:
        login = await http.post(
            f"{server.base_url}/api/auth/login",
            json={"email": "bob@tandem.test", "password": "correct horse battery"},
        )
        assert login.status == 401
