"""Capacity weights over real sockets: a session in which the agent is in the call, or holds
remote control of the customer's page, counts more than a chat (``--call-weight``,
``--control-weight``). At capacity because of it, the agent is Busy and offered nothing; when
the call or the control ends, they are Available and offered again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from signaling import keys
from signaling.settings import Settings
from tests.signaling.test_calls_functional import peer
from tests.signaling.test_cli import tandem_here
from tests.signaling.test_cobrowse_functional import RECORDER
from tests.signaling.test_offers_functional import ask, offers_of, settled
from tests.support import CONTEXT, Client, Running, running_server


async def accepted_session(server: Running, agent: Client) -> tuple[str, Client]:
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    assert ack["ok"], ack
    ticket = str(ack["ticket"]["id"])
    await agent.wait_for("session.offered", lambda o: o["ticketId"] == ticket)
    assert (await agent.call("session.accept", {"ticketId": ticket}))["ok"]
    return ticket, customer


async def weighed(server: Running, agent: str) -> float:
    router = server.app[keys.desk].router
    assert router is not None
    return (await router.load_of(server.agents[agent].id)).load


async def test_an_agent_in_a_call_is_at_capacity_until_the_call_ends(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, agent_capacity=2, wrap_up_seconds=0, media_host_addresses=("127.0.0.1",)
    ) as server:
        alice = await server.agent("alice")
        ticket, _customer = await accepted_session(server, alice)
        assert await weighed(server, "alice") == 1  # one chat of two: still Available
        listed = (await alice.call("agent.list", {}))["agents"]
        assert [(a["agent"]["name"], a["status"], a["load"]) for a in listed] == [
            ("Alice", "available", 1)
        ]
        # Alice joins the call: the session now counts 2 (the default call weight).
        assert (await alice.call("rtc.join", {"ticketId": ticket}))["ok"]
        viewer = peer(alice, ticket, "agent")
        viewer.pc.addTransceiver("audio", direction="recvonly")
        try:
            await viewer.negotiate()
            await alice.wait_for("agent.status", lambda s: s["status"] == "busy")
            assert await weighed(server, "alice") == 2
            listed = (await alice.call("agent.list", {}))["agents"]
            assert [(a["status"], a["load"], a["capacity"]) for a in listed] == [("busy", 2, 2)]
            waiting = await ask(server)
            await settled(server, alice)
            assert offers_of(alice, waiting) == []
            refused = await alice.call("session.accept", {"ticketId": waiting})
            assert refused["error"]["code"] == "invalid_state"
            assert "capacity" in refused["error"]["message"]
            # The call ends: one chat again, Available, and the waiting session rings.
            assert (await alice.call("rtc.leave", {"ticketId": ticket}))["ok"]
            await alice.wait_for("session.offered", lambda o: o["ticketId"] == waiting)
            assert await weighed(server, "alice") == 1
            assert (await alice.call("session.accept", {"ticketId": waiting}))["ok"]
        finally:
            await viewer.close()


async def test_control_counts_heavier_until_revoked(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, agent_capacity=3, control_weight=3, wrap_up_seconds=0
    ) as server:
        alice = await server.agent("alice")
        ticket, customer = await accepted_session(server, alice)
        assert (await alice.call("cobrowse.request", {"ticketId": ticket}))["ok"]
        await customer.wait_for("cobrowse.requested")
        assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
        assert (await alice.call("control.request", {"ticketId": ticket}))["ok"]
        await customer.wait_for("control.state", lambda e: e["state"] == "requested")
        assert await weighed(server, "alice") == 1  # asked, not granted: still a chat
        assert (await customer.call("control.grant", {}))["ok"]
        await alice.wait_for("control.state", lambda e: e["state"] == "granted")
        await alice.wait_for("agent.status", lambda s: s["status"] == "busy")
        assert await weighed(server, "alice") == 3
        waiting = await ask(server)
        await settled(server, alice)
        assert offers_of(alice, waiting) == []
        assert (await customer.call("control.revoke", {}))["ok"]
        await alice.wait_for("session.offered", lambda o: o["ticketId"] == waiting)
        assert await weighed(server, "alice") == 1


async def test_an_ended_session_leaves_no_load_behind(tmp_path: Path) -> None:
    """The session's load entries go with it, and so does a transfer still pending."""
    async with running_server(
        tmp_path, agent_capacity=2, wrap_up_seconds=0, media_host_addresses=("127.0.0.1",)
    ) as server:
        alice, _bob = await server.agent("alice"), await server.agent("bob")
        ticket = await ask(server)  # offered to one of them; Alice takes it by hand
        assert (await alice.call("session.accept", {"ticketId": ticket}))["ok"]
        assert (await alice.call("rtc.join", {"ticketId": ticket}))["ok"]
        viewer = peer(alice, ticket, "agent")
        viewer.pc.addTransceiver("audio", direction="recvonly")
        try:
            await viewer.negotiate()
            assert await weighed(server, "alice") == 2
            bob_id = server.agents["bob"].id
            sent = await alice.call(
                "session.transfer",
                {"ticketId": ticket, "to": {"agentId": bob_id}, "mode": "warm", "note": "n"},
            )
            assert sent["ok"], sent
            assert (await alice.call("session.end", {"ticketId": ticket}))["ok"]
            live = server.app[keys.desk].live
            alice_id = server.agents["alice"].id
            left = await live.routing_of(
                [
                    f"transfer:{ticket}",
                    f"load:{ticket}:{alice_id}:call",
                    f"load:{ticket}:{alice_id}:control",
                ]
            )
            assert left == {}
        finally:
            await viewer.close()


def test_weights_are_flags_and_variables_and_bad_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling.cli import build_parser, settings_from

    defaults = settings_from(build_parser().parse_args(["serve"]))
    assert (defaults.call_weight, defaults.control_weight) == (2.0, 2.0)
    flags = ["serve", "--call-weight", "1.5", "--control-weight", "3"]
    settings = settings_from(build_parser().parse_args(flags))
    assert (settings.call_weight, settings.control_weight) == (1.5, 3.0)
    assert Settings(call_weight=0.5).refusals()
    assert Settings(control_weight=float("nan")).refusals()
    assert not Settings(call_weight=1, control_weight=4).refusals()

    def serve(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
        # ``tandem serve`` in this process: refused before it starts anything.
        with monkeypatch.context() as patched:
            for name, value in variables.items():
                patched.setenv(name, value)
            return tandem_here("serve", *args, data_dir=tmp_path)

    low = serve("--call-weight", "0")
    assert low.returncode == 2 and "TANDEM_CALL_WEIGHT must be" in low.stderr, low.stderr
    bad = serve(TANDEM_CONTROL_WEIGHT="heavy")
    assert bad.returncode == 2 and "--control-weight" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
