"""Sanitizer gaps that only the browser's CSP caught (issue 8, finding 9), through the real server.

A hand-made co-browse stream (what a hostile customer page, or an attacker bypassing the snippet,
can send) goes through the server to a watching agent and into the ticket's recording. What the
agent receives must be harmless on its own, without relying on the replay page's CSP:

- ``<style>`` text split over several text nodes (in the snapshot, added later, or changed later)
  must not join into ``@import`` or ``url()`` in the agent's DOM;
- an attribute mutation that gives an ``<iframe>`` a ``src`` (or ``srcdoc``) is dropped;
- a ``Document`` node inside an element of a full snapshot (which makes rrweb's rebuild throw and
  blank the whole mirror) is removed.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cobrowse
from cobrowse import SanitizeContext, sanitize_batch
from signaling.assets.tokens import AssetSigner
from tests.signaling.test_cobrowse_functional import send, sharing_session
from tests.support import Client, Running

EVIL = "http://evil.test"


def el(tag: str, nid: int, attrs: dict[str, Any] | None = None, kids: list[Any] | None = None):  # type: ignore[no-untyped-def]
    return {
        "type": 2,
        "tagName": tag,
        "attributes": attrs or {},
        "childNodes": kids or [],
        "id": nid,
    }


def txt(value: str, nid: int) -> dict[str, Any]:
    return {"type": 3, "textContent": value, "id": nid}


def snapshot(*body: dict[str, Any], head: list[dict[str, Any]] | None = None) -> list[Any]:
    doc = {
        "type": 0,
        "id": 1,
        "childNodes": [
            el("html", 2, {}, [el("head", 3, {}, head or []), el("body", 4, {}, list(body))])
        ],
    }
    return [
        {
            "type": 4,
            "data": {"href": "http://shop.test/p", "width": 800, "height": 600},
            "timestamp": 1,
        },
        {"type": 2, "data": {"node": doc, "initialOffset": {"top": 0, "left": 0}}, "timestamp": 2},
    ]


def mutation(**data: Any) -> dict[str, Any]:
    body = {"source": 0, "texts": [], "attributes": [], "removes": [], "adds": [], **data}
    return {"type": 3, "data": body, "timestamp": 3}


def _without_comments(css: str) -> str:
    """Comments replaced by a separator, as a tokenizer reads them: never inside a string, and
    an escaped quote or slash starts neither a string nor a comment."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(css):
        c = css[i]
        if quote:
            if c == "\\":
                out.append(css[i : i + 2])
                i += 2
                continue
            if c in (quote, "\n"):
                quote = ""
        elif c == "\\":
            out.append(css[i : i + 2])
            i += 2
            continue
        elif css.startswith("/*", i):
            end = css.find("*/", i + 2)
            i = len(css) if end < 0 else end + 2
            out.append("\x01")
            continue
        elif c in "\"'":
            quote = c
        out.append(c)
        i += 1
    return "".join(out)


_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.S)
_IMPORT = re.compile(r"@import(?![\w\\-])\s*(?:url\(\s*['\"]?|['\"])?([^'\")\s;]*)")
_URL_WHOLE = re.compile(r"(?<![\w\\-])(?:url|src)\([^)]*\)?", re.I)
_URL = re.compile(r"(?<![\w\\-])(?:url|src)\(\s*(['\"]?)\s*([^'\")]*)", re.I)


def _unescape(m: re.Match[str]) -> str:
    """An escape spells a character of a name; an escaped ``@``, quote or parenthesis is no
    syntax (here: a placeholder)."""
    code = int(m.group(1), 16) if m.group(1) else ord(m.group(2))
    c = chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return c if not c.isascii() or c.isalnum() or c in "-_" else "\x02"


def beacons(css: str) -> list[str]:
    """Network loads in CSS, other than Tandem's own asset route, as a browser tokenizes it: a
    comment ends a name (it is not nothing, as an older checker assumed), escapes spell
    characters."""
    text = _without_comments(css)
    text = _ESCAPE.sub(_unescape, text).lower()
    found = []
    inside_urls = [u.span() for u in _URL_WHOLE.finditer(text)]
    for m in _IMPORT.finditer(text):
        if any(a < m.start() < b for a, b in inside_urls):
            continue  # part of a URL, not a rule
        if not (m.group(1) or "").startswith("/cobrowse/assets/"):
            found.append("@import")  # only an import of our own asset route is harmless
    for m in _URL.finditer(text):
        arg = m.group(2).strip()
        if arg and not arg.startswith(("#", "data:image/png", "/cobrowse/assets/")):
            found.append(arg)
    return found


def find(node: dict[str, Any], nid: int) -> dict[str, Any]:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.get("id") == nid:
            return n
        stack.extend(n.get("childNodes", []))
    raise AssertionError(f"node {nid} not found")


async def agent_events(alice: Client, count: int) -> list[dict[str, Any]]:
    """The sanitized events the agent received so far (waits for ``count`` batches)."""
    await alice.wait_for(
        "cobrowse.events", lambda _e: len(alice.events["cobrowse.events"]) >= count
    )
    return [ev for batch in alice.events["cobrowse.events"] for ev in batch["events"]]


async def recorded(server: Running, customer: Client, ticket_id: str) -> list[dict[str, Any]]:
    assert (await customer.call("cobrowse.stop", {}))["ok"]
    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    recording = next(a for a in ticket["attachments"] if a["kind"] == "recording")
    _, events = cobrowse.read_recording(server.stored_file(recording["sha256"]))
    return list(events)


SPLITS = [
    ["@imp", f"ort '{EVIL}/x.css';"],
    ["a{background:u", f"rl({EVIL}/b.png)}}"],
    ["a{background:\\", f"75rl({EVIL}/b.png)}}"],
    ["a{background:\\7", f"5rl({EVIL}/b.png)}}"],
    ["a{background:url(", f"{EVIL}/b.png)}}"],
    ["a{content:'x\\", f"'}} @import '{EVIL}/y.css';"],
    ["/* open", f"*/ @import url({EVIL}/z.css);"],
    ["@", "import", f" '{EVIL}/w.css';"],
]


async def test_style_text_split_over_text_nodes_cannot_form_a_beacon(server: Running) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    styles = []
    next_id = 100
    for parts in SPLITS:
        kids = []
        for part in parts:
            kids.append(txt(part, next_id))
            next_id += 1
        styles.append(el("style", next_id, {}, kids))
        next_id += 1
    assert (await send(customer, snapshot(head=styles)))["ok"]
    events = await agent_events(alice, 1)
    root = events[1]["data"]["node"]
    for style, parts in zip(styles, SPLITS, strict=True):
        assert beacons("".join(parts)), parts  # the attack is real
        got = find(root, style["id"])
        joined = "".join(k["textContent"] for k in got["childNodes"])
        assert beacons(joined) == [], (parts, joined)
        assert [k["id"] for k in got["childNodes"]] == [k["id"] for k in style["childNodes"]]

    stored = await recorded(server, customer, ticket_id)
    assert EVIL not in json.dumps(stored)


async def test_style_text_added_or_changed_later_cannot_join_into_a_beacon(
    server: Running,
) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    head = [
        el("style", 50, {}, [txt("@imp", 51)]),
        el("style", 60, {}, [txt("a{}", 61), txt("b{}", 62)]),
        el("style", 70, {}, [txt("a{background:\\7", 71)]),
    ]
    assert (await send(customer, snapshot(head=head)))["ok"]
    later = [
        mutation(
            adds=[
                {"parentId": 50, "nextId": None, "node": txt(f"ort '{EVIL}/x.css';", 52)},
                {"parentId": 70, "nextId": None, "node": txt(f"5rl({EVIL}/c.png)}}", 72)},
            ]
        ),
        mutation(
            texts=[
                {"id": 61, "value": "a{background:u"},
                {"id": 62, "value": f"rl({EVIL}/b.png)}}"},
            ]
        ),
    ]
    assert (await send(customer, later))["ok"]
    events = await agent_events(alice, 2)
    root = events[1]["data"]["node"]
    texts = {k["id"]: k["textContent"] for s in (50, 60, 70) for k in find(root, s)["childNodes"]}
    for ev in events[2:]:
        for a in ev["data"]["adds"]:
            texts[a["node"]["id"]] = a["node"]["textContent"]
        for t in ev["data"]["texts"]:
            texts[t["id"]] = t["value"]
    for ids in ([51, 52], [61, 62], [71, 72]):
        joined = "".join(texts[i] for i in ids)
        assert beacons(joined) == [], joined
    # The recording holds exactly what the agent got (the strings left are inert text).
    assert await recorded(server, customer, ticket_id) == events


async def test_attribute_mutation_cannot_give_an_iframe_a_source(server: Running) -> None:
    alice, customer, _ = await sharing_session(server)
    frame = el("iframe", 40, {"title": "help"})
    assert (await send(customer, snapshot(frame)))["ok"]
    change = mutation(
        attributes=[
            {"id": 40, "attributes": {"src": f"{server.base_url}/console/"}},
            {"id": 40, "attributes": {"srcdoc": "<p>same origin</p>", "title": "x"}},
        ]
    )
    assert (await send(customer, [change]))["ok"]
    events = await agent_events(alice, 2)
    first, second = events[-1]["data"]["attributes"]
    assert first["attributes"] == {}
    assert second["attributes"] == {"title": "x"}


async def test_a_document_inside_an_element_is_removed_from_the_snapshot(
    server: Running,
) -> None:
    alice, customer, _ = await sharing_session(server)
    inner = {"type": 0, "id": 41, "childNodes": [el("html", 42, {}, [el("body", 43)])]}
    frame = el("iframe", 40, {}, [inner])
    div = el("div", 44, {}, [{"type": 0, "id": 45, "childNodes": []}, txt("ok", 46)])
    assert (await send(customer, snapshot(frame, div)))["ok"]
    events = await agent_events(alice, 1)
    root = events[1]["data"]["node"]
    documents = []
    stack = list(root["childNodes"])
    while stack:
        n = stack.pop()
        if n.get("type") == 0:
            documents.append(n["id"])
        stack.extend(n.get("childNodes", []))
    assert documents == []
    assert find(root, 44)["childNodes"] == [txt("ok", 46)]

    # An iframe's own document still arrives the way rrweb sends it: as a mutation add.
    add = mutation(adds=[{"parentId": 40, "nextId": None, "node": inner}])
    assert (await send(customer, [add]))["ok"]
    events = await agent_events(alice, 2)
    assert events[-1]["data"]["adds"][0]["node"]["type"] == 0


async def test_comments_are_read_as_a_browser_reads_them(server: Running) -> None:
    """``/*`` inside a string, after an escaped quote or in an unquoted ``url(`` starts no
    comment, and a comment separates two names: what the browser loads, the sanitizer checks."""
    alice, customer, _ = await sharing_session(server)
    sheets = [
        f'a{{content:"/*"}} b{{background:url({EVIL}/s.png)}} /* */',
        f'a{{b:c\\"x"/*"}} b{{background:url({EVIL}/e.png)}} /* */',
        f"a{{content:'/*'}} @import '{EVIL}/i.css'; /* */",
        # A comment ends a name (two tokens, not one unknown function), ...
        f"a{{background:red/**/url({EVIL}/r.png)}}",
        f"@import/**/url({EVIL}/j.css);",
        # ... and is no comment inside an unquoted url(): what follows it is CSS.
        f"a{{b:url(/*)}} b{{background:url({EVIL}/u.png)}} */)",
        f"a{{b:\\75rl(/*)}} b{{background:url({EVIL}/v.png)}} */)",
    ]
    head = [el("style", 50 + 2 * i, {}, [txt(css, 51 + 2 * i)]) for i, css in enumerate(sheets)]
    div = el("div", 70, {"style": f'--x:"/*"; background:url({EVIL}/d.png) /* */'})
    assert (await send(customer, snapshot(div, head=head)))["ok"]
    root = (await agent_events(alice, 1))[1]["data"]["node"]
    for i, css in enumerate(sheets):
        assert beacons(css), css  # the attack is real
        got = find(root, 51 + 2 * i)["textContent"]
        assert beacons(got) == [], got
    assert beacons(find(root, 70)["attributes"]["style"]) == []


# ----------------------------------------------------------------- property: any split, any order

_PIECES = [
    "@import", "@imp", "ort", "url(", "u", "rl(", "src(", "image-set(", "\\", "75", "\\75 ",
    "\\000075", '"', "'", "/*", "*/", "(", ")", ";", "{", "}", " ", "\n", "a{background:",
    f"{EVIL}/x.png", "#frag", "data:image/png,AA", ",", "1x", "attr(", "x",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=14),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=4),
)
def test_style_text_in_any_pieces_never_joins_into_a_beacon(
    pieces: list[str], cuts: list[int]
) -> None:
    """Whatever CSS is cut into text nodes, first in the snapshot, the rest added later, what
    the browser joins loads nothing but Tandem's asset route."""
    css = "".join(pieces)
    bounds = sorted({min(c, len(css)) for c in cuts} | {0, len(css)})
    parts = [css[a:b] for a, b in itertools.pairwise(bounds)] or [""]
    ctx = SanitizeContext(assets=AssetSigner("k").rewriter("t_1"))
    style = el("style", 50, {}, [txt(parts[0], 51)])
    events = snapshot(head=[style])
    adds = [
        {"parentId": 50, "nextId": None, "node": txt(p, 52 + i)} for i, p in enumerate(parts[1:])
    ]
    events.append(mutation(adds=adds))
    sanitize_batch(events, context=ctx)
    texts = [style["childNodes"][0]["textContent"]]
    texts += [a["node"]["textContent"] for a in events[2]["data"]["adds"]]
    joined = "".join(texts)
    assert beacons(joined) == [], (parts, joined)
