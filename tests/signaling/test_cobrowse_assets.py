"""The co-browse asset route against real origins on 127.0.0.1: what the agent's mirror may load.

Real aiohttp servers play the customer's site, its CDN, an unlisted host and a "private" host
(registered by a name that resolves to loopback); each counts the requests it gets. A real
customer socket shares a page that names their images and stylesheet; the agent's view gets only
``/cobrowse/assets/<token>`` URLs, which this test fetches as the agent's browser would.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from cobrowse import AssetKind
from signaling import keys
from signaling.assets.tokens import ASSET_PATH, DEFAULT_TTL, AssetSigner
from signaling.auth.accounts import add_site
from signaling.store import SiteRecord
from tests.blobs import blob_settings, s3_server
from tests.support import CONTEXT, Client, Running, free_port, running_server

__all__ = ["blob_settings", "s3_server"]


@pytest.fixture
async def server(tmp_path: Path, blob_settings: dict[str, Any]) -> AsyncIterator[Running]:
    """A test server whose blobs are in a directory, then in an S3 bucket (``tests/blobs.py``)."""
    async with running_server(tmp_path, **blob_settings) as running:
        yield running


RECORDER = "rrweb@2.0.0-alpha.20"


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2, 2), colour).save(out, "PNG")
    return out.getvalue()


PHOTO = png("red")
LOGO = png("blue")
BG = png("green")
PRIVATE = png("yellow")
FONT = b"wOF2" + bytes(60)


@asynccontextmanager
async def origin(
    routes: dict[str, Callable[[web.Request], web.StreamResponse]],
) -> AsyncIterator[tuple[str, Counter[str]]]:
    """A real HTTP server on 127.0.0.1 that counts requests per path."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        route = routes.get(request.path)
        if route is None:
            raise web.HTTPNotFound()
        return route(request)

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


def body(data: bytes, content_type: str) -> Callable[[web.Request], web.StreamResponse]:
    return lambda _r: web.Response(body=data, content_type=content_type)


def redirect(to: str) -> Callable[[web.Request], web.StreamResponse]:
    def go(_r: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(to)

    return go


def cookie_only(_r: web.Request) -> web.StreamResponse:
    if _r.cookies.get("session") != "customer-cookie":
        raise web.HTTPForbidden()
    return web.Response(body=PRIVATE, content_type="image/png")


@pytest.fixture
async def origins() -> AsyncIterator[dict[str, tuple[str, Counter[str]]]]:
    async with (
        origin({"/x.png": body(PHOTO, "image/png")}) as unlisted,
        origin({"/y.png": body(PHOTO, "image/png")}) as private,
        origin({"/logo.png": body(LOGO, "image/png")}) as cdn,
    ):
        private_by_name = private[0].replace("127.0.0.1", "localhost")
        css = (
            "@font-face{font-family:icons;src:url(/fonts/i.woff2) format('woff2')}"
            ".hero{background:url(../img/bg.png)}"
            f".x{{background:url({unlisted[0]}/x.png)}}"
        )
        async with origin(
            {
                "/img/photo.png": body(PHOTO, "image/png"),
                "/img/bg.png": body(BG, "image/png"),
                "/fonts/i.woff2": body(FONT, "font/woff2"),
                "/css/site.css": body(css.encode(), "text/css"),
                "/private.png": cookie_only,
                "/redirect-in": redirect("/img/photo.png"),
                "/redirect-out": redirect(f"{unlisted[0]}/x.png"),
                "/redirect-private": redirect(f"{private_by_name}/y.png"),
                "/page.html": body(b"<p>hi</p>", "text/html"),
            }
        ) as shop:
            yield {
                "shop": shop,
                "cdn": cdn,
                "unlisted": unlisted,
                "private": (private_by_name, private[1]),
            }


async def real_site(server: Running, shop: str, cdn: str, private: str) -> SiteRecord:
    return await add_site(server.app[keys.store], "Real shop", [shop], asset_hosts=[cdn, private])


def page(shop: str, cdn: str, unlisted: str, private: str) -> list[dict[str, Any]]:
    images = {
        "photo": f"{shop}/img/photo.png",
        "logo": f"{cdn}/logo.png",
        "unlisted": f"{unlisted}/x.png",
        "private": f"{private}/y.png",
        "redirect-in": f"{shop}/redirect-in",
        "redirect-out": f"{shop}/redirect-out",
        "redirect-private": f"{shop}/redirect-private",
        "cookie": f"{shop}/private.png",
        "html": f"{shop}/page.html",
    }
    kids = [
        {
            "type": 2,
            "tagName": "img",
            "attributes": {"src": url, "alt": name},
            "childNodes": [],
            "id": 10 + i,
        }
        for i, (name, url) in enumerate(images.items())
    ]
    link = {
        "type": 2,
        "tagName": "link",
        "attributes": {"rel": "stylesheet", "href": f"{shop}/css/site.css"},
        "childNodes": [],
        "id": 9,
    }
    doc = {
        "type": 0,
        "id": 1,
        "childNodes": [
            {
                "type": 2,
                "tagName": "html",
                "attributes": {},
                "id": 2,
                "childNodes": [
                    {"type": 2, "tagName": "head", "attributes": {}, "id": 3, "childNodes": [link]},
                    {"type": 2, "tagName": "body", "attributes": {}, "id": 4, "childNodes": kids},
                ],
            }
        ],
    }
    return [
        {"type": 4, "data": {"href": f"{shop}/p/1", "width": 800, "height": 600}, "timestamp": 1},
        {"type": 2, "data": {"node": doc, "initialOffset": {"top": 0, "left": 0}}, "timestamp": 2},
    ]


async def share(server: Running, site: SiteRecord, shop: str) -> tuple[Client, Client, str]:
    alice = await server.agent("alice")
    customer = await server.customer(site=site, origin=shop)
    ticket_id = (await customer.call("help.request", {"context": CONTEXT}))["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
    assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
    return alice, customer, ticket_id


def act_as_browser(customer: Client, shop: str, asked: list[str]) -> None:
    """The snippet's part: fetch what the server asks for, with the customer's cookies (here only
    the shop sets one), and send the bytes; report a failure for anything else. Redirects are
    not followed (a browser's CORS fetch would be refused at the other host, none sends
    ``Access-Control-Allow-Origin``), so no test origin but the shop hears from it."""

    async def needed(data: dict[str, Any]) -> None:
        chunks = []
        for want in data["assets"]:
            asked.append(want["url"])
            if not want["url"].startswith(shop):
                chunks.append({"id": want["id"], "error": "fetch_failed"})
                continue
            async with (
                aiohttp.ClientSession(cookies={"session": "customer-cookie"}) as http,
                http.get(want["url"], allow_redirects=False) as res,
            ):
                if res.status != 200:
                    chunks.append({"id": want["id"], "error": f"status_{res.status}"})
                    continue
                raw = await res.read()
                chunks.append(
                    {
                        "id": want["id"],
                        "contentType": res.headers["Content-Type"],
                        "url": str(res.url),
                        "data": base64.b64encode(raw).decode(),
                    }
                )
        ack = await customer.call("cobrowse.assets.supply", {"assets": chunks})
        assert ack["ok"], ack

    customer.sio.on("cobrowse.assets.needed", needed)


async def mirror_sources(alice: Client) -> dict[str, str]:
    got = await alice.wait_for("cobrowse.events")
    doc = got["events"][1]["data"]["node"]
    head, bodyel = doc["childNodes"][0]["childNodes"]
    out = {n["attributes"]["alt"]: n["attributes"]["src"] for n in bodyel["childNodes"]}
    out["css"] = head["childNodes"][0]["attributes"]["href"]
    return out


async def fetch(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(base + path) as res:
        return res.status, dict(res.headers), await res.read()


async def test_assets_come_from_allowed_hosts_or_the_customers_browser(
    server: Running, origins: dict[str, tuple[str, Counter[str]]]
) -> None:
    shop, shop_hits = origins["shop"]
    cdn, _ = origins["cdn"]
    unlisted, unlisted_hits = origins["unlisted"]
    private, private_hits = origins["private"]
    site = await real_site(server, shop, cdn, private)
    alice, customer, ticket_id = await share(server, site, shop)
    asked: list[str] = []
    act_as_browser(customer, shop, asked)
    ack = await customer.call(
        "cobrowse.events", {"data": json.dumps(page(shop, cdn, unlisted, private))}
    )
    assert ack["ok"], ack
    sources = await mirror_sources(alice)
    assert all(src.startswith(ASSET_PATH) for src in sources.values()), sources

    results = dict(
        zip(
            sources,
            await asyncio.gather(*(fetch(server.base_url, src) for src in sources.values())),
            strict=True,
        )
    )
    status = {name: r[0] for name, r in results.items()}
    assert status == {
        "photo": 200,
        "logo": 200,
        "unlisted": 404,
        "private": 404,
        "redirect-in": 200,
        "redirect-out": 404,
        "redirect-private": 404,
        "cookie": 200,
        "html": 404,
        "css": 200,
    }
    assert results["photo"][2] == PHOTO and results["redirect-in"][2] == PHOTO
    assert results["logo"][2] == LOGO
    assert results["cookie"][2] == PRIVATE  # from the customer's browser, which has the cookie
    for name in ("photo", "logo", "cookie"):
        headers = results[name][1]
        assert headers["Content-Type"] == "image/png"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"].startswith("private, max-age=")

    # Never requested by the server: the unlisted host, the private one, redirects to them.
    assert unlisted_hits == Counter()
    assert private_hits == Counter()
    # Each redirect was asked once by the server (refused at the next hop) and once by the
    # customer's browser (which did not follow it).
    assert shop_hits["/redirect-out"] == 2 and shop_hits["/redirect-private"] == 2
    # The customer's browser was asked only for what the server could not fetch.
    wanted = [f"{unlisted}/x.png", f"{private}/y.png", f"{shop}/redirect-out"]
    wanted += [f"{shop}/redirect-private", f"{shop}/private.png"]
    assert sorted(asked) == sorted(wanted)
    assert f"{shop}/img/photo.png" not in asked

    # The stylesheet: sanitized, its own URLs rewritten to tokens, relative to the stylesheet.
    css = results["css"][2].decode()
    assert results["css"][1]["Content-Type"] == "text/css; charset=utf-8"
    urls = re.findall(r'url\("([^"]*)"\)', css)
    assert len(urls) == 3 and all(u.startswith(ASSET_PATH) for u in urls), css
    font, bg, outside = await asyncio.gather(*(fetch(server.base_url, u) for u in urls))
    assert (font[0], font[1]["Content-Type"], font[2]) == (200, "font/woff2", FONT)
    assert (bg[0], bg[2]) == (200, BG)
    assert outside[0] == 404 and unlisted_hits == Counter()

    # Cached: another look (another agent, another session) costs the shop nothing.
    before = shop_hits["/img/photo.png"]  # the photo, and the end of redirect-in
    again = await fetch(server.base_url, sources["photo"])
    assert again[0] == 200 and shop_hits["/img/photo.png"] == before == 2

    assert (await customer.call("cobrowse.stop", {}))["ok"]
    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    counts = next(e["data"] for e in ticket["timeline"] if e["type"] == "cobrowse.assets")
    assert counts["server"] == 6  # photo, logo, redirect-in, css, font, bg
    assert counts["browser"] == 1  # the cookie-protected one
    assert counts["refused"] >= 5


async def test_tokens_must_be_ours_unexpired_and_for_a_real_session(
    server: Running, origins: dict[str, tuple[str, Counter[str]]]
) -> None:
    shop, shop_hits = origins["shop"]
    cdn, _ = origins["cdn"]
    site = await real_site(server, shop, cdn, origins["private"][0])
    alice, customer, ticket_id = await share(server, site, shop)
    act_as_browser(customer, shop, [])
    events = page(shop, cdn, origins["unlisted"][0], origins["private"][0])
    assert (await customer.call("cobrowse.events", {"data": json.dumps(events)}))["ok"]
    good = (await mirror_sources(alice))["photo"]
    token = good[len(ASSET_PATH) :]
    payload, mac = token.split(".")

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    original = base64.urlsafe_b64decode(payload + "==")
    other_session = b64(original.replace(ticket_id.encode(), b"t_someone_else", 1))
    secret = server.app[keys.secret]
    expired = AssetSigner(secret, clock=lambda: time.time() - 3 * DEFAULT_TTL).sign(
        ticket_id, f"{shop}/img/photo.png", AssetKind.IMAGE
    )
    no_such_session = AssetSigner(secret).sign("t_nobody", f"{shop}/img/photo.png", AssetKind.IMAGE)
    other_server = AssetSigner("another secret").sign(
        ticket_id, f"{shop}/img/photo.png", AssetKind.IMAGE
    )
    refused = {
        "unsigned": "aGVsbG8",
        "empty mac": f"{payload}.",
        "forged mac": f"{payload}.{b64(bytes(16))}",
        "foreign session": f"{other_session}.{mac}",
        "other server": other_server,
        "no such session": no_such_session,
        "expired": expired,
    }
    for name, bad in refused.items():
        status, headers, _ = await fetch(server.base_url, ASSET_PATH + bad)
        assert status == (410 if name == "expired" else 403), name
        assert headers["Cache-Control"] == "no-store"
    assert shop_hits["/img/photo.png"] == 0  # no refused token made the server fetch anything
    assert (await fetch(server.base_url, good))[0] == 200


async def test_one_fetch_serves_every_session_and_limits_hold(server: Running) -> None:
    """Two customers on the same page, many requests at once: the shop is asked once. An SVG is
    served as an inert image; an oversized image and a font used as an image are refused."""
    svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'><rect/></svg>"
    huge = b"\x89PNG\r\n\x1a\n" + bytes(9 * 1024 * 1024)
    async with origin(
        {
            "/img/photo.png": body(PHOTO, "image/png"),
            "/icon.svg": body(svg, "image/svg+xml"),
            "/huge.png": body(huge, "image/png"),
            "/font.woff2": body(FONT, "font/woff2"),
        }
    ) as (shop, hits):
        site = await add_site(server.app[keys.store], "Busy shop", [shop])
        views = []
        for _ in range(2):
            alice, customer, _ticket = await share(server, site, shop)
            names = ["img/photo.png", "icon.svg", "huge.png", "font.woff2"]
            imgs = [
                {
                    "type": 2,
                    "tagName": "img",
                    "attributes": {"src": f"{shop}/{n}"},
                    "childNodes": [],
                    "id": 10 + i,
                }
                for i, n in enumerate(names)
            ]
            events = page(shop, shop, shop, shop)
            events[1]["data"]["node"]["childNodes"][0]["childNodes"][1]["childNodes"] = imgs
            assert (await customer.call("cobrowse.events", {"data": json.dumps(events)}))["ok"]
            got = await alice.wait_for("cobrowse.events")
            body_node = got["events"][1]["data"]["node"]["childNodes"][0]["childNodes"][1]
            views.append([n["attributes"]["src"] for n in body_node["childNodes"]])
            await alice.close()
        photo_a, photo_b = views[0][0], views[1][0]
        assert photo_a != photo_b  # one token per session...
        results = await asyncio.gather(
            *(fetch(server.base_url, src) for _ in range(10) for src in (photo_a, photo_b))
        )
        assert {r[0] for r in results} == {200}
        assert hits["/img/photo.png"] == 1  # ...one fetch for all of them

        status, headers, data = await fetch(server.base_url, views[0][1])
        assert (status, data) == (200, svg)
        assert headers["Content-Type"] == "image/svg+xml"
        assert headers["Content-Disposition"] == "attachment"
        assert "sandbox" in headers["Content-Security-Policy"]
        assert (await fetch(server.base_url, views[0][2]))[0] == 404  # over the size cap
        assert (await fetch(server.base_url, views[0][3]))[0] == 404  # a font is no <img>
