"""Internal notes over real sockets and REST: agents write them during and after a session, the
session's agents get them (live, numbered, on resume, in their state and on the ticket), a
transfer carries them to the next agent, and nothing a customer can reach ever holds one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from signaling import keys
from signaling.auth.accounts import add_agent
from tests.support import CONTEXT, PASSWORD, Client, Running, running_server

SECRET_NOTE = "Refund approved by finance, ref 7781 (do not tell the customer yet)"


async def open_session(server: Running, agent: Client) -> tuple[str, Client, str]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    ticket = str(ack["ticket"]["id"])
    accepted = await agent.call("session.accept", {"ticketId": ticket})
    assert accepted["ok"], accepted
    assert accepted["notes"] == []
    return ticket, customer, str(ack["token"])


async def post(server: Running, path: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.base_url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def holds_note(events: Any) -> bool:
    return SECRET_NOTE in json.dumps(events) or "note.added" in json.dumps(events)


async def test_notes_reach_the_sessions_agents_and_never_the_customer(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        alice = await server.agent("alice")
        ticket, customer, customer_token = await open_session(server, alice)
        assert (await customer.call("chat.send", {"clientMsgId": "m1", "text": "refund?"}))["ok"]
        ack = await alice.call(
            "note.add", {"ticketId": ticket, "text": SECRET_NOTE, "clientNoteId": "n1"}
        )
        assert ack["ok"] and ack["duplicate"] is False, ack
        note = ack["note"]
        assert note["author"] == {"id": server.agents["alice"].id, "name": "Alice"}
        assert note["source"] == "agent" and note["text"] == SECRET_NOTE
        told = await alice.wait_for("note.added", lambda e: e["ticketId"] == ticket)
        assert told["note"] == note and isinstance(told["seq"], int)
        # A resend of the same client id is the same note, told once.
        again = await alice.call(
            "note.add", {"ticketId": ticket, "text": SECRET_NOTE, "clientNoteId": "n1"}
        )
        assert again["ok"] and again["duplicate"] is True and again["note"]["id"] == note["id"]
        # The customer's line goes on (a chat after the note) and never holds it.
        assert (
            await alice.call(
                "chat.send", {"ticketId": ticket, "clientMsgId": "a1", "text": "on it"}
            )
        )["ok"]
        await customer.wait_for("chat.message", lambda m: m["message"]["text"] == "on it")
        assert not holds_note(customer.events)
        replay = await customer.call("session.resume", {"afterSeq": 0})
        assert replay["ok"] and replay["events"], replay
        assert not holds_note(replay) and "notes" not in replay
        snapshot = await customer.call("session.resume", {"afterMessageId": 0})
        assert snapshot["ok"] and "events" not in snapshot
        assert not holds_note(snapshot) and "notes" not in snapshot
        # A customer reconnecting with its token gets no notes either.
        back = await server.customer(token=customer_token)
        resumed = await back.call("session.resume", {"afterMessageId": 0})
        assert resumed["ok"] and not holds_note(resumed)
        # The agent's resume replays it (agents' line); a snapshot holds it too.
        agent_replay = await alice.call("session.resume", {"ticketId": ticket, "afterSeq": 0})
        assert [e["note"]["text"] for e in agent_replay["events"] if e["type"] == "note.added"] == [
            SECRET_NOTE
        ]
        agent_state = await alice.call("session.resume", {"ticketId": ticket, "afterMessageId": 0})
        assert [n["text"] for n in agent_state["notes"]] == [SECRET_NOTE]
        # Over REST: on the ticket and as its own resource.
        token = await server.token("alice")
        status, detail = await server.get(f"/api/tickets/{ticket}", token)
        assert status == 200 and [n["text"] for n in detail["notes"]] == [SECRET_NOTE]
        assert SECRET_NOTE not in json.dumps(detail["transcript"])
        status, listed = await server.get(f"/api/tickets/{ticket}/notes", token)
        assert status == 200 and listed["notes"] == [note]
        # Stored in SQL, not in the transcript.
        store = server.app[keys.store]
        assert [n.text for n in await store.notes(ticket)] == [SECRET_NOTE]
        assert SECRET_NOTE not in [m.text for m in await store.messages(ticket)]
        # After the session: the agent still writes notes (REST), the customer hears nothing.
        assert (await alice.call("session.end", {"ticketId": ticket}))["ok"]
        await customer.wait_for("session.ended")
        status, later = await post(
            server, f"/api/tickets/{ticket}/notes", {"text": "Called back, all fine"}, token
        )
        assert status == 201 and later["note"]["text"] == "Called back, all fine", later
        status, listed = await server.get(f"/api/tickets/{ticket}/notes", token)
        assert [n["text"] for n in listed["notes"]] == [SECRET_NOTE, "Called back, all fine"]
        assert "Called back" not in json.dumps(customer.events)


async def test_who_may_write_and_read_notes(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        ticket, customer, customer_token = await open_session(server, alice)
        # The customer cannot write one (not a customer event) nor read them over REST.
        refused = await customer.call("note.add", {"ticketId": ticket, "text": "hi"})
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden", refused
        for path in (f"/api/tickets/{ticket}/notes", f"/api/tickets/{ticket}"):
            status, body = await server.get(path, customer_token)
            assert status == 401, body
        status, body = await post(
            server, f"/api/tickets/{ticket}/notes", {"text": "x"}, customer_token
        )
        assert status == 401, body
        # An agent not in the session may neither write nor read them.
        refused = await bob.call("note.add", {"ticketId": ticket, "text": "sneaky"})
        assert refused["error"]["code"] == "forbidden", refused
        bob_token = await server.token("bob")
        status, _ = await server.get(f"/api/tickets/{ticket}/notes", bob_token)
        assert status == 403
        status, _ = await post(server, f"/api/tickets/{ticket}/notes", {"text": "x"}, bob_token)
        assert status == 403
        # Bad input changes nothing.
        for bad in ({"ticketId": ticket, "text": "   "}, {"ticketId": ticket, "text": "x" * 5001}):
            refused = await alice.call("note.add", bad)
            assert refused["error"]["code"] == "malformed", refused
        missing = await alice.call("note.add", {"ticketId": "tk_nope", "text": "x"})
        assert missing["error"]["code"] == "not_found"
        alice_token = await server.token("alice")
        status, _ = await post(server, f"/api/tickets/{ticket}/notes", {"text": ""}, alice_token)
        assert status == 400
        assert await server.app[keys.store].notes(ticket) == []
        # A supervisor reads every ticket, and may note on it.
        sam_token = await server.token("sam")
        status, made = await post(
            server, f"/api/tickets/{ticket}/notes", {"text": "Reviewed"}, sam_token
        )
        assert status == 201 and made["note"]["author"]["name"] == "Sam"
        told = await alice.wait_for("note.added", lambda e: e["note"]["text"] == "Reviewed")
        assert told["ticketId"] == ticket
        assert not holds_note(customer.events) and "Reviewed" not in json.dumps(customer.events)


async def test_a_transfer_carries_the_notes_to_the_next_agent(tmp_path: Path) -> None:
    async with running_server(tmp_path, wrap_up_seconds=0) as server:
        alice, bob = await server.agent("alice"), await server.agent("bob")
        ticket, customer, _token = await open_session(server, alice)
        assert (await alice.call("note.add", {"ticketId": ticket, "text": SECRET_NOTE}))["ok"]
        ack = await alice.call(
            "session.transfer",
            {
                "ticketId": ticket,
                "to": {"agentId": server.agents["bob"].id},
                "mode": "warm",
                "note": "VIP, be kind",
            },
        )
        assert ack["ok"], ack
        # The transfer's note is a note of the ticket too (told to the agents in the session).
        told = await alice.wait_for("note.added", lambda e: e["note"]["source"] == "transfer")
        assert told["note"]["text"] == "VIP, be kind"
        await bob.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
        state = await bob.call("session.accept", {"ticketId": ticket})
        assert state["ok"], state
        assert [(n["text"], n["source"], n["author"]["name"]) for n in state["notes"]] == [
            (SECRET_NOTE, "agent", "Alice"),
            ("VIP, be kind", "transfer", "Alice"),
        ]
        await customer.wait_for("session.transferred", lambda e: e.get("agent"))
        # Bob's notes go on reaching the session's agents (now him), not alice who left.
        await alice.wait_for("session.transferred", lambda e: e.get("left"))
        heard_by_alice = len(alice.events["note.added"])
        assert (await bob.call("note.add", {"ticketId": ticket, "text": "Took over"}))["ok"]
        await bob.wait_for("note.added", lambda e: e["note"]["text"] == "Took over")
        assert len(alice.events["note.added"]) == heard_by_alice
        assert "VIP" not in json.dumps(customer.events) and not holds_note(customer.events)


async def test_a_nul_in_a_path_is_not_found(tmp_path: Path) -> None:
    """PostgreSQL text cannot hold NUL: every new route answers 404, never 500 (on both stores)."""
    async with running_server(tmp_path) as server:
        server.agents["ada"] = await add_agent(
            server.app[keys.store], "ada@tandem.test", "Ada", PASSWORD, "admin", []
        )
        token = await server.token("ada")
        site = server.site.id
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            for method, path in (
                ("GET", "/api/tickets/a%00b"),
                ("GET", "/api/tickets/a%00b/notes"),
                ("POST", "/api/tickets/a%00b/notes"),
                ("GET", "/api/tickets/a%00b/canned-replies"),
                ("POST", "/api/tickets/a%00b/files"),
                ("GET", "/api/sites/a%00b/canned-replies"),
                ("POST", "/api/sites/a%00b/canned-replies"),
                ("DELETE", f"/api/sites/{site}/canned-replies/a%00b"),
            ):
                async with http.request(
                    method, server.base_url + path, headers=headers, data=b'{"text": "x"}'
                ) as response:
                    assert response.status == 404, (method, path, await response.text())
