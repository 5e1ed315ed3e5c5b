"""One registry of client events: each model declares who may send it; handlers are found by
name per role, and a mismatch refuses to start."""

from __future__ import annotations

import pytest

from signaling.edge import handlers
from signaling.protocol import CLIENT_EVENTS, ClientEvent, HelpRequest
from tests.support import Running


def test_every_client_event_declares_its_senders() -> None:
    for name, model in CLIENT_EVENTS.items():
        assert issubclass(model, ClientEvent)
        assert model.senders, name
        assert model.senders <= {"customer", "agent"}, name


def test_each_role_has_a_handler_for_exactly_its_events(server: Running) -> None:
    from signaling.app import socket_api_key

    table = server.app[socket_api_key].routes
    for name, model in CLIENT_EVENTS.items():
        for role in ("customer", "agent"):
            assert (name in table[role]) == (role in model.senders), (name, role)


def test_a_handler_without_a_declared_sender_refuses_to_start(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling.app import socket_api_key

    api = server.app[socket_api_key]
    hubs = handlers.Hubs(desk=api.desk, cobrowse=api.cobrowse, calls=api.calls, sio=api.sio)
    monkeypatch.setattr(HelpRequest, "senders", frozenset({"agent"}))
    with pytest.raises(TypeError, match=r"help\.request|on_help_request"):
        handlers.routes(hubs)


async def test_an_event_of_another_role_is_forbidden(server: Running) -> None:
    customer = await server.customer()
    ack = await customer.call("session.accept", {"ticketId": "tk_x"})
    assert ack["error"]["code"] == "forbidden" and "customers" in ack["error"]["message"]
    agent = await server.agent("alice")
    ack = await agent.call("help.request", {"context": {"url": "http://x"}})
    assert ack["error"]["code"] == "forbidden"
