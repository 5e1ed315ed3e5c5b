"""Attachments: content-addressed bytes on the ticket, announced live, served to agents only."""

from __future__ import annotations

import hashlib

from signaling import keys
from tests.support import CONTEXT, Running


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
