"""Builders for rrweb-shaped events and an independent hazard checker for tests."""

from __future__ import annotations

import html
import itertools
import re
from typing import Any
from urllib.parse import unquote

_ids = itertools.count(100)


def nid() -> int:
    return next(_ids)


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def el(
    tag: str,
    attrs: dict[str, Any] | None = None,
    children: list[dict[str, Any]] | None = None,
    *,
    svg: bool = False,
    id: int | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": 2,
        "tagName": tag,
        "attributes": dict(attrs or {}),
        "childNodes": list(children or []),
        "id": id if id is not None else nid(),
    }
    if svg:
        node["isSVG"] = True
    return node


def text(value: str, *, id: int | None = None) -> dict[str, Any]:
    return {"type": 3, "textContent": value, "id": id if id is not None else nid()}


def page(*body: dict[str, Any], head: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": 0,
        "id": 1,
        "childNodes": [
            {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2},
            el(
                "html",
                {},
                [el("head", {}, list(head or []), id=4), el("body", {}, list(body), id=5)],
                id=3,
            ),
        ],
    }


def meta(ts: float = 1.0, href: str = "https://shop.example/cart") -> dict[str, Any]:
    return {"type": 4, "data": {"href": href, "width": 1280, "height": 720}, "timestamp": ts}


def full(node: dict[str, Any], ts: float = 2.0) -> dict[str, Any]:
    return {
        "type": 2,
        "data": {"node": node, "initialOffset": {"top": 0, "left": 0}},
        "timestamp": ts,
    }


def mutation(
    *,
    adds: list[dict[str, Any]] | None = None,
    attributes: list[dict[str, Any]] | None = None,
    texts: list[dict[str, Any]] | None = None,
    removes: list[dict[str, Any]] | None = None,
    ts: float = 3.0,
) -> dict[str, Any]:
    return {
        "type": 3,
        "data": {
            "source": 0,
            "texts": texts or [],
            "attributes": attributes or [],
            "removes": removes or [],
            "adds": adds or [],
        },
        "timestamp": ts,
    }


def add(node: dict[str, Any], parent: int = 5) -> dict[str, Any]:
    return {"parentId": parent, "nextId": None, "node": node}


def incremental(source: int, ts: float = 4.0, **data: Any) -> dict[str, Any]:
    return {"type": 3, "data": {"source": source, **data}, "timestamp": ts}


def mouse_move(ts: float = 5.0) -> dict[str, Any]:
    return incremental(1, ts, positions=[{"x": 1, "y": 2, "id": 5, "timeOffset": 0}])


def typed(ts: float = 6.0) -> dict[str, Any]:
    """An input event (a field's value changed): it changes the page, unlike a pointer move."""
    return incremental(5, ts, text="abc", isChecked=False, id=5)


# ----------------------------------------------------------------- hazard checker
# Written independently of cobrowse.sanitize: it decodes harder and checks outcomes.

_SAFE_SCHEMES = {"http", "https", "mailto", "tel", "sms", "about"}
_URLISH = {
    "href",
    "src",
    "poster",
    "background",
    "data",
    "codebase",
    "cite",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "manifest",
    "classid",
    "archive",
    "icon",
    "usemap",
    "to",
    "from",
    "by",
    "values",
}
_FORBIDDEN_ATTRS = {"srcdoc", "rr_src", "ping", "action", "formaction", "xml:base", "allow"}
_FORBIDDEN_TAGS = {"script", "object", "embed", "applet", "portal", "fencedframe"}
_CSS_ESC = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.S)


def _norm_url(v: str) -> list[str]:
    outs = []
    cur = v
    for _ in range(5):
        outs.append(
            re.sub(r"[\x00-\x20\x7f-\xa0\u200b-\u200f\u2028-\u202f\ufeff]", "", cur).lower()
        )
        cur2 = unquote(html.unescape(cur))
        if cur2 == cur:
            break
        cur = cur2
    return outs


def url_is_dangerous(v: str) -> bool:
    for n in _norm_url(v):
        m = re.match(r"([a-z][a-z0-9+.\-]*):", n)
        if m and m.group(1) not in _SAFE_SCHEMES:
            if m.group(1) == "data" and re.match(r"data:image/(png|gif|jpe?g|webp|avif|bmp)", n):
                continue
            return True
    return False


def css_hazards(css: str) -> list[str]:
    def dec(m: re.Match[str]) -> str:
        if m.group(1):
            try:
                return chr(int(m.group(1), 16))
            except (ValueError, OverflowError):
                return "\ufffd"
        return m.group(2)

    c = re.sub(r"/\*.*?(\*/|$)", "", css, flags=re.S)
    c = _CSS_ESC.sub(dec, c).lower()
    found = []
    if "@import" in c:
        found.append("@import")
    for m in re.finditer(r"(?<![\w-])(?:url|src)\(\s*(['\"]?)\s*([^'\")]*)", c):
        arg = m.group(2).strip()
        if (
            arg
            and not arg.startswith("#")
            and not re.match(r"data:(image/(png|gif|jpe?g|webp|avif)|font/)", arg)
        ):
            found.append("url:" + arg[:20])
    for fn in ("image-set(", "attr(", "expression(", "cross-fade(", "element("):
        if re.search(r"(?<![\w-])" + re.escape(fn), c) or re.search(r"-webkit-" + re.escape(fn), c):
            found.append(fn)
    if re.search(r"(?<![\w-])image\(", c):
        found.append("image(")
    return found


def node_hazards(root: dict[str, Any], *, unknown_text_is_css: bool = True) -> list[str]:
    found: list[str] = []
    stack: list[tuple[dict[str, Any], bool]] = [(root, unknown_text_is_css)]
    while stack:
        node, css_ctx = stack.pop()
        t = node.get("type")
        if t == 2:
            tag = str(node.get("tagName", "")).lower()
            local = tag.rsplit(":", 1)[-1]
            if local in _FORBIDDEN_TAGS or not re.fullmatch(r"[a-z][a-z0-9._:\-]*", tag):
                found.append(f"tag:{tag}")
            attrs = node.get("attributes", {})
            found += attr_hazards(attrs, local)
            if local == "base" and attrs:
                found.append("base-attrs")
            if local in ("iframe", "frame") and attrs.get("sandbox") != "allow-same-origin":
                found.append("iframe-sandbox")
            if local == "link":
                rel = str(attrs.get("rel", "")).lower().split()
                if "stylesheet" not in rel and "href" in attrs:
                    found.append("link-href")
            for c in node.get("childNodes", []):
                stack.append((c, local == "style"))
        elif t == 0:
            stack.extend((c, False) for c in node.get("childNodes", []))
        elif t == 3 and (css_ctx or node.get("isStyle")):
            found += css_hazards(node.get("textContent", ""))
    return found


def attr_hazards(attrs: dict[str, Any], local_tag: str | None = None) -> list[str]:
    found = []
    for name, value in attrs.items():
        lname = name.lower()
        local = lname.rsplit(":", 1)[-1]
        if not re.fullmatch(r"[^\s\"'<>/=\x00-\x1f\x7f]+", name):
            found.append("attr-name")
        if local.startswith("on"):
            found.append(f"handler:{lname}")
        if lname in _FORBIDDEN_ATTRS or local in _FORBIDDEN_ATTRS:
            if value is not None:
                found.append(f"forbidden:{lname}")
        if lname == "sandbox" and value is not None and value != "allow-same-origin":
            found.append("sandbox")
        if isinstance(value, dict):
            for pv in value.values():
                parts = pv if isinstance(pv, list) else [pv]
                for p in parts:
                    if isinstance(p, str):
                        found += css_hazards(p)
            continue
        if not isinstance(value, str):
            continue
        if local in _URLISH or lname in ("srcset", "imagesrcset"):
            for part in [value, *re.split(r"[;,\s]+", value)]:
                if part and url_is_dangerous(part):
                    found.append(f"url:{lname}")
        elif url_is_dangerous(value.strip()) and re.match(
            r"\s*(javascript|vbscript|data:text)", html.unescape(value), re.I
        ):
            found.append(f"url-any:{lname}")
        if lname in ("style", "_csstext", "fill", "filter", "cursor", "mask", "clip-path"):
            found += css_hazards(value)
        if lname == "http-equiv" and value.strip().lower() in ("refresh", "set-cookie"):
            found.append("meta-refresh")
        if lname == "attributename":
            tgt = value.strip().lower().rsplit(":", 1)[-1]
            if tgt.startswith("on") or tgt in ("href", "src", "style"):
                found.append("animate")
        if lname == "rel" and set(value.lower().split()) & {
            "prefetch",
            "preload",
            "import",
            "modulepreload",
            "dns-prefetch",
            "preconnect",
            "prerender",
        }:
            found.append("rel")
        if lname == "rr_dataurl" and not value.startswith("data:image/"):
            found.append("rr_dataurl")
    return found


def event_hazards(ev: dict[str, Any]) -> list[str]:
    data = ev.get("data", {})
    t = ev.get("type")
    found: list[str] = []
    if t == 2:
        found += node_hazards(data["node"], unknown_text_is_css=False)
    elif t == 4:
        if url_is_dangerous(data.get("href", "")):
            found.append("meta-href")
    elif t == 3:
        src = data.get("source")
        if src == 0:
            for a in data.get("adds", []):
                found += node_hazards(a["node"])
            for a in data.get("attributes", []):
                found += attr_hazards(a["attributes"])
            for tx in data.get("texts", []):
                if isinstance(tx.get("value"), str):
                    found += css_hazards(tx["value"])
        elif src == 8:
            for a in data.get("adds", []) or []:
                found += css_hazards(a["rule"])
            for k in ("replace", "replaceSync"):
                if isinstance(data.get(k), str):
                    found += css_hazards(data[k])
        elif src == 13:
            s = data.get("set") or {}
            if isinstance(s.get("value"), str):
                found += css_hazards(s["value"])
        elif src == 15:
            for st in data.get("styles", []):
                for r in st.get("rules", []):
                    found += css_hazards(r["rule"])
        elif src == 10 and not data.get("buffer"):
            found += css_hazards(data.get("fontSource", ""))
        elif src == 9:
            stack: list[Any] = [data]
            while stack:
                cur = stack.pop()
                if isinstance(cur, dict):
                    s = cur.get("src")
                    if isinstance(s, str) and s and not s.startswith("data:image/"):
                        found.append("canvas-src")
                    stack.extend(cur.values())
                elif isinstance(cur, list):
                    stack.extend(cur)
    return found


def node_ids(root: dict[str, Any]) -> set[int]:
    out = set()
    stack = [root]
    while stack:
        n = stack.pop()
        out.add(n["id"])
        stack.extend(n.get("childNodes", []))
    return out
