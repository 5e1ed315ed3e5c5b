"""Stateful fuzz (issue 8): random sequences of well-formed events from several customers, two
agents and two supervisors on the real server, as a Hypothesis state machine.

Where ``test_fuzz_events`` throws odd frames at one fixed session, this walks sessions through
their life in any order: ask for help, accept (two agents at once), join (two supervisors at
once), chat, share the page, ask for and grant control, call, end, reconnect, and do any of it
on a ticket that is someone else's or already over. After every step: every ack is a clean
``ok`` or a known refusal (never ``internal``), the server logged no error, and what the store
says holds together: a ticket's agents are distinct, the first is who accepted it, a closed
ticket never reopens, and every supervisor whose join was acknowledged is on the ticket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from signaling import keys
from signaling.auth.accounts import add_agent
from signaling.protocol import ErrorCode
from tests.security.background import NO_LIMITS, BackgroundServer, database
from tests.support import CONTEXT, PASSWORD, STORES, Client

ERROR_CODES = frozenset(get_args(ErrorCode)) - {"internal"}
SERVER_LOGGERS = ("tandem", "socketio", "engineio", "aiohttp", "asyncio")
RECORDER = "rrweb@2.0.0-alpha.20"
CUSTOMERS = ("ann", "ben")
AGENTS = ("alice", "bob")
SUPERVISORS = ("sam", "sue")
EVERYONE = CUSTOMERS + AGENTS + SUPERVISORS


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class World(BackgroundServer):
    """The server, a second supervisor, one sign-in per member of staff, and the error log."""

    def __init__(self, data_dir: Path, store: dict[str, Any]) -> None:
        super().__init__(data_dir, **NO_LIMITS, **store)
        self.errors = ErrorLog()
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        self.tokens: dict[str, str] = self.run(self._sign_in())

    async def _sign_in(self) -> dict[str, str]:
        store = self.server.app[keys.store]
        self.server.agents["sue"] = await add_agent(
            store, "sue@tandem.test", "Sue", PASSWORD, "supervisor"
        )
        return {name: await self.server.token(name) for name in AGENTS + SUPERVISORS}

    def stop(self) -> None:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)
        super().stop()


class DeskMachine(RuleBasedStateMachine):
    world: World
    tickets = Bundle("tickets")

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[str, Client] = {}
        self.customer_tokens: dict[str, str] = {}
        self.accepted_by: dict[str, str] = {}
        """ticket -> the agent whose accept was acknowledged."""
        self.joined: dict[str, set[str]] = {}
        """ticket -> supervisors whose join was acknowledged."""
        self.closed: set[str] = set()
        self.known: list[str] = []
        self.owner: dict[str, str] = {}
        """ticket -> the customer who asked."""

    # ------------------------------------------------------------------ plumbing

    def run(self, coro: Any) -> Any:
        return self.world.run(coro, timeout=30)

    async def _connect(self, who: str) -> Client:
        server = self.world.server
        client = Client()
        if who in CUSTOMERS:
            hello: dict[str, Any] = {"v": 1, "role": "customer", "site": server.site.public_key}
            if who in self.customer_tokens:
                hello["token"] = self.customer_tokens[who]
            await client.connect(server.base_url, hello, origin=server.origin)
        else:
            await client.connect(
                server.base_url, {"v": 1, "role": "agent", "token": self.world.tokens[who]}
            )
        return client

    async def _call(self, who: str, event: str, payload: dict[str, Any]) -> Any:
        client = self.clients[who]
        if not client.sio.connected:
            client = self.clients[who] = await self._connect(who)
        return await client.call(event, payload, timeout=5)

    def call(self, who: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        start = len(self.world.errors.records)
        ack = self.run(self._call(who, event, payload))
        self.check(ack, start, f"{who} {event} {payload}")
        return dict(ack)

    def check(self, ack: Any, start: int, what: str) -> None:
        logged = [self.world.errors.format(r) for r in self.world.errors.records[start:]]
        assert not logged, f"{what}: the server logged errors: {logged}"
        assert isinstance(ack, dict), f"{what}: ack {ack!r}"
        if ack.get("ok") is not True:
            assert ack.get("ok") is False and ack["error"]["code"] in ERROR_CODES, f"{what}: {ack}"

    def teardown(self) -> None:
        for client in self.clients.values():
            self.run(client.close())

    # ------------------------------------------------------------------ rules

    @initialize(target=tickets)
    def everyone_connects_and_customers_ask(self) -> Any:
        async def connect_all() -> dict[str, Client]:
            return {who: await self._connect(who) for who in EVERYONE}

        self.clients = self.run(connect_all())
        return multiple(*(self.ask_for_help(who) for who in CUSTOMERS))

    @rule(target=tickets, who=st.sampled_from(CUSTOMERS))
    def ask_for_help(self, who: str) -> Any:
        ack = self.call(who, "help.request", {"context": CONTEXT})
        if not ack["ok"]:
            return multiple()
        self.customer_tokens[who] = ack["token"]
        ticket_id = ack["ticket"]["id"]
        if ticket_id not in self.known:
            self.known.append(ticket_id)
        self.owner[ticket_id] = who
        return ticket_id

    @rule(ticket=tickets)
    def two_agents_accept_at_once(self, ticket: str) -> None:
        start = len(self.world.errors.records)

        async def both() -> list[Any]:
            return list(
                await asyncio.gather(
                    *(self._call(who, "session.accept", {"ticketId": ticket}) for who in AGENTS)
                )
            )

        acks = self.run(both())
        for ack in acks:
            self.check(ack, start, f"session.accept {ticket}")
        winners = [who for who, ack in zip(AGENTS, acks, strict=True) if ack["ok"]]
        assert len(winners) <= 1, acks
        if winners:
            assert ticket not in self.accepted_by and ticket not in self.closed, acks
            self.accepted_by[ticket] = winners[0]

    @rule(ticket=tickets)
    def two_supervisors_join_at_once(self, ticket: str) -> None:
        start = len(self.world.errors.records)

        async def both() -> list[Any]:
            return list(
                await asyncio.gather(
                    *(self._call(who, "session.join", {"ticketId": ticket}) for who in SUPERVISORS)
                )
            )

        acks = self.run(both())
        for who, ack in zip(SUPERVISORS, acks, strict=True):
            self.check(ack, start, f"{who} session.join {ticket}")
            if ack["ok"]:
                self.joined.setdefault(ticket, set()).add(who)

    @rule(ticket=tickets, grants=st.booleans(), ends_with=st.sampled_from(EVERYONE))
    def share_and_hand_over_control(self, ticket: str, grants: bool, ends_with: str) -> None:
        """The usual path, so the later steps of co-browse and control are reached often."""
        agent, customer = self.accepted_by.get(ticket), self.owner.get(ticket)
        if agent is None or customer is None:
            return
        self.call(agent, "cobrowse.request", {"ticketId": ticket})
        self.call(customer, "cobrowse.accept", {"v": 1, "recorder": RECORDER})
        self.call(agent, "control.request", {"ticketId": ticket})
        self.call(customer, "control.grant" if grants else "control.deny", {})
        self.act(agent, ticket)
        self.call(agent, "rtc.join", {"ticketId": ticket})
        self.call(customer, "rtc.join", {"ticketId": ticket})
        self.call(ends_with, "control.revoke", {"ticketId": ticket})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets, text=st.text(min_size=1, max_size=50))
    def chat(self, who: str, ticket: str, text: str) -> None:
        self.call(who, "chat.send", {"ticketId": ticket, "clientMsgId": "m1", "text": text + "."})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets, typing=st.booleans())
    def typing_notice(self, who: str, ticket: str, typing: bool) -> None:
        self.call(who, "chat.typing", {"ticketId": ticket, "typing": typing})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets)
    def resume(self, who: str, ticket: str) -> None:
        self.call(who, "session.resume", {"ticketId": ticket})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets)
    def end(self, who: str, ticket: str) -> None:
        if self.call(who, "session.end", {"ticketId": ticket})["ok"]:
            self.closed.add(ticket)

    @rule(who=st.sampled_from(AGENTS + SUPERVISORS), ticket=tickets)
    def ask_to_share(self, who: str, ticket: str) -> None:
        self.call(who, "cobrowse.request", {"ticketId": ticket})

    @rule(who=st.sampled_from(CUSTOMERS), agrees=st.booleans())
    def answer_share(self, who: str, agrees: bool) -> None:
        if agrees:
            self.call(who, "cobrowse.accept", {"v": 1, "recorder": RECORDER})
        else:
            self.call(who, "cobrowse.decline", {})

    @rule(who=st.sampled_from(CUSTOMERS))
    def stop_sharing(self, who: str) -> None:
        self.call(who, "cobrowse.stop", {})

    @rule(who=st.sampled_from(AGENTS + SUPERVISORS), ticket=tickets)
    def ask_for_control(self, who: str, ticket: str) -> None:
        self.call(who, "control.request", {"ticketId": ticket})

    @rule(who=st.sampled_from(CUSTOMERS), grants=st.booleans())
    def answer_control(self, who: str, grants: bool) -> None:
        self.call(who, "control.grant" if grants else "control.deny", {})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets)
    def revoke_control(self, who: str, ticket: str) -> None:
        self.call(who, "control.revoke", {"ticketId": ticket})

    @rule(who=st.sampled_from(AGENTS + SUPERVISORS), ticket=tickets)
    def act(self, who: str, ticket: str) -> None:
        action = {"type": "click", "targetId": 1, "x": 1, "y": 1}
        self.call(who, "control.action", {"ticketId": ticket, "action": action})

    @rule(who=st.sampled_from(EVERYONE), ticket=tickets, joins=st.booleans())
    def call_in_or_out(self, who: str, ticket: str, joins: bool) -> None:
        self.call(who, "rtc.join" if joins else "rtc.leave", {"ticketId": ticket})

    @rule(who=st.sampled_from(AGENTS + SUPERVISORS), ticket=tickets)
    def ask_for_a_photo(self, who: str, ticket: str) -> None:
        self.call(who, "upload.request", {"ticketId": ticket, "note": "the label, please"})

    @rule(who=st.sampled_from(AGENTS + SUPERVISORS))
    def look_at_the_queue(self, who: str) -> None:
        self.call(who, "queue.list", {})
        self.call(who, "session.list", {})

    @rule(who=st.sampled_from(EVERYONE))
    def reconnect(self, who: str) -> None:
        async def again() -> None:
            await self.clients[who].close()
            self.clients[who] = await self._connect(who)

        self.run(again())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def tickets_hold_together(self) -> None:
        if not self.known:
            return
        token = self.world.tokens["sam"]
        for ticket_id in self.known:
            status, ticket = self.run(self.world.server.get(f"/api/tickets/{ticket_id}", token))
            assert status == 200, (status, ticket)
            ids = [a["id"] for a in ticket["agents"]]
            assert len(ids) == len(set(ids)), ticket["agents"]
            agents = self.world.server.agents
            if ticket_id in self.accepted_by:
                assert ids and ids[0] == agents[self.accepted_by[ticket_id]].id, ticket["agents"]
            for who in self.joined.get(ticket_id, ()):
                assert agents[who].id in ids, (who, ticket["agents"])
            if ticket_id in self.closed:
                assert ticket["status"] == "closed", ticket["status"]


@pytest.fixture(scope="module", params=STORES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with database(request.param) as store:
        started = World(tmp_path_factory.mktemp("sessions"), store)
        try:
            yield started
        finally:
            started.stop()


def test_sessions_in_any_order_stay_consistent(world: World) -> None:
    DeskMachine.world = world
    run_state_machine_as_test(
        DeskMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
