"""Around the conversation, in the real console and widget: an internal note the customer never
sees, a ``/shortcut`` canned reply that fills the composer (and is sent only when the agent
sends it), and a photo the agent sends that the customer's widget shows."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image
from playwright.async_api import FilePayload, expect

from signaling import keys
from signaling.desk import canned

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)  # two shared cores: be patient, never assert timings

PRODUCT = "/demo/product.html?id=trail-runner-2"
NOTE = "Customer is a repeat buyer: offer free returns"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (30, 140, 90)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_note_canned_reply_and_a_file_for_the_customer(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    store = server.app[keys.store]
    site = await store.site_by_key("pk_demo")
    assert site is not None
    await canned.put(
        store, site.id, "thanks", "Thanks for waiting! {agent.name} here ({ticket.id}).", "test"
    )

    agent = await new_page()
    await agent.goto(f"{server.url}/console/")
    await agent.get_by_label("Email").fill(server.agent_email)
    await agent.get_by_label("Password").fill(server.password)
    await agent.get_by_role("button", name="Sign in").click()
    await expect(agent.locator(".conn")).to_have_text("Online")

    customer = await new_page()
    await customer.goto(f"{server.url}{PRODUCT}")
    await customer.locator("#tandem-widget .launcher").click()
    panel = customer.locator("#tandem-panel")
    await panel.get_by_label("Your question").fill("Can I return these?")
    await panel.get_by_role("button", name="Start conversation").click()
    item = agent.locator(".q-item", has_text="Trail Runner 2")
    await item.get_by_role("button", name="Accept").click()
    await expect(agent).to_have_url(re.compile(r"/console/sessions/tk_"))
    ticket_id = agent.url.rsplit("/", 1)[1]
    agent_name = (await store.agent_by_email(server.agent_email)).name  # type: ignore[union-attr]
    await expect(panel.locator(".title")).to_have_text(agent_name)

    # An internal note: in the agent's transcript, styled apart; never at the customer.
    reply = agent.get_by_label("Reply")
    await agent.get_by_role("button", name="Internal note").click()
    await reply.fill(NOTE)
    await reply.press("Enter")
    note = agent.locator(".transcript .line.note")
    await expect(note).to_contain_text(NOTE)
    await expect(note).to_contain_text("Internal note")
    assert [n.text for n in await store.notes(ticket_id)] == [NOTE]
    await agent.get_by_role("button", name="Internal note").click()  # back to replying

    # A canned reply: "/th" offers /thanks; choosing it fills the composer, sends nothing.
    await reply.press_sequentially("/th")
    option = agent.locator(".canned-menu [role=option]", has_text="/thanks")
    await expect(option).to_be_visible()
    await reply.press("Enter")
    rendered = f"Thanks for waiting! {agent_name} here ({ticket_id})."
    await expect(reply).to_have_value(rendered)
    await expect(agent.locator(".canned-menu")).to_be_hidden()
    assert all(m.text != rendered for m in await store.messages(ticket_id))
    await expect(panel.locator(".msg.theirs")).to_have_count(0)
    await reply.press("Enter")  # now the agent sends it
    await reply.press_sequentially("/")
    await expect(option).to_be_visible()
    await agent.screenshot(path=screenshots / "console-note-and-canned.png")
    await reply.press("Escape")
    await expect(agent.locator(".canned-menu")).to_be_hidden()
    await reply.fill("")
    await expect(panel.locator(".msg.theirs")).to_contain_text(rendered)

    # A photo for the customer: the widget shows it (loaded through its signed link).
    photo: FilePayload = {"name": "returns-label.png", "mimeType": "image/png", "buffer": png()}
    await agent.locator(
        'input[type=file][aria-label="Photo or video to send to the customer"]'
    ).set_input_files(files=[photo])
    shown = panel.locator(".agent-file img")
    await expect(shown).to_have_attribute("src", re.compile(rf"/api/files/{ticket_id}/at_"))
    await expect(shown).to_have_js_property("naturalWidth", 24)
    await expect(panel.locator(".agent-file")).to_contain_text(f"{agent_name} sent you a photo")
    await expect(panel.locator(".agent-file a.agent-file-download")).to_be_visible()
    await customer.screenshot(path=screenshots / "widget-agent-file.png")
    # A reload shows it again (from the session state), once.
    await customer.reload()
    if not await panel.is_visible():  # the widget reopens as it was left
        await customer.locator("#tandem-widget .launcher").click()
    await expect(panel.locator(".agent-file img")).to_have_count(1)
    await expect(panel.locator(".agent-file img")).to_have_js_property("naturalWidth", 24)
    # Filed on the ticket with who sent it; the console lists it with the attachments.
    [sent] = [a for a in await store.attachments(ticket_id) if a.kind == "agent_file"]
    assert sent.meta["by"]["name"] == agent_name
    await expect(agent.locator(".attachments img.thumb")).to_have_count(1)

    # Nothing the customer's page holds mentions the note.
    await expect(panel).not_to_contain_text(NOTE)
    assert NOTE not in await panel.inner_text()

    # After the session: the ticket page lists the notes and takes another one.
    await agent.get_by_role("button", name="End session").click()
    await expect(panel).to_contain_text("Conversation ended")
    await agent.goto(f"{server.url}/console/tickets/{ticket_id}")
    notes = agent.locator(".notes-card")
    await expect(notes).to_contain_text(NOTE)
    await notes.get_by_label("Internal note").fill("Followed up by e-mail")
    await notes.get_by_role("button", name="Add note").click()
    await expect(notes.locator(".line.note")).to_have_count(2)
    await expect(notes).to_contain_text("Internal notes · 2")
    assert [n.text for n in await store.notes(ticket_id)] == [NOTE, "Followed up by e-mail"]
    await expect(panel).not_to_contain_text("Followed up")
