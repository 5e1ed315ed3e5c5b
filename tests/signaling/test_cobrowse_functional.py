"""Co-browse through the real server: consent, sanitized relay, late joiners, control, recording."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import cobrowse
from tests.support import CONTEXT, Client, Running

RECORDER = "rrweb@2.0.0-alpha.20"


def page(button_id: int = 10, secret_id: int = 12) -> dict[str, Any]:
    """An rrweb full snapshot: a button, a masked field, and a script that must not survive."""
    return {
        "type": 0,
        "id": 1,
        "childNodes": [
            {
                "type": 2,
                "tagName": "html",
                "attributes": {},
                "id": 2,
                "childNodes": [
                    {
                        "type": 2,
                        "tagName": "body",
                        "attributes": {},
                        "id": 3,
                        "childNodes": [
                            {
                                "type": 2,
                                "tagName": "button",
                                "attributes": {"onclick": "steal()"},
                                "id": button_id,
                                "childNodes": [{"type": 3, "textContent": "Add to cart", "id": 11}],
                            },
                            {
                                "type": 2,
                                "tagName": "input",
                                "attributes": {"type": "password", "value": "****"},
                                "id": secret_id,
                                "childNodes": [],
                            },
                            {
                                "type": 2,
                                "tagName": "script",
                                "attributes": {},
                                "id": 13,
                                "childNodes": [{"type": 3, "textContent": "alert(1)", "id": 14}],
                            },
                        ],
                    },
                ],
            },
        ],
    }


def meta(ts: int) -> dict[str, Any]:
    return {
        "type": 4,
        "data": {"href": "http://shop.test/p/1", "width": 1280, "height": 800},
        "timestamp": ts,
    }


def snapshot(ts: int) -> dict[str, Any]:
    return {
        "type": 2,
        "data": {"node": page(), "initialOffset": {"top": 0, "left": 0}},
        "timestamp": ts,
    }


def scroll(ts: int, y: int) -> dict[str, Any]:
    return {"type": 3, "data": {"source": 3, "id": 1, "x": 0, "y": y}, "timestamp": ts}


async def send(customer: Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    ack: dict[str, Any] = await customer.call("cobrowse.events", {"data": json.dumps(events)})
    return ack


async def sharing_session(server: Running) -> tuple[Client, Client, str]:
    alice = await server.agent("alice")
    customer = await server.customer()
    ack = await customer.call("help.request", {"context": CONTEXT})
    ticket_id = ack["ticket"]["id"]
    await alice.call("session.accept", {"ticketId": ticket_id})
    assert (await alice.call("cobrowse.request", {"ticketId": ticket_id}))["ok"]
    requested = await customer.wait_for("cobrowse.requested")
    assert requested["agent"]["name"] == "Alice"
    assert (await customer.call("cobrowse.accept", {"v": 1, "recorder": RECORDER}))["ok"]
    state = await alice.wait_for("cobrowse.state", lambda e: e["state"] == "sharing")
    assert state["by"] == "customer"
    return alice, customer, ticket_id


async def test_stream_is_sanitized_relayed_and_recorded(server: Running) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    assert (await send(customer, [meta(1), snapshot(2)]))["ok"]
    got = await alice.wait_for("cobrowse.events")
    body = got["events"][1]["data"]["node"]["childNodes"][0]["childNodes"][0]
    button, _field, script = body["childNodes"]
    assert "onclick" not in button["attributes"]
    assert script["tagName"] != "script"
    for y in range(10):
        assert (await send(customer, [scroll(3 + y, y * 100)]))["ok"]

    # An agent who joins late gets the current page at once: snapshot plus what followed.
    bob_view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
    assert bob_view["sharing"] and [e["type"] for e in bob_view["events"][:2]] == [4, 2]
    assert [e["data"]["y"] for e in bob_view["events"][2:]] == [y * 100 for y in range(10)]

    bad = await send(customer, [{"type": 99, "data": {}, "timestamp": 1}])
    assert bad["error"]["code"] == "malformed"
    assert (await customer.call("cobrowse.events", {"data": "{not json"}))["error"]["code"] == (
        "malformed"
    )

    assert (await customer.call("cobrowse.stop", {}))["ok"]
    await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    recording = next(a for a in ticket["attachments"] if a["kind"] == "recording")
    assert recording["meta"]["events"] == 12
    path: Path = server.stored_file(recording["sha256"])
    header, events = cobrowse.read_recording(path)
    assert header["recorder"] == RECORDER
    assert len(list(events)) == 12
    assert "alert(1)" not in json.dumps(list(cobrowse.read_recording(path)[1]))
    types = [e["type"] for e in ticket["timeline"]]
    assert "cobrowse.requested" in types and "cobrowse.started" in types
    assert "cobrowse.stopped" in types and "attachment.added" in types


async def test_batches_in_parts_are_reassembled(server: Running) -> None:
    alice, customer, _ = await sharing_session(server)
    text = json.dumps([meta(1), snapshot(2)])
    half = len(text) // 2
    first = await customer.call(
        "cobrowse.events", {"data": text[:half], "batchId": "b1", "part": 0, "parts": 2}
    )
    assert first["ok"]
    await asyncio.sleep(0.1)
    assert alice.events["cobrowse.events"] == []
    await customer.call(
        "cobrowse.events", {"data": text[half:], "batchId": "b1", "part": 1, "parts": 2}
    )
    got = await alice.wait_for("cobrowse.events")
    assert [e["type"] for e in got["events"]] == [4, 2]


async def test_a_checkpoint_is_kept_for_joiners_not_relayed_to_the_agents_following(
    server: Running,
) -> None:
    """The snippet's answer to ``cobrowse.snapshot_needed`` (``checkpoint``) is the page the
    agents already follow: they get what else its batch holds, not the page again (their view
    would rebuild it), while a joiner is served the new page, sanitized."""
    alice, customer, ticket_id = await sharing_session(server)
    checkpoint = {"checkpoint": True}
    first = {"data": json.dumps([meta(1), snapshot(2)])} | checkpoint
    assert (await customer.call("cobrowse.events", first))["ok"]  # no page held yet: relayed
    got = await alice.wait_for("cobrowse.events")
    assert [e["type"] for e in got["events"]] == [4, 2]
    assert (await send(customer, [scroll(3, 100)]))["ok"]

    # A checkpoint in two parts, with a scroll the recorder emitted before the snapshot.
    text = json.dumps([scroll(4, 200), meta(5), snapshot(6), scroll(7, 300)])
    half = len(text) // 2
    for part, data in enumerate((text[:half], text[half:])):
        payload = {"data": data, "batchId": "c1", "part": part, "parts": 2} | checkpoint
        assert (await customer.call("cobrowse.events", payload))["ok"]
    page_only = {"data": json.dumps([meta(8), snapshot(9)])} | checkpoint
    assert (await customer.call("cobrowse.events", page_only))["ok"]
    assert (await send(customer, [scroll(10, 400)]))["ok"]
    await alice.wait_for("cobrowse.events", lambda e: e["events"][-1]["timestamp"] == 10)
    relayed = [[e["timestamp"] for e in got["events"]] for got in alice.events["cobrowse.events"]]
    assert relayed == [[1, 2], [3], [4, 7], [10]]

    view = await alice.call("cobrowse.join", {"ticketId": ticket_id})
    assert [e["timestamp"] for e in view["events"]] == [8, 9, 10]
    button = view["events"][1]["data"]["node"]["childNodes"][0]["childNodes"][0]["childNodes"][0]
    assert "onclick" not in button["attributes"]

    assert (await customer.call("cobrowse.stop", {}))["ok"]
    await alice.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    recording = next(a for a in ticket["attachments"] if a["kind"] == "recording")
    _, events = cobrowse.read_recording(server.stored_file(recording["sha256"]))
    assert [e["timestamp"] for e in events] == list(range(1, 11))  # the file has every page


async def test_remote_control_needs_a_grant(server: Running) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    await send(customer, [meta(1), snapshot(2)])
    click = {"type": "click", "targetId": 10, "x": 5, "y": 5}

    early = await alice.call("control.action", {"ticketId": ticket_id, "action": click})
    assert early["error"]["code"] == "forbidden"
    assert (await alice.call("control.request", {"ticketId": ticket_id}))["ok"]
    await customer.wait_for("control.state", lambda e: e["state"] == "requested")
    assert (await customer.call("control.grant", {}))["ok"]
    await alice.wait_for("control.state", lambda e: e["state"] == "granted")

    assert (await alice.call("control.action", {"ticketId": ticket_id, "action": click}))["ok"]
    forwarded = await customer.wait_for("control.action")
    assert forwarded["action"] == click
    masked = {"type": "type", "targetId": 12, "text": "hunter2"}
    refused = await alice.call("control.action", {"ticketId": ticket_id, "action": masked})
    assert refused["error"]["code"] == "forbidden" and "masked" in refused["error"]["message"]

    assert (await customer.call("control.revoke", {}))["ok"]
    await alice.wait_for("control.state", lambda e: e["state"] == "revoked")
    late = await alice.call("control.action", {"ticketId": ticket_id, "action": click})
    assert late["error"]["code"] == "forbidden"

    _, ticket = await server.get(f"/api/tickets/{ticket_id}", await server.token("alice"))
    control = [e for e in ticket["timeline"] if e["type"].startswith("control.")]
    assert [(e["type"], e["data"]["result"]) for e in control] == [
        ("control.action", "refused"),
        ("control.request", "ok"),
        ("control.grant", "ok"),
        ("control.action", "ok"),
        ("control.action", "refused"),
        ("control.revoke", "ok"),
        ("control.action", "refused"),
    ]
    assert all("hunter2" not in json.dumps(e) for e in control)


async def test_only_the_session_may_cobrowse(server: Running) -> None:
    alice, customer, ticket_id = await sharing_session(server)
    bob = await server.agent("bob")
    assert (await bob.call("cobrowse.join", {"ticketId": ticket_id}))["error"][
        "code"
    ] == "forbidden"
    assert (await bob.call("cobrowse.request", {"ticketId": ticket_id}))["error"]["code"] == (
        "forbidden"
    )
    stranger = await server.customer()
    assert (await send(stranger, [meta(1)]))["error"]["code"] == "unauthorized"
    sam = await server.agent("sam")
    view = await sam.call("cobrowse.join", {"ticketId": ticket_id})
    assert view["ok"]  # supervisors may watch
    # Ending the session stops sharing and files the recording.
    await send(customer, [meta(1), snapshot(2)])
    await alice.call("session.end", {"ticketId": ticket_id})
    await customer.wait_for("cobrowse.state", lambda e: e["state"] == "stopped")
