"""A chat client that survives its node, as the snippet and the console do (docs/protocol.md,
"Sequence numbers"): it reconnects through HAProxy with the reference clients' backoff, resumes
its session with ``afterSeq`` and ``afterMessageId``, passes numbered events through a gate
(in order, each once, holes filled by a resume), and resends what was never acknowledged with
the same ``clientMsgId``.

It also counts what a person at the screen would notice: a message shown twice (``duplicates``:
two events that carry the same message; a snapshot's overlap with events is dropped by id, as
the protocol says) and the messages it never got (the tests compare ``shown`` with the store)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

import socketio

GAP_GRACE = 0.25
"""What the reference clients wait before a hole in the numbers makes them resume."""
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0
"""The reference clients' reconnection delays (socket.io's reconnectionDelay/-Max)."""


class ResumingParty:
    def __init__(
        self,
        name: str,
        url: str,
        hello: dict[str, Any],
        origin: str | None = None,
    ) -> None:
        self.name = name
        self.url = url
        """Where it reconnects: HAProxy, as a deployment's clients do."""
        self.hello = hello
        self.headers = {"Origin": origin} if origin else {}
        self.sio: socketio.AsyncClient | None = None
        self.ticket_id: str | None = None
        self.ready = asyncio.Event()
        self.closing = False
        self.last: int | None = None
        """The last ``seq`` applied (None: the ticket's numbers are not known yet)."""
        self.held: dict[int, dict[str, Any]] = {}
        self.last_id = 0
        self.shown: dict[int, dict[str, Any]] = {}
        """Message id -> message: what the screen shows."""
        self.by_event: set[int] = set()
        self.duplicates: list[int] = []
        self.outbox: dict[str, str] = {}
        """clientMsgId -> text of messages sent and not acknowledged yet."""
        self.acked: dict[str, int] = {}
        """clientMsgId -> message id of every acknowledged message."""
        self.refused: list[dict[str, Any]] = []
        """Error acks of chat.send (what a person would see as a failed send; a send cut by
        its socket's end is not one: it waits in the outbox for the resend)."""
        self.lost_at: float | None = None
        self.resumed_at: list[float] = []
        """When each reconnect's resume was answered (time.monotonic())."""
        self.snapshots = 0
        self.gap_resumes = 0
        self.resyncs = 0
        self._count = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume_lock = asyncio.Lock()
        self._gap_timer: asyncio.TimerHandle | None = None
        self.trace: list[str] = []
        """What happened, for a failing test's message."""

    # ------------------------------------------------------------------ connection

    async def connect(self, url: str | None = None) -> None:
        """The first connection (``url``: a chosen node; reconnects go through ``self.url``)."""
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("*", self._event)
        sio.on("disconnect", lambda *_: self._lost(sio))
        await sio.connect(
            url or self.url,
            auth=self.hello,
            headers=self.headers,
            transports=["websocket"],
            wait_timeout=5,
        )
        self.sio = sio
        self.ready.set()

    def start(self, state: dict[str, Any]) -> None:
        """A SessionState (help.request, accept): where the ticket's numbers stand."""
        assert state.get("ok"), state
        self.ticket_id = state["ticket"]["id"]
        if state.get("token"):
            self.hello = {**self.hello, "token": state["token"]}
        for message in state["messages"]:
            self._show(message, by_event=False)
        self._start(state.get("seq"))

    async def call(self, event: str, data: dict[str, Any], timeout: float = 10) -> Any:
        assert self.sio is not None
        return await self.sio.call(event, data, timeout=timeout)

    def _lost(self, sio: socketio.AsyncClient) -> None:
        if sio is not self.sio or self.closing:
            return
        self.ready.clear()
        self.lost_at = time.monotonic()
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        while not self.closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self.connect()
                await self.resume()
            except Exception:
                if self.sio is not None:
                    stale, self.sio = self.sio, None
                    with contextlib.suppress(Exception):
                        await stale.disconnect()
                self.ready.clear()
                continue
            self.resumed_at.append(time.monotonic())
            await self.flush()
            return

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await self.sio.disconnect()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ resuming

    async def resume(self) -> None:
        async with self._resume_lock:
            asking: dict[str, Any] = {"ticketId": self.ticket_id, "afterMessageId": self.last_id}
            if self.last is not None:
                asking["afterSeq"] = self.last
            ack = await self.call("session.resume", asking)
            self._note(
                f"resume {asking} -> seq {ack.get('seq')}, events"
                f" {[e.get('seq') for e in ack.get('events') or []]}, messages"
                f" {[m['id'] for m in ack.get('messages', [])]}"
            )
            if not ack.get("ok"):
                raise RuntimeError(f"{self.name}: resume refused: {ack}")
            if ack.get("events") is not None:
                for event in ack["events"]:
                    self._receive(event)
                return
            self.snapshots += 1
            for message in ack["messages"]:
                self._show(message, by_event=False)
            self._start(ack.get("seq"))

    def _note(self, what: str) -> None:
        self.trace.append(f"{time.monotonic():.3f} {what}")

    def _resync(self, *_: Any) -> None:
        self._note("server.resync")
        self.resyncs += 1
        self._spawn(self._resume_quietly())

    async def _resume_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.resume()

    # ------------------------------------------------------------------ the gate

    def _start(self, seq: int | None) -> None:
        if not isinstance(seq, int):
            return
        self.last = seq
        for number in [n for n in self.held if n <= seq]:
            del self.held[number]
        self._drain()

    def _event(self, name: str, event: Any = None) -> None:
        if name == "server.resync":
            self._resync()
        elif isinstance(event, dict) and _ticket_of(event) == self.ticket_id:
            self._receive(event)

    def _receive(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        message = event.get("message") or {}
        self._note(f"{event.get('type')} seq {seq} id {message.get('id')} (last {self.last})")
        if self.last is None or not isinstance(seq, int):
            self._apply(event, in_order=False)
            return
        if seq <= self.last or seq in self.held:
            return
        self.held[seq] = event
        self._drain()

    def _drain(self) -> None:
        assert self.last is not None
        while self.last + 1 in self.held:
            self.last += 1
            self._apply(self.held.pop(self.last))
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if self.held:
            self._gap_timer = asyncio.get_running_loop().call_later(GAP_GRACE, self._gap)

    def _gap(self) -> None:
        self._gap_timer = None
        if self.held:
            self.gap_resumes += 1
            self._spawn(self._resume_quietly())

    def _apply(self, event: dict[str, Any], in_order: bool = True) -> None:
        if event.get("type") == "chat.message":
            self._show(event["message"], by_event=True, in_order=in_order)

    def _show(self, message: dict[str, Any], by_event: bool, in_order: bool = True) -> None:
        """``in_order``: everything before it is held too (a state's message, or a numbered event
        through the gate), so a resume may start after it; an unnumbered event may overtake the
        other side's messages (the reference clients keep ``lastId`` the same way)."""
        ident = int(message["id"])
        if by_event:
            if ident in self.by_event:
                self.duplicates.append(ident)
            self.by_event.add(ident)
        self.shown.setdefault(ident, message)
        if in_order:
            self.last_id = max(self.last_id, ident)

    # ------------------------------------------------------------------ chatting

    async def say(self, text: str | None = None) -> None:
        """Send one message; unacknowledged (the node died under it), it waits in the outbox
        for the resume's resend."""
        client_msg_id = f"{self.name}-{next(self._count)}"
        self.outbox[client_msg_id] = text or client_msg_id
        if self.ready.is_set():
            await self._send(client_msg_id)

    async def _send(self, client_msg_id: str) -> None:
        text = self.outbox.get(client_msg_id)
        if text is None:
            return
        sending: dict[str, Any] = {"clientMsgId": client_msg_id, "text": text}
        if self.hello.get("role") == "agent":
            sending["ticketId"] = self.ticket_id
        try:
            ack = await self.call("chat.send", sending, timeout=5)
        except Exception:
            return
        if ack.get("ok"):
            self.acked[client_msg_id] = int(ack["message"]["id"])
            self.outbox.pop(client_msg_id, None)
        else:
            self.refused.append(ack)

    async def flush(self) -> None:
        for client_msg_id in list(self.outbox):
            await self._send(client_msg_id)

    async def chatter(self, every: float) -> None:
        """Say something every ``every`` seconds until cancelled."""
        while True:
            await self.say()
            await asyncio.sleep(every)


def _ticket_of(event: dict[str, Any]) -> str | None:
    message = event.get("message")
    found = event.get("ticketId") or (
        message.get("ticketId") if isinstance(message, dict) else None
    )
    return str(found) if found else None
