"""Resource URLs in the mirror: rewritten to Tandem's asset route, or blocked; inline SVG images
kept only when they can do nothing but draw."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from cobrowse import (
    BLOCKED_URL,
    AssetKind,
    SanitizeContext,
    SanitizeReport,
    resolve_url,
    sanitize_batch,
    sanitize_css,
    svg_data_url_ok,
)
from signaling.assets.tokens import ASSET_PATH, AssetSigner
from tests.cobrowse.cobrowse_factories import add, el, full, meta, mutation, page, text

PAGE = "https://shop.test/products/1"
SIGNER = AssetSigner("test-secret", clock=lambda: 1_000_000.0)
SVG_OK = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<defs><linearGradient id='g'><stop offset='0' stop-color='%23fff'/></linearGradient></defs>"
    "<path fill='none' stroke='url(%23g)' d='M2 5l6 6 6-6'/></svg>"
)


def svg_url(body: str) -> str:
    return "data:image/svg+xml," + body


def context() -> SanitizeContext:
    return SanitizeContext(assets=SIGNER.rewriter("t_1"), base_url=PAGE)


def claim_of(url: str) -> tuple[str, AssetKind]:
    """The original URL and kind an asset URL names (checked with the real signer)."""
    assert url.startswith(ASSET_PATH), url
    token = url[len(ASSET_PATH) :].split("#")[0]
    claim = SIGNER.verify(token)
    assert claim.session_id == "t_1"
    return claim.url, claim.kind


_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^'")]*))\s*\)""", re.I)


def css_urls(css: str) -> list[str]:
    return [next((g for g in m.groups() if g is not None), "") for m in _CSS_URL.finditer(css)]


def test_image_sources_become_signed_asset_urls() -> None:
    img = el(
        "img",
        {
            "src": "https://shop.test/img/shoe.jpg",
            "srcset": "https://cdn.test/shoe-1x.jpg 1x, /img/shoe-2x.jpg 2x",
            "alt": "Shoe",
        },
    )
    video = el("video", {"poster": "https://shop.test/poster.png", "src": "https://v.test/a.mp4"})
    use = el("use", {"href": "https://shop.test/sprite.svg#cart"}, svg=True)
    local_use = el("use", {"href": "#cart"}, svg=True)
    table = el("table", {"background": "bg.gif"})
    link = el("a", {"href": "https://elsewhere.test/page"})
    events = [meta(href=PAGE), full(page(img, video, use, local_use, table, link))]
    report = sanitize_batch(events, context=context())

    assert claim_of(img["attributes"]["src"]) == ("https://shop.test/img/shoe.jpg", "i")
    candidates = [c.split() for c in img["attributes"]["srcset"].split(", ")]
    assert [claim_of(u) for u, _ in candidates] == [
        ("https://cdn.test/shoe-1x.jpg", "i"),
        ("https://shop.test/img/shoe-2x.jpg", "i"),
    ]
    assert [d for _, d in candidates] == ["1x", "2x"]
    assert claim_of(video["attributes"]["poster"]) == ("https://shop.test/poster.png", "i")
    assert video["attributes"]["src"] == BLOCKED_URL  # media is never fetched for the mirror
    href = use["attributes"]["href"]
    assert href.endswith("#cart") and claim_of(href) == ("https://shop.test/sprite.svg", "i")
    assert local_use["attributes"]["href"] == "#cart"
    assert claim_of(table["attributes"]["background"]) == ("https://shop.test/products/bg.gif", "i")
    assert link["attributes"]["href"] == "https://elsewhere.test/page"  # a link loads nothing
    assert report.as_dict() == {"media_url": 1}


def test_stylesheet_links_and_css_urls_are_rewritten() -> None:
    link = el("link", {"rel": "stylesheet", "href": "https://cdn.test/site.css"})
    style = el(
        "style",
        {},
        [
            text(
                "@import 'theme.css' screen;"
                "@font-face{font-family:i;src:url(/fonts/i.woff2) format('woff2')}"
                '.hero{background:url("https://cdn.test/hero.jpg") no-repeat}'
                ".retina{background-image:image-set('a.png' 1x, url(b.png) 2x)}"
            )
        ],
    )
    div = el("div", {"style": "background-image:url(//cdn.test/x.png);color:red"})
    events = [meta(href=PAGE), full(page(div, head=[link, style]))]
    sanitize_batch(events, context=context())

    assert claim_of(link["attributes"]["href"]) == ("https://cdn.test/site.css", "c")
    css = style["childNodes"][0]["textContent"]
    assert "@import url(" in css
    found = [claim_of(u) for u in css_urls(css)]
    assert found == [
        ("https://shop.test/products/theme.css", "c"),
        ("https://shop.test/fonts/i.woff2", "r"),
        ("https://cdn.test/hero.jpg", "i"),
        ("https://shop.test/products/a.png", "i"),
        ("https://shop.test/products/b.png", "r"),
    ]
    assert "screen" in css and "format('woff2')" in css and "no-repeat" in css
    assert claim_of(css_urls(div["attributes"]["style"])[0]) == ("https://cdn.test/x.png", "i")
    assert div["attributes"]["style"].endswith("color:red")


def test_rewriting_is_idempotent_and_keeps_ids() -> None:
    img = el("img", {"src": "https://shop.test/a.png"})
    style = el("style", {}, [text("a{background:url(b.png)}@import 'c.css';")])
    events = [meta(href=PAGE), full(page(img, head=[style]))]
    ctx = context()
    sanitize_batch(events, context=ctx)
    once = copy.deepcopy(events)
    assert sanitize_batch(events, context=ctx).total == 0
    assert events == once


def test_nothing_in_the_mirror_names_another_host() -> None:
    """Every URL that would be loaded is inline, a fragment, or on Tandem's asset route."""
    hostile = [
        el("img", {"src": "http://evil.test/i.png", "srcset": "http://evil.test/s.png 2x"}),
        el("input", {"type": "image", "src": "http://evil.test/in.png"}),
        el("image", {"href": "http://evil.test/svg.png"}, svg=True),
        el("feImage", {"xlink:href": "//evil.test/fe.png"}, svg=True),
        el("audio", {"src": "http://evil.test/a.mp3"}),
        el("video", {}, [el("track", {"src": "http://evil.test/t.vtt"})]),
        el("picture", {}, [el("source", {"srcset": "http://evil.test/p.png"})]),
        el("div", {"style": "background:u\\72l(http://evil.test/e.png)"}),
        el("div", {"style": "background:image-set('http://evil.test/s.png' 1x)"}),
        el("style", {}, [text("@import url(http://evil.test/i.css);p{cursor:url(x.cur),auto}")]),
    ]
    events = [meta(href=PAGE), full(page(*hostile))]
    sanitize_batch(events, context=context())
    loaded: list[str] = []
    stack: list[dict[str, Any]] = [events[1]["data"]["node"]]
    while stack:
        node = stack.pop()
        for name, value in (node.get("attributes") or {}).items():
            if name in ("src", "href", "xlink:href", "poster"):
                loaded.append(value)
            elif name == "srcset":
                loaded += [c.split()[0] for c in value.split(", ") if c]
            elif name == "style":
                loaded += css_urls(value)
        if node.get("type") == 3:
            loaded += css_urls(node["textContent"])
        stack.extend(node.get("childNodes", []))
    assert loaded
    for url in loaded:
        assert url == BLOCKED_URL or url.startswith(ASSET_PATH), url
        if url.startswith(ASSET_PATH):
            claim_of(url)


def test_forged_and_foreign_asset_urls_are_not_kept() -> None:
    """An asset URL in the customer's own events is kept only if we issued it for this session."""
    ours = SIGNER.rewriter("t_1").asset_url("https://shop.test/a.png", AssetKind.IMAGE)
    theirs = SIGNER.rewriter("t_2").asset_url("https://shop.test/a.png", AssetKind.IMAGE)
    forged = (
        AssetSigner("another-secret").rewriter("t_1").asset_url("https://x.test/", AssetKind.IMAGE)
    )
    assert ours and theirs and forged
    img_ours, img_theirs, img_forged = (el("img", {"src": u}) for u in (ours, theirs, forged))
    events = [meta(href=PAGE), full(page(img_ours, img_theirs, img_forged))]
    sanitize_batch(events, context=context())
    assert img_ours["attributes"]["src"] == ours
    # Relative URLs on the customer's page: resolved against it, then signed afresh.
    for img in (img_theirs, img_forged):
        url, _ = claim_of(img["attributes"]["src"])
        assert url.startswith("https://shop.test/cobrowse/assets/")


def test_mutations_are_rewritten_too() -> None:
    ctx = context()
    sanitize_batch([meta(href=PAGE), full(page(el("img", {"src": "a.png"}, id=50)))], context=ctx)
    added = el("img", {"src": "/late.png"})
    batch = [
        mutation(
            adds=[add(added)],
            attributes=[
                {"id": 50, "attributes": {"src": "https://cdn.test/swap.png"}},
                {"id": 5, "attributes": {"style": {"background-image": "url(/bg.png)"}}},
            ],
        )
    ]
    sanitize_batch(batch, context=ctx)
    assert claim_of(added["attributes"]["src"]) == ("https://shop.test/late.png", "i")
    changes = batch[0]["data"]["attributes"]
    assert claim_of(changes[0]["attributes"]["src"]) == ("https://cdn.test/swap.png", "i")
    bg = changes[1]["attributes"]["style"]["background-image"]
    assert claim_of(css_urls(bg)[0]) == ("https://shop.test/bg.png", "i")


def test_without_a_rewriter_nothing_changes_for_http_images() -> None:
    img = el("img", {"src": "https://cdn.test/a.png"})
    sanitize_batch([full(page(img))])
    assert img["attributes"]["src"] == "https://cdn.test/a.png"


# ----------------------------------------------------------------- inline SVG images


@pytest.mark.parametrize(
    "url",
    [
        svg_url(SVG_OK),
        svg_url(quote("<svg xmlns='http://www.w3.org/2000/svg'><circle r='2'/></svg>")),
        "data:image/svg+xml;charset=utf-8,"
        + quote("<svg xmlns='http://www.w3.org/2000/svg'><rect width='1' height='1'/></svg>"),
        "data:image/svg+xml;base64,"
        + base64.b64encode(
            b"<?xml version='1.0' encoding='UTF-8'?><svg xmlns='http://www.w3.org/2000/svg'>"
            b"<style>path{fill:red}</style><path d='M0 0'/></svg>"
        ).decode(),
        svg_url(
            "<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink'>"
            "<defs><path id='p' d='M0 0'/></defs><use xlink:href='%23p'/></svg>"
        ),
    ],
)
def test_svg_data_urls_that_only_draw_are_accepted(url: str) -> None:
    assert svg_data_url_ok(url)


@pytest.mark.parametrize(
    "body",
    [
        "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><foreignObject><div/></foreignObject></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><image href='https://evil.test/x.png'/></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg' xmlns:x='http://www.w3.org/1999/xlink'>"
        "<use x:href='https://evil.test/s.svg%23a'/></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><rect style='fill:url(https://evil.test/f)'/></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><style>@import url(https://evil.test/x.css);</style></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><style>rect{fill:u\\72l(https://e.test)}</style></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><a href='javascript:alert(1)'><rect/></a></svg>",
        "<svg xmlns='http://www.w3.org/2000/svg'><set attributeName='href' to='x'/></svg>",
        "<!DOCTYPE svg [<!ENTITY a 'aaaa'>]><svg xmlns='http://www.w3.org/2000/svg'>&a;</svg>",
        "<?xml-stylesheet href='https://evil.test/x.css'?><svg xmlns='http://www.w3.org/2000/svg'/>",
        "<svg><rect/></svg>",  # no SVG namespace: not an SVG image
        "<html xmlns='http://www.w3.org/1999/xhtml'><script>1</script></html>",
        "<svg xmlns='http://www.w3.org/2000/svg'",  # not well-formed
    ],
)
def test_svg_data_urls_that_can_do_more_are_refused(body: str) -> None:
    assert not svg_data_url_ok(svg_url(quote(body, safe="'<>/=: ")))
    assert not svg_data_url_ok(
        "data:image/svg+xml;base64," + base64.b64encode(body.encode()).decode()
    )


def test_svg_data_urls_need_utf8_and_a_sane_size() -> None:
    assert not svg_data_url_ok("data:image/svg+xml;charset=utf-16," + quote(SVG_OK))
    big = "<svg xmlns='http://www.w3.org/2000/svg'>" + "<g/>" * 20_000 + "</svg>"
    assert not svg_data_url_ok(svg_url(quote(big)))


def test_svg_data_url_kept_where_it_is_only_an_image() -> None:
    tick = svg_url(SVG_OK)
    img = el("img", {"src": tick})
    checkbox = el("input", {"type": "checkbox", "style": f'background-image:url("{tick}")'})
    style = el(
        "style",
        {},
        [
            text(
                f'.form-select{{--bs-form-select-bg-img:url("{tick}")}}'
                f'li{{list-style:url("{tick}")}}.m{{mask:url("{tick}")}}'
                f'.f{{filter:url("{tick}")}}@font-face{{font-family:x;src:url("{tick}")}}'
            )
        ],
    )
    events = [meta(href=PAGE), full(page(img, checkbox, head=[style]))]
    sanitize_batch(events, context=context())
    assert img["attributes"]["src"] == tick
    assert css_urls(checkbox["attributes"]["style"]) == [tick]
    kept = css_urls(style["childNodes"][0]["textContent"])
    # Custom property, list-style and mask keep it; a filter reference or a font do not.
    assert kept == [tick, tick, tick, "", ""]


def test_svg_data_url_with_a_script_is_blocked_everywhere() -> None:
    bad = svg_url(quote("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"))
    img = el("img", {"src": bad})
    div = el("div", {"style": f"background:url('{bad}')"})
    report = sanitize_batch([full(page(img, div))], context=context())
    assert img["attributes"]["src"] == BLOCKED_URL
    assert css_urls(div["attributes"]["style"]) == [""]
    assert report.total == 2


def test_css_without_context_still_blanks_urls() -> None:
    assert sanitize_css("a{background:url(https://e.test/x)}") == "a{background:url()}"


def test_css_with_context_rewrites_relative_to_its_base() -> None:
    ctx = SanitizeContext(assets=SIGNER.rewriter("t_1"), base_url="https://cdn.test/css/site.css")
    report = SanitizeReport()
    out = sanitize_css("@font-face{src:url(../fonts/a.woff2)}", report, context=ctx)
    assert claim_of(css_urls(out)[0]) == ("https://cdn.test/fonts/a.woff2", "r")
    assert report.total == 0


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("/a.png", "https://s.test/p/q", "https://s.test/a.png"),
        ("b.png", "https://s.test/p/q", "https://s.test/p/b.png"),
        ("//cdn.test/c.png", "http://s.test/", "http://cdn.test/c.png"),
        ("https://s.test/a\n.png", None, "https://s.test/a.png"),
        ("https://user:pw@s.test/a.png", None, None),
        ("ftp://s.test/a.png", None, None),
        ("/a.png", None, None),
        ("https://s.test:99999/a.png", None, None),
        ("https://s.test/" + "a" * 3000, None, None),
    ],
)
def test_resolve_url(value: str, base: str | None, expected: str | None) -> None:
    assert resolve_url(value, base) == expected


# ----------------------------------------------------------------- the hostile corpus, assets on


def _corpus() -> list[tuple[str, list[dict[str, Any]]]]:
    from tests.cobrowse.test_cobrowse_sanitize import CORPUS

    return CORPUS


@pytest.mark.parametrize(("name", "events"), _corpus(), ids=[c[0] for c in _corpus()])
def test_hostile_corpus_with_the_asset_route(name: str, events: list[dict[str, Any]]) -> None:
    """The production configuration: the same corpus, with resource URLs rewritten. Nothing
    hazardous survives except URLs of Tandem's own asset route, each a valid token."""
    from cobrowse import Limits, validate_batch
    from tests.cobrowse.cobrowse_factories import event_hazards

    batch = validate_batch(json.dumps([meta(href=PAGE), *events]), Limits())
    ctx = context()
    sanitize_batch(batch, context=ctx)
    for ev in batch:
        for hazard in event_hazards(ev):
            # image-set() and @import stay, their URLs rewritten (checked below).
            assert hazard.startswith("url:/cobrowse/assets") or hazard in (
                "image-set(",
                "@import",
            ), (
                name,
                hazard,
            )
    dumped = json.dumps(batch)
    for found in re.finditer(r"@import", dumped, re.I):
        assert dumped[found.end() :].startswith(' url(\\"' + ASSET_PATH), name
    for image_set in re.findall(r"image-set\([^;{}]*", dumped, re.I):
        assert not re.search(r"(https?:|//|javascript:)", image_set.replace(ASSET_PATH, "")), name
    for token_url in re.findall(
        r"/cobrowse/assets/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", json.dumps(batch)
    ):
        claim_of(token_url)
    again = copy.deepcopy(batch)
    assert sanitize_batch(again, context=ctx).total == 0
    assert again == batch
