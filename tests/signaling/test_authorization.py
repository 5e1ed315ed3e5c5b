"""Who may do what: every role against every kind of request, plus bad tokens."""

from __future__ import annotations

import time
from typing import Any

import pytest
import socketio

from signaling import auth, keys
from tests.support import CONTEXT, Client, Running


async def refused(server: Running, hello: dict[str, Any], origin: str | None) -> dict[str, Any]:
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        await client.connect(server.base_url, hello, origin=origin)
    await client.close()
    assert info.value is not None
    assert client.refusal is not None, "the server gave no reason"
    return dict(client.refusal)


def secret(server: Running) -> str:
    return server.app[keys.secret]


def expired_agent_token(server: Running) -> str:
    token, _ = auth.issue_agent_token(secret(server), server.agents["alice"].id, "agent", -10)
    return token


def forged_agent_token(server: Running) -> str:
    token, _ = auth.issue_agent_token("not-the-secret", server.agents["alice"].id, "admin", 600)
    return token


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("agent without token", "must carry a token"),
        ("agent forged token", "bad_signature"),
        ("agent expired token", "expired"),
        ("agent with customer token", "wrong_kind"),
        ("agent garbage token", "malformed"),
        ("agent foreign origin", "console's origin"),
        ("customer unknown site", "unknown site"),
        ("customer without site", "site key"),
        ("customer wrong origin", "not allowed"),
        ("customer no origin", "not allowed"),
        ("customer token of another site", "another site"),
        ("customer expired token", "expired"),
        ("customer forged token", "bad_signature"),
        ("old protocol version", "not supported"),
        ("no auth at all", "bad auth payload"),
    ],
)
async def test_handshake_refusals(server: Running, case: str, expect: str) -> None:
    s = secret(server)
    site = server.site.public_key
    customer_token = auth.issue_customer_token(s, server.site.id, "c1", "tk_x", 600)
    cases: dict[str, tuple[dict[str, Any], str | None]] = {
        "agent without token": ({"v": 1, "role": "agent"}, None),
        "agent forged token": (
            {"v": 1, "role": "agent", "token": forged_agent_token(server)},
            None,
        ),
        "agent expired token": (
            {"v": 1, "role": "agent", "token": expired_agent_token(server)},
            None,
        ),
        "agent with customer token": ({"v": 1, "role": "agent", "token": customer_token}, None),
        "agent garbage token": ({"v": 1, "role": "agent", "token": "v1.abc"}, None),
        "agent foreign origin": (
            {"v": 1, "role": "agent", "token": await server.token("alice")},
            "http://evil.test",
        ),
        "customer unknown site": ({"v": 1, "role": "customer", "site": "pk_nope"}, server.origin),
        "customer without site": ({"v": 1, "role": "customer"}, server.origin),
        "customer wrong origin": ({"v": 1, "role": "customer", "site": site}, "http://evil.test"),
        "customer no origin": ({"v": 1, "role": "customer", "site": site}, None),
        "customer token of another site": (
            {
                "v": 1,
                "role": "customer",
                "site": site,
                "token": auth.issue_customer_token(s, server.other_site.id, "c1", "tk_x", 600),
            },
            server.origin,
        ),
        "customer expired token": (
            {
                "v": 1,
                "role": "customer",
                "site": site,
                "token": auth.issue_customer_token(s, server.site.id, "c1", "tk_x", -5),
            },
            server.origin,
        ),
        "customer forged token": (
            {
                "v": 1,
                "role": "customer",
                "site": site,
                "token": auth.issue_customer_token("nope", server.site.id, "c1", "tk_x", 600),
            },
            server.origin,
        ),
        "old protocol version": ({"v": 0, "role": "customer", "site": site}, server.origin),
        "no auth at all": ({}, server.origin),
    }
    hello, origin = cases[case]
    result = await refused(server, hello, origin)
    assert expect in result["message"], result
    assert result["data"]["code"] in (
        "unauthorized",
        "forbidden",
        "malformed",
        "unsupported_version",
    )


async def _two_sessions(server: Running) -> dict[str, Any]:
    """Customer A in a session accepted by Alice; customer B queued; an anonymous customer."""
    alice = await server.agent("alice")
    a = await server.customer()
    ack_a = await a.call("help.request", {"context": CONTEXT})
    await alice.call("session.accept", {"ticketId": ack_a["ticket"]["id"]})
    b = await server.customer()
    ack_b = await b.call("help.request", {"context": CONTEXT})
    return {
        "alice": alice,
        "bob": await server.agent("bob"),
        "sam": await server.agent("sam"),
        "customer A": a,
        "customer B": b,
        "anonymous": await server.customer(),
        "A": ack_a["ticket"]["id"],
        "B": ack_b["ticket"]["id"],
    }


# (subject, event, payload with {A}/{B} placeholders, expected: "ok" or an error code)
MATRIX: list[tuple[str, str, dict[str, Any], str]] = [
    ("anonymous", "chat.send", {"clientMsgId": "x", "text": "hi"}, "unauthorized"),
    ("anonymous", "session.resume", {}, "unauthorized"),
    ("anonymous", "session.end", {}, "unauthorized"),
    ("anonymous", "context.update", {"context": {"url": "http://x"}}, "unauthorized"),
    ("anonymous", "queue.list", {}, "forbidden"),
    ("anonymous", "session.accept", {"ticketId": "{B}"}, "forbidden"),
    ("customer A", "session.resume", {}, "ok"),
    ("customer A", "session.resume", {"ticketId": "{B}"}, "forbidden"),
    ("customer A", "chat.send", {"ticketId": "{B}", "clientMsgId": "x", "text": "hi"}, "forbidden"),
    ("customer A", "chat.send", {"clientMsgId": "x", "text": "hi"}, "ok"),
    ("customer A", "session.end", {"ticketId": "{B}"}, "forbidden"),
    ("customer A", "queue.list", {}, "forbidden"),
    ("customer A", "session.accept", {"ticketId": "{B}"}, "forbidden"),
    ("customer A", "session.join", {"ticketId": "{B}"}, "forbidden"),
    ("customer B", "session.resume", {"ticketId": "{A}"}, "forbidden"),
    ("customer B", "chat.send", {"clientMsgId": "x", "text": "queued hello"}, "ok"),
    ("alice", "chat.send", {"ticketId": "{A}", "clientMsgId": "x", "text": "hi"}, "ok"),
    ("alice", "chat.send", {"ticketId": "{B}", "clientMsgId": "x", "text": "hi"}, "forbidden"),
    ("alice", "help.request", {"context": CONTEXT}, "forbidden"),
    ("alice", "session.join", {"ticketId": "{A}"}, "forbidden"),
    ("alice", "chat.send", {"clientMsgId": "x", "text": "hi"}, "malformed"),
    ("bob", "session.resume", {"ticketId": "{A}"}, "forbidden"),
    ("bob", "chat.send", {"ticketId": "{A}", "clientMsgId": "x", "text": "hi"}, "forbidden"),
    ("bob", "session.end", {"ticketId": "{A}"}, "forbidden"),
    ("bob", "session.accept", {"ticketId": "{A}"}, "already_taken"),
    ("bob", "session.accept", {"ticketId": "tk_missing"}, "not_found"),
    ("bob", "queue.list", {}, "ok"),
    ("sam", "session.resume", {"ticketId": "{A}"}, "ok"),
    ("sam", "session.join", {"ticketId": "{A}"}, "ok"),
    ("sam", "session.join", {"ticketId": "{B}"}, "invalid_state"),
    ("sam", "chat.send", {"ticketId": "{A}", "clientMsgId": "x", "text": "hi"}, "forbidden"),
]


@pytest.mark.parametrize(("subject", "event", "payload", "expected"), MATRIX)
async def test_event_matrix(
    server: Running, subject: str, event: str, payload: dict[str, Any], expected: str
) -> None:
    world = await _two_sessions(server)
    filled = {
        k: (v.format(A=world["A"], B=world["B"]) if isinstance(v, str) else v)
        for k, v in payload.items()
    }
    ack = await world[subject].call(event, filled)
    if expected == "ok":
        assert ack["ok"] is True, ack
    else:
        assert ack["ok"] is False and ack["error"]["code"] == expected, ack
    # A refused chat left no trace on either ticket.
    if expected != "ok" and event == "chat.send":
        token = await server.token("sam")
        for key in ("A", "B"):
            _, ticket = await server.get(f"/api/tickets/{world[key]}", token)
            assert ticket["transcript"] == []


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("none", 401),
        ("forged", 401),
        ("expired", 401),
        ("customer", 401),
        ("alice", 200),
        ("sam", 200),
    ],
)
async def test_rest_matrix(server: Running, who: str, status: int) -> None:
    tokens = {
        "none": None,
        "forged": forged_agent_token(server),
        "expired": expired_agent_token(server),
        "customer": auth.issue_customer_token(secret(server), server.site.id, "c", "tk", 600),
    }
    token = tokens[who] if who in tokens else await server.token(who)
    for path in ("/api/tickets", "/api/me"):
        got, body = await server.get(path, token)
        assert got == status, (path, body)
        if status == 401:
            assert body["error"]["code"] == "unauthorized"


async def test_rest_not_found_and_bad_filters(server: Running) -> None:
    token = await server.token("alice")
    assert (await server.get("/api/tickets/tk_nope", token))[0] == 404
    assert (await server.get("/api/tickets/tk_nope/attachments/at_x", token))[0] == 404
    assert (await server.get("/api/tickets?status=weird", token))[0] == 400
    assert (await server.get("/api/tickets?limit=lots", token))[0] == 400


async def test_login_errors(server: Running) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        url = f"{server.base_url}/api/auth/login"
        bad = await http.post(url, data="not json")
        assert bad.status == 400
        wrong = await http.post(url, json={"email": "alice@tandem.test", "password": "nope"})
        assert wrong.status == 401
        codes = []
        for _ in range(6):
            again = await http.post(url, json={"email": "alice@tandem.test", "password": "nope"})
            codes.append(again.status)
        assert 429 in codes
        # The e-mail is throttled, not the right password's owner forever: a correct login of
        # another agent still works.
        ok = await http.post(
            url, json={"email": "bob@tandem.test", "password": "correct horse battery"}
        )
        assert ok.status == 200
        refresh = await http.post(
            f"{server.base_url}/api/auth/refresh",
            headers={"Authorization": f"Bearer {(await ok.json())['token']}"},
        )
        assert refresh.status == 200 and (await refresh.json())["agent"]["name"] == "Bob"


async def test_login_tokens_live_fifteen_minutes(server: Running) -> None:
    claims = auth.read_agent_token(secret(server), await server.token("alice"))
    assert 14 * 60 < claims.expires_at - time.time() <= 15 * 60
