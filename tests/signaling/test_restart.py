"""A server restart keeps tickets, queue and sessions; clients are told to reconnect."""

from __future__ import annotations

from pathlib import Path

from tests.support import CONTEXT, Client, Running, running_server, start_server


async def test_restart_keeps_everything(tmp_path: Path) -> None:
    async with running_server(tmp_path) as first:
        alice = await first.agent("alice")
        active = await first.customer()
        ack_active = await active.call("help.request", {"context": CONTEXT})
        await alice.call("session.accept", {"ticketId": ack_active["ticket"]["id"]})
        await active.call("chat.send", {"clientMsgId": "m1", "text": "before restart"})
        waiting = await first.customer()
        ack_waiting = await waiting.call("help.request", {"context": CONTEXT})
        watched: list[Client] = [alice, active, waiting]
        agents, site = first.agents, first.site
        await first.runner.cleanup()  # SIGTERM does the same: shutdown then cleanup
        for client in watched:
            notice = await client.wait_for("server.restarting")
            assert notice["reconnectAfterMs"] > 0
        first.clients.clear()

    app, runner, base = await start_server(tmp_path)
    again = Running(app, runner, base, site, site, agents)
    try:
        token = await again.token("sam")  # a supervisor lists every ticket
        _, listing = await again.get("/api/tickets", token)
        assert {t["id"] for t in listing["tickets"]} == {
            ack_active["ticket"]["id"],
            ack_waiting["ticket"]["id"],
        }
        customer = await again.customer(token=ack_active["token"])
        state = await customer.call("session.resume", {})
        assert [m["text"] for m in state["messages"]] == ["before restart"]
        agent = await again.agent("alice")
        assert [s["id"] for s in (await agent.call("session.list"))["sessions"]] == [
            ack_active["ticket"]["id"]
        ]
        queue = await agent.call("queue.list")
        assert [e["ticketId"] for e in queue["entries"]] == [ack_waiting["ticket"]["id"]]
        await agent.call(
            "chat.send",
            {"ticketId": ack_active["ticket"]["id"], "clientMsgId": "a1", "text": "after"},
        )
        await customer.wait_for("chat.message", lambda e: e["message"]["text"] == "after")
    finally:
        for client in again.clients:
            await client.close()
        await runner.cleanup()
