"""Co-browse fidelity on third-party-looking pages (``tests/fixtures/sites``, each served from its
own origin): an icon font, an SVG data URL, a canvas chart and a ``<video>`` appear in the agent's
mirror; choices made before sharing show; a late joiner lands at the customer's scroll position;
on a phone the sharing bar leaves the panel's buttons free.

One Chromium for the module (conftest); the fixture sites and their Tandem site are made once.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import FrameLocator, Locator, Page, expect

from signaling import keys
from signaling.auth.accounts import add_site
from tests.browser.cobrowse_support import share
from tests.browser.fidelity_support import (
    FIDELITY_SITE_KEY,
    PAGES,
    FixtureSites,
    customer_scroll,
    fit_scale_one,
    fixture_origins,
    make_media,
    match_share,
    member_cookie,
    mirror_frame,
    mirror_scroll,
    open_live_session,
    open_session,
    serve_fixtures,
    sign_in_agent,
    start_sharing,
    tandem_widget,
)

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, PageProblems, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

# Pictures are sent as lossy WebP and fonts are rasterised twice: "appears" means most pixels of
# the element are within 24/255 of the customer's, which a missing glyph, a blank canvas or an
# empty box never are (they score under 0.5 on these elements).
LOOSE = 24
SIMILAR = 0.85


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sites(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FixtureSites]:
    origins = fixture_origins()
    await add_site(
        server.app[keys.store], "Fidelity fixtures", list(origins.values()), FIDELITY_SITE_KEY
    )
    media = make_media(tmp_path_factory.mktemp("fidelity-media"))
    async with serve_fixtures(origins, server.url, media) as running:
        yield running


@dataclass
class Shared:
    agent: Page
    customer: Page
    ticket_id: str


CUSTOMER = {"width": 1024, "height": 720}
AGENT = {"width": 1700, "height": 1000}


async def co_browse(
    new_page: NewPage, server: Server, sites: FixtureSites, name: str, **customer_options: Any
) -> Shared:
    """The customer on fixture ``name`` shares it; the agent's replay is at scale 1, so an
    element's picture in the mirror can be compared with the customer's pixel for pixel."""
    agent = await sign_in_agent(
        await new_page(viewport=AGENT), server.url, server.agent_email, server.password
    )
    customer = await new_page(**({"viewport": CUSTOMER} | customer_options))
    if name == "shop":
        await customer.context.add_cookies([member_cookie(sites.origins[name])])  # type: ignore[list-item]
    ticket_id = await open_session(agent, customer, sites.url(name), f"Help on {name}")
    await start_sharing(agent, customer)
    if "viewport" not in customer_options:
        await fit_scale_one(agent, CUSTOMER)
    return Shared(agent, customer, ticket_id)


async def until(
    probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float = 15
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last value {value!r}")
        await asyncio.sleep(0.2)


async def picture(locator: Locator) -> Image.Image:
    png = await locator.screenshot(animations="disabled", caret="hide")
    return Image.open(io.BytesIO(png)).convert("RGB")


async def steady_picture(locator: Locator) -> Image.Image:
    """A picture of a mirrored element (taken again if a new snapshot rebuilt the mirror)."""
    for _ in range(20):
        try:
            return await picture(locator)
        except PlaywrightError:
            await asyncio.sleep(0.2)
    return await picture(locator)


async def similarity(customer: Locator, mirrored: Locator) -> float:
    try:
        return match_share(await picture(customer), await picture(mirrored), LOOSE)
    except PlaywrightError:
        return 0.0  # the mirror was rebuilt from a new snapshot meanwhile: look again


async def scrolled_to(element: Locator) -> None:
    """Scroll to the element; if it is replaced meanwhile (the mirror may be rebuilt from a new
    snapshot at any time, e.g. when its session's recording goes on as a new part), to the one
    that replaced it: Playwright gives up on a node detached while it waits for it to settle."""
    for attempt in range(3):
        try:
            await element.scroll_into_view_if_needed()
            return
        except PlaywrightError as exc:
            if "not attached" not in str(exc) or attempt == 2:
                raise


async def appears(customer: Locator, mirrored: Locator) -> float:
    """Wait until the mirrored element looks like the customer's; returns the last score."""
    await scrolled_to(mirrored)
    await customer.scroll_into_view_if_needed()
    return float(
        await until(lambda: similarity(customer, mirrored), lambda s: s >= SIMILAR, timeout=20)
    )


async def test_icon_font_and_canvas_charts_appear_in_the_mirror(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(new_page, server, sites, "dashboard")
    view = mirror_frame(s.agent)
    # Font Awesome's glyphs (an @font-face icon font in the page's stylesheet).
    await appears(s.customer.locator(".sidebar"), view.locator(".sidebar"))
    # Chart.js draws into <canvas>: the mirror gets sampled pictures of them.
    for selector in ("#revenue", "#channels"):
        await appears(s.customer.locator(selector), view.locator(selector))
    # A blank canvas is no match: the pictures really are the charts.
    chart = await steady_picture(view.locator("#revenue"))
    assert match_share(Image.new("RGB", chart.size, (255, 255, 255)), chart, LOOSE) < 0.9


async def test_form_state_before_sharing_and_svg_data_urls(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(new_page, server, sites, "checkout")
    view = mirror_frame(s.agent)
    # Values typed and choices made before the customer shared the page (the form is opted in).
    await expect(view.locator("#lastName")).to_have_value("Fielding")
    await expect(view.locator("#state")).to_have_value("Oregon")
    await expect(view.locator("#country")).to_have_value("United States")
    await expect(view.locator("#paypal")).to_be_checked()
    await expect(view.locator("#save-info")).to_be_checked()
    # A choice changed while sharing follows.
    await s.customer.locator("#state").select_option("Washington")
    await expect(view.locator("#state")).to_have_value("Washington")
    # Bootstrap draws check ticks, the switch knob and select arrows as SVG data: URLs.
    for field in ("#same-address", "#newsletter", "#state"):
        await appears(s.customer.locator(field), view.locator(field))
    # The recording, replayed from the ticket, starts with the same choices.
    bar = tandem_widget(s.customer).locator(".cb-bar")
    await bar.get_by_role("button", name="Stop sharing").click()
    await expect(s.agent.locator(".attachments")).to_contain_text("Recording")
    await s.agent.goto(f"{server.url}/console/tickets/{s.ticket_id}")
    await s.agent.get_by_role("button", name="Replay").click()
    player = s.agent.locator("dialog.cb-player").frame_locator("iframe.cb-frame")
    recorded = player.frame_locator("#stage iframe")
    await expect(recorded.locator("#state")).to_have_value("Oregon")
    await expect(recorded.locator("#lastName")).to_have_value("Fielding")


async def test_a_masked_select_shows_no_choice(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(new_page, server, sites, "dashboard")
    view = mirror_frame(s.agent)
    await expect(s.customer.locator("#range")).to_have_value("This month")
    # Not opted in: the agent sees no option chosen rather than a wrong one, in the snapshot...
    await until(
        lambda: view.locator("#range").evaluate("(s) => s.selectedIndex"), lambda i: i == -1
    )
    assert "This month" not in await view.locator("#range").evaluate("(s) => s.value")


async def test_video_shows_as_pictures_of_its_size(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(new_page, server, sites, "video")
    view = mirror_frame(s.agent)
    video = view.locator("video#tour")
    await expect(video).to_have_attribute("poster", re.compile(r"^data:image/webp"))
    mine = await s.customer.locator("video#tour").bounding_box()
    theirs = await video.bounding_box()
    assert mine and theirs
    assert abs(mine["width"] - theirs["width"]) <= 2 and abs(mine["height"] - theirs["height"]) <= 2
    # The picture changes as the video plays.
    first = await video.get_attribute("poster")
    await until(lambda: video.get_attribute("poster"), lambda p: p != first)
    frame = await steady_picture(video)
    dark = Image.new("RGB", frame.size, (12, 19, 32))
    assert match_share(dark, frame, LOOSE) < 0.98  # not an empty box


async def test_video_plays_live_over_the_mirror_through_the_media_relay(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    """A playing ``<video>`` goes to the agent as a WebRTC stream (its own captureStream(),
    relayed by the server on the co-browse channel) and plays in the console over the mirrored
    element, at its box, following it when the page scrolls."""
    s = await co_browse(new_page, server, sites, "video")
    view = mirror_frame(s.agent)
    mirrored = view.locator("video#tour")
    overlay = s.agent.locator(".cb-streams video[data-element]")
    await expect(overlay).to_have_count(1, timeout=30_000)
    element = int(await overlay.get_attribute("data-element") or 0)
    assert element > 0
    # The server relayed it: an element track of the customer's co-browse connection.
    room = server.app[keys.calls]._rooms[s.ticket_id][1]
    tracks = [t for t in room.tracks() if t.source == "element"]
    assert [(t.participant_id, t.element, t.kind) for t in tracks] == [
        ("customer/cobrowse", element, "video")
    ]

    async def boxes_match() -> bool:
        mine = await overlay.bounding_box()
        theirs = await mirrored.bounding_box()
        if not mine or not theirs:
            return False
        return all(abs(mine[k] - theirs[k]) <= 1 for k in ("x", "y", "width", "height"))

    await until(boxes_match, bool)
    # Live: its frames change.
    await until(lambda: overlay.evaluate("(v) => v.videoWidth"), lambda w: w > 0)
    first = await picture(overlay)
    await until(lambda: picture(overlay), lambda p: match_share(first, p, 8) < 0.99)
    # The customer scrolls: the overlay follows the mirrored element.
    await s.customer.evaluate("scrollBy({top: 120, behavior: 'instant'})")
    _, y = await customer_scroll(s.customer)
    await until(lambda: mirror_scroll(s.agent), lambda pos: abs(pos[1] - y) <= 1)
    await until(boxes_match, bool)
    # Paused, it is no longer streamed: the sampled picture beneath is what shows.
    await s.customer.locator("video#tour").evaluate("(v) => v.pause()")
    await expect(overlay).to_have_count(0, timeout=20_000)
    await expect(mirrored).to_have_attribute("poster", re.compile(r"^data:image/webp"))


async def test_a_canvas_too_busy_to_sample_plays_live_over_the_mirror(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    """A canvas whose pictures are too big to send (noise that changes every frame) is marked
    too busy and then streamed like a video, overlaid at its box."""
    s = await co_browse(new_page, server, sites, "album")
    await s.customer.evaluate(
        """() => {
            const noise = document.createElement('canvas');
            noise.width = 1800;
            noise.height = 1300;
            const n = noise.getContext('2d');
            const data = n.createImageData(noise.width, noise.height);
            const bytes = new Uint32Array(data.data.buffer);
            for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.random() * 0xffffffff) | 0xff000000;
            n.putImageData(data, 0, 0);
            const canvas = document.createElement('canvas');
            canvas.id = 'busy';
            canvas.width = 1600;
            canvas.height = 1200;
            canvas.style.cssText = 'display: block; width: 480px; height: 360px';
            document.querySelector('main').prepend(canvas);
            const ctx = canvas.getContext('2d');
            let step = 0;
            const draw = () => {
                step = (step + 37) % 200;
                ctx.drawImage(noise, -step, -step);
                requestAnimationFrame(draw);
            };
            draw();
        }"""
    )
    mirrored = mirror_frame(s.agent).locator("#busy")
    overlay = s.agent.locator(".cb-streams video[data-element]")
    await expect(overlay).to_have_count(1, timeout=30_000)
    element = int(await overlay.get_attribute("data-element") or 0)
    room = server.app[keys.calls]._rooms[s.ticket_id][1]
    assert [(t.element, t.source) for t in room.tracks()] == [(element, "element")]

    async def boxes_match() -> bool:
        mine = await overlay.bounding_box()
        theirs = await mirrored.bounding_box()
        if not mine or not theirs:
            return False
        return all(abs(mine[k] - theirs[k]) <= 1 for k in ("x", "y", "width", "height"))

    await until(boxes_match, bool)
    await until(lambda: overlay.evaluate("(v) => v.videoWidth"), lambda w: w > 0)
    first = await picture(overlay)
    await until(lambda: picture(overlay), lambda p: match_share(first, p, 8) < 0.9)


async def max_scroll(frame: Page | FrameLocator) -> int:
    """How far the page scrolls: its scroll height less the viewport's."""
    script = "(el) => el.scrollHeight - el.ownerDocument.defaultView.innerHeight"
    return int(await frame.locator("html").evaluate(script))


@pytest.mark.parametrize("name", PAGES)
async def test_the_mirror_scrolls_exactly_as_far_as_the_customers_page(
    new_page: NewPage, server: Server, sites: FixtureSites, name: str
) -> None:
    """Every fixture page is as tall in the mirror as for the customer, so the end of the page
    is the same place (a lost stylesheet declaration, a collapsed box, a missing font show up
    here first), and the mirror follows the customer there."""
    s = await co_browse(new_page, server, sites, name)
    view = mirror_frame(s.agent)
    await expect(view.locator("[data-fixture]")).to_be_attached()
    mine = await until(lambda: max_scroll(s.customer), lambda v: v > 0)
    await until(lambda: max_scroll(view), lambda v: v == mine)

    async def to_the_end() -> float:
        """The customer scrolls to the end (again if the page grew meanwhile)."""
        await s.customer.evaluate(
            "scrollTo({top: document.documentElement.scrollHeight, behavior: 'instant'})"
        )
        _, y = await customer_scroll(s.customer)
        return y if y == await max_scroll(s.customer) else -1.0

    end = await until(to_the_end, lambda y: y > 0)
    await until(lambda: max_scroll(view), lambda v: v == end)
    await until(lambda: mirror_scroll(s.agent), lambda pos: pos[1] == end)


async def test_a_var_shorthand_with_an_overridden_longhand_keeps_its_other_longhands(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    """Chromium writes such a rule's other longhands with empty values (``rule.cssText``); the
    snippet sends the rule from the page's own source instead (here a <style>'s text)."""
    s = await co_browse(new_page, server, sites, "album")
    await s.customer.evaluate(
        """() => {
            const style = document.createElement('style');
            style.textContent = `:root { --edge: 5px; }
              /* a comment; with { braces } */
              #lossy { border: solid var(--edge) rgb(217, 51, 26); border-top-width: 20px;
                       margin: var(--edge) 0; margin-bottom: 30px; height: 40px;
                       box-sizing: content-box; }`;
            document.head.append(style);
            const box = document.createElement('div');
            box.id = 'lossy';
            document.querySelector('main').prepend(box);
            if (!style.sheet.cssRules[1].cssText.includes(': ;')) throw new Error('not lossy');
        }"""
    )
    mirrored = mirror_frame(s.agent).locator("#lossy")
    await expect(mirrored).to_be_attached()
    box = "(el) => { const c = getComputedStyle(el); return [el.offsetHeight, c.borderLeftWidth, c.borderTopWidth, c.marginTop, c.marginBottom, c.borderLeftColor]; }"
    mine = await s.customer.locator("#lossy").evaluate(box)
    assert mine == [65, "5px", "20px", "5px", "30px", "rgb(217, 51, 26)"]
    await until(lambda: mirrored.evaluate(box), lambda theirs: theirs == mine)
    # A second such <style> within a second of the first: the page's sources were scanned
    # just now, and its own text is still found.
    await s.customer.evaluate(
        """async () => {
            const style = document.createElement('style');
            style.textContent = `#lossy2 { border: dashed var(--edge) rgb(26, 51, 217);
              border-bottom-width: 12px; height: 10px; box-sizing: content-box; }`;
            const box = document.createElement('div');
            box.id = 'lossy2';
            const first = document.createElement('style');
            first.textContent = `#lossy3 { margin: var(--edge) 0; margin-left: 2px; }`;
            document.head.append(first);
            await new Promise((resolve) => setTimeout(resolve, 200));
            document.head.append(style);
            document.querySelector('main').prepend(box);
        }"""
    )
    second = "(el) => { const c = getComputedStyle(el); return [el.offsetHeight, c.borderTopWidth, c.borderBottomWidth, c.borderTopColor]; }"
    mine = await s.customer.locator("#lossy2").evaluate(second)
    assert mine == [27, "5px", "12px", "rgb(26, 51, 217)"]
    mirrored = mirror_frame(s.agent).locator("#lossy2")
    await until(lambda: mirrored.evaluate(second), lambda theirs: theirs == mine)


async def test_late_joiner_lands_at_the_customers_scroll(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(new_page, server, sites, "shop")
    # The customer scrolls to the end of a page whose photos have no explicit size.
    await s.customer.evaluate(
        "scrollTo({top: document.documentElement.scrollHeight, behavior: 'instant'})"
    )
    _, y = await customer_scroll(s.customer)
    assert y > 0
    await until(lambda: mirror_scroll(s.agent), lambda pos: abs(pos[1] - y) <= 1)
    late = await sign_in_agent(await new_page(), server.url, server.agent_email, server.password)
    await open_live_session(late, s.ticket_id)
    await expect(mirror_frame(late).locator("[data-fixture]")).to_be_attached()
    await until(lambda: mirror_scroll(late), lambda pos: abs(pos[1] - y) <= 1)
    # Then the customer scrolls back up while the page keeps changing: both views follow (the
    # snapshot's copy of the page's scroll must not pull them back to the end).
    await s.customer.evaluate(
        """() => {
            scrollTo({top: 120, behavior: 'instant'});
            let n = 0;
            window.__changes = setInterval(() => {
                document.querySelector('h1').textContent = `Welcome back, Sam (${++n})`;
            }, 100);
        }"""
    )
    for view in (s.agent, late):
        await until(partial(mirror_scroll, view), lambda pos: abs(pos[1] - 120) <= 1)
    await asyncio.sleep(1)  # a second of changes later, still there
    for view in (s.agent, late):
        assert abs((await mirror_scroll(view))[1] - 120) <= 1
    await s.customer.evaluate("clearInterval(window.__changes)")


async def test_phone_sharing_bar_leaves_the_panel_buttons_free(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    s = await co_browse(
        new_page, server, sites, "album", viewport={"width": 390, "height": 844}, is_mobile=True
    )
    await s.customer.evaluate("Tandem('open')")
    panel = s.customer.locator("#tandem-panel")
    bar = tandem_widget(s.customer).locator(".cb-bar")
    await expect(bar).to_be_visible()
    bar_box = await bar.bounding_box()
    assert bar_box
    for button in (
        panel.get_by_role("button", name="End chat"),
        panel.get_by_role("button", name="Close support chat"),
    ):
        box = await button.bounding_box()
        assert box, "button not shown"
        assert box["y"] >= bar_box["y"] + bar_box["height"] - 0.5, (box, bar_box)
        # And it is the button that gets a tap there, not the bar.
        hit = await s.customer.evaluate(
            "([x, y]) => { const w = document.querySelector('#tandem-widget');"
            " const el = w.shadowRoot.elementFromPoint(x, y); return el && (el.closest('button') || el).textContent; }",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert "Stop sharing" not in (hit or "")
    await expect(bar.get_by_role("button", name="Stop sharing")).to_be_visible()


async def test_style_changes_under_a_strict_csp_log_no_violations_while_sharing(
    new_page: NewPage, server: Server, problems: PageProblems
) -> None:
    """The demo shop's CSP has ``style-src 'self'``. A page animating an element through CSSOM
    (a call's tab share keeps one moving; so do carousels) is allowed to; rrweb's diff of each
    change must not turn it into inline-style violations. ``problems`` fails on any."""
    agent = await sign_in_agent(await new_page(), server.url, server.agent_email, server.password)
    customer = await new_page()
    await open_session(agent, customer, f"{server.url}/demo/product.html?id=trail-runner-2", "Hi")
    await share(agent, customer)
    await customer.evaluate(
        """() => {
            const box = document.createElement('div');
            box.id = 'ticker';
            document.body.append(box);
            let n = 0;
            window.__ticker = setInterval(() => {
                n += 1;
                box.style.background = `hsl(${(n * 17) % 360} 70% 45%)`;
                box.style.width = `${40 + (n % 20)}px`;
                box.textContent = `tick ${n}`;
            }, 50);
        }"""
    )
    view = mirror_frame(agent)
    await expect(view.locator("#ticker")).to_contain_text("tick 2")
    # The mirror follows the style changes too.
    await until(
        lambda: view.locator("#ticker").evaluate("(el) => el.style.width"),
        lambda w: w.endswith("px"),
    )
    await customer.evaluate("clearInterval(window.__ticker)")
    assert problems.csp == []


async def test_a_webgl_canvas_appears_in_the_mirror(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    """A WebGL canvas that redraws every frame (no preserveDrawingBuffer) is sampled right
    after the page draws it, so its picture is not blank."""
    s = await co_browse(new_page, server, sites, "album")
    has_webgl = await s.customer.evaluate(
        """() => {
            const c = document.createElement('canvas');
            c.id = 'gl';
            c.width = 240;
            c.height = 120;
            document.querySelector('main').prepend(c);
            const gl = c.getContext('webgl');
            if (!gl) return false;
            const frame = () => {
                gl.clearColor(0.85, 0.2, 0.1, 1);  // a solid red-orange, every frame
                gl.clear(gl.COLOR_BUFFER_BIT);
                requestAnimationFrame(frame);
            };
            requestAnimationFrame(frame);
            return true;
        }"""
    )
    if not has_webgl:
        pytest.skip("no WebGL in this Chromium")
    # The mirror shows the canvas's latest picture as its background: decode it.
    view = mirror_frame(s.agent)
    url = await until(
        lambda: view.locator("html").evaluate(
            "(h) => { const c = h.ownerDocument.getElementById('gl');"
            " return c ? c.style.backgroundImage : ''; }"
        ),
        lambda v: "data:image/" in v,
    )
    data = base64.b64decode(url.split("base64,", 1)[1].rstrip('")'))
    with Image.open(io.BytesIO(data)) as frame:
        pixel = frame.convert("RGB").getpixel((frame.width // 2, frame.height // 2))
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    assert abs(r - 217) <= 12 and abs(g - 51) <= 12 and abs(b - 26) <= 12, (r, g, b)


async def test_cross_origin_content_shows_labelled_placeholders_of_its_size(
    new_page: NewPage, server: Server, sites: FixtureSites
) -> None:
    """What cannot be mirrored (an iframe of another site, a canvas and a video tainted by
    another origin's pixels) keeps its box in the mirror and says what it is."""
    s = await co_browse(new_page, server, sites, "album")
    other = sites.origins["dashboard"]
    await s.customer.evaluate(
        """async (other) => {
            const box = document.createElement('section');
            box.id = 'foreign';
            const frame = document.createElement('iframe');
            frame.id = 'map';
            frame.src = other + '/';
            frame.width = '420';
            frame.height = '220';
            const img = new Image();
            img.src = other + '/photos/album-1.jpg';  // no CORS: drawing it taints the canvas
            await img.decode();
            const canvas = document.createElement('canvas');
            canvas.id = 'tainted';
            canvas.width = 300;
            canvas.height = 200;
            canvas.getContext('2d').drawImage(img, 0, 0, 300, 200);
            const video = document.createElement('video');
            video.id = 'foreign-video';
            video.muted = true;
            video.loop = true;
            video.src = other + '/media/tour.webm';
            video.width = 320;
            box.append(frame, canvas, video);
            document.querySelector('main').prepend(box);
            await video.play();
        }""",
        other,
    )
    view = mirror_frame(s.agent)
    for element in ("#map", "#tainted", "#foreign-video"):
        await expect(view.locator(element)).to_be_attached()
    # The iframe: same box, labelled.
    await until(
        lambda: view.locator("#map").evaluate("(f) => f.style.backgroundImage"),
        lambda v: "data:image/svg+xml" in v and "another%20site" in v,
    )
    # The canvas: a placeholder picture, not a blank one.
    url = await until(
        lambda: view.locator("#tainted").evaluate("(c) => c.style.backgroundImage"),
        lambda v: "data:image/png" in v,
    )
    data = base64.b64decode(url.split("base64,", 1)[1].rstrip('")'))
    with Image.open(io.BytesIO(data)) as placeholder:
        assert placeholder.size == (300, 200)
        assert placeholder.convert("RGB").getpixel((5, 5)) == (228, 228, 231)
    # The video: a placeholder poster (its frames can't be read), at the video's size.
    await expect(view.locator("#foreign-video")).to_have_attribute(
        "poster", re.compile(r"^data:image/png")
    )
    for element in ("#map", "#tainted", "#foreign-video"):
        mine = await s.customer.locator(element).bounding_box()
        assert mine, element

        def same_box(theirs: Any, mine: Any = mine) -> bool:
            return bool(theirs) and all(abs(mine[k] - theirs[k]) <= 1 for k in ("width", "height"))

        # Polled: the video's box takes its poster's size once that picture has decoded
        # (before, a video is 150 px high by default: seen once under load).
        await until(view.locator(element).bounding_box, same_box)
    # The foreign video's own stream is refused too (captureStream() of cross-origin media):
    # nothing goes to the media relay, no overlay covers its placeholder.
    held = server.app[keys.calls]._rooms.get(s.ticket_id)
    assert held is None or not [t for t in held[1].tracks() if t.source == "element"]
    await expect(s.agent.locator(".cb-streams video")).to_have_count(0)
