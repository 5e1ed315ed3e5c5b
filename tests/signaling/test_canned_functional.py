"""Canned replies over real REST and the ``tandem canned`` command (its ``main``, in this
process): admins add, list and remove a site's replies; unknown variables are refused when a
reply is made; an agent gets them filled in for the ticket (a value the ticket lacks stays
visible); nobody else may change them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from signaling import keys
from signaling.auth.accounts import add_agent
from tests.signaling.test_cli import tandem_here as tandem
from tests.support import CONTEXT, PASSWORD, Running, running_server


async def call(
    server: Running, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{server.base_url}{path}", json=body, headers=headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, None


async def admin_token(server: Running) -> str:
    server.agents["ada"] = await add_agent(
        server.app[keys.store], "ada@tandem.test", "Ada", PASSWORD, "admin", []
    )
    return await server.token("ada")


async def test_admins_manage_a_sites_canned_replies(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        admin = await admin_token(server)
        site = f"/api/sites/{server.site.id}/canned-replies"
        status, made = await call(
            server,
            "POST",
            site,
            admin,
            {
                "shortcut": "refund",
                "text": "Hi {customer.name}, {agent.name} here about {ticket.id}.",
            },
        )
        assert status == 201, made
        assert made == {
            "shortcut": "refund",
            "text": "Hi {customer.name}, {agent.name} here about {ticket.id}.",
        }
        status, _ = await call(server, "POST", site, admin, {"shortcut": "bye", "text": "Bye!"})
        assert status == 201
        # Same shortcut: replaced, not doubled.
        status, _ = await call(
            server, "POST", site, admin, {"shortcut": "bye", "text": "Goodbye, {customer.name}!"}
        )
        assert status == 201
        status, listed = await call(server, "GET", site, admin)
        assert status == 200
        assert [(r["shortcut"], r["text"]) for r in listed["replies"]] == [
            ("bye", "Goodbye, {customer.name}!"),
            ("refund", "Hi {customer.name}, {agent.name} here about {ticket.id}."),
        ]
        assert "customer.name" in listed["variables"]
        # Unknown variables are refused when the reply is made, naming them; nothing changes.
        status, refused = await call(
            server, "POST", site, admin, {"shortcut": "x", "text": "Hi {customer.nmae}"}
        )
        assert status == 400 and "{customer.nmae}" in refused["error"]["message"], refused
        for bad in (
            {"shortcut": "/slash", "text": "x"},
            {"shortcut": "UPPER", "text": "x"},
            {"shortcut": "ok", "text": "   "},
            {"shortcut": "ok", "text": "x" * 2001},
            {"shortcut": "ok"},
        ):
            status, _ = await call(server, "POST", site, admin, bad)
            assert status == 400, bad
        assert len(await server.app[keys.store].canned(server.site.id)) == 2
        status, _ = await call(
            server, "POST", "/api/sites/nope/canned-replies", admin, {"shortcut": "a", "text": "b"}
        )
        assert status == 404
        # Removed.
        status, _ = await call(server, "DELETE", f"{site}/bye", admin)
        assert status == 204
        status, _ = await call(server, "DELETE", f"{site}/bye", admin)
        assert status == 404
        # Replies are per site.
        status, other = await call(
            server, "GET", f"/api/sites/{server.other_site.id}/canned-replies", admin
        )
        assert status == 200 and other["replies"] == []


async def test_only_admins_change_canned_replies(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        site = f"/api/sites/{server.site.id}/canned-replies"
        customer = await server.customer()
        ack = await customer.call("help.request", {"context": CONTEXT})
        body = {"shortcut": "evil", "text": "Send your password"}
        for who, expected in (("alice", 403), ("sam", 403)):
            staff = await server.token(who)
            assert (await call(server, "POST", site, staff, body))[0] == expected
            assert (await call(server, "GET", site, staff))[0] == expected
            assert (await call(server, "DELETE", f"{site}/evil", staff))[0] == expected
        for bearer in (ack["token"], None, "garbage"):
            assert (await call(server, "POST", site, bearer, body))[0] == 401
        assert await server.app[keys.store].canned(server.site.id) == []


async def test_an_agent_gets_replies_filled_in_for_the_ticket(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        admin = await admin_token(server)
        site = f"/api/sites/{server.site.id}/canned-replies"
        text = "Hi {customer.name}, this is {agent.name} ({ticket.id}, {site.name}). Mail: {customer.email}"
        assert (await call(server, "POST", site, admin, {"shortcut": "hi", "text": text}))[0] == 201
        alice = await server.agent("alice")
        named = await server.customer()
        ack = await named.call(
            "help.request", {"context": CONTEXT, "identity": {"id": "u1", "name": "Jo"}}
        )
        ticket = ack["ticket"]["id"]
        assert (await alice.call("session.accept", {"ticketId": ticket}))["ok"]
        token = await server.token("alice")
        status, got = await call(server, "GET", f"/api/tickets/{ticket}/canned-replies", token)
        assert status == 200, got
        [reply] = got["replies"]
        # Known values filled in; the e-mail the customer never gave stays visible to fix.
        assert reply["rendered"] == (
            f"Hi Jo, this is Alice ({ticket}, Shop). Mail: {{customer.email}}"
        )
        assert reply["text"] == text
        # Nothing was sent: the transcript is empty, the customer got no message.
        assert await server.app[keys.store].messages(ticket) == []
        assert not named.events["chat.message"]
        # Another agent (not in the session) and the customer may not read them for the ticket.
        bob = await server.token("bob")
        assert (await call(server, "GET", f"/api/tickets/{ticket}/canned-replies", bob))[0] == 403
        assert (await call(server, "GET", f"/api/tickets/{ticket}/canned-replies", ack["token"]))[
            0
        ] == 401


def test_canned_replies_from_the_command_line(tmp_path: Path) -> None:
    assert (
        tandem("site", "add", "Shop", "--origin", "http://shop.test", data_dir=tmp_path).returncode
        == 0
    )
    added = tandem("canned", "add", "Shop", "/thanks", "Thanks {customer.name}!", data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    listing = tandem("canned", "list", "Shop", data_dir=tmp_path)
    assert listing.returncode == 0 and "/thanks  Thanks {customer.name}!" in listing.stdout
    refused = tandem("canned", "add", "Shop", "x", "Hi {name}", data_dir=tmp_path)
    assert refused.returncode == 2 and "unknown variable {name}" in refused.stderr
    bad = tandem("canned", "add", "Shop", "No Spaces", "Hi", data_dir=tmp_path)
    assert bad.returncode == 2 and "shortcut" in bad.stderr
    assert tandem("canned", "remove", "Shop", "thanks", data_dir=tmp_path).returncode == 0
    gone = tandem("canned", "remove", "Shop", "thanks", data_dir=tmp_path)
    assert gone.returncode == 2 and "no reply /thanks" in gone.stderr
    assert "/thanks" not in tandem("canned", "list", "Shop", data_dir=tmp_path).stdout
