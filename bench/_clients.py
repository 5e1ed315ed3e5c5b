"""The bench's clients, run in worker processes: each process one event loop, many sockets.

The parent (``bench/signaling.py``) starts a few workers and drives them phase by phase over a
pipe: one command to every worker, one reply from each. A command carries its own time budget
and every wait inside is bounded by it, so a worker always answers (with what completed and
what did not); the parent kills a worker that does not.

Two kinds of clients, chosen by the ``setup`` command:

* ``sio``: python-socketio ``AsyncClient`` sockets speaking Tandem's protocol (customers and
  agents), for Tandem and for the minimal python-socketio floor;
* ``ws``: plain aiohttp websockets to the bare relay floor, one per end of each pair.

Customer ``i`` is served by agent ``i mod A``; a worker holds its agents and their customers,
so a session's two ends are always in the same process and its latencies come from one clock
(``time.perf_counter``, CLOCK_MONOTONIC, which is also the parent's, so start times sent by the
parent mean the same here).

Replies are plain dicts of numbers and lists (pickled over the pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import logging
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import Any

import aiohttp
import socketio

from bench._common import die_with_parent

ORIGIN = "https://shop.bench.example"
"""The bench site's allowed origin, sent as the customers' ``Origin`` header (a string the
server compares; no request goes there)."""
SITE_KEY = "pk_bench"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
TEXT = "Hi, the checkout page says my card was declined but my bank shows a charge"
CONNECT_TIMEOUT = 30.0
"""Seconds for one socket's handshake."""
GRACE = 5.0
"""Seconds to wait, after a phase's own work is answered, for events still in flight."""

Reply = dict[str, Any]


def ack_error(ack: Any) -> str | None:
    """None for an ok ack, else the refusal's code."""
    if isinstance(ack, dict) and ack.get("ok") is True:
        return None
    if isinstance(ack, dict) and isinstance(ack.get("error"), dict):
        return str(ack["error"].get("code"))
    return "bad-ack"


class Tally:
    """What one worker's clients sent and received, and what went wrong, by kind."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        """Server events received, by name."""
        self.agent_events: Counter[str] = Counter()
        """The part of ``events`` the agents' sockets received."""
        self.acks = 0
        self.sent = 0
        self.errors: Counter[str] = Counter()
        self.closing = False
        """Set before the bench disconnects its own sockets (those drops are not errors)."""

    def take(self) -> Reply:
        out = {
            "events": dict(self.events),
            "agent_events": dict(self.agent_events),
            "acks": self.acks,
            "sent": self.sent,
            "errors": dict(self.errors),
        }
        self.events.clear()
        self.agent_events.clear()
        self.errors.clear()
        self.acks = self.sent = 0
        return out


def freeze_heap() -> None:
    """Move the sockets and everything else alive now out of the garbage collector's sight.

    A worker holds thousands of clients; a full collection walks them all (tens to hundreds of
    milliseconds), and a client stalled that long would show up as the server's latency.
    """
    gc.collect()
    gc.freeze()


async def bounded(
    coros: Iterable[Awaitable[Any]], limit: int, deadline: float
) -> tuple[list[Any], int]:
    """Run the coroutines at most ``limit`` at a time until ``deadline`` (perf_counter).

    Returns the results of those that finished (exceptions included, as values) and how many
    did not finish or never started.
    """
    gate = asyncio.Semaphore(max(1, limit))
    waiting = list(coros)

    async def one(coro: Awaitable[Any]) -> Any:
        async with gate:
            return await coro

    tasks = [asyncio.ensure_future(one(c)) for c in waiting]
    if not tasks:
        return [], 0
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        # Those still queued at the gate never started: close them (no "never awaited").
        for coro in waiting:
            if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
                coro.close()
    results = [t.exception() or t.result() for t in done]
    return results, len(pending)


async def settle(futures: Iterable[asyncio.Future[Any]], deadline: float) -> int:
    """Wait for the futures until ``deadline``; how many were still pending."""
    waiting = [f for f in futures if not f.done()]
    if not waiting:
        return 0
    _, pending = await asyncio.wait(waiting, timeout=max(0.0, deadline - time.perf_counter()))
    return len(pending)


# --------------------------------------------------------------------------- socket.io clients


class SioCustomer:
    def __init__(
        self, index: int, agent: int, tally: Tally, http: aiohttp.ClientSession, version: int
    ) -> None:
        self.index = index
        self.version = version
        self.agent = agent
        self.tally = tally
        self.sio = socketio.AsyncClient(
            reconnection=False,
            request_timeout=CONNECT_TIMEOUT,
            http_session=http,
            handle_sigint=False,
        )
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)
        loop = asyncio.get_running_loop()
        self.ticket: asyncio.Future[str | None] = loop.create_future()
        """The ticket id from the ``help.request`` ack (None when refused)."""
        self.accepted: asyncio.Future[float] = loop.create_future()
        """When ``session.accepted`` arrived."""
        self.ended: asyncio.Future[float] = loop.create_future()
        """When ``session.ended`` arrived."""
        self.asked_at: float | None = None
        self.replies: dict[str, tuple[asyncio.Future[float], float]] = {}
        """Reply id -> (resolved with the reply's arrival time, when the message was due)."""

    @property
    def ticket_id(self) -> str | None:
        return self.ticket.result() if self.ticket.done() else None

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url,
            auth={"v": self.version, "role": "customer", "site": SITE_KEY},
            headers={"Origin": ORIGIN},
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.tally.events[event] += 1
        if event == "session.accepted":
            if not self.accepted.done():
                self.accepted.set_result(time.perf_counter())
        elif event == "session.ended":
            if not self.ended.done():
                self.ended.set_result(time.perf_counter())
        elif event == "chat.message" and isinstance(data, dict):
            message = data.get("message") or {}
            if message.get("from") == "agent":
                waiter = self.replies.pop(str(message.get("clientMsgId", "")), None)
                if waiter is not None and not waiter[0].done():
                    waiter[0].set_result(time.perf_counter())

    def _on_disconnect(self, reason: Any = None) -> None:
        if not self.tally.closing:
            self.tally.errors[f"customer socket dropped ({reason})"] += 1

    def _on_help_ack(self, ack: Any = None) -> None:
        self.tally.acks += 1
        problem = ack_error(ack)
        if problem:
            self.tally.errors[f"help.request: {problem}"] += 1
        if not self.ticket.done():
            self.ticket.set_result(None if problem else str(ack["ticket"]["id"]))

    async def request_help(self) -> None:
        self.asked_at = time.perf_counter()
        self.tally.sent += 1
        await self.sio.emit(
            "help.request",
            {
                "context": {
                    "url": f"{ORIGIN}/products/sku-{self.index}",
                    "title": f"Bench widget {self.index} - Bench shop",
                    "userAgent": USER_AGENT,
                    "language": "en-GB",
                    "timeZone": "Europe/London",
                    "viewport": {"width": 1280, "height": 800},
                    # Free-form host-app data to Tandem; the floor routes queue events by
                    # ``agent`` (the one agent that needs them).
                    "app": {
                        "product": {"id": f"sku-{self.index}", "name": "Bench widget"},
                        "bench": self.index,
                        "agent": self.agent,
                    },
                }
            },
            callback=self._on_help_ack,
        )

    async def send_chat(self, msg_id: str, due: float) -> asyncio.Future[float]:
        """Send one message; the future resolves when the agent's reply arrives."""
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.replies[f"r{msg_id}"] = (waiter, due)
        self.tally.sent += 1
        await self.sio.emit(
            "chat.send",
            {"clientMsgId": msg_id, "text": f"{TEXT} ({msg_id})"},
            callback=self._on_chat_ack,
        )
        return waiter

    def _on_chat_ack(self, ack: Any = None) -> None:
        self.tally.acks += 1
        problem = ack_error(ack)
        if problem:
            self.tally.errors[f"customer chat.send: {problem}"] += 1


@dataclass
class PushPlan:
    """How the bench's agents answer offers in the push-routing scenario."""

    think: float
    """Mean seconds before answering an offer (each wait is drawn from 0.5x to 1.5x)."""
    decline: float
    """Share of offers declined (the session is then offered to another agent)."""
    handle: float
    """Seconds an accepted session is held before the agent ends it (its slot frees)."""
    offer_seconds: float
    """The server's ``--offer-seconds``: an offer's ``expiresAt`` minus this is when the
    server decided it (wall clock; server and clients share the machine's clock)."""
    seed: int


@dataclass
class PushLog:
    """What one worker's agents saw of push routing: every offer, answer and latency."""

    offers: list[tuple[str, int]] = field(default_factory=list)
    """(ticket, agent) of every ``session.offered`` received."""
    declined: list[tuple[str, int]] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)
    ended: Counter[str] = field(default_factory=Counter)
    """``session.offer.ended`` by reason."""
    offer_to_ack: list[float] = field(default_factory=list)
    """Server's offer decision -> the accept's ack received (wall clock), think time included."""
    delivery: list[float] = field(default_factory=list)
    """Server's offer decision -> ``session.offered`` received (wall clock)."""
    accept_ack: list[float] = field(default_factory=list)
    """``session.accept`` sent -> its ack."""
    think: list[float] = field(default_factory=list)
    missed: int = 0
    """Offers that rang out (the agent was set Away and sets itself Available again)."""
    most_open: int = 0
    """The most sessions one agent of this worker held at once."""
    busy: set[asyncio.Task[None]] = field(default_factory=set)
    """Answers and sessions in progress."""

    def take(self) -> Reply:
        """What was recorded since the last take (answers in progress go on)."""
        out = {
            "offers": list(self.offers),
            "declined": list(self.declined),
            "push_accepted": list(self.accepted),
            "offer_ended": dict(self.ended),
            "offer_to_ack": list(self.offer_to_ack),
            "delivery": list(self.delivery),
            "accept_ack": list(self.accept_ack),
            "think": list(self.think),
            "missed": self.missed,
            "most_open": self.most_open,
        }
        for items in (self.offers, self.declined, self.accepted, self.offer_to_ack):
            items.clear()
        for values in (self.delivery, self.accept_ack, self.think):
            values.clear()
        self.ended.clear()
        self.missed = self.most_open = 0
        return out


def iso_seconds(text: str) -> float:
    """Epoch seconds of an ISO-8601 UTC time (``...Z``) the server sent."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SioAgent:
    def __init__(
        self, index: int, token: str, tally: Tally, http: aiohttp.ClientSession, version: int
    ) -> None:
        self.index = index
        self.version = version
        self.token = token
        self.tally = tally
        self.sio = socketio.AsyncClient(
            reconnection=False,
            request_timeout=CONNECT_TIMEOUT,
            http_session=http,
            handle_sigint=False,
        )
        self.sio.on("*", self._on_event)
        self.sio.on("disconnect", self._on_disconnect)
        self.customers: dict[int, SioCustomer] = {}
        """The customers assigned to this agent, by bench index."""
        self.tickets: dict[str, SioCustomer] = {}
        """Tickets this agent knows the customer of (from ``queue.added`` or its accept)."""
        self.announced: set[int] = set()
        """Assigned customers whose ``queue.added`` this agent received."""
        self.auto_accept = False
        """Accept an assigned customer's ticket as soon as its ``queue.added`` arrives."""
        self.accept_acks: dict[int, asyncio.Future[float]] = {}
        """Per assigned customer: when the accept's ack arrived (an exception when refused)."""
        self.push: PushPlan | None = None
        """Set for the push-routing scenario: answer offers (into ``push_log``, the worker's)."""
        self.push_log = PushLog()
        self.rng = random.Random(index)
        self.open_sessions = 0
        """Sessions this agent accepted and has not ended yet (push scenario)."""

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url,
            auth={"v": self.version, "role": "agent", "token": self.token},
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.tally.events[event] += 1
        self.tally.agent_events[event] += 1
        if not isinstance(data, dict):
            return
        if self.push is not None:
            self._on_push_event(event, data, self.push)
            return
        if event == "queue.added":  # protocol v1 (and the floor): one event per new ticket
            await self._on_queue_entry(data.get("entry") or {})
        elif event == "queue.changed":  # protocol v2: the queue's changes, one event per tick
            for entry in data.get("added") or []:
                await self._on_queue_entry(entry)
        elif event == "chat.message":
            message = data.get("message") or {}
            ticket_id = str(message.get("ticketId", ""))
            if message.get("from") == "customer" and ticket_id in self.tickets:
                self.tally.sent += 1
                await self.sio.emit(
                    "chat.send",
                    {
                        "ticketId": ticket_id,
                        "clientMsgId": f"r{message.get('clientMsgId', '')}",
                        "text": f"Re: {TEXT}",
                    },
                    callback=self._on_chat_ack,
                )

    def _on_push_event(self, event: str, data: dict[str, Any], plan: PushPlan) -> None:
        log = self.push_log
        if event == "session.offered":
            received = time.time()
            ticket_id = str(data.get("ticketId"))
            decided = iso_seconds(str(data["expiresAt"])) - plan.offer_seconds
            log.offers.append((ticket_id, self.index))
            log.delivery.append(received - decided)
            self._spawn(self._answer(ticket_id, decided, plan))
        elif event == "session.offer.ended":
            log.ended[str(data.get("reason"))] += 1
        elif (
            event == "agent.status"
            and data.get("status") == "away"
            and data.get("reason") == "missed offer"
        ):
            # Rang out (the server set this agent Away): back to work, counted.
            log.missed += 1
            self._spawn(self._emit_checked("agent.status", {"status": "available"}))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.push_log.busy.add(task)
        task.add_done_callback(self.push_log.busy.discard)

    async def _emit_checked(self, event: str, payload: dict[str, Any]) -> Any:
        """Emit and wait for the ack (refusals are counted as errors); the ack, or None."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(ack: Any = None) -> None:
            self.tally.acks += 1
            if not done.done():
                done.set_result(ack)

        self.tally.sent += 1
        await self.sio.emit(event, payload, callback=on_ack)
        try:
            ack = await asyncio.wait_for(done, CONNECT_TIMEOUT)
        except TimeoutError:
            self.tally.errors[f"{event}: no ack in {CONNECT_TIMEOUT:g} s"] += 1
            return None
        problem = ack_error(ack)
        if problem:
            self.tally.errors[f"{event}: {problem}"] += 1
            return None
        return ack

    async def _answer(self, ticket_id: str, decided: float, plan: PushPlan) -> None:
        """After a think time: decline (``plan.decline`` of offers) or accept, hold the
        session for ``plan.handle`` seconds, end it."""
        log = self.push_log
        wait = plan.think * self.rng.uniform(0.5, 1.5)
        started = time.perf_counter()
        await asyncio.sleep(wait)
        log.think.append(time.perf_counter() - started)
        if self.rng.random() < plan.decline:
            log.declined.append((ticket_id, self.index))
            await self._emit_checked("session.decline", {"ticketId": ticket_id})
            return
        sent = time.perf_counter()
        if await self._emit_checked("session.accept", {"ticketId": ticket_id}) is None:
            return
        log.accept_ack.append(time.perf_counter() - sent)
        log.offer_to_ack.append(time.time() - decided)
        log.accepted.append((ticket_id, self.index))
        self.open_sessions += 1
        log.most_open = max(log.most_open, self.open_sessions)
        await asyncio.sleep(plan.handle)
        await self._emit_checked("session.end", {"ticketId": ticket_id})
        self.open_sessions -= 1

    async def _on_queue_entry(self, entry: dict[str, Any]) -> None:
        app = (entry.get("context") or {}).get("app") or {}
        customer = self.customers.get(app.get("bench", -1))
        if customer is not None:
            self.tickets[str(entry.get("ticketId"))] = customer
            self.announced.add(customer.index)
            if self.auto_accept:
                await self.accept(customer, str(entry.get("ticketId")))

    def _on_disconnect(self, reason: Any = None) -> None:
        if not self.tally.closing:
            self.tally.errors[f"agent socket dropped ({reason})"] += 1

    async def accept(self, customer: SioCustomer, ticket_id: str) -> asyncio.Future[float]:
        """Send ``session.accept``; the future resolves with the ack's arrival time."""
        waiter = self.accept_acks.get(customer.index)
        if waiter is not None:
            return waiter  # already asked (a second queue.added of the same ticket)
        waiter = asyncio.get_running_loop().create_future()
        self.accept_acks[customer.index] = waiter
        self.tickets[ticket_id] = customer

        def on_ack(ack: Any = None) -> None:
            self.tally.acks += 1
            problem = ack_error(ack)
            if problem:
                self.tally.errors[f"session.accept: {problem}"] += 1
                if not waiter.done():
                    waiter.set_exception(RuntimeError(problem))
            elif not waiter.done():
                waiter.set_result(time.perf_counter())

        self.tally.sent += 1
        await self.sio.emit("session.accept", {"ticketId": ticket_id}, callback=on_ack)
        return waiter

    def _on_chat_ack(self, ack: Any = None) -> None:
        self.tally.acks += 1
        problem = ack_error(ack)
        if problem:
            self.tally.errors[f"agent chat.send: {problem}"] += 1


# --------------------------------------------------------------------------- relay clients


def relay_payload(msg_id: str, reply: bool) -> str:
    """About the size and shape of a ``chat.message`` event, carrying the message id."""
    return json.dumps(
        [
            "chat.message",
            {
                "type": "chat.message",
                "message": {
                    "id": 123456,
                    "ticketId": "tk_Q2hhdF9iZW5jaF90aWNrZXQ",
                    "from": "agent" if reply else "customer",
                    "author": "Customer",
                    "authorId": "c_YmVuY2hfY3VzdG9tZXI",
                    "text": f"{'Re: ' if reply else ''}{TEXT} ({msg_id})",
                    "at": "2025-01-01T12:00:00.000Z",
                    "clientMsgId": f"r{msg_id}" if reply else msg_id,
                },
            },
        ],
        separators=(",", ":"),
    )


class RelayPair:
    """Both ends of one pair on the bare relay: the agent end answers every message at once."""

    def __init__(self, index: int, tally: Tally, http: aiohttp.ClientSession) -> None:
        self.index = index
        self.tally = tally
        self.http = http
        self.customer: aiohttp.ClientWebSocketResponse | None = None
        self.agent: aiohttp.ClientWebSocketResponse | None = None
        self.readers: list[asyncio.Task[None]] = []
        self.replies: dict[str, tuple[asyncio.Future[float], float]] = {}

    async def connect(self, url: str) -> None:
        base = url.rstrip("/")
        timeout = aiohttp.ClientWSTimeout(ws_close=5)
        self.agent = await self.http.ws_connect(
            f"{base}/ws?pair={self.index}&role=agent", timeout=timeout
        )
        self.customer = await self.http.ws_connect(
            f"{base}/ws?pair={self.index}&role=customer", timeout=timeout
        )
        self.readers = [
            asyncio.ensure_future(self._agent_reader(self.agent)),
            asyncio.ensure_future(self._customer_reader(self.customer)),
        ]

    async def _agent_reader(self, sock: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in sock:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            self.tally.events["relay message"] += 1
            message = json.loads(msg.data)[1]["message"]
            self.tally.sent += 1
            await sock.send_str(relay_payload(str(message["clientMsgId"]), reply=True))
        if not self.tally.closing:
            self.tally.errors["relay agent socket closed"] += 1

    async def _customer_reader(self, sock: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in sock:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            self.tally.events["relay message"] += 1
            message = json.loads(msg.data)[1]["message"]
            waiter = self.replies.pop(str(message["clientMsgId"]), None)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(time.perf_counter())
        if not self.tally.closing:
            self.tally.errors["relay customer socket closed"] += 1

    async def send_chat(self, msg_id: str, due: float) -> asyncio.Future[float]:
        assert self.customer is not None
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.replies[f"r{msg_id}"] = (waiter, due)
        self.tally.sent += 1
        await self.customer.send_str(relay_payload(msg_id, reply=False))
        return waiter

    async def close(self) -> None:
        for sock in (self.customer, self.agent):
            if sock is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sock.close(), 5)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


ChatEnd = SioCustomer | RelayPair


# --------------------------------------------------------------------------- the worker


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.tally = Tally()
        self.kind = "sio"
        self.url = ""
        self.agent_count = 1
        self.version = 2
        """The protocol version the sockets announce in their handshake."""
        self.http: aiohttp.ClientSession | None = None
        self.agents: dict[int, SioAgent] = {}
        self.customers: dict[int, SioCustomer] = {}
        self.pairs: dict[int, RelayPair] = {}
        self.queue: list[SioCustomer] = []
        """Customers whose help.request was answered and who are not accepted, oldest first."""
        self.paired: list[ChatEnd] = []
        """Sessions ready to chat (accepted customers; relay pairs once connected)."""
        self.open_phases = 0
        """Open-loop phases run so far (part of each message id)."""
        self.push_log = PushLog()

    # ------------------------------------------------------------------ commands

    async def run(self, cmd: dict[str, Any]) -> Reply:
        handlers: dict[str, Callable[[dict[str, Any], float], Awaitable[Reply]]] = {
            "setup": self.setup,
            "connect": self.connect,
            "request": self.request,
            "accept": self.accept,
            "chat_closed": self.chat_closed,
            "chat_open": self.chat_open,
            "push": self.push,
            "push_collect": self.push_collect,
            "teardown": self.teardown,
        }
        deadline = time.perf_counter() + float(cmd.get("timeout", 60))
        reply = await handlers[cmd["op"]](cmd, deadline)
        reply["tally"] = self.tally.take()
        return reply

    async def setup(self, cmd: dict[str, Any], deadline: float) -> Reply:
        await self.teardown(cmd, deadline)
        self.kind = cmd["kind"]
        self.url = cmd["url"]
        self.agent_count = int(cmd["agent_count"])
        self.version = int(cmd.get("version", 2))
        self.tally = Tally()
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return {}

    async def connect(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """Open the sockets of the given agents and customers (pairs, for the relay)."""
        assert self.http is not None
        batch = int(cmd.get("batch", 50))
        new: list[Any] = []
        if self.kind == "ws":
            for i in cmd["customers"]:
                pair = RelayPair(i, self.tally, self.http)
                self.pairs[i] = pair
                new.append(pair)
        else:
            for j, token in cmd["agents"]:
                self.agents[j] = SioAgent(j, token, self.tally, self.http, self.version)
                new.append(self.agents[j])
            for i in cmd["customers"]:
                j = i % self.agent_count
                customer = SioCustomer(i, j, self.tally, self.http, self.version)
                self.customers[i] = customer
                self.agents[j].customers[i] = customer
                new.append(customer)
        results, unfinished = await bounded((c.connect(self.url) for c in new), batch, deadline)
        failed = [r for r in results if isinstance(r, BaseException)]
        for problem in failed:
            self.tally.errors[f"connect: {type(problem).__name__}: {problem}"[:160]] += 1
        if self.kind == "ws":
            self.paired = [p for p in self.pairs.values() if p.customer and p.agent]
        return {"opened": len(results) - len(failed), "failed": len(failed) + unfinished}

    async def request(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """The given customers ask for help; with ``accept``, their agents accept at once.

        Without ``accept`` (filling a queue) at most ``batch`` requests are in flight, and the
        reply counts assigned ``queue.added`` events that never came. With it (pairing) every
        customer asks at the same moment, and latencies are help.request -> session.accepted.
        """
        customers = [self.customers[i] for i in cmd["customers"]]
        auto_accept = bool(cmd.get("accept"))
        for agent in self.agents.values():
            agent.auto_accept = auto_accept
        limit = len(customers) if auto_accept else int(cmd.get("batch", 20))

        async def ask(customer: SioCustomer) -> None:
            await customer.request_help()
            await customer.ticket  # the ack: in flight until then

        await bounded((ask(c) for c in customers), limit, deadline)
        refused = sum(1 for c in customers if c.ticket.done() and c.ticket.result() is None)
        unanswered = sum(1 for c in customers if not c.ticket.done())
        good = [c for c in customers if c.ticket_id is not None]
        # A request that raised (socket gone) or never got its ack counts as unanswered.
        reply: Reply = {"refused": refused, "unanswered": unanswered}
        if auto_accept:
            missing_accepted = await settle((c.accepted for c in good), deadline)
            acks = [self.agents[c.agent].accept_acks.get(c.index) for c in good]
            missing_acks = await settle([a for a in acks if a is not None], deadline)
            missing_acks += sum(a is None for a in acks)
            latencies = [
                c.accepted.result() - (c.asked_at or 0.0)
                for c in good
                if c.accepted.done() and not c.accepted.cancelled()
            ]
            done = [c for c in good if c.accepted.done()]
            self.paired.extend(done)
            reply.update(
                latencies=latencies,
                paired=len(done),
                dropped=missing_accepted + missing_acks,
            )
        else:
            self.queue.extend(good)
            grace = min(deadline, time.perf_counter() + GRACE)
            while time.perf_counter() < grace and not self._all_announced(good):
                await asyncio.sleep(0.05)
            missing = sum(1 for c in good if c.index not in self.agents[c.agent].announced)
            latencies = []  # request -> ack is not measured apart from the phase's rate
            reply.update(latencies=latencies, queued=len(good), dropped=missing)
        return reply

    def _all_announced(self, customers: list[SioCustomer]) -> bool:
        return all(c.index in self.agents[c.agent].announced for c in customers)

    async def accept(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """Accept this worker's ``count`` oldest waiting customers, one accept at a time."""
        count = min(int(cmd["count"]), len(self.queue))
        chosen, self.queue = self.queue[:count], self.queue[count:]
        latencies: list[float] = []
        accepted: list[SioCustomer] = []
        refused = unanswered = 0
        for customer in chosen:
            if time.perf_counter() >= deadline:
                unanswered += 1
                continue
            ticket_id = customer.ticket_id
            assert ticket_id is not None
            start = time.perf_counter()
            waiter = await self.agents[customer.agent].accept(customer, ticket_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(waiter), max(0.0, deadline - time.perf_counter())
                )
            if not waiter.done():
                unanswered += 1
            elif waiter.exception() is not None:
                refused += 1
            else:
                latencies.append(waiter.result() - start)
                accepted.append(customer)
        self.paired.extend(accepted)
        missing = await settle(
            (c.accepted for c in accepted), min(deadline, time.perf_counter() + GRACE)
        )
        return {
            "latencies": latencies,
            "accepted": len(accepted),
            "refused": refused,
            "unanswered": unanswered,
            "dropped": missing,
        }

    async def push(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """Push routing: the agents answer offers (``PushPlan``), the given customers all ask
        at once; done when each of them was accepted and then ended by its agent.

        An agent of this worker may serve a customer of another: the agents go on answering
        after this reply, until ``push_collect``.
        """
        plan = PushPlan(
            think=float(cmd["think"]),
            decline=float(cmd["decline"]),
            handle=float(cmd["handle"]),
            offer_seconds=float(cmd["offer_seconds"]),
            seed=int(cmd.get("seed", 1)),
        )
        self.push_log = PushLog()
        for agent in self.agents.values():
            agent.push = plan
            agent.push_log = self.push_log
            agent.rng = random.Random(plan.seed * 100_003 + agent.index)
        customers = [self.customers[i] for i in cmd["customers"]]

        async def ask(customer: SioCustomer) -> None:
            await customer.request_help()
            await customer.ticket

        await bounded((ask(c) for c in customers), len(customers), deadline)
        good = [c for c in customers if c.ticket_id is not None]
        unaccepted = await settle((c.accepted for c in good), deadline)
        unended = await settle((c.ended for c in good), deadline)
        waits = [c.accepted.result() - (c.asked_at or 0.0) for c in good if c.accepted.done()]
        return {
            "asked": len(customers),
            "refused": sum(1 for c in customers if c.ticket.done() and c.ticket_id is None),
            "unanswered": sum(1 for c in customers if not c.ticket.done()),
            "paired": len(waits),
            "waits": waits,
            "dropped": unaccepted + unended,
            "push_tickets": [(c.ticket_id, c.index) for c in good],
            "push": self.push_log.take(),
        }

    async def push_collect(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """After every worker's customers were served: let the agents' last answers finish
        (at most ``GRACE`` s), stop answering offers, and report what they saw since ``push``."""
        grace = min(deadline, time.perf_counter() + GRACE)
        while self.push_log.busy and time.perf_counter() < grace:
            await asyncio.wait(list(self.push_log.busy), timeout=grace - time.perf_counter())
        unfinished = len(self.push_log.busy)
        for task in list(self.push_log.busy):
            task.cancel()
        for agent in self.agents.values():
            agent.push = None
        return {"push": self.push_log.take(), "unfinished": unfinished}

    async def chat_closed(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """Every session does ``rounds`` round trips back to back, all sessions at once."""
        freeze_heap()
        rounds = int(cmd["rounds"])

        async def converse(end: ChatEnd) -> list[float]:
            rtts = []
            for k in range(rounds):
                start = time.perf_counter()
                waiter = await end.send_chat(f"c{end.index}-{k}", start)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, max(0.0, deadline - time.perf_counter()))
                if not waiter.done():
                    break
                rtts.append(waiter.result() - start)
            return rtts

        results, _ = await bounded((converse(e) for e in self.paired), len(self.paired), deadline)
        rtts = [x for r in results if isinstance(r, list) for x in r]
        return {"latencies": rtts, "expected": len(self.paired) * rounds}

    async def chat_open(self, cmd: dict[str, Any], deadline: float) -> Reply:
        """Poisson arrivals at ``rate`` messages/s over this worker's sessions (open loop).

        Each message is due at its scheduled time whether or not earlier ones were answered;
        its latency runs from that time (not from when the client got round to sending it), so
        a slow server (or a slow client) cannot hide delay by sending less.
        """
        freeze_heap()
        # Message ids are unique over the worker's life: the server keeps the first message of
        # a clientMsgId and answers a repeat without telling the agent again (no reply comes).
        self.open_phases += 1
        rate = float(cmd["rate"])
        seconds = float(cmd["seconds"])
        start_at = float(cmd["start_at"])
        drain = float(cmd.get("drain", 10.0))
        ends = list(self.paired)
        rng = random.Random(int(cmd.get("seed", 1)) * 1000 + self.index)
        schedule: list[tuple[float, ChatEnd]] = []
        t = start_at
        while ends and rate > 0:
            t += rng.expovariate(rate)
            if t >= start_at + seconds:
                break
            schedule.append((t, rng.choice(ends)))
        waiters: list[tuple[asyncio.Future[float], float, float]] = []
        """(the reply, when the message was due, when it was actually sent)"""
        lateness: list[float] = []
        for k, (due, end) in enumerate(schedule):
            if time.perf_counter() >= deadline:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at = time.perf_counter()
            lateness.append(sent_at - due)
            msg_id = f"o{self.open_phases}-{end.index}-{k}"
            waiters.append((await end.send_chat(msg_id, due), due, sent_at))
        end_of_sends = start_at + seconds
        await settle((w for w, _, _ in waiters), min(deadline, end_of_sends + drain))
        latencies = [w.result() - due for w, due, _ in waiters if w.done()]
        last = max((w.result() for w, _, _ in waiters if w.done()), default=start_at)
        return {
            "latencies": latencies,
            # The same, from when each message was actually sent (hides the client's delays:
            # only to show how much of the latency was the client's sending late).
            "from_send": [w.result() - sent for w, _, sent in waiters if w.done()],
            "scheduled": len(schedule),
            "sent": len(waiters),
            "dropped": len(schedule) - len(latencies),
            "lateness": lateness,
            "first": start_at,
            "last": last,
        }

    async def teardown(self, cmd: dict[str, Any], deadline: float) -> Reply:
        self.tally.closing = True

        async def close(client: Any) -> None:
            if isinstance(client, RelayPair):
                await client.close()
            else:
                with contextlib.suppress(Exception):
                    await client.sio.disconnect()

        everyone = [*self.customers.values(), *self.agents.values(), *self.pairs.values()]
        await bounded((close(c) for c in everyone), 500, deadline)
        if self.http is not None:
            await self.http.close()
        self.http = None
        self.agents, self.customers, self.pairs = {}, {}, {}
        self.queue, self.paired = [], []
        return {"closed": len(everyone)}


def worker_main(conn: Connection, index: int) -> None:
    """A worker process: commands from the pipe, run on this process's own event loop."""
    die_with_parent()
    # The client libraries log every dropped socket; the bench counts them instead.
    for name in ("engineio.client", "socketio.client", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, index))


async def _serve(conn: Connection, index: int) -> None:
    worker = Worker(index)

    def settle() -> None:
        # The worker holds thousands of clients for the whole run: a full collection walked
        # them all, a pause of up to a second inside a timed phase (read as server latency).
        # After each step what is alive is frozen out of its sight (while the parent waits
        # for the machine to be quiet before the next phase, so no phase is billed for it).
        gc.collect()
        gc.freeze()

    try:
        await serve_commands(conn, worker.run, margin=10, after_reply=settle)
    finally:
        with contextlib.suppress(Exception):
            await worker.teardown({}, time.perf_counter() + 10)


async def serve_commands(
    conn: Connection,
    run: Callable[[dict[str, Any]], Awaitable[Reply]],
    *,
    margin: float = 0.0,
    before_reply: Callable[[], None] | None = None,
    after_reply: Callable[[], None] | None = None,
) -> None:
    """A worker's loop: each command from the pipe run (within its ``timeout`` plus
    ``margin``), one reply each (``{"error"}`` if it failed), until ``exit`` or the pipe
    closes. ``before_reply`` / ``after_reply`` run around each reply."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            cmd = await loop.run_in_executor(None, conn.recv)
        except EOFError:
            return
        if cmd.get("op") == "exit":
            return
        try:
            reply = await asyncio.wait_for(run(cmd), float(cmd.get("timeout", 60)) + margin)
        except Exception as exc:
            reply = {"error": f"{cmd.get('op')}: {type(exc).__name__}: {exc}"[:300]}
        if before_reply is not None:
            before_reply()
        conn.send(reply)
        if after_reply is not None:
            after_reply()


# --------------------------------------------------------------------------- the parent's side


class PhaseTimeout(Exception):
    pass


class PhaseFailed(Exception):
    pass


# --------------------------------------------------------------------------- worker pool


class Pool:
    """``procs`` client processes (spawned: each starts with a clean interpreter and loop)."""

    def __init__(self, procs: int, target: Callable[[Connection, int], None] | None = None) -> None:
        """``target(conn, index)`` runs each worker (``worker_main``, this module's clients,
        unless told)."""
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for index in range(procs):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(
                target=target or worker_main,
                args=(child_end, index),
                name=f"bench-client-{index}",
            )
            proc.daemon = True
            proc.start()
            child_end.close()
            self.conns.append(parent_end)
            self.procs.append(proc)

    @property
    def size(self) -> int:
        return len(self.procs)

    def pids(self) -> list[int]:
        return [int(p.pid) for p in self.procs if p.pid is not None]

    def call(self, cmds: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send one command to each worker; their replies, or PhaseTimeout past ``timeout``."""
        for conn, cmd in zip(self.conns, cmds, strict=True):
            conn.send({**cmd, "timeout": timeout})
        replies: dict[int, dict[str, Any]] = {}
        # Workers bound their own work by ``timeout``; the margin covers teardown and pickling.
        deadline = time.monotonic() + timeout + 15
        while len(replies) < len(self.conns):
            left = deadline - time.monotonic()
            if left <= 0:
                raise PhaseTimeout(f"{len(self.conns) - len(replies)} workers did not answer")
            for conn in wait([c for i, c in enumerate(self.conns) if i not in replies], left):
                index = self.conns.index(conn)  # type: ignore[arg-type]
                try:
                    replies[index] = conn.recv()  # type: ignore[union-attr]
                except EOFError:
                    raise PhaseFailed(f"client worker {index} died") from None
        ordered = [replies[i] for i in range(len(self.conns))]
        errors = [r["error"] for r in ordered if "error" in r]
        if errors:
            raise PhaseFailed("; ".join(errors))
        return ordered

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send({"op": "exit"})
        for proc in self.procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
