"""The real server on 127.0.0.1, on its own event loop in a background thread.

Hypothesis and schemathesis drive synchronous tests; they hand coroutines to this loop (the
server's and its socket.io clients') and wait for the result. One server serves a whole module.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tests.support import Running, running_server

T = TypeVar("T")

NO_LIMITS: dict[str, Any] = {
    "rate_per_second": 100_000.0,
    "max_customer_sockets_per_address": 100_000,
    "max_open_tickets_per_address": 100_000,
    "max_open_tickets_per_customer": 100_000,
    "login_account_burst": 100_000,
    "login_address_burst": 100_000,
}
"""Rate and per-address limits have their own tests; here every client is 127.0.0.1, and the
limits would only keep requests from the code under test."""


class BackgroundServer:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._context = running_server(data_dir, **overrides)
        self.server: Running = self.run(self._context.__aenter__())

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.run(self._context.__aexit__(None, None, None))
            self.run(_cancel_the_rest())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _cancel_the_rest() -> None:
    """Stop what the clients left running (engine.io ping tasks) before the loop closes."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
