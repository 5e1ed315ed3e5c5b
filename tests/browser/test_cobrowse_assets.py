"""Images of a real page reach the agent's mirror through Tandem's asset route, and only there.

A customer's site (its own origin on 127.0.0.1, the real snippet) shows a photo from its origin,
a logo from its listed CDN, a members-only picture (cookie), an image from an unlisted host,
inline SVG images (one that only draws, one with a handler), an SVG sprite and a CSS background.
In the agent's mirror all but the unlisted image and the SVG with a handler appear; the server
fetched what its origin and CDN serve, the customer's browser supplied the members-only picture;
the unlisted host heard from nobody but the customer's own page; the agent's browser asked
nothing of any host but Tandem.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import pytest
from aiohttp import web
from PIL import Image
from playwright.async_api import Locator, Route, expect

from signaling import keys
from signaling.auth.accounts import add_site
from tests.browser.cobrowse_support import ask_for_help, mirror, share, sign_in, widget
from tests.support import free_port

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, PageProblems, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

SITE_KEY = "pk_asset_route_test"
FETCHER = "Tandem-cobrowse-assets"
TICK = "data:image/svg+xml," + quote(
    "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16' viewBox='0 0 16 16'>"
    "<path fill='none' stroke='#0a0' stroke-width='3' d='M2 8l4 4 8-8'/></svg>"
)
BAD_SVG = "data:image/svg+xml," + quote(
    "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16' onload='alert(1)'/>"
)

SPRITE = (
    b"<svg xmlns='http://www.w3.org/2000/svg'>"
    b"<symbol id='dot' viewBox='0 0 10 10'><circle cx='5' cy='5' r='5' fill='purple'/></symbol>"
    b"</svg>"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def png(colour: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@asynccontextmanager
async def host(
    app: web.Application, port: int | None = None
) -> AsyncIterator[tuple[str, Counter[str]]]:
    """Serve ``app`` on 127.0.0.1, counting requests by who made them (our fetcher or not)."""
    hits: Counter[str] = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = "server" if request.headers.get("User-Agent", "").startswith(FETCHER) else "browser"
        hits[f"{who} {request.path}"] += 1
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


def serve(data: bytes, content_type: str) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type)

    return handler


def image_app(path: str, data: bytes) -> web.Application:
    app = web.Application()
    app.router.add_get(path, serve(data, "image/png"))
    return app


async def until_positive(target: Locator, script: str, timeout: float = 20) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = float(await target.evaluate(script))
        if value > 0 or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def natural_width(img: Locator, timeout: float = 20) -> int:
    """The image's natural width once it settled (loaded, or failed: 0)."""
    deadline = time.monotonic() + timeout
    while True:
        width = int(await img.evaluate("(i) => i.complete ? i.naturalWidth : -1"))
        if width >= 0 or time.monotonic() > deadline:
            return width
        await asyncio.sleep(0.2)


def shop_app(tandem: str, cdn: str, unlisted: str) -> web.Application:
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head>
<body><main data-fixture="assets">
  <h1>Our products</h1>
  <img id="photo" src="/img/photo.png" alt="photo">
  <img id="logo" src="{cdn}/logo.png" alt="logo">
  <img id="member" src="/members/card.png" alt="member">
  <img id="unlisted" src="{unlisted}/x.png" alt="unlisted">
  <img id="tick" src="{TICK}" alt="tick">
  <img id="bad" src="{BAD_SVG}" alt="bad">
  <svg id="sprite" width="20" height="20"><use href="/icons.svg#dot"></use></svg>
  <div id="bg" style="width:30px;height:20px;background:url(/img/photo.png)"></div>
</main>
<script async src="{tandem}/tandem.js" data-site="{SITE_KEY}" data-label="Help"></script>
</body></html>"""

    async def members(request: web.Request) -> web.Response:
        if request.cookies.get("member") != "yes":
            raise web.HTTPForbidden()
        return web.Response(body=png("orange"), content_type="image/png")

    app = web.Application()
    app.router.add_get("/", serve(page.encode(), "text/html"))
    app.router.add_get("/img/photo.png", serve(png("red"), "image/png"))
    app.router.add_get("/icons.svg", serve(SPRITE, "image/svg+xml"))
    app.router.add_get("/members/card.png", members)
    return app


async def test_mirror_images_come_through_the_asset_route_only(
    new_page: NewPage, server: Server, problems: PageProblems
) -> None:
    shop_port = free_port()
    async with (
        host(image_app("/logo.png", png("blue"))) as (cdn, cdn_hits),
        host(image_app("/x.png", png("black"))) as (unlisted, unlisted_hits),
        host(shop_app(server.url, cdn, unlisted), shop_port) as (shop, shop_hits),
    ):
        await add_site(server.app[keys.store], "Asset shop", [shop], SITE_KEY, asset_hosts=[cdn])
        agent = await sign_in(new_page, server)
        off_origin: list[str] = []

        async def guard(route: Route) -> None:
            parts = urlsplit(route.request.url)
            if f"{parts.scheme}://{parts.netloc}" == server.url:
                await route.continue_()
            else:
                off_origin.append(route.request.url)
                await route.abort()

        await agent.context.route("**/*", guard)
        customer = await new_page()
        await customer.context.add_cookies([{"name": "member", "value": "yes", "url": shop}])
        await customer.goto(shop + "/")
        await customer.wait_for_function("typeof window.Tandem === 'function'")
        await customer.evaluate(
            "Tandem('on', 'ticket', (t) => { window.__ticketId = t.ticketId; })"
        )
        await ask_for_help(customer, "Where is my member discount?")
        ticket_id = str(await (await customer.wait_for_function("window.__ticketId")).json_value())
        item = agent.locator(f".q-item[data-ticket='{ticket_id}']")
        await item.get_by_role("button", name="Accept").click()
        await expect(agent).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))
        await widget(customer).locator(".launcher").click()  # close the chat panel
        await share(agent, customer)

        view = mirror(agent)
        await expect(view.locator("#unlisted")).to_be_attached()
        for name in ("photo", "logo", "member", "tick"):
            img = view.locator(f"#{name}")
            await expect(img).to_have_attribute("src", re.compile(r"^(/cobrowse/assets/|data:)"))
            assert await natural_width(img) > 0, name
        assert await view.locator("#bad").get_attribute("src") == "about:invalid"
        # An SVG sprite used by <use>, and a CSS background, come the same way.
        use = view.locator("#sprite use")
        await expect(use).to_have_attribute("href", re.compile(r"^/cobrowse/assets/.+#dot$"))
        assert await until_positive(use, "(u) => u.getBBox().width") > 0
        bg = await view.locator("#bg").evaluate("(d) => getComputedStyle(d).backgroundImage")
        assert "/cobrowse/assets/" in bg
        unlisted_src = await view.locator("#unlisted").get_attribute("src")
        assert unlisted_src is not None and unlisted_src.startswith("/cobrowse/assets/")
        assert await natural_width(view.locator("#unlisted")) == 0

        # Who fetched what: the server its origin and CDN; the customer's browser the rest.
        assert shop_hits["server /img/photo.png"] == 1
        assert cdn_hits["server /logo.png"] == 1
        # Refused to the server (no cookie), so the page's tab supplied it (from its cache).
        assert shop_hits["server /members/card.png"] == 1
        assert [k for k in unlisted_hits if k.startswith("server ")] == []
        assert off_origin == []

        await widget(customer).locator(".cb-bar").get_by_role("button", name="Stop sharing").click()
        await expect(agent.locator(".cb-pill")).not_to_have_text("Live")
        store = server.app[keys.store]
        entries = [e for e in await store.timeline(ticket_id) if e.type == "cobrowse.assets"]
        assert len(entries) == 1
        counts = entries[0].data
        assert counts == {"server": 3, "browser": 1, "refused": 1}  # photo, logo, sprite
    # The blocked SVG image is "about:invalid", which the replay's CSP refuses and reports.
    problems.csp[:] = [m for m in problems.csp if "'about:invalid'" not in m]
