"""A co-browse recorded in two parts replays as one: the session's lease lapses while the
customer shares (as after a stall longer than the lease), the next page takes the session
again under a new epoch, and the ticket page's one Replay plays part 1 and part 2 in order."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import expect

from signaling import keys
from signaling.app import home_key
from signaling.live.placement import MemoryPlacement
from tests.browser.cobrowse_support import (
    CHECKOUT,
    PRODUCT,
    mirror,
    share,
    sign_in,
    start_session,
    widget,
)

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)


async def test_a_recording_in_two_parts_replays_as_one(new_page: NewPage, server: Server) -> None:
    agent = await sign_in(new_page, server)
    customer = await new_page()
    ticket_id = await start_session(agent, customer, server, PRODUCT, "Two parts, please")
    await share(agent, customer)
    view = mirror(agent)
    await expect(view.locator("#name")).to_have_text("Trail Runner 2")

    # The lease lapses unrenewed; the renewal finds it lost and the node lets the stream go.
    placement = server.app[home_key].placement
    assert isinstance(placement, MemoryPlacement)
    earlier = placement.clock
    placement.clock = lambda: earlier() + 60
    await placement.renew_all()  # (or its own renewal loop did, just before)
    assert placement.holding(ticket_id) is None

    # The customer's next page takes the session again: the view follows, in part 2.
    await customer.goto(f"{server.url}{CHECKOUT}")
    await expect(view.locator("h1.page-title")).to_have_text("Checkout")
    bar = widget(customer).locator(".cb-bar")
    await bar.get_by_role("button", name="Stop sharing").click()
    await expect(agent.locator(".cb-pill")).to_have_text("Stopped")
    parts = [
        a for a in await server.app[keys.store].attachments(ticket_id) if a.kind == "recording"
    ]
    assert sorted(a.meta["part"] for a in parts) == [1, 2]

    await agent.goto(f"{server.url}/console/tickets/{ticket_id}")
    replay = agent.get_by_role("button", name="Replay")
    await expect(replay).to_have_count(1)
    await replay.click()
    dialog = agent.locator("dialog.cb-player")
    await expect(dialog).to_have_attribute("data-parts", "2")
    await expect(dialog).to_have_attribute("data-events", re.compile(r"^[1-9]\d*$"))
    player = dialog.frame_locator("iframe.cb-frame")
    recorded = player.frame_locator("#stage iframe")
    await expect(recorded.locator("#name")).to_have_text("Trail Runner 2")
    # Seeking to the end shows part 2's page.
    await player.locator("#seek").evaluate(
        "(el) => { el.value = el.max; el.dispatchEvent(new Event('input')); }"
    )
    await expect(recorded.locator("h1.page-title")).to_have_text("Checkout")
