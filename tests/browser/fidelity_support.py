"""Third-party-looking pages for co-browse fidelity, shared by ``bench/fidelity.py`` and
``tests/browser/test_cobrowse_fidelity.py``.

Each page of ``tests/fixtures/sites/<name>/index.html`` is served from its own origin (its own
127.0.0.1 port) by a small aiohttp app, with ``{{TANDEM}}`` replaced by the snippet tag. The
pages load their libraries from ``/npm/<package>/...`` (``web/node_modules``, devDependencies of
``web/package.json``); photos and the tour video are generated here (Pillow, PyAV) into a
temporary folder, never committed. ``shop`` answers 403 to any request without its cookie.

Also here: the customer/agent steps of a co-browse on such a page, and the pixel comparison.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image, ImageChops, ImageDraw
from playwright.async_api import FloatRect, FrameLocator, Page, expect

ROOT = Path(__file__).resolve().parents[2]
SITES = ROOT / "tests" / "fixtures" / "sites"
NODE_MODULES = ROOT / "web" / "node_modules"
NPM_PACKAGES = (
    "bootstrap",
    "@fortawesome/fontawesome-free",
    "chart.js",
    "@shoelace-style/shoelace",
)
FIDELITY_SITE_KEY = "pk_fidelity"
COOKIE_NAME = "kc_member"
COOKIE_VALUE = "sam-7f3a"
PAGES = ("dashboard", "album", "checkout", "components", "video", "shop")
COOKIE_PAGES = frozenset({"shop"})
MATCH_TOLERANCE = 8
"""A pixel matches when no channel differs by more than this (out of 255)."""
_CONTENT_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".png": "image/png",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ generated media


def _photo(seed: int, size: tuple[int, int]) -> bytes:
    """A deterministic 'photo': a sky-to-ground gradient, a sun and hills, as JPEG."""
    w, h = size
    top = ((seed * 53) % 120 + 60, (seed * 97) % 100 + 120, 220)
    bottom = (250, (seed * 31) % 80 + 160, (seed * 71) % 120 + 90)
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / (h - 1)
        draw.line(
            [(0, y), (w, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    cx, cy, r = (seed * 83) % (w - 120) + 60, h // 4 + (seed * 13) % (h // 5), 34 + seed % 20
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 236, 170))
    for layer in range(3):
        shade = 40 + layer * 35
        colour = (shade + (seed * 17) % 40, 90 + layer * 30, shade)
        base = int(h * (0.55 + layer * 0.13))
        pts = [(0, h)]
        for x in range(0, w + 20, 20):
            wave = math.sin((x + seed * 40 + layer * 90) / (70 + layer * 25))
            pts.append((x, base + int(wave * (28 - layer * 6))))
        pts.append((w, h))
        draw.polygon(pts, fill=colour)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=82)
    return out.getvalue()


def _tour_video(path: Path, seconds: int = 4, size: tuple[int, int] = (640, 360)) -> None:
    """A small VP8 WebM: moving bars and a sweeping dot (no audio)."""
    import av  # PyAV ships with aiortc

    w, h = size
    fps = 24
    with av.open(str(path), "w", format="webm") as box:
        stream = box.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 600_000
        for i in range(seconds * fps):
            img = Image.new("RGB", size, (12, 19, 32))
            draw = ImageDraw.Draw(img)
            for k in range(8):
                x = (k * 90 + i * 6) % (w + 90) - 90
                draw.rectangle(
                    [x, 40 + k * 30, x + 70, 60 + k * 30], fill=(40 + k * 25, 110, 240 - k * 20)
                )
            t = i / (seconds * fps)
            cx, cy = int(40 + t * (w - 80)), int(h * 0.75 - math.sin(t * math.pi) * 120)
            draw.ellipse([cx - 18, cy - 18, cx + 18, cy + 18], fill=(253, 126, 20))
            frame = av.VideoFrame.from_image(img)  # type: ignore[no-untyped-call]
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


@dataclass(frozen=True)
class Media:
    photos: dict[str, bytes]
    video: bytes


def make_media(folder: Path) -> Media:
    """Photos and the tour video, generated once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "tour.webm"
    if not video.exists():
        _tour_video(video)
    photos = {f"album-{i}.jpg": _photo(i, (600, 400)) for i in range(1, 10)}
    photos |= {f"product-{i}.jpg": _photo(20 + i, (480, 480)) for i in range(1, 9)}
    return Media(photos, video.read_bytes())


# ------------------------------------------------------------------ the fixture servers


def _npm_file(relative: str) -> Path | None:
    """A file of an allowed package under web/node_modules (no way out of it)."""
    if not any(relative == p or relative.startswith(p + "/") for p in NPM_PACKAGES):
        return None
    target = (NODE_MODULES / relative).resolve()
    if not target.is_relative_to(NODE_MODULES.resolve()) or not target.is_file():
        return None
    return target


def fixture_app(name: str, tandem_url: str, media: Media) -> web.Application:
    """The aiohttp app serving one fixture page as its own site."""
    page_html = (SITES / name / "index.html").read_text()
    snippet = (
        f'<script async src="{tandem_url}/tandem.js" data-site="{FIDELITY_SITE_KEY}"'
        ' data-label="Help"></script>'
    )
    html = page_html.replace("{{TANDEM}}", snippet)
    needs_cookie = name in COOKIE_PAGES

    @web.middleware
    async def members_only(request: web.Request, handler: Any) -> web.StreamResponse:
        if needs_cookie and request.cookies.get(COOKIE_NAME) != COOKIE_VALUE:
            return web.Response(status=403, text="members only")
        response: web.StreamResponse = await handler(request)
        return response

    async def index(_: web.Request) -> web.Response:
        return web.Response(
            text=html, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def npm(request: web.Request) -> web.StreamResponse:
        target = _npm_file(request.match_info["path"])
        if target is None:
            raise web.HTTPNotFound()
        ctype = _CONTENT_TYPES.get(target.suffix, "application/octet-stream")
        return web.FileResponse(
            target, headers={"Content-Type": ctype, "Cache-Control": "max-age=3600"}
        )

    async def photo(request: web.Request) -> web.Response:
        data = media.photos.get(request.match_info["file"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg")

    async def video(_: web.Request) -> web.Response:
        return web.Response(body=media.video, content_type="video/webm")

    app = web.Application(middlewares=[members_only])
    app.router.add_get("/", index)
    app.router.add_get("/npm/{path:.+}", npm)
    app.router.add_get("/photos/{file}", photo)
    app.router.add_get("/media/tour.webm", video)
    return app


@dataclass(frozen=True)
class FixtureSites:
    """Running fixture sites: page name -> origin."""

    origins: dict[str, str]

    def url(self, name: str) -> str:
        return self.origins[name] + "/"


def fixture_origins(names: tuple[str, ...] = PAGES) -> dict[str, str]:
    """A free port per page (decided before the server starts, so the site can list them)."""
    return {name: f"http://127.0.0.1:{free_port()}" for name in names}


@asynccontextmanager
async def serve_fixtures(
    origins: dict[str, str], tandem_url: str, media: Media
) -> AsyncIterator[FixtureSites]:
    missing = [p for p in NPM_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        raise RuntimeError(f"web/node_modules lacks {', '.join(missing)}: run `cd web && npm ci`")
    runners: list[web.AppRunner] = []
    try:
        for name, origin in origins.items():
            runner = web.AppRunner(fixture_app(name, tandem_url, media), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", int(origin.rsplit(":", 1)[1])).start()
            runners.append(runner)
        yield FixtureSites(origins)
    finally:
        for runner in runners:
            await runner.cleanup()


def member_cookie(origin: str) -> dict[str, Any]:
    """The cookie the ``shop`` page needs (for ``BrowserContext.add_cookies``)."""
    return {"name": COOKIE_NAME, "value": COOKIE_VALUE, "url": origin}


# ------------------------------------------------------------------ co-browse steps


def tandem_widget(page: Page) -> Any:
    return page.locator("#tandem-widget")


def replay_frame(agent: Page) -> FrameLocator:
    return agent.frame_locator("iframe.cb-frame")


def mirror_frame(agent: Page) -> FrameLocator:
    return replay_frame(agent).frame_locator("#stage iframe")


async def sign_in_agent(page: Page, tandem_url: str, email: str, password: str) -> Page:
    await page.goto(f"{tandem_url}/console/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


async def open_session(agent: Page, customer: Page, url: str, text: str) -> str:
    """The customer on ``url`` asks for help and the agent accepts; returns the ticket id."""
    await customer.goto(url)
    await customer.wait_for_function(
        "typeof window.Tandem === 'function' && !!document.querySelector('#tandem-widget')"
    )
    await customer.evaluate("Tandem('on', 'ticket', (t) => { window.__ticketId = t.ticketId; })")
    await tandem_widget(customer).locator(".launcher").click()
    panel = customer.locator("#tandem-panel")
    await panel.get_by_label("Your question").fill(text)
    await panel.get_by_role("button", name="Start conversation").click()
    await expect(panel).to_contain_text("in line")
    ticket_id = str(await (await customer.wait_for_function("window.__ticketId")).json_value())
    await (
        agent.locator(f".q-item[data-ticket='{ticket_id}']")
        .get_by_role("button", name="Accept")
        .click()
    )
    await expect(agent).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))
    # The chat panel would cover part of the customer's page: close it (the session goes on).
    await customer.evaluate("Tandem('close')")
    return ticket_id


async def open_live_session(agent: Page, ticket_id: str) -> None:
    """Open a live session from the console's session list (a second tab: a late joiner)."""
    await agent.locator(f".session-list a[href$='/{ticket_id}']").click()
    await expect(agent).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))


async def start_sharing(agent: Page, customer: Page) -> float:
    """The agent asks to co-browse, the customer allows; returns seconds from Allow to the
    first picture (the page's ``[data-fixture]`` element in the agent's mirror)."""
    await agent.get_by_role("button", name="Co-browse", exact=True).click()
    card = tandem_widget(customer).locator(".cb-card")
    await expect(card).to_contain_text("would like to see this page")
    started = time.monotonic()
    await card.get_by_role("button", name="Allow").click()
    await expect(mirror_frame(agent).locator("[data-fixture]")).to_be_attached(timeout=30_000)
    return time.monotonic() - started


# ------------------------------------------------------------------ pictures


async def fit_scale_one(agent: Page, customer_viewport: dict[str, int]) -> None:
    """Size the agent's window so that the replay's viewport is exactly as wide as the
    customer's and at least as tall: the replay then draws at scale 1 (it also scales up)."""
    want_w, want_h = customer_viewport["width"], customer_viewport["height"]
    for _ in range(4):
        room = await replay_frame(agent).locator("#viewport").bounding_box()
        assert room is not None, "no replay viewport"
        if round(room["width"]) == want_w and room["height"] >= want_h:
            return
        size = agent.viewport_size or {"width": 1760, "height": 1040}
        await agent.set_viewport_size(
            {
                "width": size["width"] + want_w - round(room["width"]),
                "height": size["height"] + max(0, want_h - int(room["height"]) + 8),
            }
        )
        await asyncio.sleep(0.3)
    raise AssertionError("could not bring the replay to scale 1")


HIDE_TANDEM = "#tandem-widget { visibility: hidden !important; }"
HIDE_REPLAY_CHROME = (
    ".replayer-mouse, .replayer-mouse-tail, #hint { visibility: hidden !important; }"
)


async def customer_picture(customer: Page) -> Image.Image:
    png = await customer.screenshot(style=HIDE_TANDEM, animations="disabled")
    return Image.open(io.BytesIO(png)).convert("RGB")


async def stage_box(agent: Page) -> FloatRect:
    box = await replay_frame(agent).locator("#stage").bounding_box()
    assert box is not None, "no replay stage"
    return box


async def mirror_picture(agent: Page, size: tuple[int, int]) -> Image.Image:
    """The agent's mirror (at scale 1: the stage is exactly the customer's viewport)."""
    box = await stage_box(agent)
    clip: FloatRect = {"x": box["x"], "y": box["y"], "width": size[0], "height": size[1]}
    png = await agent.screenshot(clip=clip, style=HIDE_REPLAY_CHROME, animations="disabled")
    return Image.open(io.BytesIO(png)).convert("RGB")


def match_share(a: Image.Image, b: Image.Image, tolerance: int = MATCH_TOLERANCE) -> float:
    """Share of pixels (0..1) whose channels all differ by at most ``tolerance``; where the
    sizes differ, what only one picture covers counts as not matching."""
    w, h = min(a.width, b.width), min(a.height, b.height)
    total = max(a.width * a.height, b.width * b.height)
    diff = ImageChops.difference(a.crop((0, 0, w, h)), b.crop((0, 0, w, h)))
    over = [band.point(lambda v: 255 if v > tolerance else 0) for band in diff.split()]
    bad = ImageChops.lighter(ImageChops.lighter(over[0], over[1]), over[2])
    return (w * h - bad.histogram()[255]) / total


def diff_picture(a: Image.Image, b: Image.Image, tolerance: int = MATCH_TOLERANCE) -> Image.Image:
    """The mirror faded, with mismatching pixels in red (to look at)."""
    w, h = min(a.width, b.width), min(a.height, b.height)
    a, b = a.crop((0, 0, w, h)), b.crop((0, 0, w, h))
    diff = ImageChops.difference(a, b)
    over = [band.point(lambda v: 255 if v > tolerance else 0) for band in diff.split()]
    mask = ImageChops.lighter(ImageChops.lighter(over[0], over[1]), over[2])
    faded = Image.blend(b, Image.new("RGB", b.size, (255, 255, 255)), 0.6)
    faded.paste(Image.new("RGB", b.size, (220, 0, 0)), mask=mask)
    return faded


async def mirror_scroll(agent: Page) -> tuple[float, float]:
    value = (
        await mirror_frame(agent)
        .locator("html")
        .evaluate(
            "(el) => [el.ownerDocument.defaultView.scrollX, el.ownerDocument.defaultView.scrollY]"
        )
    )
    return float(value[0]), float(value[1])


async def customer_scroll(customer: Page) -> tuple[float, float]:
    value = await customer.evaluate("[scrollX, scrollY]")
    return float(value[0]), float(value[1])


async def until_scrolled(agent: Page, y: float, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if abs((await mirror_scroll(agent))[1] - y) <= 1:
            return True
        await asyncio.sleep(0.05)
    return False
