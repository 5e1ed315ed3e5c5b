"""A warm transfer in the console, in headless Chromium against the real server: the customer
asks for help, Alice accepts and chats, hands the conversation to Bob with a note; Bob accepts,
sees the transcript and the note; Alice's session closes; the customer's widget shows Bob, and
the customer's next message reaches Bob and not Alice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Page, expect

from signaling import keys
from signaling.auth.accounts import add_agent
from tests.browser.test_web import ask_for_help, panel

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)  # two shared cores: be patient, never assert timings

PASSWORD = "correct horse battery staple"
PRODUCT = "/demo/product.html?id=trail-runner-2"


async def colleague(server: Server, new_page: NewPage, name: str) -> Page:
    """A second agent of the demo site, signed in to the console."""
    email = f"{name.lower()}@tandem.test"
    store = server.app[keys.store]
    if await store.agent_by_email(email) is None:
        await add_agent(store, email, name, PASSWORD, "agent", [])
    page = await new_page()
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


async def alice_takes(
    server: Server, new_page: NewPage, question: str, queue_text: str
) -> tuple[Page, Page, Page]:
    """Alice and Bob signed in; a customer asks ``question`` on the product page and Alice
    accepts it from the queue (its item found by ``queue_text``): Alice, Bob, the customer."""
    alice = await colleague(server, new_page, "Alice")
    bob = await colleague(server, new_page, "Bob")
    customer = await new_page()
    await customer.goto(f"{server.url}{PRODUCT}")
    await ask_for_help(customer, question)
    await expect(panel(customer).locator(".msg.mine .meta")).not_to_have_text("Sending…")
    item = alice.locator(".q-item", has_text=queue_text)
    await item.get_by_role("button", name="Accept").click()
    await expect(alice).to_have_url(re.compile(r"/console/sessions/tk_"))
    await expect(panel(customer).locator(".title")).to_have_text("Alice")
    return alice, bob, customer


async def test_warm_transfer_in_the_console(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    # Alice takes it from the queue and answers.
    alice, bob, customer = await alice_takes(server, new_page, "My order is late", "Trail Runner 2")
    await alice.get_by_label("Reply").fill("Let me look at your order.")
    await alice.get_by_label("Reply").press("Enter")
    await expect(panel(customer).locator(".msg.theirs")).to_contain_text("Let me look")

    # Transfer, warm, to Bob (listed with his status), with a note for him only.
    await alice.get_by_role("button", name="Transfer").click()
    dialog = alice.get_by_role("dialog")
    bob_row = dialog.locator(".transfer-agent", has_text="Bob")
    await expect(bob_row.locator(".agent-status")).to_have_text(re.compile("Available|Away"))
    await bob_row.get_by_role("radio").check()
    await expect(dialog.get_by_role("radio", name="Warm")).to_be_checked()
    await dialog.get_by_label("Note for the next agent").fill("Refund approved, order 1234")
    await alice.screenshot(path=screenshots / "console-transfer-dialog.png")
    await dialog.get_by_role("button", name="Transfer").click()
    await expect(dialog).to_be_hidden()
    # Warm: Alice stays until Bob accepts.
    await expect(alice.locator(".transfer-banner.pending")).to_contain_text("Waiting for Bob")
    await expect(alice.get_by_label("Reply")).to_be_visible()

    # Bob's console rings with the transfer and its note; he accepts.
    card = bob.locator(".offer-card", has_text="transfers")
    await expect(card).to_contain_text("Alice transfers")
    await expect(card.locator(".offer-note")).to_have_text("Refund approved, order 1234")
    await bob.screenshot(path=screenshots / "console-transfer-offer.png")
    await card.get_by_role("button", name="Accept").click()
    await expect(bob).to_have_url(re.compile(r"/console/sessions/tk_"))
    transcript = bob.locator(".transcript")
    await expect(transcript).to_contain_text("My order is late")
    await expect(transcript).to_contain_text("Let me look at your order.")
    handed = bob.locator(".transfer-banner.handed")
    await expect(handed).to_contain_text("Alice handed this conversation to you")
    await expect(handed).to_contain_text("Refund approved, order 1234")
    await expect(bob.locator(".details")).to_contain_text("Trail Runner 2")
    await bob.screenshot(path=screenshots / "console-transfer-accepted.png")

    # Alice's session closes; the customer sees who they now talk to.
    await expect(alice.locator(".transfer-banner.left")).to_contain_text(
        "handed this conversation to Bob"
    )
    await expect(alice.get_by_label("Reply")).to_be_hidden()
    await expect(alice.locator(".session-item.ended")).to_contain_text("Transferred")
    await expect(panel(customer).locator(".title")).to_have_text("Bob")
    await expect(panel(customer)).to_contain_text("You're now talking to Bob")
    # The note never reaches the customer.
    await expect(panel(customer)).not_to_contain_text("Refund approved")

    # The customer's next message reaches Bob, not Alice.
    message = panel(customer).get_by_role("textbox", name="Message")
    await message.fill("Thanks, is it refunded?")
    await message.press("Enter")
    await expect(transcript).to_contain_text("Thanks, is it refunded?")
    await bob.get_by_label("Reply").fill("Yes, today.")
    await bob.get_by_label("Reply").press("Enter")
    await expect(panel(customer).locator(".msg.theirs").last).to_contain_text("Yes, today.")
    # By now anything sent to Alice would have arrived (her socket is as quick as Bob's).
    await expect(alice.locator(".transcript")).not_to_contain_text("Thanks, is it refunded?")
    await expect(alice.locator(".transcript")).not_to_contain_text("Yes, today.")


async def test_a_transfer_the_customer_ends_first_leaves_no_offer_card(
    new_page: NewPage, server: Server
) -> None:
    """Alice hands the conversation to Bob, warm; the customer ends it before Bob answers: his
    offer card goes, and his console says why."""
    alice, bob, customer = await alice_takes(
        server, new_page, "Where is my parcel?", "Where is my parcel?"
    )
    await alice.get_by_role("button", name="Transfer").click()
    dialog = alice.get_by_role("dialog")
    await dialog.locator(".transfer-agent", has_text="Bob").get_by_role("radio").check()
    await dialog.get_by_label("Note for the next agent").fill("Parcel lost in transit")
    await dialog.get_by_role("button", name="Transfer").click()
    card = bob.locator(".offer-card", has_text="transfers")
    await expect(card.locator(".offer-note")).to_have_text("Parcel lost in transit")

    await panel(customer).get_by_role("button", name="End chat").click()
    await expect(panel(customer)).to_contain_text("Conversation ended")
    await expect(card).to_have_count(0)
    await expect(bob.locator(".toast", has_text="ended before you accepted")).to_be_visible()


async def test_a_warm_transfer_taken_back_in_the_console(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    """Alice hands the conversation to Bob, warm, then takes it back before he answers: his
    card goes with a word why, and she keeps the conversation (and may transfer it again)."""
    alice, bob, customer = await alice_takes(
        server, new_page, "Can I change my size?", "Can I change my size?"
    )
    await alice.get_by_role("button", name="Transfer").click()
    dialog = alice.get_by_role("dialog")
    await dialog.locator(".transfer-agent", has_text="Bob").get_by_role("radio").check()
    await dialog.get_by_role("button", name="Transfer").click()
    pending = alice.locator(".transfer-banner.pending")
    await expect(pending).to_contain_text("Waiting for Bob")
    card = bob.locator(".offer-card", has_text="transfers")
    await expect(card).to_contain_text("Alice transfers")
    await alice.screenshot(path=screenshots / "console-transfer-pending.png")

    await pending.get_by_role("button", name="Take back").click()
    await expect(pending).to_have_count(0)
    await expect(card).to_have_count(0)
    await expect(bob.locator(".toast", has_text="Alice took the transfer back")).to_be_visible()
    # Alice still has the conversation: the customer hears her, and she may transfer again.
    await alice.get_by_label("Reply").fill("I'll sort it out myself.")
    await alice.get_by_label("Reply").press("Enter")
    await expect(panel(customer).locator(".msg.theirs").last).to_contain_text("sort it out")
    await expect(panel(customer).locator(".title")).to_have_text("Alice")
    await alice.get_by_role("button", name="Transfer").click()
    await expect(
        alice.get_by_role("dialog").locator(".transfer-agent", has_text="Bob")
    ).to_be_visible()
