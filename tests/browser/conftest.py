"""Fixtures for the browser tests: a built ``web/dist``, the real server, one Chromium per module.

Chromium is Debian's (``/usr/bin/chromium``, or ``TANDEM_CHROMIUM``), driven by Python
Playwright; ``playwright install`` is never needed. The server runs in-process on 127.0.0.1 with
the demo site (``pk_demo``) and agents of ``signaling.auth.accounts.ensure_demo``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
)

from signaling import keys
from signaling.app import create_app
from signaling.auth.accounts import ensure_demo
from signaling.desk import Desk
from signaling.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")
DESKTOP: ViewportSize = {"width": 1360, "height": 860}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_SOURCES = ("src", "public", "build.mjs", "package.json", "package-lock.json")


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """``web/dist``, rebuilt when missing or older than its sources (the setup script normally
    builds it first)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    dist = WEB / "dist"
    built = dist / "index.html"
    if not built.exists() or built.stat().st_mtime < _newest([WEB / s for s in _SOURCES]):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("web/dist is stale and npm is not installed")
        if not (WEB / "node_modules").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=300)
        subprocess.run([npm, "run", "build"], cwd=WEB, check=True, timeout=300)
    return dist


@dataclass
class Server:
    url: str
    app: web.Application
    agent_email: str
    password: str
    supervisor_email: str

    @property
    def desk(self) -> Desk:
        return self.app[keys.desk]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    data = tmp_path_factory.mktemp("tandem-data")
    port = _free_port()
    # One server for a whole module: its one agent takes a session in most tests, so the
    # default capacity (3 at once) is raised rather than every test ending its sessions.
    settings = Settings(host="127.0.0.1", port=port, data_dir=data, agent_capacity=100)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    agent, password, supervisor = await ensure_demo(app[keys.store], data, url)
    try:
        yield Server(url, app, agent, password, supervisor)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@dataclass
class PageProblems:
    """Console CSP violations and uncaught errors seen by the pages of one test."""

    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(msg: ConsoleMessage) -> None:
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
                self.csp.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page


@pytest.fixture
def problems() -> Iterator[PageProblems]:
    seen = PageProblems()
    yield seen
    assert seen.csp == [], f"CSP violations: {seen.csp}"
    assert seen.errors == [], f"uncaught page errors: {seen.errors}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


NewPage = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def new_page(browser: Browser, problems: PageProblems) -> AsyncIterator[NewPage]:
    """Open a page in a fresh browser context (closed after the test); keyword arguments go to
    ``Browser.new_context`` (default: a 1360x860 desktop viewport)."""
    contexts: list[BrowserContext] = []

    async def make(**options: object) -> Page:
        context = await browser.new_context(**({"viewport": DESKTOP} | options))  # type: ignore[arg-type]
        contexts.append(context)
        return problems.watch(await context.new_page())

    yield make
    for context in contexts:
        await context.close()
