"""Calls, captures and uploads in headless Chromium: WebRTC from the widget and the console to the
real server (aiortc on loopback), with Chromium's fake camera/microphone and a real tab share.

This module overrides the ``server`` and ``browser`` fixtures of conftest.py (the ``new_page``
fixture then uses them): the server gathers ICE candidates on 127.0.0.1, and Chromium runs with
fake media devices, tab capture auto-accepted and loopback allowed in peer connections.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from PIL import Image
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from signaling import keys
from signaling.app import create_app, home_key
from signaling.auth.accounts import ensure_demo
from signaling.settings import Settings
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Server, _free_port
from tests.support import Client as SocketClient

if TYPE_CHECKING:
    from tests.browser.conftest import NewPage

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=15_000)

MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--auto-accept-this-tab-capture",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
MEDIA = {"permissions": ["camera", "microphone"]}  # every context that makes a peer connection
PRODUCT = "/demo/product.html?id=trail-runner-2"
ICE_TIMEOUT = 20_000  # ms: every wait on a connection or on frames


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    """The real server, its media rooms gathering ICE candidates on loopback only."""
    data = tmp_path_factory.mktemp("tandem-call-data")
    port = _free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data,
        media_host_addresses=("127.0.0.1",),
        agent_capacity=100,  # the module's one agent takes a session in every test
    )
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
    """One Chromium for the module, with fake media devices (media tests never run in parallel)."""
    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *MEDIA_ARGS]
        )
        yield chromium
        await chromium.close()


# ---------------------------------------------------------------------------- helpers


def panel(page: Page) -> Locator:
    return page.locator("#tandem-panel")


async def sign_in(new_page: NewPage, server: Server) -> Page:
    page = await new_page(**MEDIA)
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Email").fill(server.agent_email)
    await page.get_by_label("Password").fill(server.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".conn")).to_have_text("Online")
    return page


async def customer_in_session(new_page: NewPage, server: Server, agent: Page, text: str) -> Page:
    customer = await new_page(**MEDIA)
    await customer.goto(f"{server.url}{PRODUCT}")
    # Tab capture only sends frames when the page changes: keep something moving.
    await customer.evaluate(
        """() => {
            const box = document.createElement('div');
            box.id = 'spinner-for-tab-capture';
            box.textContent = 'Live';
            Object.assign(box.style, {position: 'fixed', left: '12px', top: '12px', padding: '8px',
                                      color: '#fff', font: '600 14px system-ui', zIndex: 5});
            document.body.append(box);
            let n = 0;
            setInterval(() => {
                n += 1;
                box.style.background = `hsl(${(n * 17) % 360} 70% 45%)`;
                box.textContent = `Live ${n}`;
            }, 60);
        }"""
    )
    await customer.locator("#tandem-widget .launcher").click()
    await panel(customer).get_by_label("Your question").fill(text)
    await panel(customer).get_by_role("button", name="Start conversation").click()
    item = agent.locator(".q-item", has_text="Trail Runner 2")
    await item.get_by_role("button", name="Accept").click()
    await expect(agent).to_have_url(re.compile(r"/console/sessions/tk_"))
    await expect(panel(customer).locator(".title")).to_have_text("Alex Agent")
    return customer


PLAYING = """async (video) => {
    const frames = () => video.getVideoPlaybackQuality().totalVideoFrames;
    const t0 = video.currentTime;
    const f0 = frames();
    await new Promise((r) => setTimeout(r, 700));
    return video.videoWidth > 0 && video.currentTime > t0 && frames() > f0;
}"""


async def wait_playing(video: Locator) -> None:
    """The tile's <video> has a picture, its clock advances and new frames keep coming."""
    handle = await video.element_handle(timeout=ICE_TIMEOUT)
    assert handle is not None
    page = video.page
    await page.wait_for_function(
        "(v) => v.videoWidth > 0 && v.readyState >= 2", arg=handle, timeout=ICE_TIMEOUT
    )
    for _ in range(10):
        if await video.evaluate(PLAYING):
            return
    raise AssertionError("video does not advance")


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def gif_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 120, 200)).save(out, format="GIF")
    return out.getvalue()


# ---------------------------------------------------------------------------- tests


async def test_camera_and_tab_share_to_the_agent_with_capture_mute_and_hang_up(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "My boots squeak, look")
    calls = agent.locator(".callpanel")

    # The agent asks for the camera: the customer sees a prompt and turns it on.
    await calls.get_by_role("button", name="Ask for camera").click()
    ask = panel(customer).locator(".call-ask-camera")
    await expect(ask).to_contain_text("would like to see through your camera")
    await customer.screenshot(path=screenshots / "widget-call-ask-camera.png")
    await ask.get_by_role("button", name=re.compile("Turn on camera|Front camera")).click()
    await expect(panel(customer).locator(".callbar")).to_be_visible()
    await expect(panel(customer).locator(".call-sharing")).to_contain_text("camera")

    # ...then for the screen: the customer shares this tab.
    await calls.get_by_role("button", name="Ask to share screen").click()
    ask = panel(customer).locator(".call-ask-screen")
    await ask.get_by_role("button", name="Share screen").click()
    await expect(panel(customer).locator(".call-sharing")).to_contain_text("screen")

    # ...then calls: voice both ways.
    await calls.get_by_role("button", name="Call", exact=True).click()
    ask = panel(customer).locator(".call-ask-voice")
    await expect(ask).to_contain_text("is calling you")
    await ask.get_by_role("button", name="Answer").click()
    await expect(panel(customer).locator(".call-status")).to_contain_text(
        "On a call with Alex Agent", timeout=ICE_TIMEOUT
    )

    # The console plays both videos.
    camera = calls.locator(".vtile[data-source=camera] video")
    screen = calls.locator(".vtile[data-source=screen] video")
    await wait_playing(camera)
    await wait_playing(screen)
    await expect(calls.locator(".vtile[data-source=camera]")).to_contain_text("Camera")
    await expect(calls.locator(".person[data-participant=customer]")).to_contain_text("talking")
    await expect(calls.locator(".call-state")).to_contain_text("In call")
    # The customer hears the agent: an <audio> element plays the agent's microphone.
    await customer.wait_for_function(
        """() => {
            const root = document.querySelector('#tandem-widget').shadowRoot;
            const a = root.querySelector('.callbar audio');
            return a && a.srcObject && a.srcObject.getAudioTracks()[0].readyState === 'live';
        }""",
        timeout=ICE_TIMEOUT,
    )

    # Mute on the customer's side shows on the agent's.
    await panel(customer).get_by_role("button", name="Mute").click()
    await expect(calls.locator(".person[data-participant=customer]")).to_contain_text("muted")
    await expect(panel(customer).get_by_role("button", name="Unmute")).to_be_visible()
    await customer.screenshot(path=screenshots / "widget-call-active.png")

    # A still from the screen share lands in the attachments, live.
    details = agent.locator(".details")
    await calls.locator(".vtile[data-source=screen]").get_by_role("button", name="Capture").click()
    await expect(agent.locator(".toast")).to_contain_text("Screenshot saved")
    shot = details.locator(".attachment.image img.thumb")
    await expect(shot).to_have_count(1)
    await expect(shot).to_have_attribute("src", re.compile(r"^blob:"))

    # A clip of the camera: start, a moment, stop -> a video with a duration.
    tile = calls.locator(".vtile[data-source=camera]")
    await tile.get_by_role("button", name="Record clip").click()
    await expect(tile.get_by_role("button", name="Stop recording")).to_contain_text("Stop · 0:0")
    await agent.wait_for_timeout(1500)
    await agent.screenshot(path=screenshots / "console-call.png")
    await tile.get_by_role("button", name="Stop recording").click()
    await expect(agent.locator(".toast").last).to_contain_text("Clip saved")
    clip = details.locator(".attachment.video")
    await expect(clip).to_contain_text("Clip")
    await expect(clip.locator("video")).to_have_attribute("src", re.compile(r"^blob:"))
    await expect(details.locator(".attachment.image")).to_have_count(1)  # thumbnail is a poster
    await clip.scroll_into_view_if_needed()
    await details.screenshot(path=screenshots / "console-call-attachments.png")

    # The customer stops the screen share: its tile goes; then hangs up: every tile goes.
    await panel(customer).get_by_role("button", name="Stop sharing screen").click()
    await expect(calls.locator(".vtile[data-source=screen]")).to_have_count(0)
    await expect(calls.locator(".vtile[data-source=camera]")).to_have_count(1)
    await panel(customer).get_by_role("button", name="Hang up").click()
    await expect(panel(customer).locator(".callbar")).to_be_hidden()
    await expect(calls.locator(".vtile")).to_have_count(0)
    await expect(calls.locator(".person")).to_have_count(0)
    await agent.locator(".callpanel").get_by_role("button", name="Hang up").click()
    await expect(calls.locator(".call-state")).to_be_hidden()

    # The ticket page lists the screenshot, and the image loads.
    await agent.get_by_role("link", name="Ticket", exact=True).click()
    await expect(agent).to_have_url(re.compile(r"/console/tickets/tk_"))
    image = agent.locator(".attachments .attachment.image img.thumb")
    await expect(image).to_have_count(1)
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    await agent.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0",
        arg=await image.element_handle(),
        timeout=10_000,
    )
    await expect(agent.locator(".timeline")).to_contain_text("joined the call")
    await agent.locator(".attachments").scroll_into_view_if_needed()
    await agent.screenshot(path=screenshots / "console-ticket-captures.png")


async def test_photo_upload_when_asked_and_refusals(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "The box arrived damaged")

    # "Ask for photo" with a note: the widget shows it with the button, prominently.
    calls = agent.locator(".callpanel")
    await calls.get_by_role("button", name="Ask for photo").click()
    await calls.get_by_label("Note for the customer").fill("The corner of the box, please")
    await calls.get_by_role("button", name="Send request").click()
    card = panel(customer).locator(".call-ask-upload")
    await expect(card).to_contain_text("Alex Agent asked for a photo or video")
    await expect(card).to_contain_text("The corner of the box, please")
    await expect(card.get_by_role("button", name="Send a photo or video")).to_be_visible()
    file_input = panel(customer).locator("input[type=file]")
    await expect(file_input).to_have_attribute("accept", "image/*,video/*")
    await customer.screenshot(path=screenshots / "widget-upload-asked.png")

    await file_input.set_input_files(
        {"name": "box.png", "mimeType": "image/png", "buffer": png_bytes()}
    )
    sent = panel(customer).locator(".call-upload").last
    await expect(sent).to_contain_text("Sent to support")
    await expect(sent.locator("img.call-up-thumb")).to_be_visible()
    await expect(card).to_have_count(0)  # answered

    # It shows up in the console, as an image.
    photo = agent.locator(".details .attachment.image img.thumb")
    await expect(photo).to_have_count(1)
    await expect(photo).to_have_attribute("src", re.compile(r"^blob:"))
    await expect(agent.locator(".details .attachments")).to_contain_text("Photo")

    # A GIF renamed to .png: the server refuses it, the widget says why.
    await file_input.set_input_files(
        {"name": "not-really.png", "mimeType": "image/png", "buffer": gif_bytes()}
    )
    refused = panel(customer).locator(".call-upload").last
    await expect(refused.get_by_role("alert")).to_contain_text("That type of file can't be sent")
    await expect(refused).to_have_class(re.compile("call-failed"))
    # Too large for a photo: refused before a byte is sent, with the limit.
    big = b"\x89PNG\r\n\x1a\n" + bytes(20 * 1024 * 1024)
    await file_input.set_input_files({"name": "huge.png", "mimeType": "image/png", "buffer": big})
    await expect(panel(customer).locator(".call-upload").last.get_by_role("alert")).to_have_text(
        "That file is too large (max 20 MB)."
    )
    await customer.screenshot(path=screenshots / "widget-uploads.png")
    await expect(agent.locator(".details .attachment.image")).to_have_count(1)


async def test_customer_calls_and_two_agents_receive_the_camera(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "Can someone look at this?")
    ticket_id = agent.url.rsplit("/", 1)[1]

    # The customer starts voice from the widget, then turns the camera on.
    await panel(customer).get_by_role("button", name="Start a voice call").click()
    await expect(panel(customer).locator(".callbar")).to_be_visible()
    await expect(panel(customer).locator(".call-status")).to_contain_text(
        "Connected to support", timeout=ICE_TIMEOUT
    )
    await panel(customer).get_by_role("button", name="Turn on camera").click()
    await expect(panel(customer).locator(".call-sharing")).to_contain_text("camera")

    # The agent sees the call and joins it.
    calls = agent.locator(".callpanel")
    await expect(calls.locator(".call-banner")).to_contain_text("started a call")
    await calls.get_by_role("button", name="Join call").click()
    await wait_playing(calls.locator(".vtile[data-source=camera] video"))
    await expect(calls.locator(".person[data-participant=customer]")).to_contain_text("talking")

    # A supervisor joins the session and the call: they get the camera too.
    supervisor = await new_page(**MEDIA)
    await supervisor.goto(f"{server.url}/console/tickets/{ticket_id}")
    await supervisor.get_by_label("Email").fill(server.supervisor_email)
    await supervisor.get_by_label("Password").fill(server.password)
    await supervisor.get_by_role("button", name="Sign in").click()
    await supervisor.get_by_role("button", name="Join session").click()
    await expect(supervisor).to_have_url(re.compile(rf"/console/sessions/{ticket_id}$"))
    theirs = supervisor.locator(".callpanel")
    await theirs.get_by_role("button", name="Join call").click()
    await wait_playing(theirs.locator(".vtile[data-source=camera] video"))
    await wait_playing(calls.locator(".vtile[data-source=camera] video"))  # still, for the first
    await expect(panel(customer).locator(".call-status")).to_contain_text(
        re.compile(r"On a call with Alex Agent, \w+|On a call with \w+.*, Alex Agent")
    )
    await supervisor.screenshot(path=screenshots / "console-call-second-agent.png")

    # The customer hangs up: both consoles drop the tile.
    await panel(customer).get_by_role("button", name="Hang up").click()
    await expect(calls.locator(".vtile")).to_have_count(0)
    await expect(theirs.locator(".vtile")).to_have_count(0)


async def test_the_call_comes_back_when_its_media_moves_to_another_home(
    new_page: NewPage, server: Server
) -> None:
    """``call.reoffer``: the media room is gone with its node (here: closed, its lease released,
    and the next home taking the session); the widget and the console each open a new peer
    connection with the same tracks, and the camera plays again."""
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "Camera moves with the node")
    calls = agent.locator(".callpanel")
    await calls.get_by_role("button", name="Ask for camera").click()
    ask = panel(customer).locator(".call-ask-camera")
    await ask.get_by_role("button", name=re.compile("Turn on camera|Front camera")).click()
    camera = calls.locator(".vtile[data-source=camera] video")
    await wait_playing(camera)

    ticket_id = agent.url.rsplit("/", 1)[-1]
    home = server.app[home_key]
    lease = await home.here(ticket_id)
    assert lease is not None
    await server.app[keys.calls].on_ticket_closed(ticket_id)
    await home.placement.release(lease)
    ticket = await server.app[keys.store].ticket(ticket_id)
    assert ticket is not None
    moved = await home.lease(ticket)
    assert moved.epoch == lease.epoch + 1

    await wait_playing(calls.locator(".vtile[data-source=camera] video"))
    await expect(panel(customer).locator(".call-sharing")).to_contain_text("camera")
    types = [e.type for e in await server.app[keys.store].timeline(ticket_id)]
    assert "call.moved" in types
    assert types.count("call.joined") >= 4  # both joined again after the move


async def test_an_invitation_rings_the_collapsed_widget_and_a_decline_reaches_the_console(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    """``call.invite``: the agent's call opens the customer's collapsed widget with Answer and
    Decline; the decline shows in the console at once."""
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "Can you call me?")
    await customer.evaluate("() => window.Tandem('close')")
    await expect(panel(customer)).to_be_hidden()

    calls = agent.locator(".callpanel")
    await calls.get_by_role("button", name="Call", exact=True).click()
    await expect(panel(customer)).to_be_visible()  # it opened by itself
    ask = panel(customer).locator(".call-ask-voice")
    await expect(ask).to_contain_text("Alex Agent is calling you")
    await customer.screenshot(path=screenshots / "widget-call-ringing.png")
    await ask.get_by_role("button", name="Decline").click()
    await expect(ask).to_have_count(0)
    await expect(calls.locator(".call-banner")).to_contain_text("The customer declined the call.")
    await expect(agent.locator(".timeline")).to_contain_text("Alex Agent asked for a call")
    await expect(agent.locator(".timeline")).to_contain_text("The call invitation declined")

    # Asked again (after hanging up), the customer answers: the call runs both ways.
    await calls.get_by_role("button", name="Hang up").click()
    await calls.get_by_role("button", name="Call", exact=True).click()
    await panel(customer).locator(".call-ask-voice").get_by_role("button", name="Answer").click()
    await expect(panel(customer).locator(".call-status")).to_contain_text(
        "On a call with Alex Agent", timeout=ICE_TIMEOUT
    )
    await panel(customer).get_by_role("button", name="Hang up").click()
    await calls.get_by_role("button", name="Hang up").click()


async def test_a_reload_during_a_call_shows_the_call_ended_in_the_console(
    new_page: NewPage, server: Server
) -> None:
    """The customer reloads mid-call: their socket goes, the server ends their media leg, and the
    console says the call ended within seconds instead of "In call" with a frozen tile."""
    agent = await sign_in(new_page, server)
    customer = await customer_in_session(new_page, server, agent, "Reloading mid-call")
    calls = agent.locator(".callpanel")
    await calls.get_by_role("button", name="Ask for camera").click()
    ask = panel(customer).locator(".call-ask-camera")
    await ask.get_by_role("button", name=re.compile("Turn on camera|Front camera")).click()
    await wait_playing(calls.locator(".vtile[data-source=camera] video"))
    await expect(calls.locator(".call-state")).to_contain_text("In call")

    await customer.reload()
    # Polling waits (expect), no timing assertion: the default timeout is generous.
    await expect(calls.locator(".call-banner")).to_contain_text("The call ended")
    await expect(calls.locator(".call-state")).to_be_hidden()
    await expect(calls.locator(".vtile")).to_have_count(0)
    await expect(agent.locator(".timeline")).to_contain_text("their page closed or reloaded")
    # The session itself goes on: the reloaded widget is back in the conversation.
    await expect(panel(customer).locator(".title")).to_have_text("Alex Agent")
    await expect(panel(customer).locator(".callbar")).to_be_hidden()


async def test_a_protocol_v1_chat_message_invitation_still_rings_and_is_declined_in_kind(
    new_page: NewPage, server: Server
) -> None:
    """The old path: a v1 console invites with a chat message whose ``clientMsgId`` is
    ``call.<ask>.<random>``; the widget still shows the prompt, and declines with a chat
    message ``call-declined.<ask>.<random>`` that such a console understands."""
    customer = await new_page(**MEDIA)
    await customer.goto(f"{server.url}{PRODUCT}")
    await customer.locator("#tandem-widget .launcher").click()
    await panel(customer).get_by_label("Your question").fill("An old console calls me")
    await panel(customer).get_by_role("button", name="Start conversation").click()
    await expect(panel(customer).locator(".title")).not_to_have_text("")

    async with aiohttp.ClientSession() as http:
        login = await http.post(
            f"{server.url}/api/auth/login",
            json={"email": server.agent_email, "password": server.password},
        )
        token = (await login.json())["token"]
    old_console = SocketClient()
    await old_console.connect(server.url, {"v": 1, "role": "agent", "token": token})
    try:
        waiting = await old_console.call("queue.list", {})
        ticket_id = next(
            e["ticketId"]
            for e in reversed(waiting["entries"])
            if "Trail Runner 2" in (e["context"].get("title") or "")
        )
        assert (await old_console.call("session.accept", {"ticketId": ticket_id}))["ok"]
        await expect(panel(customer).locator(".title")).to_have_text("Alex Agent")
        sent = await old_console.call(
            "chat.send",
            {"ticketId": ticket_id, "clientMsgId": "call.voice.v1test", "text": "Started a call."},
        )
        assert sent["ok"], sent
        ask = panel(customer).locator(".call-ask-voice")
        await expect(ask).to_contain_text("is calling you")
        await ask.get_by_role("button", name="Decline").click()
        declined = await old_console.wait_for(
            "chat.message",
            lambda e: (e["message"].get("clientMsgId") or "").startswith("call-declined.voice."),
            timeout=10,
        )
        assert declined["message"]["from"] == "customer"
        assert not old_console.events["call.invite"]  # nothing of the new path was needed
    finally:
        await old_console.close()
