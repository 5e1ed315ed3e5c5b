"""Malformed, unknown, oversized and too-fast events: a clear error, and nothing changes."""

from __future__ import annotations

import asyncio

from tests.support import CONTEXT, Running


async def test_malformed_events_change_nothing(server: Running) -> None:
    customer = await server.customer()
    bad_payloads = [
        ("help.request", {}),
        ("help.request", {"context": {"url": 5}}),
        ("help.request", "a string"),
        ("help.request", {"context": {**CONTEXT, "screen": {"width": -1, "height": 2}}}),
        ("help.request", {"context": {**CONTEXT, "app": {"blob": "x" * 9000}}}),
        ("help.request", {"context": {**CONTEXT, "geo": {"latitude": 91, "longitude": 0}}}),
    ]
    for event, payload in bad_payloads:
        ack = await customer.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "malformed", (payload, ack)
        assert ack["error"]["message"]
    token = await server.token("sam")  # a supervisor reads every ticket
    assert (await server.get("/api/tickets", token))[1]["tickets"] == []

    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id = ack["ticket"]["id"]
    for payload in (
        {"clientMsgId": "x", "text": ""},
        {"clientMsgId": "x", "text": "   "},
        {"clientMsgId": "", "text": "hi"},
        {"clientMsgId": "bad id with spaces", "text": "hi"},
        {"clientMsgId": "x", "text": "y" * 10_001},
        {"text": "no id"},
    ):
        ack = await customer.call("chat.send", payload)
        assert ack["error"]["code"] == "malformed", (payload, ack)
    unknown = await customer.call("shell.exec", {"cmd": "rm -rf /"})
    assert unknown["error"]["code"] == "unknown_event"
    _, ticket = await server.get(f"/api/tickets/{ticket_id}", token)
    assert ticket["transcript"] == [] and [e["type"] for e in ticket["timeline"]] == [
        "ticket.created"
    ]


async def test_oversized_event_is_refused(server: Running) -> None:
    customer = await server.customer()
    big = {"context": {**CONTEXT, "title": "t"}, "padding": "x" * 70_000}
    ack = await customer.call("help.request", big)
    assert ack["error"]["code"] == "too_large"
    assert (await server.get("/api/tickets", await server.token("alice")))[1]["tickets"] == []


async def test_frame_over_the_socket_limit_closes_the_socket(server: Running) -> None:
    customer = await server.customer()
    await customer.sio.emit("chat.send", {"clientMsgId": "x", "text": "z" * 1_100_000})
    async with asyncio.timeout(5):
        while customer.sio.connected:
            await asyncio.sleep(0.05)
    # The server is fine: others still work.
    other = await server.customer()
    assert (await other.call("help.request", {"context": CONTEXT}))["ok"]


async def test_rate_limit_per_socket(server: Running) -> None:
    customer = await server.customer()
    await customer.call("help.request", {"context": CONTEXT})
    acks = await asyncio.gather(
        *(customer.call("chat.typing", {"typing": i % 2 == 0}) for i in range(120))
    )
    codes = {a["error"]["code"] for a in acks if not a["ok"]}
    assert codes == {"rate_limited"}
    assert sum(a["ok"] for a in acks) >= 30
    # Another socket is not affected.
    other = await server.customer()
    assert (await other.call("help.request", {"context": CONTEXT}))["ok"]
