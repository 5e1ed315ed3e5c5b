#!/usr/bin/env python
"""The bench's floor: a minimal python-socketio server speaking Tandem's protocol subset.

What the bench's clients use, and nothing else: the handshake (``auth`` with ``role``),
``help.request``, ``session.accept``, ``chat.send``, each answered with an ack shaped like
Tandem's, and the server events ``queue.added``, ``queue.removed``, ``session.accepted`` and
``chat.message``. Same python-socketio and aiohttp as Tandem, same server options; no
storage, no validation beyond what routing needs, no authentication (an agent's token is
``bench-agent-<j>``).

Queue events go only where they are needed: a ticket's ``queue.added`` / ``queue.removed`` to
the one agent the bench assigned the customer to (``context.app.agent``), and no
``queue.position`` at all after the ``help.request`` ack. That is the floor Tandem is compared
with: what pairing costs when every event has a recipient that needs it.

Every session is a room holding the customer's socket and the accepting agent's socket;
``chat.message`` goes to that room, the sender included (as Tandem sends it to "the session").

With ``--routing push`` (the bench's push scenario) no queue event is sent at all: each waiting
ticket is offered (``session.offered``) to one agent with room (fewest open sessions first,
then the one idle longest), one ringing offer per agent; ``session.accept`` and
``session.decline`` answer it (a declined ticket is never offered to that agent again),
``session.end`` frees the agent's slot (no wrap-up). Offers do not expire (the bench answers
every one) and nothing is sent that its recipient already knows (no ``session.offer.ended``
to the agent who answered, no status events).

Usage: ``python bench/floors/minimal_sio.py PORT [--uvloop] [--orjson] [--routing push
--capacity N --offer-seconds S]``
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import _accel  # noqa: E402


@dataclass
class Ticket:
    id: str
    customer_sid: str
    created_at: str
    context: dict[str, Any]
    agent_room: str | None
    """Where its queue events go: the room of the agent the bench assigned (None: all agents)."""
    agent: dict[str, str] | None = None


@dataclass
class Agent:
    """An agent as the push floor routes them."""

    room: str
    open: int = 0
    ringing: str | None = None
    idle_since: float = 0.0


@dataclass(frozen=True)
class Push:
    capacity: int
    offer_seconds: float


@dataclass
class Socket:
    role: str
    agent_id: str = ""
    ticket_id: str | None = None


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def iso_ms(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def build(sio: socketio.AsyncServer, push: Push | None = None) -> None:
    agents: dict[str, Agent] = {}
    ringing: set[str] = set()
    declined: dict[str, set[str]] = {}
    """Per ticket, the agents who declined it."""
    tickets: dict[str, Ticket] = {}
    sockets: dict[str, Socket] = {}
    queued: dict[str, None] = {}
    """Queued ticket ids, oldest first (an insertion-ordered set)."""
    ticket_ids = itertools.count(1)
    message_ids = itertools.count(1)

    def entry_of(ticket: Ticket) -> dict[str, Any]:
        return {
            "ticketId": ticket.id,
            "site": "bench",
            "customer": {"id": f"c_{ticket.id}", "verified": False},
            "context": ticket.context,
            "createdAt": ticket.created_at,
        }

    async def dispatch() -> None:
        """Offer the oldest waiting tickets, each to the free agent with the fewest open
        sessions (then idle longest), until no agent is free."""
        assert push is not None
        free = [a for a in agents.values() if a.ringing is None and a.open < push.capacity]
        for ticket_id in list(queued):
            if not free:
                return
            if ticket_id in ringing or ticket_id not in queued:
                continue  # offered or accepted meanwhile (this pass awaited its emits)
            refused = declined.get(ticket_id, set())
            # Checked again here: another handler's pass may have offered to an agent of
            # ``free`` while this one awaited its last emit.
            candidates = [
                a
                for a in free
                if a.ringing is None and a.open < push.capacity and a.room not in refused
            ]
            if not candidates:
                continue
            agent = min(candidates, key=lambda a: (a.open, a.idle_since, a.room))
            free.remove(agent)
            agent.ringing = ticket_id
            ringing.add(ticket_id)
            expires = time.time() + push.offer_seconds
            await sio.emit(
                "session.offered",
                {
                    "type": "session.offered",
                    "ticketId": ticket_id,
                    "entry": entry_of(tickets[ticket_id]),
                    "expiresAt": iso_ms(expires),
                },
                to=agent.room,
            )

    def summary(ticket: Ticket) -> dict[str, Any]:
        return {
            "id": ticket.id,
            "status": "queued" if ticket.agent is None else "active",
            "site": "bench",
            "createdAt": ticket.created_at,
            "customer": {"id": f"c_{ticket.id}", "verified": False},
            "context": ticket.context,
            "agents": [ticket.agent] if ticket.agent else [],
        }

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        hello = auth if isinstance(auth, dict) else {}
        role = hello.get("role")
        if role == "agent":
            token = str(hello.get("token", ""))
            if not token.startswith("bench-agent-"):
                raise socketio.exceptions.ConnectionRefusedError(
                    "token refused", {"code": "unauthorized"}
                )
            agent_id = token.removeprefix("bench-")
            sockets[sid] = Socket("agent", agent_id=agent_id)
            await sio.enter_room(sid, "agents")
            await sio.enter_room(sid, agent_id)
            if push is not None:
                agents.setdefault(agent_id, Agent(agent_id, idle_since=time.time()))
        elif role == "customer":
            sockets[sid] = Socket("customer")
        else:
            raise socketio.exceptions.ConnectionRefusedError("bad role", {"code": "malformed"})

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        sockets.pop(sid, None)

    @sio.on("help.request")
    async def help_request(sid: str, data: Any) -> dict[str, Any]:
        sock = sockets.get(sid)
        if sock is None or sock.role != "customer":
            return error("forbidden", "help.request is for customers")
        context = data.get("context") if isinstance(data, dict) else None
        if not isinstance(context, dict):
            return error("malformed", "help.request needs a context")
        app = context.get("app")
        assigned = app.get("agent") if isinstance(app, dict) else None
        ticket = Ticket(
            id=f"tk_{next(ticket_ids)}",
            customer_sid=sid,
            created_at=iso_now(),
            context=context,
            agent_room=f"agent-{assigned}" if isinstance(assigned, int) else None,
        )
        tickets[ticket.id] = ticket
        sock.ticket_id = ticket.id
        await sio.enter_room(sid, ticket.id)
        queued[ticket.id] = None
        if push is None:
            await sio.emit(
                "queue.added",
                {"type": "queue.added", "entry": entry_of(ticket)},
                to=ticket.agent_room or "agents",
            )
        position = len(queued)
        if push is not None:
            await dispatch()
        return {
            "ok": True,
            "ticket": summary(ticket),
            "messages": [],
            "position": position,
            "token": f"bench-customer-{ticket.id}",
        }

    @sio.on("session.accept")
    async def session_accept(sid: str, data: Any) -> dict[str, Any]:
        sock = sockets.get(sid)
        if sock is None or sock.role != "agent":
            return error("forbidden", "session.accept is for agents")
        ticket = tickets.get(str(data.get("ticketId"))) if isinstance(data, dict) else None
        if ticket is None:
            return error("not_found", "no such ticket")
        if ticket.agent is not None:
            return error("already_taken", "another agent accepted this session first")
        agent = agents.get(sock.agent_id)
        if agent is not None and push is not None:
            if agent.open >= push.capacity:
                return error("invalid_state", "you are at capacity")
            agent.open += 1
            if agent.ringing == ticket.id:
                agent.ringing = None
            ringing.discard(ticket.id)
            declined.pop(ticket.id, None)
        ticket.agent = {"id": sock.agent_id, "name": sock.agent_id}
        queued.pop(ticket.id, None)
        await sio.enter_room(sid, ticket.id)
        if push is None:
            await sio.emit(
                "queue.removed",
                {"type": "queue.removed", "ticketId": ticket.id, "reason": "accepted"},
                to=ticket.agent_room or "agents",
            )
        await sio.emit(
            "session.accepted",
            {"type": "session.accepted", "ticketId": ticket.id, "agent": ticket.agent},
            to=ticket.id,
        )
        if push is not None:
            await dispatch()
        return {"ok": True, "ticket": summary(ticket), "messages": []}

    @sio.on("session.decline")
    async def session_decline(sid: str, data: Any) -> dict[str, Any]:
        sock = sockets.get(sid)
        agent = agents.get(sock.agent_id) if sock is not None else None
        ticket_id = str(data.get("ticketId")) if isinstance(data, dict) else ""
        if agent is None or agent.ringing != ticket_id:
            return error("not_found", "no offer of that session rings for you")
        agent.ringing = None
        ringing.discard(ticket_id)
        declined.setdefault(ticket_id, set()).add(agent.room)
        await dispatch()
        return {"ok": True}

    @sio.on("session.end")
    async def session_end(sid: str, data: Any) -> dict[str, Any]:
        sock = sockets.get(sid)
        if sock is None or sock.role != "agent" or not isinstance(data, dict):
            return error("forbidden", "the floor's session.end is for agents")
        ticket = tickets.pop(str(data.get("ticketId")), None)
        if ticket is None or (ticket.agent or {}).get("id") != sock.agent_id:
            return error("not_found", "no such session of yours")
        await sio.emit(
            "session.ended",
            {"type": "session.ended", "ticketId": ticket.id, "by": "agent", "at": iso_now()},
            to=ticket.id,
        )
        await sio.close_room(ticket.id)
        agent = agents.get(sock.agent_id)
        if agent is not None:
            agent.open -= 1
            agent.idle_since = time.time()
            await dispatch()
        return {"ok": True}

    @sio.on("agent.status")
    async def agent_status(sid: str, data: Any) -> dict[str, Any]:
        return {"ok": True}

    @sio.on("chat.send")
    async def chat_send(sid: str, data: Any) -> dict[str, Any]:
        sock = sockets.get(sid)
        if sock is None or not isinstance(data, dict):
            return error("malformed", "chat.send needs a payload")
        if sock.role == "customer":
            ticket = tickets.get(sock.ticket_id or "")
        else:
            ticket = tickets.get(str(data.get("ticketId")))
            if ticket is not None and (ticket.agent or {}).get("id") != sock.agent_id:
                return error("forbidden", "not your session")
        if ticket is None:
            return error("not_found", "no such ticket")
        message = {
            "id": next(message_ids),
            "ticketId": ticket.id,
            "from": sock.role,
            "author": sock.agent_id or "Customer",
            "authorId": sock.agent_id or f"c_{ticket.id}",
            "text": str(data.get("text", "")),
            "at": iso_now(),
            "clientMsgId": data.get("clientMsgId"),
        }
        await sio.emit("chat.message", {"type": "chat.message", "message": message}, to=ticket.id)
        return {"ok": True, "message": message, "duplicate": False}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--orjson", action="store_true")
    parser.add_argument("--routing", choices=("push", "pull"), default="pull")
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument("--offer-seconds", type=float, default=20.0)
    parser.add_argument("--wrap-up-seconds", type=float, default=0.0, help="ignored (none)")
    args = parser.parse_args()
    applied = _accel.apply(args.uvloop, args.orjson)
    if applied:
        print("minimal_sio with " + ", ".join(applied), flush=True)
    # The options Tandem's create_app gives its server, so the framework costs the same.
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=[],
        max_http_buffer_size=1_000_000,
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )
    app = web.Application()
    sio.attach(app)
    build(sio, Push(args.capacity, args.offer_seconds) if args.routing == "push" else None)
    app.router.add_get("/healthz", healthz)
    web.run_app(
        app, host="127.0.0.1", port=args.port, print=None, access_log=None, shutdown_timeout=1
    )


if __name__ == "__main__":
    main()
