"""Attacks on the socket edge with hand-made frames (issue 8, findings 3, 4, 7 and 8).

Each test drives the real server over a websocket as an attacker would, bypassing the snippet.
"""

from __future__ import annotations

import asyncio
import json

from signaling import keys
from signaling.app import sio_key
from tests.security.raw import raw_socket
from tests.support import CONTEXT, Running


def customer_auth(server: Running) -> dict[str, object]:
    return {"v": 1, "role": "customer", "site": server.site.public_key}


async def test_client_sent_connect_is_refused_and_resets_nothing(server: Running) -> None:
    """Finding 3: a client-sent ``connect`` reached the connect handler with a forged environ,
    resetting the rate limit and re-authenticating the socket as another site's customer."""
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        forged_environ = {"HTTP_ORIGIN": "http://other.test"}
        forged_auth = {"v": 1, "role": "customer", "site": server.other_site.public_key}
        ack = await sock.call("connect", forged_environ, timeout=5)
        assert ack["ok"] is False and ack["error"]["code"] == "unknown_event"
        # Forge a reconnect every 30 events: the bucket must keep counting.
        codes = []
        for n in range(200):
            if n % 30 == 0:
                frame = (
                    "42" + str(sock.new_id()) + json.dumps(["connect", forged_environ, forged_auth])
                )
                await sock.send_raw(frame)
            ack_id = await sock.send_event("chat.typing", {"typing": True})
            codes.append(await sock.ack(ack_id))
        limited = sum(
            1 for ack in codes if not ack["ok"] and ack["error"]["code"] == "rate_limited"
        )
        assert limited > 100
        # Still this site's socket: a help request lands on the right site.
        await asyncio.sleep(2.2)  # let the bucket refill a little (20 events/s)
        state = await sock.call("help.request", {"context": CONTEXT})
        assert state["ok"] is True and state["ticket"]["site"] == server.site.name


async def test_client_sent_disconnect_does_not_mark_an_agent_offline(server: Running) -> None:
    token = await server.token("alice")
    async with raw_socket(server.base_url, {"v": 1, "role": "agent", "token": token}) as sock:
        ack = await sock.call("disconnect", "client namespace disconnect")
        assert ack["ok"] is False and ack["error"]["code"] == "unknown_event"
        assert server.agents["alice"].id in await server.app[keys.live].online_agents()


async def test_star_event_and_non_string_names_are_answered(server: Running) -> None:
    """Finding 8: an event literally named ``*`` got no ack and a traceback."""
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        ack = await sock.call("*", {"x": 1})
        assert ack["ok"] is False and ack["error"]["code"] == "unknown_event"
        ack_id = sock.new_id()
        await sock.send_raw(f"42{ack_id}" + json.dumps([42, {}]))
        ack = await sock.ack(ack_id)
        assert ack["ok"] is False


async def test_binary_payloads_are_refused_and_never_held(server: Running) -> None:
    """Findings 4 and 8: a binary placeholder followed by 120 frames of 1 MB was held in memory
    until the socket closed; a binary payload raised in the size check."""
    sio = server.app[sio_key]
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        ack_id = sock.new_id()
        placeholder = json.dumps(["chat.send", {"_placeholder": True, "num": 0}])
        # engine.io "4" (message), socket.io "5" (binary event), "200-" announces 200 binary attachments to follow.
        await sock.send_raw(f"45200-{ack_id}{placeholder}")
        ack = await sock.ack(ack_id)
        assert ack["ok"] is False and ack["error"]["code"] == "malformed"
        megabyte = b"\x00" * 999_000  # just under the 1 MB frame limit
        for _ in range(120):
            await sock.send_raw(megabyte)
        # Nothing of it is buffered, and the socket still works.
        assert sio._binary_packet == {}
        assert sum(1 for _ in sio._discarding) <= 1
        state = await sock.call("help.request", {"context": CONTEXT}, timeout=10)
        assert state["ok"] is True


async def test_binary_event_from_a_client_library_gets_an_error(server: Running) -> None:
    customer = await server.customer()
    ack = await customer.call("chat.send", b"\x89PNG\r\n")
    assert ack["ok"] is False and ack["error"]["code"] == "malformed"


async def test_deep_nesting_gets_an_error_not_a_traceback(server: Running) -> None:
    """Finding 8: 970+ levels of nesting raised RecursionError."""
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        for depth in (40, 980, 5000):
            nested = "[" * depth + "]" * depth
            ack_id = sock.new_id()
            frame = f'42{ack_id}["help.request",{{"context":{{"app":{{"x":{nested}}}}}}}]'
            await sock.send_raw(frame)
            ack = await sock.ack(ack_id)
            assert ack["ok"] is False and ack["error"]["code"] == "malformed", depth


async def test_values_json_cannot_write_back_are_refused_at_the_frame(server: Running) -> None:
    """``NaN``, ``Infinity`` and a lone surrogate used to decode (Python's ``json`` takes them)
    and then fail wherever the value was written out again: the frame is refused as malformed,
    nothing runs, and the socket goes on."""
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        for value in ("NaN", "-Infinity", '"\\ud800"', '"\\udc00 tail"'):
            ack_id = sock.new_id()
            frame = f'42{ack_id}["help.request",{{"context":{{"app":{{"x":{value}}}}}}}]'
            await sock.send_raw(frame)
            ack = await sock.ack(ack_id)
            assert ack["ok"] is False and ack["error"]["code"] == "malformed", value
            assert "not valid JSON" in ack["error"]["message"]
        ack_id = sock.new_id()
        await sock.send_raw(f'42{ack_id}["help.request",{json.dumps({"context": CONTEXT})}]')
        ack = await sock.ack(ack_id)
        assert ack["ok"] is True, ack


async def test_non_ascii_identity_signature_is_just_unverified(server: Running) -> None:
    """Finding 8: a non-ASCII ``signature`` raised TypeError in ``hmac.compare_digest``."""
    customer = await server.customer()
    identity = {"id": "u-1", "name": "Dana", "signature": "é" * 64}
    ack = await customer.call("help.request", {"context": CONTEXT, "identity": identity})
    assert ack["ok"] is True
    assert ack["ticket"]["customer"]["verified"] is False


async def test_cobrowse_batches_count_against_the_socket(server: Running) -> None:
    """Finding 7: ``cobrowse.events`` cost nothing against the per-socket bucket (2,000
    refused events in 1.8 s and no ``rate_limited``)."""
    customer = await server.customer()
    await customer.call("help.request", {"context": CONTEXT})
    acks = await asyncio.gather(
        *(customer.call("cobrowse.events", {"data": "[]"}) for _ in range(300))
    )
    codes = [ack["error"]["code"] for ack in acks if not ack["ok"]]
    assert "rate_limited" in codes


async def test_invalid_large_batches_are_throttled_before_parsing(server: Running) -> None:
    """Finding 7: 60 invalid batches of 650 KB were each parsed in full (4.2 s of CPU)."""
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    alice = await server.agent("alice")
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
    accept = {"v": 1, "recorder": "rrweb@2.0.0-alpha.20"}
    assert (await customer.call("cobrowse.accept", accept))["ok"]
    junk = json.dumps([{"type": 99, "data": "x" * 650_000, "timestamp": 1}])
    codes = []
    for _ in range(60):
        ack = await customer.call("cobrowse.events", {"data": junk}, timeout=10)
        codes.append("ok" if ack["ok"] else ack["error"]["code"])
    assert codes.count("rate_limited") >= 40, codes


async def test_unsupported_recorder_is_malformed_not_internal(server: Running) -> None:
    """Found by the fuzz: ``cobrowse.accept`` with a recorder other than rrweb 2 answered
    ``internal`` with a traceback in the log."""
    customer = await server.customer()
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    alice = await server.agent("alice")
    assert (await alice.call("session.accept", {"ticketId": ticket_id}))["ok"]
    for recorder in ("", "rrweb@1.1.3", "other@2"):
        ack = await customer.call("cobrowse.accept", {"v": 1, "recorder": recorder})
        assert ack["ok"] is False and ack["error"]["code"] == "malformed", recorder


async def test_an_unreadable_packet_closes_its_socket_only(server: Running) -> None:
    """A socket.io packet without a readable header is not answered: engine.io closes the socket
    (its CLOSE packet goes out, and its reader, which decodes messages in its own task since
    ADR 0004, does not wait on itself). Whatever the client sends next is not handled, and the
    connection is dropped; other sockets go on."""
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        await sock.send_raw("4hello")
        ack_id = await sock.send_event("help.request", {"context": CONTEXT})
        async with asyncio.timeout(5):
            while not sock.closed:
                await asyncio.sleep(0.02)
        assert ack_id not in sock.acks
    async with raw_socket(server.base_url, customer_auth(server), server.origin) as sock:
        ack = await sock.call("help.request", {"context": CONTEXT})
        assert ack["ok"] is True, ack
