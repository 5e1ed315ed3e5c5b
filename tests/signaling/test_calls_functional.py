"""Calls through the real server: aiortc peers negotiate over socket.io, the agent captures a
frame onto the ticket, and the customer uploads photos over REST with every refusal checked."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.media.media_support import Client as MediaClient
from tests.media.media_support import (
    CounterVideoTrack,
    decode_counter_image,
    wait_for,
)
from tests.support import CONTEXT, Client, Running, running_server


class SocketRoom:
    """What the media test client needs of a room, over the real socket protocol."""

    def __init__(self, socket: Client, ticket_id: str) -> None:
        self.socket = socket
        self.ticket_id = ticket_id

    async def handle_offer(self, pid: str, role: str, sdp: str, labels: Any = None) -> str:
        ack = await self.socket.call(
            "rtc.offer", {"ticketId": self.ticket_id, "sdp": sdp, "labels": labels or {}}
        )
        assert ack["ok"], ack
        return str(ack["sdp"])

    async def handle_answer(self, pid: str, sdp: str) -> None:
        ack = await self.socket.call("rtc.answer", {"ticketId": self.ticket_id, "sdp": sdp})
        assert ack["ok"], ack


def peer(socket: Client, ticket_id: str, role: str) -> MediaClient:
    client = MediaClient(SocketRoom(socket, ticket_id), role, role)  # type: ignore[arg-type]
    socket.sio.on("rtc.offer", client.deliver)
    socket.sio.on("media.tracks", client.deliver)
    return client


@pytest.fixture
async def call_server(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(tmp_path, media_host_addresses=("127.0.0.1",)) as running:
        yield running


async def session(server: Running) -> tuple[Client, Client, str, str]:
    alice = await server.agent("alice")
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    return alice, customer, ticket_id, ack["token"]


async def test_camera_to_agent_and_capture_onto_the_ticket(call_server: Running) -> None:
    server = call_server
    alice, customer, ticket_id, _ = await session(server)
    joined = await customer.call("rtc.join", {})
    assert joined["ok"] and joined["participantId"] == "customer"
    assert (await alice.call("rtc.join", {"ticketId": ticket_id}))["participantId"].startswith(
        "agent:"
    )

    publisher = peer(customer, ticket_id, "customer")
    camera = CounterVideoTrack(640, 480)
    publisher.add_track(camera)
    await publisher.negotiate(lambda: {camera.id: "camera"})
    viewer = peer(alice, ticket_id, "agent")
    viewer.pc.addTransceiver("audio", direction="recvonly")
    await viewer.negotiate()
    try:
        await wait_for(lambda: bool(viewer.video), 10, "the agent to receive the camera")
        sink = next(iter(viewer.video.values()))
        await sink.wait_frames(10, within=10)
        track_id = next(iter(viewer.video))
        await wait_for(lambda: bool(viewer.track_lists), 5, "the track list")
        assert viewer.track_lists[-1][0]["source"] == "camera"
        assert viewer.track_lists[-1][0]["trackId"] == track_id
        # The timeline says who showed what (once, whatever the renegotiations).
        shared = await alice.wait_for(
            "ticket.timeline", lambda e: e["entry"]["type"] == "call.shared"
        )
        assert shared["entry"]["data"] == {"participant": "customer", "source": "camera"}

        shot = await alice.call("capture.still", {"ticketId": ticket_id, "trackId": track_id})
        assert shot["ok"], shot
        attachment = shot["attachment"]
        assert attachment["kind"] == "screenshot" and attachment["contentType"] == "image/png"
        await customer.wait_for("attachment.added")
        status, png = await server.get(attachment["url"], await server.token("alice"))
        assert status == 200
        image = Image.open(io.BytesIO(png))
        assert image.size == (640, 480)
        assert decode_counter_image(image) in camera.sent

        missing = await alice.call("capture.still", {"ticketId": ticket_id, "trackId": "nope"})
        assert missing["error"]["code"] == "not_found"
        bob = await server.agent("bob")
        stranger = await bob.call("capture.still", {"ticketId": ticket_id, "trackId": track_id})
        assert stranger["error"]["code"] == "forbidden"
        customer_try = await customer.call(
            "capture.still", {"ticketId": ticket_id, "trackId": track_id}
        )
        assert customer_try["error"]["code"] == "forbidden"

        await alice.call("session.end", {"ticketId": ticket_id})
        await wait_for(
            lambda: viewer.pc.connectionState in ("closed", "failed"),
            10,
            "the call to close with the session",
        )
    finally:
        await publisher.close()
        await viewer.close()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_uploads_are_checked_while_streaming(server: Running) -> None:
    alice, _customer, ticket_id, token = await session(server)
    url = f"{server.base_url}/api/uploads"

    async def post(body: bytes, content_type: str, bearer: str | None = token) -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.json()

    status, body = await post(png(64, 48), "image/png")
    assert status == 201 and body["attachment"]["kind"] == "photo"
    assert body["attachment"]["meta"]["width"] == 64
    await alice.wait_for("attachment.added", lambda e: e["attachment"]["kind"] == "photo")

    refusals = [
        (png(8, 8), "image/jpeg", 415),
        (b"GIF89a" + b"\x00" * 64, "image/gif", 415),
        (b"%PDF-1.7 not an image", "application/pdf", 415),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", 422),
    ]
    for data, declared, expected in refusals:
        status, body = await post(data, declared)
        assert status == expected, (declared, body)
        assert body["error"]["message"]
    # Over the 20 MiB image cap: refused while streaming, nothing filed.
    oversized = png(8, 8) + b"\x00" * (21 * 1024 * 1024)
    status, body = await post(oversized, "image/png")
    assert status == 413 and body["error"]["reason"] == "too_large", body
    status, _ = await post(png(8, 8), "image/png", bearer=None)
    assert status == 401
    status, _ = await post(png(8, 8), "image/png", bearer=await server.token("alice"))
    assert status == 401

    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    assert [a["kind"] for a in ticket["attachments"]] == ["photo"]


async def test_uploads_from_the_site_origin_pass_cors(server: Running) -> None:
    _alice, _customer, _ticket_id, token = await session(server)
    url = f"{server.base_url}/api/uploads"
    async with aiohttp.ClientSession() as http:
        headers = {
            "Origin": "http://shop.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        async with http.options(url, headers=headers) as pre:
            assert pre.status == 204
            assert pre.headers["Access-Control-Allow-Origin"] == "http://shop.test"
            assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        async with http.options(url, headers={**headers, "Origin": "http://evil.test"}) as bad:
            assert bad.status == 403 and "Access-Control-Allow-Origin" not in bad.headers
        async with http.post(
            url,
            data=png(10, 10),
            headers={
                "Origin": "http://shop.test",
                "Authorization": f"Bearer {token}",
                "Content-Type": "image/png",
            },
        ) as done:
            assert done.status == 201
            assert done.headers["Access-Control-Allow-Origin"] == "http://shop.test"
        # Another site's origin does not get to read the answer for this site's session.
        async with http.post(
            url,
            data=png(10, 10),
            headers={
                "Origin": "http://other.test",
                "Authorization": f"Bearer {token}",
                "Content-Type": "image/png",
            },
        ) as foreign:
            assert "Access-Control-Allow-Origin" not in foreign.headers
