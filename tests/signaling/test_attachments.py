"""Attachments: content-addressed bytes on the ticket, announced live, served to agents only;
kept in a directory and in an S3 bucket (``tests/blobs.py``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling import keys
from tests.blobs import blob_settings, s3_server
from tests.support import CONTEXT, Running, running_server

__all__ = ["blob_settings", "s3_server"]


@pytest.fixture
async def server(tmp_path: Path, blob_settings: dict[str, Any]) -> AsyncIterator[Running]:
    async with running_server(tmp_path, **blob_settings) as running:
        yield running


async def test_attachment_is_stored_announced_and_served(server: Running) -> None:
    alice = await server.agent("alice")
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})

    data = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
    desk = server.app[keys.desk]
    info = await desk.file_attachment(ticket_id, "screenshot", "image/png", data, {"width": 2})
    again = await desk.file_attachment(ticket_id, "screenshot", "image/png", data, {})
    assert info.sha256 == again.sha256 == hashlib.sha256(data).hexdigest()
    assert info.id != again.id  # two filings, one stored copy
    announced = await customer.wait_for("attachment.added")
    assert announced["attachment"]["sha256"] == info.sha256
    await alice.wait_for("ticket.timeline", lambda e: e["entry"]["type"] == "attachment.added")

    token = await server.token("alice")
    status, ticket = await server.get(f"/api/tickets/{ticket_id}", token)
    assert [a["id"] for a in ticket["attachments"]] == [info.id, again.id]
    assert ticket["attachments"][0]["url"] == f"/api/tickets/{ticket_id}/attachments/{info.id}"
    status, body = await server.get(ticket["attachments"][0]["url"], token)
    assert status == 200 and body == data
    assert (await server.get(ticket["attachments"][0]["url"], None))[0] == 401
    other = await (await server.customer()).call("help.request", {"context": CONTEXT})
    elsewhere = f"/api/tickets/{other['ticket']['id']}/attachments/{info.id}"
    # Alice is not in the other session at all; a supervisor may read it, but the attachment
    # belongs to another ticket.
    assert (await server.get(elsewhere, token))[0] == 403
    assert (await server.get(elsewhere, await server.token("sam")))[0] == 404


async def test_a_large_attachment_is_served_whole_and_in_ranges(server: Running) -> None:
    """A video is read in ranges by the browser (seeking): both stores answer them."""
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    data = os.urandom(3 * 1024 * 1024 + 17)
    clip = server.app[keys.files].temp_dir() / "clip.mp4"
    clip.write_bytes(data)
    info = await server.app[keys.desk].file_attachment_path(
        ticket_id, "video", "video/mp4", clip, {}
    )
    in_bucket = server.app[keys.settings].files_url is not None
    assert (server.app[keys.files].local_path(info.sha256) is None) == in_bucket
    url = f"{server.base_url}/api/tickets/{ticket_id}/attachments/{info.id}"
    auth = {"Authorization": f"Bearer {await server.token('sam')}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=auth) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "video/mp4"
            assert await response.read() == data
        for asked, status, expected in (
            ("bytes=100-199", 206, data[100:200]),
            ("bytes=-10", 206, data[-10:]),
            (f"bytes={len(data) - 5}-", 206, data[-5:]),
            (f"bytes={len(data)}-", 416, b""),
        ):
            async with http.get(url, headers={**auth, "Range": asked}) as response:
                assert response.status == status, asked
                if status == 206:
                    assert await response.read() == expected, asked
                    start = len(data) - len(expected) if asked != "bytes=100-199" else 100
                    assert response.headers["Content-Range"] == (
                        f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
                    )
