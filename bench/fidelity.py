#!/usr/bin/env python
"""Co-browse fidelity: how much of what the customer sees the agent's mirror shows, pixel for
pixel, on six third-party-looking pages (``tests/fixtures/sites``).

One real Tandem server (in this process, SQLite in a temp dir, 127.0.0.1) and one fixture
server per page, each on its own origin, all listed as origins of one site whose snippet the
pages embed. For every page, in Debian's Chromium (Playwright):

1. the customer opens the page (``shop`` with its member cookie), asks for help, the agent
   accepts and asks to co-browse, the customer allows. **first**: both pictures once the page
   has settled; **ttfp**: seconds from Allow to the page's ``[data-fixture]`` in the mirror;
2. the customer types into ``[data-bench=type]``, opens ``[data-bench=toggle]`` and scrolls to
   the end in steps. **follow**: median seconds from a customer scroll to the mirror at the
   same position; **after**: both pictures at the end;
3. the same agent opens the session in a second tab (a late joiner: ``cobrowse.join``
   catch-up). **late**: both pictures.

A picture's score is the share of pixels that match (no channel more than 8/255 apart) between
the customer's viewport (Tandem's own UI hidden) and the agent's replay stage, which is at scale
1 because the agent's window leaves the stage room for the customer's whole viewport. Also
printed: scroll positions (customer/mirror after the interactions and for the late joiner), the
sanitized full snapshot's size, and assets fetched by the server vs supplied by the customer's
browser, read from the ticket timeline ('-' while the server has no asset route).

Usage::

    .venv/bin/python bench/fidelity.py                    # all six pages (~2-3 min)
    .venv/bin/python bench/fidelity.py --pages dashboard,shop --shots artifacts/fidelity
    .venv/bin/python bench/fidelity.py --json artifacts/fidelity.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import socketio  # noqa: E402
from aiohttp import web  # noqa: E402
from playwright.async_api import Browser, Page, async_playwright  # noqa: E402

from signaling import keys  # noqa: E402
from signaling.app import create_app  # noqa: E402
from signaling.auth.accounts import add_site, ensure_demo  # noqa: E402
from signaling.settings import Settings  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.browser.fidelity_support import (  # noqa: E402
    COOKIE_PAGES,
    FIDELITY_SITE_KEY,
    PAGES,
    customer_picture,
    customer_scroll,
    diff_picture,
    fit_scale_one,
    fixture_origins,
    free_port,
    make_media,
    match_share,
    member_cookie,
    mirror_frame,
    mirror_picture,
    mirror_scroll,
    open_live_session,
    open_session,
    serve_fixtures,
    sign_in_agent,
    stage_box,
    start_sharing,
    tandem_widget,
)

CUSTOMER_VIEWPORT = {"width": 1280, "height": 800}
# Wide and tall enough that the replay stage holds the customer's viewport at scale 1.
AGENT_VIEWPORT = {"width": 1760, "height": 1040}
SETTLE_S = 2.5  # after a change, for fonts, images, charts' animations and the mirror to settle
SCROLL_STEPS = 5


@dataclass
class PageResult:
    page: str
    first: float | None = None
    after: float | None = None
    late: float | None = None
    ttfp_s: float | None = None
    follow_ms: float | None = None
    snapshot_bytes: int | None = None
    scroll_after: tuple[float, float] | None = None  # customer y, mirror y
    scroll_late: tuple[float, float] | None = None
    assets_server: int | None = None
    assets_browser: int | None = None
    scale: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Env:
    tandem_url: str
    agent_email: str
    password: str
    browser: Browser
    shots: Path | None


async def settle(*pages: Page) -> None:
    for page in pages:
        try:
            await page.wait_for_load_state("networkidle", timeout=5_000)
        except Exception:  # a page that keeps loading (the video) never goes idle
            pass
    await asyncio.sleep(SETTLE_S)


async def compare(env: Env, name: str, phase: str, customer: Page, agent: Page) -> float:
    mine = await customer_picture(customer)
    theirs = await mirror_picture(agent, mine.size)
    score = match_share(mine, theirs)
    if env.shots is not None:
        env.shots.mkdir(parents=True, exist_ok=True)
        mine.save(env.shots / f"{name}-{phase}-customer.png")
        theirs.save(env.shots / f"{name}-{phase}-mirror.png")
        diff_picture(mine, theirs).save(env.shots / f"{name}-{phase}-diff.png")
    return score


async def login_token(env: Env) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{env.tandem_url}/api/auth/login",
            json={"email": env.agent_email, "password": env.password},
        ) as res:
            return str((await res.json())["token"])


async def snapshot_bytes(env: Env, token: str, ticket_id: str) -> int | None:
    """Size of the sanitized full snapshot a late joiner gets (JSON, UTF-8)."""
    client = socketio.AsyncClient()
    await client.connect(
        env.tandem_url, auth={"v": 1, "role": "agent", "token": token}, transports=["websocket"]
    )
    try:
        view = await client.call("cobrowse.join", {"ticketId": ticket_id}, timeout=20)
    finally:
        await client.disconnect()
    fulls = [e for e in (view or {}).get("events", []) if e.get("type") == 2]
    return len(json.dumps(fulls[-1]).encode()) if fulls else None


def _asset_tally(node: object) -> dict[str, int] | None:
    """The counts of the ticket's ``cobrowse.assets`` timeline entry, wherever it sits."""
    if isinstance(node, dict):
        if "cobrowse.assets" in node.values():
            for value in node.values():
                if isinstance(value, dict) and ({"server", "browser", "refused"} & value.keys()):
                    return {k: int(v) for k, v in value.items() if isinstance(v, int)}
        children: list[object] = list(node.values())
    elif isinstance(node, list):
        children = list(node)
    else:
        return None
    for child in children:
        found = _asset_tally(child)
        if found is not None:
            return found
    return None


async def asset_counts(env: Env, token: str, ticket_id: str) -> tuple[int | None, int | None]:
    """Assets fetched by the server and supplied by the customer's browser, as the ticket
    timeline states them once sharing stops; (None, None) when it says nothing of assets."""
    for _ in range(20):
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{env.tandem_url}/api/tickets/{ticket_id}",
                headers={"Authorization": f"Bearer {token}"},
            ) as res:
                tally = _asset_tally(await res.json())
        if tally is not None:
            return tally.get("server", 0), tally.get("browser", 0)
        await asyncio.sleep(0.25)
    return None, None


async def until_same_scroll(customer: Page, agent: Page, timeout: float) -> bool:
    """Wait until the mirror is where the customer's page is now (which may move on its own:
    scroll anchoring while something above grows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if abs((await customer_scroll(customer))[1] - (await mirror_scroll(agent))[1]) <= 1:
            return True
        await asyncio.sleep(0.02)
    return False


async def follow_latency(customer: Page, agent: Page) -> tuple[list[float], list[str]]:
    """Scroll the customer's page to the end in steps; per step, seconds until the mirror is
    at the same position. Returns the latencies and the steps the mirror never reached."""
    height = await customer.evaluate("document.documentElement.scrollHeight - innerHeight")
    latencies: list[float] = []
    missed: list[str] = []
    for step in range(1, SCROLL_STEPS + 1):
        y = round(height * step / SCROLL_STEPS)
        started = time.monotonic()
        await customer.evaluate(f"window.scrollTo({{top: {y}, behavior: 'instant'}})")
        if await until_same_scroll(customer, agent, timeout=5):
            latencies.append(time.monotonic() - started)
        else:
            mine, theirs = (await customer_scroll(customer))[1], (await mirror_scroll(agent))[1]
            missed.append(f"{mine:.0f} (mirror at {theirs:.0f})")
    # Scrolling to the end may have loaded more: end up at the true end.
    await customer.evaluate(
        "window.scrollTo({top: document.documentElement.scrollHeight, behavior: 'instant'})"
    )
    return latencies, missed


async def interact(customer: Page) -> None:
    box = customer.locator("[data-bench=type]").first
    await box.scroll_into_view_if_needed()
    # Focus and click through the DOM: Tandem's sharing bar may lie over the spot.
    await box.focus()
    await box.press_sequentially("where is my order", delay=15)
    toggle = customer.locator("[data-bench=toggle]").first
    await toggle.scroll_into_view_if_needed()
    await toggle.evaluate("(el) => el.click()")


async def run_page(env: Env, name: str, url: str, origin: str) -> PageResult:
    result = PageResult(name)
    agent_ctx = await env.browser.new_context(viewport=AGENT_VIEWPORT)  # type: ignore[arg-type]
    customer_ctx = await env.browser.new_context(viewport=CUSTOMER_VIEWPORT)  # type: ignore[arg-type]
    try:
        if name in COOKIE_PAGES:
            await customer_ctx.add_cookies([member_cookie(origin)])  # type: ignore[list-item]
        agent = await sign_in_agent(
            await agent_ctx.new_page(), env.tandem_url, env.agent_email, env.password
        )
        customer = await customer_ctx.new_page()
        ticket_id = await open_session(agent, customer, url, f"Help with the {name} page")
        result.ttfp_s = await start_sharing(agent, customer)
        await fit_scale_one(agent, CUSTOMER_VIEWPORT)
        await settle(customer, agent)
        box = await stage_box(agent)
        result.scale = round(box["width"] / CUSTOMER_VIEWPORT["width"], 3)
        if abs(result.scale - 1) > 0.01:
            result.notes.append(f"replay at scale {result.scale}, not 1: pictures are cut")
        result.first = await compare(env, name, "first", customer, agent)

        await interact(customer)
        await asyncio.sleep(1)  # the menu's own transition (Bootstrap's collapse: 350 ms)
        latencies, missed = await follow_latency(customer, agent)
        if latencies:
            result.follow_ms = statistics.median(latencies) * 1000
        if missed:
            result.notes.append(f"the mirror did not reach scroll {', '.join(missed)}")
        await settle(customer, agent)
        result.scroll_after = (
            (await customer_scroll(customer))[1],
            (await mirror_scroll(agent))[1],
        )
        result.after = await compare(env, name, "after", customer, agent)

        late = await sign_in_agent(
            await agent_ctx.new_page(), env.tandem_url, env.agent_email, env.password
        )
        await open_live_session(late, ticket_id)
        await (
            mirror_frame(late).locator("[data-fixture]").wait_for(state="attached", timeout=30_000)
        )
        await fit_scale_one(late, CUSTOMER_VIEWPORT)
        await settle(customer, late)
        result.scroll_late = ((await customer_scroll(customer))[1], (await mirror_scroll(late))[1])
        result.late = await compare(env, name, "late", customer, late)

        token = await login_token(env)
        result.snapshot_bytes = await snapshot_bytes(env, token, ticket_id)
        # The asset tally goes on the timeline when sharing stops.
        await (
            tandem_widget(customer)
            .locator(".cb-bar .cb-btn", has_text="Stop sharing")
            .evaluate("(b) => b.click()")
        )
        result.assets_server, result.assets_browser = await asset_counts(env, token, ticket_id)
    except Exception as exc:  # one broken page must not hide the others' figures
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if env.shots is not None:
            for i, page in enumerate(agent_ctx.pages):
                await page.screenshot(path=env.shots / f"{name}-error-agent{i}.png")
    finally:
        await agent_ctx.close()
        await customer_ctx.close()
    return result


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def num(v: float | int | None, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def scroll(v: tuple[float, float] | None) -> str:
    return "-" if v is None else f"{v[0]:.0f}/{v[1]:.0f}"


def print_table(results: list[PageResult]) -> None:
    head = ["page", "first", "after", "late", "ttfp s", "follow ms", "snapshot KB",
            "scroll after c/m", "scroll late c/m", "assets srv", "assets browser"]  # fmt: skip
    rows = [head]
    for r in results:
        kib = None if r.snapshot_bytes is None else r.snapshot_bytes / 1024
        rows.append(
            [
                r.page, pct(r.first), pct(r.after), pct(r.late), num(r.ttfp_s, "{:.2f}"),
                num(r.follow_ms), num(kib, "{:.1f}"), scroll(r.scroll_after),
                scroll(r.scroll_late), num(r.assets_server), num(r.assets_browser),
            ]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in results:
        for note in r.notes:
            print(f"note: {r.page}: {note}")
        if r.error:
            print(f"error: {r.page}: {r.error}")
    scores = [s for r in results for s in (r.first, r.after, r.late) if s is not None]
    if scores:
        print(f"lowest picture: {min(scores) * 100:.1f}%   target: 95% in every picture")


async def main(args: argparse.Namespace) -> list[PageResult]:
    names = tuple(args.pages.split(",")) if args.pages else PAGES
    data = Path(tempfile.mkdtemp(prefix="tandem-fidelity-"))
    port = free_port()
    tandem_url = f"http://127.0.0.1:{port}"
    app = create_app(Settings(host="127.0.0.1", port=port, data_dir=data))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    agent_email, password, _ = await ensure_demo(app[keys.store], data, tandem_url)
    origins = fixture_origins(names)
    await add_site(app[keys.store], "Fidelity fixtures", list(origins.values()), FIDELITY_SITE_KEY)
    media = make_media(data / "media")
    results: list[PageResult] = []
    try:
        async with serve_fixtures(origins, tandem_url, media) as sites, async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            env = Env(
                tandem_url, agent_email, password, browser, Path(args.shots) if args.shots else None
            )
            for name in names:
                started = time.monotonic()
                result = await run_page(env, name, sites.url(name), sites.origins[name])
                results.append(result)
                print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
            await browser.close()
    finally:
        await runner.cleanup()
    print_table(results)
    if args.json:
        write_json(Path(args.json), results)
    return results


def write_json(path: Path, results: list[PageResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", help=f"comma-separated subset of {','.join(PAGES)}")
    parser.add_argument("--shots", help="folder for the customer/mirror/diff pictures")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
