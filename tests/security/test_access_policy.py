"""One access policy on both edges (issue 8, finding 2): a plain agent read every ticket over
REST, transcript and attachments included, while the socket refused the same read."""

from __future__ import annotations

from tests.support import CONTEXT, Running


async def accepted_ticket(server: Running) -> str:
    customer = await server.customer()
    ticket_id: str = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    alice = await server.agent("alice")
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    sent = await customer.call("chat.send", {"clientMsgId": "m1", "text": "my card is 4111..."})
    assert sent["ok"]
    return ticket_id


async def test_plain_agent_cannot_read_another_agents_ticket(server: Running) -> None:
    ticket_id = await accepted_ticket(server)
    bob = await server.token("bob")
    status, body = await server.get(f"/api/tickets/{ticket_id}", bob)
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, _ = await server.get(f"/api/tickets/{ticket_id}/attachments/at_any", bob)
    assert status == 403
    # The socket says the same.
    bob_socket = await server.agent("bob")
    ack = await bob_socket.call("session.resume", {"ticketId": ticket_id})
    assert ack["error"]["code"] == "forbidden"


async def test_members_and_supervisors_read(server: Running) -> None:
    ticket_id = await accepted_ticket(server)
    for who in ("alice", "sam"):
        status, body = await server.get(f"/api/tickets/{ticket_id}", await server.token(who))
        assert status == 200, who
        assert [line["text"] for line in body["transcript"]] == ["my card is 4111..."]


async def test_ticket_list_shows_a_plain_agent_only_their_tickets(server: Running) -> None:
    ticket_id = await accepted_ticket(server)
    _, bobs = await server.get("/api/tickets", await server.token("bob"))
    assert ticket_id not in [t["id"] for t in bobs["tickets"]]
    for who in ("alice", "sam"):
        _, listed = await server.get("/api/tickets", await server.token(who))
        assert ticket_id in [t["id"] for t in listed["tickets"]], who
