"""The snippet, the agent console and the demo shop in headless Chromium against the real server."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Locator, Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)  # two shared cores: be patient, never assert timings

PRODUCT = "/demo/product.html?id=trail-runner-2"
PHONE = {"width": 390, "height": 844}
# A 2x2 PNG, filed as an attachment to check the console shows images through blob: URLs.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


async def sign_in(new_page: NewPage, server: Server) -> Page:
    page = await new_page()
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Email").fill(server.agent_email)
    await page.get_by_label("Password").fill(server.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Queue", exact=True)).to_be_visible()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


def launcher(page: Page) -> Locator:
    return page.locator("#tandem-widget .launcher")


def panel(page: Page) -> Locator:
    return page.locator("#tandem-panel")


async def ask_for_help(page: Page, first_message: str) -> None:
    await launcher(page).click()
    await expect(panel(page).get_by_role("heading", name="How can we help?")).to_be_visible()
    await panel(page).get_by_label("Your question").fill(first_message)
    await panel(page).get_by_role("button", name="Start conversation").click()


async def test_customer_and_agent_full_session(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    await agent.screenshot(path=screenshots / "console-queue-empty.png")

    customer = await new_page()
    await customer.goto(f"{server.url}{PRODUCT}")
    await customer.locator("label.swatch[title=Ember]").click()
    await expect(customer.locator("#stock")).to_have_text("Only 3 left")
    await ask_for_help(customer, "Do these run small?")
    await expect(panel(customer)).to_contain_text("in line")
    await expect(panel(customer).locator(".msg.mine")).to_contain_text("Do these run small?")
    await expect(panel(customer).locator(".msg.mine .meta")).not_to_have_text("Sending…")
    await customer.screenshot(path=screenshots / "widget-desktop-queued.png")

    # The request arrives live in the queue, with the product on screen.
    item = agent.locator(".q-item", has_text="Trail Runner 2")
    await expect(item).to_be_visible()
    await expect(item.locator(".chip.accent")).to_contain_text("Trail Runner 2 · Ember")
    await expect(item.locator(".q-device")).to_contain_text("Chrome")
    await expect(item.locator(".q-wait")).to_have_text(re.compile(r"\d+:\d\d"))
    await agent.screenshot(path=screenshots / "console-queue.png")
    await item.get_by_role("button", name="Accept").click()

    await expect(agent).to_have_url(re.compile(r"/console/sessions/tk_"))
    ticket_id = agent.url.rsplit("/", 1)[1]
    await expect(agent.locator(".transcript")).to_contain_text("Do these run small?")
    details = agent.locator(".details")
    await expect(details).to_contain_text("Trail Runner 2")
    await expect(details).to_contain_text("Ember")
    await expect(details).to_contain_text("Accepted".lower(), ignore_case=True)

    await expect(panel(customer).locator(".title")).to_have_text("Alex Agent")
    await expect(panel(customer)).to_contain_text("Alex Agent joined the conversation")

    # Chat both ways, with typing indicators.
    reply = agent.get_by_label("Reply")
    await reply.press_sequentially("They run true")
    await expect(panel(customer).locator(".typing")).to_contain_text("Alex Agent is typing")
    await reply.press_sequentially(" to size.")
    await reply.press("Enter")
    await expect(panel(customer).locator(".msg.theirs")).to_contain_text("They run true to size.")
    await expect(panel(customer).locator(".typing")).to_be_hidden()

    message = panel(customer).get_by_role("textbox", name="Message")
    await message.press_sequentially("Great, and the Aurora Jacket?")
    await expect(agent.locator(".typing")).to_contain_text("is typing")
    await message.press("Enter")
    await expect(agent.locator(".transcript")).to_contain_text("Great, and the Aurora Jacket?")
    await expect(panel(customer).locator(".msg.mine").last).not_to_contain_text("Sending")
    await customer.screenshot(path=screenshots / "widget-desktop-chat.png")

    # A real page load: the widget reopens with the history and the agent sees the new page.
    await customer.goto(f"{server.url}/demo/product.html?id=aurora-jacket")
    await expect(panel(customer)).to_be_visible()
    await expect(panel(customer).locator(".log")).to_contain_text("They run true to size.")
    await expect(details).to_contain_text("Aurora Jacket")
    await customer.reload()
    await expect(panel(customer).locator(".log")).to_contain_text("Do these run small?")
    await expect(panel(customer).locator(".log")).to_contain_text("They run true to size.")
    await expect(panel(customer).locator(".msg")).to_have_count(3)

    # A screenshot filed during the session shows up in the console (fetched with the token).
    await server.desk.file_attachment(ticket_id, "screenshot", "image/png", PNG, {})
    thumb = agent.locator(".attachments img.thumb")
    await expect(thumb).to_have_attribute("src", re.compile(r"^blob:"))
    await agent.screenshot(path=screenshots / "console-session.png")

    await agent.get_by_role("button", name="End session").click()
    await expect(panel(customer)).to_contain_text("Conversation ended")
    await expect(
        panel(customer).get_by_role("button", name="Start a new conversation")
    ).to_be_visible()
    await expect(agent.locator(".ended-bar")).to_contain_text("Session ended by an agent")
    await customer.screenshot(path=screenshots / "widget-desktop-ended.png")

    # The ticket page: transcript, context, timeline and the attachment.
    await agent.get_by_role("link", name="Ticket", exact=True).click()
    await expect(agent).to_have_url(re.compile(rf"/console/tickets/{ticket_id}$"))
    page = agent.locator("main")
    await expect(page.locator(".pill.closed")).to_be_visible()
    await expect(page.locator(".transcript")).to_contain_text("Do these run small?")
    await expect(page.locator(".transcript")).to_contain_text("They run true to size.")
    await expect(page.locator(".transcript")).to_contain_text("Great, and the Aurora Jacket?")
    await expect(page.locator(".details")).to_contain_text("Aurora Jacket")
    await expect(page.locator(".details")).to_contain_text("Chrome")
    await expect(page.locator(".timeline")).to_contain_text("Alex Agent accepted")
    await expect(page.locator(".timeline")).to_contain_text("Alex Agent ended the conversation")
    await expect(page.locator(".attachments img.thumb")).to_have_attribute(
        "src", re.compile(r"^blob:")
    )
    await agent.screenshot(path=screenshots / "console-ticket.png", full_page=True)

    # Search finds it; a new conversation links the old ticket.
    await agent.get_by_role("navigation").get_by_role("link", name="Tickets").click()
    await agent.get_by_label("Search tickets").fill("Aurora")
    await expect(agent.locator(f"tr[data-ticket='{ticket_id}']")).to_be_visible()
    await agent.screenshot(path=screenshots / "console-tickets.png")

    await panel(customer).get_by_role("button", name="Start a new conversation").click()
    await panel(customer).get_by_role("button", name="Start conversation").click()
    await expect(panel(customer)).to_contain_text("in line")
    await agent.get_by_role("navigation").get_by_role("link", name="Queue").click()
    returning = agent.locator(".q-item", has_text="Returning")
    await expect(returning).to_be_visible()
    await panel(customer).get_by_role("button", name="End chat").click()
    await expect(panel(customer)).to_contain_text("Conversation ended")
    await expect(returning).to_have_count(0)


async def test_calls_queued_before_the_script_loaded(new_page: NewPage, server: Server) -> None:
    page = await new_page()
    # Runs before any page script: the documented stub, then calls made before tandem.js loads.
    await page.add_init_script(
        """
        window.Tandem = window.Tandem || function () { (Tandem.q = Tandem.q || []).push(arguments) };
        window.seen = [];
        Tandem("identify", { id: "u_77", name: "Quinn Queued", email: "quinn@example.com" });
        Tandem("setContext", { plan: "pro" });
        Tandem("on", "ready", () => seen.push("ready"));
        Tandem("on", "ticket", (t) => seen.push("ticket:" + t.ticketId));
        Tandem("open");
        """
    )
    await page.goto(f"{server.url}/demo/")
    await page.wait_for_function("() => window.seen.includes('ready')")
    await expect(panel(page)).to_be_visible()  # the queued open() took effect
    assert await page.evaluate("typeof Tandem.open === 'function' && Tandem.version === 1")
    await panel(page).get_by_role("button", name="Start conversation").click()
    await page.wait_for_function("() => window.seen.some((e) => e.startsWith('ticket:'))")

    entries = [e for e in (await server.desk.queue())[0] if e.customer.name == "Quinn Queued"]
    assert len(entries) == 1
    assert entries[0].customer.email == "quinn@example.com"
    assert entries[0].customer.verified is False
    assert entries[0].context.app["plan"] == "pro"
    assert entries[0].context.app["page"] == "catalogue"  # the shop's own setContext, merged
    assert entries[0].context.url.endswith("/demo/")

    await panel(page).get_by_role("button", name="End chat").click()
    await expect(panel(page)).to_contain_text("Conversation ended")


async def test_keyboard_and_phone(new_page: NewPage, server: Server, screenshots: Path) -> None:
    page = await new_page()
    await page.goto(f"{server.url}{PRODUCT}")
    await expect(launcher(page)).to_be_visible()
    # The button is the last stop in the tab order: Shift+Tab from the top wraps to it.
    await page.keyboard.press("Shift+Tab")
    focused = "document.activeElement?.shadowRoot?.activeElement?.classList.contains('launcher')"
    assert await page.evaluate(focused)
    assert await launcher(page).evaluate("(b) => b.matches(':focus-visible')")
    await expect(launcher(page)).to_have_attribute("aria-label", "Open support chat")

    await page.keyboard.press("Enter")
    await expect(panel(page)).to_be_visible()
    await expect(launcher(page)).to_have_attribute("aria-expanded", "true")
    await expect(panel(page).get_by_label("Your question")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(panel(page)).to_be_hidden()
    await expect(launcher(page)).to_have_attribute("aria-expanded", "false")
    assert await page.evaluate(focused)

    # The host page's `button { text-transform: uppercase }` does not reach the widget.
    transform = await launcher(page).evaluate("(b) => getComputedStyle(b).textTransform")
    assert transform == "none"
    # ...while the host's custom properties do: that is how sites theme it.
    await page.evaluate(
        "() => document.documentElement.style.setProperty('--tandem-accent', 'rgb(15, 118, 110)')"
    )
    background = await launcher(page).evaluate("(b) => getComputedStyle(b).backgroundColor")
    assert background == "rgb(15, 118, 110)"

    phone = await new_page(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        reduced_motion="reduce",  # no opening animation: the panel's box is final at once
    )
    await phone.goto(f"{server.url}{PRODUCT}")
    await phone.screenshot(path=screenshots / "widget-phone-closed.png")
    await launcher(phone).tap()
    await expect(panel(phone).get_by_role("heading", name="How can we help?")).to_be_visible()
    box = await panel(phone).bounding_box()
    assert box is not None
    full_screen = (0, 0, PHONE["width"], PHONE["height"])
    assert tuple(round(box[k]) for k in ("x", "y", "width", "height")) == full_screen
    await phone.screenshot(path=screenshots / "widget-phone-open.png")
    await panel(phone).get_by_role("button", name="Close support chat").tap()
    await expect(panel(phone)).to_be_hidden()


async def test_console_security_headers_and_no_csp_violations(
    new_page: NewPage, server: Server
) -> None:
    page = await new_page()
    response = await page.goto(f"{server.url}/console/tickets")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"

    await page.get_by_label("Email").fill(server.agent_email)
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("don't match")
    await page.get_by_label("Password").fill(server.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    await expect(page.locator(".table")).to_be_visible()
    await page.get_by_role("navigation").get_by_role("link", name="Queue").click()
    await expect(page.get_by_role("heading", name="Queue", exact=True)).to_be_visible()
    # A reload keeps the login (sessionStorage) and reconnects.
    await page.reload()
    await expect(page.locator(".conn")).to_have_text("Online")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    # The `problems` fixture fails the test on any CSP violation or page error seen above.
