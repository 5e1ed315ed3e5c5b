"""An agent sends the customer a file, over real REST and sockets: checked like a customer's
upload, filed on the ticket with who sent it, shown to the customer by a signed link to that one
file; only agents of the live session may send, and nobody else's file is reachable that way."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from PIL import Image

from signaling import keys
from tests.support import CONTEXT, Client, Running, running_server


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


async def open_session(server: Running, agent: Client) -> tuple[str, Client, str]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket = str(ack["ticket"]["id"])
    assert (await agent.call("session.accept", {"ticketId": ticket}))["ok"]
    return ticket, customer, str(ack["token"])


async def send(
    server: Running, ticket: str, body: bytes, content_type: str, token: str | None
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base_url}/api/tickets/{ticket}/files", data=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def fetch(server: Running, url: str) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.base_url}{url}") as response:
        return response.status, await response.read(), response.headers


async def test_an_agent_sends_the_customer_a_photo(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        alice = await server.agent("alice")
        ticket, customer, _token = await open_session(server, alice)
        token = await server.token("alice")
        status, body = await send(server, ticket, png(), "image/png", token)
        assert status == 201, body
        filed = body["attachment"]
        assert filed["kind"] == "agent_file" and filed["contentType"] == "image/png"
        assert filed["meta"]["by"] == {"id": server.agents["alice"].id, "name": "Alice"}
        # On the ticket, with who sent it, and on its timeline.
        store = server.app[keys.store]
        [record] = await store.attachments(ticket)
        assert record.id == filed["id"] and record.meta["by"]["name"] == "Alice"
        entries = [e for e in await store.timeline(ticket) if e.type == "attachment.added"]
        assert entries[-1].data["by"]["name"] == "Alice"
        # The agents get it as any attachment (their bearer URL); the customer a signed link.
        agents_copy = await alice.wait_for("attachment.added", lambda e: e["ticketId"] == ticket)
        assert (
            agents_copy["attachment"]["url"] == f"/api/tickets/{ticket}/attachments/{filed['id']}"
        )
        told = await customer.wait_for("attachment.added")
        link = told["attachment"]["url"]
        assert link.startswith(f"/api/files/{ticket}/{filed['id']}?") and told["seq"]
        assert told["attachment"]["meta"]["by"]["name"] == "Alice"
        status, data, headers = await fetch(server, link)
        assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n", data[:40]
        assert headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(data)).size == (40, 30)
        # The customer replaying its events gets the same link.
        replay = await customer.call("session.resume", {"afterSeq": 0})
        assert [
            e["attachment"]["url"] for e in replay["events"] if e["type"] == "attachment.added"
        ] == [link]
        # A snapshot (a reloaded widget) lists the files sent, with links; an agent's does not.
        snapshot = await customer.call("session.resume", {"afterMessageId": 0})
        assert [f["id"] for f in snapshot["files"]] == [filed["id"]]
        assert (await fetch(server, snapshot["files"][0]["url"]))[0] == 200
        state = await alice.call("session.resume", {"ticketId": ticket, "afterMessageId": 0})
        assert "files" not in state
        # A link altered in any part is refused.
        query = parse_qs(urlsplit(link).query)
        exp, sig = query["exp"][0], query["sig"][0]
        for forged in (
            f"/api/files/{ticket}/{filed['id']}?exp={exp}&sig={'0' * len(sig)}",
            f"/api/files/{ticket}/{filed['id']}?exp={int(exp) + 1}&sig={sig}",
            f"/api/files/{ticket}/{filed['id']}?exp=1&sig={sig}",
            f"/api/files/{ticket}/{filed['id']}",
        ):
            assert (await fetch(server, forged))[0] == 403, forged


async def test_only_agents_of_the_live_session_send_files(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        alice = await server.agent("alice")
        ticket, customer, customer_token = await open_session(server, alice)
        # A customer's token (a raw client claiming to be an agent), none, garbage: refused.
        for token in (customer_token, None, "garbage"):
            status, body = await send(server, ticket, png(), "image/png", token)
            assert status == 401, body
        # An agent not in the session.
        status, body = await send(server, ticket, png(), "image/png", await server.token("bob"))
        assert status == 403, body
        # Not a picture or video, or not what it claims to be.
        token = await server.token("alice")
        status, body = await send(server, ticket, b"%PDF-1.4 hello", "application/pdf", token)
        assert status == 415 and body["error"]["reason"] == "unsupported_type", body
        jpeg = io.BytesIO()
        Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
        status, body = await send(server, ticket, jpeg.getvalue(), "image/png", token)
        assert status == 415 and body["error"]["reason"] == "type_mismatch", body
        status, body = await send(server, "tk_nope", png(), "image/png", token)
        assert status == 404
        assert await server.app[keys.store].attachments(ticket) == []
        assert not customer.events["attachment.added"]
        # A customer's own upload is not reachable by a link to sent files.
        status, up = await upload_as_customer(server, customer_token)
        assert status == 201, up
        mine = up["attachment"]["id"]
        assert (await fetch(server, f"/api/files/{ticket}/{mine}?exp=9999999999&sig=ab"))[0] == 403
        # After the session: no more files.
        assert (await alice.call("session.end", {"ticketId": ticket}))["ok"]
        status, body = await send(server, ticket, png(), "image/png", token)
        assert status == 409, body


async def test_sent_files_have_a_quota(tmp_path: Path) -> None:
    async with running_server(tmp_path, max_uploads_per_ticket=1) as server:
        alice = await server.agent("alice")
        ticket, _customer, _token = await open_session(server, alice)
        token = await server.token("alice")
        assert (await send(server, ticket, png(), "image/png", token))[0] == 201
        status, body = await send(server, ticket, png(8, 8), "image/png", token)
        assert status == 429, body
        assert len(await server.app[keys.store].attachments(ticket)) == 1


async def upload_as_customer(server: Running, token: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base_url}/api/uploads",
            data=png(),
            headers={"Content-Type": "image/png", "Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()
