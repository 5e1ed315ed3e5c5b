"""A raw socket.io client over one websocket, as an attacker writes one: it sends engine.io and
socket.io frames by hand, so it can send what no well-behaved client library would."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp


class RawSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next_id = 0
        self.acks: dict[int, Any] = {}
        self.events: list[tuple[str, Any]] = []
        self.on_event: Callable[[str], None] | None = None
        """When set, each event frame's text (``42[name,payload]``) goes to it as it arrives,
        instead of into ``events`` decoded (the co-browse bench times frames on arrival)."""
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data: str = msg.data
            if data == "2":  # engine.io ping
                await self.ws.send_str("3")
            elif data.startswith("43"):  # socket.io ack: 43<id>[...]
                body = data[2:]
                digits = len(body) - len(body.lstrip("0123456789"))
                self.acks[int(body[:digits])] = json.loads(body[digits:])[0]
            elif data.startswith("42") and self.on_event is not None:
                self.on_event(data)
            elif data.startswith("42"):
                name, *args = json.loads(data[2:])
                self.events.append((name, args[0] if args else None))
            self._changed.set()

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send_event(self, event: str, payload: Any) -> int:
        ack_id = self.new_id()
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
        return ack_id

    async def send_raw(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def ack(self, ack_id: int, timeout: float = 5) -> Any:
        async with asyncio.timeout(timeout):
            while ack_id not in self.acks:
                self._changed.clear()
                await self._changed.wait()
        return self.acks[ack_id]

    async def call(self, event: str, payload: Any, timeout: float = 5) -> Any:
        return await self.ack(await self.send_event(event, payload), timeout)

    @property
    def closed(self) -> bool:
        return self.ws.closed


@contextlib.asynccontextmanager
async def raw_socket(
    base_url: str, auth: dict[str, Any], origin: str | None = None
) -> AsyncIterator[RawSocket]:
    url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    headers = {"Origin": origin} if origin else {}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=headers, max_msg_size=0) as ws,
    ):
        opening = await ws.receive_str(timeout=5)
        assert opening.startswith("0"), opening
        await ws.send_str("40" + json.dumps(auth))
        connected = await ws.receive_str(timeout=5)
        assert connected.startswith("40{"), connected
        sock = RawSocket(ws)
        try:
            yield sock
        finally:
            sock._reader.cancel()
