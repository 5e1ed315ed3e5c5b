"""The per-node request channel: how a node asks a session's home node to do its part.

A request names a method and carries JSON params; the home node runs the handler registered for
that method and sends back a JSON result, or the refusal (code and message) the handler raised.
A caller waits ``timeout`` seconds at most (5 s by default), then gives up: the home node is
gone or stuck, and its lease will lapse (``placement``).

``RedisRpc``: requests go onto the list ``rpc:{node}`` (RPUSH, read with BLPOP by the node's
server loop); each carries a reply key and a deadline, and the answer is RPUSHed onto the reply
key (short expiry), which the caller waits on with BLPOP. A request found after its deadline is
dropped unanswered. ``LoopbackRpc`` is the embedded form: calls to its own node run in-process;
there is no other node to reach.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import exceptions as redis_errors

from signaling import background

log = logging.getLogger("tandem.rpc")

RPC_TIMEOUT = 5.0
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RpcRefused(Exception):
    """The home node ran the request and refused it (its handler raised ``code``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RpcUnavailable(Exception):
    """No answer within the timeout: the node is gone, stuck or unknown."""


class Rpc(Protocol):
    node: str
    timeout: float

    def register(self, method: str, handler: Handler) -> None: ...
    async def call(self, node: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run ``method`` on ``node``; waits ``timeout`` seconds (an attribute) at most."""
        ...

    def start(self) -> None: ...
    async def close(self) -> None: ...


class _Handlers:
    node: str

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    async def _run(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request: ``{"result": ...}`` or ``{"error": {code, message}}``."""
        handler = self._handlers.get(method)
        if handler is None:
            return {"error": {"code": "unknown_event", "message": f"no rpc method {method}"}}
        try:
            return {"result": await handler(params)}
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                return {"error": {"code": code, "message": getattr(exc, "message", str(exc))}}
            log.exception("rpc %s failed", method)
            return {"error": {"code": "internal", "message": "the home node failed"}}


def _unwrap(reply: dict[str, Any]) -> dict[str, Any]:
    error = reply.get("error")
    if error is not None:
        raise RpcRefused(str(error["code"]), str(error["message"]))
    result: dict[str, Any] = reply["result"]
    return result


class LoopbackRpc(_Handlers):
    """One node: a call to itself runs the handler in-process; any other node is unreachable."""

    def __init__(self, node: str = "local") -> None:
        super().__init__()
        self.node = node
        self.timeout = RPC_TIMEOUT

    async def call(self, node: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if node != self.node:
            raise RpcUnavailable(f"node {node} is not reachable from an embedded node")
        # Through JSON, as over Redis, so nothing passes that could not cross nodes.
        params = json.loads(json.dumps(params))
        return _unwrap(await self._run(method, params))

    def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


REPLY_TTL_MS = 10_000
READ_BLOCK_SECONDS = 1.0
"""How long the server loop's BLPOP waits before it looks at whether it should stop."""


class RedisRpc(_Handlers):
    """Requests over Redis lists (see the module docstring)."""

    def __init__(
        self,
        redis: Any,
        node: str,
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        timeout: float = RPC_TIMEOUT,
    ) -> None:
        super().__init__()
        self.node = node
        self.timeout = timeout
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def _inbox(self, node: str) -> str:
        return f"{self._prefix}rpc:{node}"

    async def call(self, node: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        timeout = self.timeout
        reply_key = f"{self._prefix}rpc:r:{secrets.token_hex(8)}"
        request = {
            "method": method,
            "params": params,
            "reply": reply_key,
            "deadline": self._clock() + timeout,
            "from": self.node,
        }
        inbox = self._inbox(node)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(inbox, json.dumps(request))
                # A dead node's inbox does not grow forever: it lapses after the last request.
                pipe.pexpire(inbox, int(timeout * 1000) + REPLY_TTL_MS)
                await pipe.execute()
            # BLPOP's timeout is whole or fractional seconds (Redis >= 6); 0 blocks forever.
            answer = await self._redis.blpop([reply_key], timeout=max(timeout, 0.01))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise RpcUnavailable(f"Redis failed while asking {node}: {exc}") from exc
        if answer is None:
            raise RpcUnavailable(f"node {node} did not answer {method} within {timeout}s")
        return _unwrap(json.loads(answer[1]))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        inbox = self._inbox(self.node)
        while True:
            try:
                item = await self._redis.blpop([inbox], timeout=READ_BLOCK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rpc inbox read failed")
                await asyncio.sleep(READ_BLOCK_SECONDS)
                continue
            if item is None:
                continue
            task = asyncio.get_running_loop().create_task(self._answer(json.loads(item[1])))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _answer(self, request: dict[str, Any]) -> None:
        if float(request["deadline"]) < self._clock():
            return  # the caller has given up: doing it now would surprise everyone
        reply = await self._run(str(request["method"]), dict(request["params"]))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(request["reply"], json.dumps(reply))
            pipe.pexpire(request["reply"], REPLY_TTL_MS)
            await pipe.execute()

    async def close(self) -> None:
        if self._task is not None:
            await background.stop(self._task)
            self._task = None
        await background.stop(*self._running)
