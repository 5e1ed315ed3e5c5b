"""Co-browse in headless Chromium against the real server: consent, the live view across pages,
pointer and highlight, remote control only after a grant, privacy canaries, the recording replay,
and (the one slow test, ~2 min) a supervisor who joins late."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import FrameLocator, Page, expect

from cobrowse import InMemoryMirrorStore, MirrorPolicy, RateLimits
from signaling import keys
from signaling.app import cobrowse_hub_key
from tests.browser.cobrowse_support import (
    CHECKOUT,
    OTHER_PRODUCT,
    PRODUCT,
    agent_socket,
    call,
    mirror,
    node_id,
    replay_page,
    share,
    sign_in,
    start_session,
    widget,
)

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

CARD = "4111 1111 1111 1111"
PASSWORD = "Hunter2-canary-pw"
EMAIL = "canary.person@example.org"


async def until(
    probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float = 15
) -> Any:
    """Poll ``probe()`` until ``ok(value)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last value {value!r}")
        await asyncio.sleep(0.1)


async def mirror_scroll(agent: Page) -> float:
    """How far the agent's mirror of the page is scrolled."""
    return float(
        await mirror(agent).locator("html").evaluate("(el) => el.ownerDocument.defaultView.scrollY")
    )


async def glass_point(agent: Page, selector: str) -> tuple[float, float]:
    """Agent-page coordinates of the centre of ``selector`` in the mirrored page."""
    frame = agent.frame_locator("iframe.cb-frame")
    box = await frame.locator("#stage").bounding_box()
    assert box is not None
    # Position inside the mirror (unscaled) and the replay page's scale.
    inner = await mirror(agent).locator(selector).bounding_box()
    assert inner is not None
    return inner["x"] + inner["width"] / 2, inner["y"] + inner["height"] / 2


async def test_live_view_pages_typing_highlight_and_control(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    customer = await new_page()
    ticket_id = await start_session(agent, customer, server, PRODUCT, "Can you look at this?")

    # Nothing is recorded before consent: the co-browse chunk is not even loaded.
    scripts = await customer.evaluate("[...document.scripts].map((s) => s.src).join(' ')")
    assert "cobrowse-" not in scripts

    await agent.get_by_role("button", name="Co-browse", exact=True).click()
    card = widget(customer).locator(".cb-card")
    await expect(card).to_contain_text("Alex Agent would like to see this page")
    await customer.screenshot(path=screenshots / "cobrowse-customer-consent.png", caret="initial")
    await card.get_by_role("button", name="Allow").click()
    bar = widget(customer).locator(".cb-bar")
    await expect(bar).to_contain_text("An agent is viewing this page")
    await expect(bar.get_by_role("button", name="Stop sharing")).to_be_visible()

    # The agent sees the product page: text and layout.
    view = mirror(agent)
    await expect(view.locator("#name")).to_have_text("Trail Runner 2")
    await expect(view.locator(".product-info .price")).not_to_be_empty()
    await expect(agent.locator(".cb-pill")).to_have_text("Live")
    await expect(agent.locator(".cb-url")).to_contain_text("trail-runner-2")
    # Tandem's own UI is blocked: the bar and the widget never reach the agent.
    assert await view.locator("#tandem-widget").count() <= 1
    assert "An agent is viewing" not in (await view.locator("body").inner_text())

    # The customer goes to another product: the view follows.
    await customer.goto(f"{server.url}{OTHER_PRODUCT}")
    await expect(widget(customer).locator(".cb-bar")).to_contain_text("An agent is viewing")
    await expect(view.locator("#name")).to_have_text("Aurora Jacket")
    await expect(agent.locator(".cb-url")).to_contain_text("aurora-jacket")

    # The size select is opted in (data-tandem-unmask): the agent sees the choice.
    size = customer.locator("#size")
    options = await size.locator("option").all_inner_texts()
    await size.select_option(label=options[-1])
    await expect(view.locator("#size")).to_have_value(await size.input_value())

    # Checkout: the name field is opted in; the e-mail field is masked.
    await customer.goto(f"{server.url}{CHECKOUT}")
    await expect(view.locator("h1.page-title")).to_have_text("Checkout")
    await customer.locator("#name").fill("")
    await customer.locator("#name").press_sequentially("Robin Fielding")
    await customer.locator("#email").press_sequentially("robin@example.net")
    await expect(view.locator("#name")).to_have_value("Robin Fielding")
    await expect(view.locator("#email")).to_have_value(re.compile(r"^\*+$"))
    await agent.screenshot(path=screenshots / "cobrowse-agent-view.png")
    await customer.screenshot(path=screenshots / "cobrowse-customer-sharing.png", caret="initial")

    # Pointer and click-to-highlight, drawn in Tandem's shadow root on the customer's page.
    x, y = await glass_point(agent, "h1.page-title")
    glass = replay_page(agent).locator("#glass")
    gbox = await glass.bounding_box()
    assert gbox is not None
    await agent.mouse.move(gbox["x"] + gbox["width"] / 2, gbox["y"] + 80)
    await expect(widget(customer).locator(".cb-pointer")).to_be_visible()
    await expect(widget(customer).locator(".cb-pointer")).to_contain_text("Alex Agent")
    await agent.mouse.click(x, y)
    ring = widget(customer).locator(".cb-highlight")
    await expect(ring).to_have_count(1)
    title_box = await customer.locator("h1.page-title").bounding_box()
    ring_box = await ring.bounding_box()
    assert title_box and ring_box
    cx, cy = ring_box["x"] + ring_box["width"] / 2, ring_box["y"] + ring_box["height"] / 2
    assert title_box["x"] - 30 <= cx <= title_box["x"] + title_box["width"] + 30
    assert title_box["y"] - 30 <= cy <= title_box["y"] + title_box["height"] + 30
    await customer.screenshot(path=screenshots / "cobrowse-customer-highlight.png", caret="initial")

    # Remote control: refused before a grant, and nothing happens on the page.
    async with agent_socket(server, server.agent_email) as sock:
        name_id = await node_id(sock, ticket_id, id="name")
        card_id = await node_id(sock, ticket_id, id="cc-number")
        early = await call(
            sock,
            "control.action",
            {"ticketId": ticket_id, "action": {"type": "type", "targetId": name_id, "text": "X"}},
        )
        assert early["error"]["code"] == "forbidden"
        # In pointer mode a click on the view only highlights; it never clicks the page.
        await agent.mouse.click(*(await glass_point(agent, "#name")))
        await asyncio.sleep(0.5)
        assert await customer.locator("#name").input_value() == "Robin Fielding"
        assert await customer.evaluate("document.activeElement.id") != "name"

        await agent.get_by_role("button", name="Request control").click()
        prompt = widget(customer).locator(".cb-prompt")
        await expect(prompt).to_contain_text("Alex Agent asks to control it")
        await customer.screenshot(
            path=screenshots / "cobrowse-customer-control-request.png", caret="initial"
        )
        await prompt.get_by_role("button", name="Allow control").click()
        await expect(bar).to_contain_text("Alex Agent has control of this page")
        await expect(agent.get_by_role("button", name="Release control")).to_be_visible()

        # Click into the opted-in name field in the view and type: it happens on the page.
        await agent.mouse.click(*(await glass_point(agent, "#name")))
        await expect(customer.locator("#name")).to_be_focused()
        await agent.keyboard.press("End")
        await agent.keyboard.type(" Jr")
        await expect(customer.locator("#name")).to_have_value(re.compile(r"Robin Fielding.* Jr$"))
        await expect(view.locator("#name")).to_have_value(re.compile(r" Jr$"))

        # The card number field is masked: the view refuses it, and so does the snippet when the
        # server (which cannot see autocomplete=cc-*) forwards an action on it.
        await customer.locator("#cc-number").scroll_into_view_if_needed()
        scrolled = await customer.evaluate("scrollY")
        assert scrolled > 0
        await until(lambda: mirror_scroll(agent), lambda y: abs(y - scrolled) < 2)
        await agent.mouse.click(*(await glass_point(agent, "#cc-number")))
        await expect(agent.locator(".toast", has_text="private")).to_be_visible()
        forged = await call(
            sock,
            "control.action",
            {
                "ticketId": ticket_id,
                "action": {"type": "type", "targetId": card_id, "text": "4242"},
            },
        )
        assert forged["ok"]
        await asyncio.sleep(0.5)
        assert await customer.locator("#cc-number").input_value() == ""
        await agent.screenshot(path=screenshots / "cobrowse-agent-control.png")

        # The customer takes control back: actions are refused again.
        await bar.get_by_role("button", name="Take back").click()
        await expect(bar).to_contain_text("An agent is viewing this page")
        await expect(agent.get_by_role("button", name="Request control")).to_be_visible()
        late = await call(
            sock,
            "control.action",
            {"ticketId": ticket_id, "action": {"type": "type", "targetId": name_id, "text": "Z"}},
        )
        assert late["error"]["code"] == "forbidden"
        await asyncio.sleep(0.3)
        assert not (await customer.locator("#name").input_value()).endswith("Z")

    # Stop sharing: the agent's view says so; the recording is filed on the ticket.
    await bar.get_by_role("button", name="Stop sharing").click()
    await expect(bar).to_be_hidden()
    await expect(agent.locator(".cb-pill")).to_have_text("Stopped")
    timeline = agent.locator(".timeline")
    await expect(timeline).to_contain_text("Customer started co-browsing")
    await expect(timeline).to_contain_text("Customer gave control of the page")
    await expect(timeline).to_contain_text("Customer took back control")
    await expect(agent.locator(".attachments")).to_contain_text("Recording")

    # The ticket page replays the recording in the same sandboxed replay page.
    await agent.goto(f"{server.url}/console/tickets/{ticket_id}")
    await agent.get_by_role("button", name="Replay").click()
    dialog = agent.locator("dialog.cb-player")
    await expect(dialog).to_have_attribute("data-events", re.compile(r"^[1-9]\d*$"))
    player = dialog.frame_locator("iframe.cb-frame")
    await expect(player.locator("#controls")).to_be_visible()
    await expect(player.locator("#stage iframe").first).to_be_attached()
    recorded = player.frame_locator("#stage iframe")
    await expect(recorded.locator("#name")).to_have_text("Trail Runner 2")
    await player.get_by_role("button", name="Play").click()
    await expect(player.get_by_role("button", name="Pause")).to_be_visible()
    await expect(player.locator("#seek")).not_to_have_value("0")
    await agent.screenshot(path=screenshots / "cobrowse-recording-replay.png")
    await player.get_by_role("button", name="Pause").click()
    # Seeking to the end shows the checkout, as the customer left it.
    await player.locator("#seek").evaluate(
        "(el) => { el.value = el.max; el.dispatchEvent(new Event('input')); }"
    )
    await expect(recorded.locator("h1.page-title")).to_have_text("Checkout")


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def leaks(text: str, canaries: list[str]) -> list[str]:
    """Canaries found in ``text`` as typed, without spaces, or JSON-escaped."""
    squeezed = text.replace(" ", "")
    found = []
    for canary in canaries:
        forms = {canary, canary.replace(" ", ""), json.dumps(canary)[1:-1]}
        if any(f in text or f in squeezed for f in forms):
            found.append(canary)
    return found


async def test_privacy_canaries_never_leave_the_browser(new_page: NewPage, server: Server) -> None:
    """Card number, password, e-mail, textarea text, a hidden input, a prefilled value and
    masked text: in no websocket frame the customer sends, not in the recording, not in logs."""
    capture = LogCapture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    hidden = "SSN-078-05-1120"
    prefilled = "prefill-canary-5550100"
    note = "leave it with neighbour Zebulon"
    masked_text = "Masked-canary-text"
    masked_title = "Masked-canary-title"
    canaries = [CARD, PASSWORD, EMAIL, hidden, prefilled, note, masked_text, masked_title]
    try:
        agent = await sign_in(new_page, server)
        customer = await new_page()
        frames: list[str] = []
        cdp = await customer.context.new_cdp_session(customer)
        await cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameSent", lambda e: frames.append(e["response"]["payloadData"]))
        ticket_id = await start_session(agent, customer, server, CHECKOUT, "Card declined?")
        # The page holds secrets before sharing starts (full snapshot) ...
        await customer.evaluate(
            """([hidden, prefilled, text, title]) => {
                const form = document.getElementById('checkout');
                const h = document.createElement('input');
                h.type = 'hidden'; h.name = 'ssn'; h.value = hidden; form.append(h);
                document.getElementById('phone').setAttribute('value', prefilled);
                const p = document.createElement('p');
                p.setAttribute('data-tandem-mask', ''); p.title = title; p.textContent = text;
                form.prepend(p);
            }""",
            [hidden, prefilled, masked_text, masked_title],
        )
        await share(agent, customer)
        view = mirror(agent)
        await expect(view.locator("h1.page-title")).to_have_text("Checkout")
        # ... and the customer types more of them while sharing (incremental events).
        await customer.locator("#email").fill("")
        await customer.locator("#email").press_sequentially(EMAIL)
        await customer.locator("#password").press_sequentially(PASSWORD)
        await customer.locator("#note").press_sequentially(note)
        await customer.locator("#cc-number").press_sequentially(CARD)
        await customer.locator("#cc-exp").press_sequentially("12/29")
        await customer.locator("#cc-csc").press_sequentially("737")
        await customer.evaluate(
            "(v) => { document.querySelector('#city').setAttribute('value', v); }", prefilled
        )
        await customer.locator("#name").fill("Visible Name")
        # The agent sees that the fields are filled, masked; the opted-in name in clear.
        await expect(view.locator("#cc-number")).to_have_value(re.compile(r"^\*{19}$"))
        await expect(view.locator("#email")).to_have_value(re.compile(r"^\*+$"))
        await expect(view.locator("#note")).to_have_value(re.compile(r"^\*+$"))
        await expect(view.locator("#name")).to_have_value("Visible Name")
        await expect(view.locator("p[data-tandem-mask]")).to_have_text(re.compile(r"^[*-]+$"))
        # Stop: the recording is filed.
        await widget(customer).locator(".cb-bar").get_by_role("button", name="Stop sharing").click()
        await expect(agent.locator(".attachments")).to_contain_text("Recording")
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)

    sent = [f for f in frames if "cobrowse" in f]
    assert any("cobrowse.events" in f for f in sent)
    assert any('\\"source\\":5' in f for f in sent), "typing was streamed (masked)"
    for frame in frames:
        assert leaks(frame, canaries) == [], frame[:300]

    token = (
        await (
            await agent.request.post(
                f"{server.url}/api/auth/login",
                data={"email": server.agent_email, "password": server.password},
            )
        ).json()
    )["token"]
    detail = await (
        await agent.request.get(
            f"{server.url}/api/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"}
        )
    ).json()
    recording = next(a for a in detail["attachments"] if a["kind"] == "recording")
    raw = await (
        await agent.request.get(
            f"{server.url}{recording['url']}", headers={"Authorization": f"Bearer {token}"}
        )
    ).body()
    text = gzip.decompress(raw).decode()
    header = json.loads(text.split("\n", 1)[0])
    assert header["format"] == "tandem-cobrowse" and header["recorder"].startswith("rrweb@2.")
    assert "Visible Name" in text  # the opted-in field is recorded, so the check below is real
    assert leaks(text, canaries) == []
    stored = server.app[keys.files].local_path(recording["sha256"])
    assert stored is not None
    on_disk = await asyncio.to_thread(Path(stored).read_bytes)
    assert leaks(gzip.decompress(on_disk).decode(), canaries) == []
    assert capture.lines, "the server logged nothing at all: the capture is broken"
    for line in capture.lines:
        assert leaks(line, canaries) == [], line


async def watched_paragraph(
    new_page: NewPage, server: Server, element_id: str, question: str
) -> tuple[Page, str, FrameLocator]:
    """A customer shares a product page with a paragraph ``element_id`` reading "start"; the
    agent's view shows it, its ``html`` marked so that a rebuilt view (new elements) shows.
    The customer's page, the ticket and the agent's view."""
    agent = await sign_in(new_page, server)
    customer = await new_page()
    ticket_id = await start_session(agent, customer, server, PRODUCT, question)
    await share(agent, customer)
    await customer.evaluate(
        """(id) => { const p = document.createElement('p'); p.id = id;
                     p.textContent = 'start'; document.body.prepend(p); }""",
        element_id,
    )
    view = mirror(agent)
    await expect(view.locator(f"#{element_id}")).to_have_text("start")
    await view.locator("html").evaluate("(el) => { el.__kept = true; }")
    return customer, ticket_id, view


async def kept(view: FrameLocator) -> bool:
    """Whether the view's ``html`` is the one ``watched_paragraph`` marked (not rebuilt)."""
    return bool(await view.locator("html").evaluate("(el) => el.__kept === true"))


async def test_a_single_page_apps_navigation_reaches_the_view_header_and_page_history(
    new_page: NewPage, server: Server
) -> None:
    """A single-page app changes its address with ``history.pushState`` (no event, no load) and
    goes back with ``popstate``: the agent's co-browse header follows each address, and each
    is a page of the ticket's history, as a page load is."""
    agent = await sign_in(new_page, server)
    customer = await new_page()
    await start_session(agent, customer, server, PRODUCT, "Single-page app?")
    await share(agent, customer)
    header = agent.locator(".cb-url")
    await expect(header).to_contain_text("trail-runner-2")
    pages = agent.locator(".details .pages .page-visit")
    await expect(pages).to_have_count(1)

    await customer.evaluate(
        "history.pushState({}, '', '/demo/checkout.html?step=shipping');document.title = 'Shipping'"
    )
    await expect(header).to_contain_text("/demo/checkout.html?step=shipping")
    await expect(pages).to_have_count(2)
    await expect(pages.nth(1).locator("a")).to_have_attribute(
        "href", re.compile(r"checkout\.html\?step=shipping$")
    )

    await customer.evaluate("history.back()")  # popstate
    await expect(header).to_contain_text("trail-runner-2")
    await expect(header).not_to_contain_text("checkout")
    await expect(pages).to_have_count(3)

    await customer.evaluate("location.hash = 'reviews'")  # hashchange
    await expect(header).to_have_attribute("title", await customer.evaluate("location.href"))
    await expect(header).to_contain_text("#reviews")
    # The page itself did not load again: the stream went on from the same snapshot.
    assert await customer.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_an_address_changed_while_the_socket_was_away_reaches_the_history(
    new_page: NewPage, server: Server
) -> None:
    """The customer's tab goes offline (its socket drops); meanwhile the single-page app goes to
    another address: once the socket is back, that page is in the ticket's history."""
    agent = await sign_in(new_page, server)
    customer = await new_page()
    await start_session(agent, customer, server, PRODUCT, "Away and back?")
    pages = agent.locator(".details .pages .page-visit")
    await expect(pages).to_have_count(1)
    reconnecting = customer.locator("#tandem-panel .notice", has_text="Reconnecting…")
    # Away and back once first: the page as it loaded is sent on the first resume anyway.
    await customer.context.set_offline(True)
    await expect(reconnecting).to_be_visible()
    await customer.context.set_offline(False)
    await expect(reconnecting).to_be_hidden(timeout=20_000)
    await customer.context.set_offline(True)  # the socket drops, and cannot come back
    await expect(reconnecting).to_be_visible()
    await customer.evaluate("history.pushState({}, '', '/demo/checkout.html?step=away')")
    await customer.wait_for_timeout(1500)  # seen (within a second), sent 300 ms later: offline
    await expect(pages).to_have_count(1)
    await customer.context.set_offline(False)
    await expect(pages).to_have_count(2, timeout=20_000)
    await expect(pages.nth(1).locator("a")).to_have_attribute(
        "href", re.compile(r"checkout\.html\?step=away$")
    )


async def test_a_checkpoint_keeps_the_agents_view_and_serves_the_joiner(
    new_page: NewPage, server: Server
) -> None:
    """When the server asks for a fresh snapshot (the page changed a lot since the last), the
    snippet answers with a checkpoint: a joiner is served that page, while the agent already
    watching keeps their view (it is not rebuilt: the same elements, updated in place)."""
    hub = server.app[cobrowse_hub_key]
    usual = hub.mirror
    # A mirror that asks for a snapshot after 30 changes, not 2,000 (the same code otherwise).
    hub.mirror = InMemoryMirrorStore(MirrorPolicy(snapshot_after_events=30))
    try:
        customer, ticket_id, view = await watched_paragraph(new_page, server, "ck", "A checkpoint?")
        since = time.time() * 1000
        await customer.evaluate(
            """async () => { const p = document.getElementById('ck');
                for (let i = 1; i <= 60; i++) {
                    p.textContent = `change ${i}`;
                    await new Promise((r) => setTimeout(r, 20));
                } }"""
        )

        async def page_since() -> float:
            held = await hub.mirror.catch_up(ticket_id)
            return max((e["timestamp"] for e in held if e["type"] == 2), default=0.0)

        await until(page_since, lambda at: at > since)  # the snippet answered the request
        await customer.evaluate("document.getElementById('ck').textContent = 'after'")
        await expect(view.locator("#ck")).to_have_text("after")
        assert await kept(view)
        async with agent_socket(server, server.supervisor_email) as supervisor:
            joined = await call(supervisor, "cobrowse.join", {"ticketId": ticket_id})
        pages = [e for e in joined["events"] if e["type"] == 2]
        assert len(pages) == 1 and pages[0]["timestamp"] > since  # the checkpoint, not the first
    finally:
        hub.mirror = usual


async def test_a_view_that_applied_many_events_on_one_page_starts_over_from_the_server(
    new_page: NewPage, server: Server
) -> None:
    """The view keeps every event it applied, and checkpoints bring it no new page to start
    over from: after 20,000 events it joins again and rebuilds from the server's latest page
    (so a long session on one page does not grow the console without bound). 30,000 changes:
    a few may share one mutation record, and it takes 20,001 to 40,000 events to join exactly
    once."""
    hub = server.app[cobrowse_hub_key]
    usual_limits, usual_join = hub.rate_limits, hub.join
    joins: list[str] = []

    async def join(caller: Any, ticket_id: str) -> Any:
        joins.append(ticket_id)
        return await usual_join(caller, ticket_id)

    # The customer's tab may send 30,000 changes at once (the default allows 500 a second,
    # and a socket 1 MiB a second: refused batches would be left out of the agent's count).
    hub.rate_limits = RateLimits(events_per_second=1e6, event_burst=1e6, bytes_per_second=1e9)
    hub.join = join  # type: ignore[method-assign]
    sio = server.app[keys.socket_api].sio
    usual_frames = sio.frame_limits
    sio.frame_limits = dataclasses.replace(usual_frames, bytes_per_second=1e9, burst_bytes=1e9)
    try:
        customer, ticket_id, view = await watched_paragraph(
            new_page, server, "many", "Many changes"
        )
        joined = len(joins)  # the view's own joins so far (as sharing started)
        await customer.evaluate(
            """async () => { const p = document.getElementById('many');
                const channel = new MessageChannel();
                const tick = () => new Promise((r) => { channel.port1.onmessage = r;
                                                         channel.port2.postMessage(0); });
                for (let i = 1; i <= 30000; i++) {
                    p.textContent = `change ${i}`;
                    await tick();  // a task each: one mutation event each, nearly always
                } }"""
        )
        await expect(view.locator("#many")).to_have_text("change 30000", timeout=60_000)
        # The last batches may be shown before the server has taken the join: waited for.
        await until(lambda: asyncio.sleep(0, len(joins)), lambda n: n == joined + 1)
        assert set(joins) == {ticket_id}
        await until(lambda: kept(view), lambda was_kept: not was_kept)
        await asyncio.sleep(0.5)
        assert len(joins) == joined + 1  # once
        await customer.evaluate("document.getElementById('many').textContent = 'after'")
        await expect(view.locator("#many")).to_have_text("after")
    finally:
        hub.rate_limits, hub.join = usual_limits, usual_join  # type: ignore[method-assign]
        sio.frame_limits = usual_frames


ACTIVITY_SECONDS = int(os.environ.get("TANDEM_COBROWSE_ACTIVITY_SECONDS", "12"))
"""How long the page is busy: at 40 changes a second, as many changes (480) as two minutes of
the four a second a busy page makes; the mirror's work depends on the changes, not the clock."""


async def test_slow_supervisor_joining_after_two_busy_minutes_sees_the_page_at_once(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    """SLOW (~20 s): the one long test of this module. The customer's page keeps changing, as
    much as in two busy minutes (text, scroll, typing); a supervisor who then joins sees the
    current page at once, from the server's mirror (its latest snapshot plus what followed), not
    a replay."""
    agent = await sign_in(new_page, server)
    customer = await new_page()
    ticket_id = await start_session(agent, customer, server, CHECKOUT, "Still there?")
    await share(agent, customer)
    await customer.evaluate(
        """() => {
            const tick = document.createElement('p');
            tick.id = 'tick';
            document.querySelector('h1.page-title').after(tick);
            const name = document.getElementById('name');
            const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
            let n = 0;
            window.__activity = setInterval(() => {
                n += 1;
                tick.textContent = `tick ${n}`;
                setter.call(name, `Customer ${n}`);
                name.dispatchEvent(new Event('input', { bubbles: true }));
                if (n % 4 === 0) window.scrollTo({ top: (n * 37) % 500, behavior: 'instant' });
            }, 25);
        }"""
    )
    await asyncio.sleep(ACTIVITY_SECONDS)
    await customer.evaluate("clearInterval(window.__activity)")
    tick = await customer.locator("#tick").inner_text()
    name = await customer.locator("#name").input_value()
    scroll_y = await customer.evaluate("scrollY")
    assert int(tick.split()[1]) > ACTIVITY_SECONDS * 30  # it really was busy

    supervisor = await sign_in(new_page, server, server.supervisor_email)
    await supervisor.goto(f"{server.url}/console/tickets/{ticket_id}")
    await supervisor.get_by_role("button", name="Join session").click()
    await expect(supervisor).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))
    joined = time.monotonic()
    view = mirror(supervisor)
    await expect(view.locator("#tick")).to_have_text(tick)
    await expect(view.locator("#name")).to_have_value(name)
    await until(lambda: mirror_scroll(supervisor), lambda y: abs(y - scroll_y) < 2)
    elapsed = time.monotonic() - joined
    assert elapsed < 5, f"the late joiner waited {elapsed:.1f} s for the page"
    await supervisor.screenshot(path=screenshots / "cobrowse-supervisor-late-join.png")
    # And it stays live for both.
    await customer.locator("#name").fill("After the join")
    await expect(view.locator("#name")).to_have_value("After the join")
    await expect(mirror(agent).locator("#name")).to_have_value("After the join")
