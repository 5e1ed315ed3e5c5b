"""Around the conversation in the console (one Chromium for the module): the queue shows the
customer's first message, the details show every page the customer visited with the page of
the request first (going to checkout does not lose the product asked about), and the timeline
speaks words, for every kind of entry the server writes and for one it does not know yet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from signaling import keys
from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
expect.set_options(timeout=15_000)  # two shared cores: be patient, never assert timings

PRODUCT = "/demo/product.html?id=trail-runner-2"
QUESTION = "Do these run small?   I usually wear a 42\n\nbut my feet are wide " + "and long " * 20


async def sign_in(new_page: NewPage, server: Server) -> Page:
    page = await new_page()
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Email").fill(server.agent_email)
    await page.get_by_label("Password").fill(server.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Queue", exact=True)).to_be_visible()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


def panel(page: Page) -> Locator:
    return page.locator("#tandem-panel")


async def test_queue_preview_page_history_and_timeline_in_words(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    customer = await new_page()
    await customer.goto(f"{server.url}{PRODUCT}")
    await customer.locator("#tandem-widget .launcher").click()
    await panel(customer).get_by_label("Your question").fill(QUESTION)
    await panel(customer).get_by_role("button", name="Start conversation").click()
    await expect(panel(customer).locator(".msg.mine .meta")).not_to_have_text("Sending…")

    # The queue shows the start of the first message (whitespace collapsed, cut at 140).
    flat = " ".join(QUESTION.split())
    item = agent.locator(".q-item", has_text="Trail Runner 2")
    first = item.locator(".q-first")
    await expect(first).to_contain_text(flat[:60])
    shown = (await first.inner_text()).strip("“”")
    assert shown.endswith("…") and len(shown) == 140 and flat.startswith(shown[:-1].rstrip())
    # The ringing offer carries it too.
    await expect(agent.locator(".offer-card .q-first")).to_contain_text("Do these run small?")
    await agent.screenshot(path=screenshots / "console-queue-first-message.png")

    await item.get_by_role("button", name="Accept").click()
    await expect(agent).to_have_url(re.compile(r"/console/sessions/tk_"))
    ticket_id = agent.url.rsplit("/", 1)[1]
    details = agent.locator(".details")
    pages = details.locator(".pages .page-visit")
    await expect(pages).to_have_count(1)
    await expect(pages.first).to_contain_text("Asked for help here")

    # The customer goes to checkout: the request's page (with its product) stays first.
    await customer.goto(f"{server.url}/demo/checkout.html")
    await expect(pages).to_have_count(2)
    request_page = pages.nth(0)
    await expect(request_page).to_have_class(re.compile(r"\brequest\b"))
    await expect(request_page).to_contain_text("Asked for help here")
    await expect(request_page.locator(".pv-item")).to_contain_text("Trail Runner 2")
    await expect(request_page.locator("time")).to_have_text(re.compile(r"\d+:\d\d"))
    await expect(request_page.locator("a")).to_have_attribute("href", re.compile(r"product\.html"))
    later = pages.nth(1)
    await expect(later).not_to_contain_text("Asked for help here")
    await expect(later.locator("a")).to_have_attribute("href", re.compile(r"checkout\.html"))
    # The context card shows where they are now; the history where they were.
    await expect(details.locator(".card", has_text="Page").first).to_be_visible()

    await agent.screenshot(path=screenshots / "console-page-history.png")

    # The timeline speaks words.
    timeline = details.locator(".timeline")
    await expect(timeline).to_contain_text("Customer asked for help from “Trail Runner 2")
    await expect(timeline).to_contain_text("Alex Agent accepted the conversation")
    await expect(timeline).to_contain_text("Customer went to “")

    # The ticket page shows the same history, request first, after a reload of the console.
    await agent.goto(f"{server.url}/console/tickets/{ticket_id}")
    history = agent.locator(".details .pages .page-visit")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("Asked for help here")


async def test_every_timeline_kind_reads_as_a_sentence(new_page: NewPage, server: Server) -> None:
    """Each kind of entry the server writes, as the ticket page renders it."""
    store = server.app[keys.store]
    agent = await sign_in(new_page, server)
    customer = await new_page()
    await customer.goto(f"{server.url}{PRODUCT}")
    await customer.locator("#tandem-widget .launcher").click()
    await panel(customer).get_by_label("Your question").fill("Hello")
    await panel(customer).get_by_role("button", name="Start conversation").click()
    item = agent.locator(".q-item", has_text="Hello")
    await item.get_by_role("button", name="Accept").click()
    await expect(agent).to_have_url(re.compile(r"/console/sessions/tk_"))
    ticket_id = agent.url.rsplit("/", 1)[1]
    ticket = await store.ticket(ticket_id)
    assert ticket is not None
    me = dict(ticket.agents[0])
    bob = {"id": "ag_bob", "name": "Bob"}
    control: dict[str, object] = {"actor": me["id"], "role": "agent", "result": "ok"}
    by_customer: dict[str, object] = {"actor": "c1", "role": "customer", "result": "ok"}
    entries: list[tuple[str, dict[str, object], str]] = [
        (
            "context.updated",
            {"geo": {"latitude": 1, "longitude": 2}},
            "Customer shared their location",
        ),
        ("context.updated", {"replyTo": "d@x.test"}, "Customer left an e-mail address for a reply"),
        ("session.joined", {"agent": bob}, "Bob joined"),
        ("attachment.added", {"kind": "photo", "size": 2048}, "Customer sent a photo (2"),
        ("attachment.added", {"kind": "screenshot", "size": 10}, "Screenshot taken"),
        ("cobrowse.requested", {"agent": me}, f"{me['name']} asked to see the customer's page"),
        ("cobrowse.started", {"recorder": "rrweb"}, "Customer started co-browsing"),
        ("control.request", control, f"{me['name']} asked to control the page"),
        ("control.grant", by_customer, "Customer gave control of the page"),
        ("control.action", {**control, "action": {"type": "click"}}, "clicked on the page"),
        (
            "control.action",
            {**control, "action": {"type": "type", "text_len": 5}},
            "typed 5 characters",
        ),
        (
            "control.action",
            {
                **control,
                "result": "refused",
                "reason": "masked_target",
                "action": {"type": "click"},
            },
            "click was refused (a masked field)",
        ),
        ("control.revoke", by_customer, "Customer took back control"),
        ("control.deny", by_customer, "Customer refused control of the page"),
        (
            "control.expire",
            {"actor": "system", "role": "system", "result": "ok"},
            "Control of the page expired",
        ),
        (
            "control.revoke",
            {"actor": "system", "role": "system", "result": "ok", "reason": "home_moved"},
            "Control ended: the session moved to another server",
        ),
        ("cobrowse.moved", {"epoch": 2, "part": 2}, "Co-browsing moved to another server"),
        ("cobrowse.assets", {"server": 3, "browser": 1, "refused": 0}, "3 fetched by the server"),
        ("cobrowse.stopped", {"by": "customer"}, "Customer stopped co-browsing"),
        ("cobrowse.declined", {}, "Customer declined co-browsing"),
        ("call.joined", {"participant": "customer"}, "Customer joined the call"),
        (
            "call.shared",
            {"participant": "customer", "source": "screen"},
            "Customer shared their screen",
        ),
        (
            "call.shared",
            {"participant": f"agent:{me['id']}", "source": "camera"},
            f"{me['name']} turned on their camera",
        ),
        ("call.left", {"participant": f"agent:{me['id']}"}, f"{me['name']} left the call"),
        ("call.moved", {"epoch": 3}, "The call moved to another server"),
        ("clip.started", {"trackId": "t", "clipId": "c"}, "Clip recording started"),
        ("upload.requested", {"agent": me, "note": "the box"}, "asked for a photo: “the box”"),
        (
            "transfer.requested",
            {"mode": "warm", "from": me, "to": {"agent": bob}, "note": "VIP"},
            f"{me['name']} asked to transfer to Bob",
        ),
        ("transfer.declined", {"agent": bob}, "Bob declined the transfer"),
        (
            "session.transferred",
            {"mode": "cold", "from": me, "to": bob, "via": "agent"},
            f"Transferred from {me['name']} to Bob",
        ),
        ("session.left", {"agent": me, "mode": "cold"}, f"{me['name']} left"),
        ("session.ended", {"by": "agent", "agent": bob}, "Bob ended the conversation"),
        (
            "call.invited",
            {"id": "i1", "ask": "screen", "from": "agent", "agent": me},
            "asked for a screen share",
        ),
        (
            "call.invite.ended",
            {"inviteId": "i1", "ask": "screen", "reason": "declined"},
            "The screen share request declined",
        ),
        (
            "call.left",
            {"participant": "customer", "reason": "disconnected"},
            "Customer left the call (their page closed",
        ),
        ("widget.shaken", {}, "Widget shaken"),  # a kind this console does not know (yet)
    ]
    for kind, data, _ in entries:
        await store.add_timeline(ticket_id, kind, data, 1.0e9)

    await agent.goto(f"{server.url}/console/tickets/{ticket_id}")
    lines = agent.locator(".details .timeline .tl-text")
    await expect(lines.first).to_be_visible()
    await expect(lines).to_have_count(len(await store.timeline(ticket_id)))
    texts = await lines.all_inner_texts()
    joined = "\n".join(texts)
    for _kind, _data, sentence in entries:
        assert sentence in joined, (sentence, texts)
    # No line is an event code.
    for text in texts:
        assert not re.fullmatch(r"[a-z]+(\.[a-z_]+)+", text), text
