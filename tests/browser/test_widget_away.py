"""The widget when no agent can serve: it says why and offers to leave a message and an e-mail
address; the ticket is created, holds both, and waits for an agent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect

from signaling import keys
from signaling.routing import site_config

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

PRODUCT = "/demo/product.html?id=trail-runner-2"


async def test_outside_hours_the_widget_takes_a_message_and_an_address(
    new_page: NewPage, server: Server
) -> None:
    store = server.app[keys.store]
    site = await store.site_by_key("pk_demo")
    assert site is not None
    # Open only on a day that is not today: closed now, whatever the time.
    other_day = site_config.DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]
    hours = site_config.parse_hours("UTC", [f"{other_day} 00:00-24:00"])
    await store.set_site_settings(site.id, site_config.with_hours(site.settings, hours))
    try:
        page = await new_page()
        await page.goto(f"{server.url}{PRODUCT}")
        await page.locator("#tandem-widget .launcher").click()
        panel = page.locator("#tandem-panel")
        await panel.get_by_label("Your question").fill("Do you ship to Norway?")
        await panel.get_by_role("button", name="Start conversation").click()
        await expect(panel).to_contain_text("We're closed right now")
        await expect(panel).not_to_contain_text("We'll be with you shortly")
        await panel.get_by_label("Leave us a message").fill("Please answer by mail.")
        await panel.get_by_label("Your e-mail address, for our reply").fill("nora@example.com")
        await panel.get_by_role("button", name="Leave message").click()
        await expect(panel).to_contain_text("Thanks, we have your message")
        await expect(panel.locator(".msg.mine .meta").last).not_to_have_text("Sending…")

        waiting = await store.tickets(status="queued", limit=1000)
        tickets = [t for t in waiting if t.context.get("replyTo") == "nora@example.com"]
        assert len(tickets) == 1  # waiting for an agent, with the address in its context
        ticket_id = tickets[0].id
        texts = [m.text for m in await store.messages(ticket_id, 0)]
        assert texts == ["Do you ship to Norway?", "Please answer by mail."]

        # A reload comes back to the same waiting ticket, still saying so.
        await page.reload()
        await expect(panel.locator(".msg.mine")).to_have_count(2)
        if not await panel.is_visible():  # the widget reopens as it was left
            await page.locator("#tandem-widget .launcher").click()
        await expect(panel).to_be_visible()
        await expect(panel).to_contain_text("Thanks, we have your message")
        await expect(panel.locator(".msg.mine")).to_have_count(2)
        await panel.get_by_role("button", name="End chat").click()
        await expect(panel).to_contain_text("Conversation ended")
    finally:
        await store.set_site_settings(site.id, site_config.with_hours(site.settings, None))
