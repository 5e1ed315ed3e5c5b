"""Helpers for the co-browse browser tests (``test_cobrowse*.py``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import socketio
from playwright.async_api import FrameLocator, Locator, Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

PRODUCT = "/demo/product.html?id=trail-runner-2"
OTHER_PRODUCT = "/demo/product.html?id=aurora-jacket"
CHECKOUT = "/demo/checkout.html"


async def sign_in(new_page: NewPage, server: Server, email: str | None = None) -> Page:
    page = await new_page()
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Email").fill(email or server.agent_email)
    await page.get_by_label("Password").fill(server.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


def widget(page: Page) -> Locator:
    """Tandem's shadow host (Playwright's CSS engine pierces its open shadow root)."""
    return page.locator("#tandem-widget")


async def ask_for_help(page: Page, text: str) -> None:
    await widget(page).locator(".launcher").click()
    panel = page.locator("#tandem-panel")
    await panel.get_by_label("Your question").fill(text)
    await panel.get_by_role("button", name="Start conversation").click()
    await expect(panel).to_contain_text("in line")


async def start_session(agent: Page, customer: Page, server: Server, url: str, text: str) -> str:
    """The customer asks for help on ``url``; the agent accepts. Returns the ticket id."""
    await customer.goto(f"{server.url}{url}")
    await customer.evaluate("Tandem('on', 'ticket', (t) => { window.__ticketId = t.ticketId; })")
    await ask_for_help(customer, text)
    ticket_id = str(await (await customer.wait_for_function("window.__ticketId")).json_value())
    item = agent.locator(f".q-item[data-ticket='{ticket_id}']")
    await item.get_by_role("button", name="Accept").click()
    await expect(agent).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))
    return ticket_id


def replay_page(agent: Page) -> FrameLocator:
    return agent.frame_locator("iframe.cb-frame")


def mirror(agent: Page) -> FrameLocator:
    """The customer's page as rebuilt in the agent's sandboxed replay iframe."""
    return replay_page(agent).frame_locator("#stage iframe")


async def share(agent: Page, customer: Page) -> None:
    """The agent asks to co-browse and the customer allows it."""
    await agent.get_by_role("button", name="Co-browse", exact=True).click()
    card = widget(customer).locator(".cb-card")
    await expect(card).to_contain_text("would like to see this page")
    await card.get_by_role("button", name="Allow").click()
    await expect(widget(customer).locator(".cb-bar")).to_contain_text(
        "An agent is viewing this page"
    )
    await expect(agent.locator(".cb-pill")).to_have_text("Live")


@asynccontextmanager
async def agent_socket(server: Server, email: str) -> AsyncIterator[socketio.AsyncClient]:
    """A second socket for an agent (to send what the console would never send)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/login", json={"email": email, "password": server.password}
        ) as res:
            token = (await res.json())["token"]
    client = socketio.AsyncClient()
    await client.connect(
        server.url, auth={"v": 1, "role": "agent", "token": token}, transports=["websocket"]
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def call(client: socketio.AsyncClient, event: str, payload: dict[str, Any]) -> Any:
    return await client.call(event, payload, timeout=10)


def find_node(node: dict[str, Any], **attrs: str) -> dict[str, Any] | None:
    """The first element of an rrweb serialized tree whose attributes include ``attrs``."""
    stack = [node]
    while stack:
        n = stack.pop()
        a = n.get("attributes") or {}
        if n.get("type") == 2 and all(a.get(k) == v for k, v in attrs.items()):
            return n
        stack.extend(reversed(n.get("childNodes") or []))
    return None


async def node_id(client: socketio.AsyncClient, ticket_id: str, **attrs: str) -> int:
    """The rrweb id of an element of the customer's current page (from the mirror's catch-up)."""
    for _ in range(50):
        view = await call(client, "cobrowse.join", {"ticketId": ticket_id})
        snapshots = [e for e in view.get("events", []) if e["type"] == 2]
        if snapshots:
            found = find_node(snapshots[-1]["data"]["node"], **attrs)
            if found is not None:
                return int(found["id"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no node with {attrs} in the customer's page")
