"""The snippet keeps its place in a session's numbered events (docs/protocol.md, "Sequence
numbers"), in headless Chromium against the real server: a lost event is noticed by the hole in
the numbers and fetched, and a dropped socket resumes from where it was, with nothing shown twice
and nothing out of order. The customer's websocket runs through Playwright's websocket route, which
drops one server message or keeps the socket down; the agent is a real socket.io client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Page, WebSocketRoute, expect

from signaling.auth.accounts import DEMO_SITE_KEY
from tests.support import Client

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)  # two shared cores: be patient, never assert timings

PRODUCT = "/demo/product.html?id=trail-runner-2"


def socketio_event(frame: str | bytes) -> tuple[str, Any] | None:
    """A socket.io event frame (``42["name", payload]``, or ``42<ack id>[...]``) as
    (name, payload); None for any other frame."""
    if isinstance(frame, bytes) or not frame.startswith("42"):
        return None
    decoded = json.loads(frame[2:].lstrip("0123456789"))
    return decoded[0], decoded[1] if len(decoded) > 1 else None


@dataclass
class Wire:
    """The customer page's socket.io websocket, through the test: it can drop chosen server
    events, refuse connections (the network is down) and records what the page sends."""

    drop: list[str] = field(default_factory=list)
    """Chat texts whose ``chat.message`` is dropped once (lost on the way)."""
    down: bool = False
    sockets: list[WebSocketRoute] = field(default_factory=list)
    sent: list[tuple[str, Any]] = field(default_factory=list)

    async def attach(self, page: Page) -> None:
        await page.route_web_socket("**/socket.io/**", self._route)

    async def _route(self, ws: WebSocketRoute) -> None:
        if self.down:
            await ws.close()
            return
        self.sockets.append(ws)
        server = ws.connect_to_server()

        def from_page(frame: str | bytes) -> None:
            event = socketio_event(frame)
            if event is not None:
                self.sent.append(event)
            server.send(frame)

        def from_server(frame: str | bytes) -> None:
            event = socketio_event(frame)
            if event and event[0] == "chat.message" and event[1]["message"]["text"] in self.drop:
                self.drop.remove(event[1]["message"]["text"])
                return
            ws.send(frame)

        ws.on_message(from_page)
        server.on_message(from_server)

    async def cut(self) -> None:
        """The network goes: open sockets close, new ones are refused until ``restore``."""
        self.down = True
        for ws in self.sockets:
            await ws.close()
        self.sockets.clear()

    def restore(self) -> None:
        self.down = False


@pytest_asyncio.fixture(loop_scope="module")
async def agent(server: Server) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.url}/api/auth/login",
            json={"email": server.agent_email, "password": server.password},
        )
        token = (await response.json())["token"]
    client = Client()
    await client.connect(server.url, {"v": 1, "role": "agent", "token": token})
    yield client
    await client.close()


async def start_session(page: Page, agent: Client, question: str) -> str:
    await page.locator("#tandem-widget .launcher").click()
    panel = page.locator("#tandem-panel")
    await panel.get_by_label("Your question").fill(question)
    await panel.get_by_role("button", name="Start conversation").click()
    await expect(panel).to_contain_text("in line")
    added = await agent.wait_for(
        "queue.added", lambda e: e["entry"]["ticketId"] not in agent.events["accepted"]
    )
    ticket_id = str(added["entry"]["ticketId"])
    agent.events["accepted"].append(ticket_id)
    state = await agent.call("session.accept", {"ticketId": ticket_id})
    assert state["ok"]
    await expect(panel).to_contain_text("joined the conversation")
    await expect(panel.locator(".msg.mine")).to_contain_text(question)
    return ticket_id


async def say(agent: Client, ticket_id: str, text: str) -> None:
    ack = await agent.call(
        "chat.send",
        {"ticketId": ticket_id, "clientMsgId": "a-" + text.replace(" ", "-"), "text": text},
    )
    assert ack["ok"], ack


async def test_a_lost_event_is_fetched_and_shown_in_order(
    new_page: NewPage, server: Server, agent: Client
) -> None:
    page = await new_page()
    wire = Wire()
    await wire.attach(page)
    await page.goto(f"{server.url}{PRODUCT}")
    ticket_id = await start_session(page, agent, "Is this waterproof?")

    wire.drop.append("two")  # lost between the server and the page
    for text in ("one", "two", "three"):
        await say(agent, ticket_id, text)
    theirs = page.locator("#tandem-panel .msg.theirs .bubble")
    await expect(theirs).to_have_text(["one", "two", "three"])
    # The hole was noticed: the page resumed from the number before it.
    resumes = [payload for name, payload in wire.sent if name == "session.resume"]
    assert any(r.get("afterSeq") is not None for r in resumes), resumes
    await say(agent, ticket_id, "four")
    await expect(theirs).to_have_text(["one", "two", "three", "four"])


async def test_a_dropped_socket_resumes_without_duplicates(
    new_page: NewPage, server: Server, agent: Client
) -> None:
    page = await new_page()
    wire = Wire()
    await wire.attach(page)
    await page.goto(f"{server.url}{PRODUCT}")
    ticket_id = await start_session(page, agent, "Do you ship to Norway?")
    await say(agent, ticket_id, "before")
    theirs = page.locator("#tandem-panel .msg.theirs .bubble")
    await expect(theirs).to_have_text(["before"])

    await wire.cut()
    await expect(page.locator("#tandem-panel")).to_contain_text("Reconnecting")
    for text in ("while away 1", "while away 2", "while away 3"):
        await say(agent, ticket_id, text)
    wire.restore()

    await expect(theirs).to_have_text(["before", "while away 1", "while away 2", "while away 3"])
    resumes = [payload for name, payload in wire.sent if name == "session.resume"]
    assert resumes and resumes[-1].get("afterSeq") is not None, resumes
    await say(agent, ticket_id, "after")
    await expect(theirs).to_have_text(
        ["before", "while away 1", "while away 2", "while away 3", "after"]
    )
    await expect(page.locator("#tandem-panel .msg.mine")).to_have_count(1)


async def test_the_console_resumes_its_session_after_a_dropped_socket(
    new_page: NewPage, server: Server
) -> None:
    console = await new_page()
    wire = Wire()
    await wire.attach(console)
    await console.goto(f"{server.url}/console/")
    await console.get_by_label("Email").fill(server.agent_email)
    await console.get_by_label("Password").fill(server.password)
    await console.get_by_role("button", name="Sign in").click()
    await expect(console.locator(".conn")).to_have_text("Online")

    customer = Client()
    await customer.connect(
        server.url, {"v": 1, "role": "customer", "site": DEMO_SITE_KEY}, origin=server.url
    )
    try:
        asked = await customer.call(
            "help.request", {"context": {"url": f"{server.url}/", "title": "Console resume"}}
        )
        assert asked["ok"], asked
        item = console.locator(".q-item", has_text="Console resume")
        await item.get_by_role("button", name="Accept").click()
        transcript = console.locator(".transcript")
        await customer.wait_for("session.accepted")
        await customer.call("chat.send", {"clientMsgId": "c0", "text": "first line"})
        await expect(transcript).to_contain_text("first line")

        await wire.cut()
        await expect(console.locator(".conn")).not_to_have_text("Online")
        for n in range(1, 4):
            await customer.call("chat.send", {"clientMsgId": f"c{n}", "text": f"away line {n}"})
        wire.restore()

        await expect(console.locator(".conn")).to_have_text("Online")
        lines = transcript.get_by_text(re.compile(r"^(first line|away line \d)$"))
        await expect(lines).to_have_text(
            ["first line", "away line 1", "away line 2", "away line 3"]
        )
        resumes = [p for name, p in wire.sent if name == "session.resume"]
        assert resumes and resumes[-1].get("afterSeq") is not None, resumes
        await customer.call("chat.send", {"clientMsgId": "c4", "text": "away line 4"})
        await expect(lines).to_have_text(
            ["first line", "away line 1", "away line 2", "away line 3", "away line 4"]
        )
    finally:
        await customer.close()
