"""Stopping a node's background tasks so that they do stop, on Python 3.11 too.

On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation: when what it waits for ends in
the same loop iteration as the cancel arrives, it returns the result instead of raising
(CPython gh-86296, fixed in 3.12 by basing ``wait_for`` on ``asyncio.timeout``). redis-py wraps
every socket write in ``wait_for``, so a periodic task cancelled while it sends a Redis command
may carry on to its next sleep, and whoever awaited its end waits for ever (seen: the routing
tick, stopping a node on PostgreSQL + Redis). ``stop`` cancels again until each task has ended.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("tandem.background")

RECANCEL_SECONDS = 0.5
"""How long a cancelled task may take to end before it is cancelled again."""


async def stop(*tasks: asyncio.Task[object] | asyncio.Future[object] | None) -> None:
    """Cancel the tasks and wait until every one has ended (``None`` entries are skipped).
    Their results and exceptions are dropped: a task that is told to stop has nothing to say."""
    pending: set[asyncio.Future[object]] = {task for task in tasks if task is not None}
    rounds = 0
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        rounds += 1
        if pending and rounds == 2:
            log.warning(
                "%d background tasks ignored a cancellation; cancelling again", len(pending)
            )
    for ended in tasks:
        if ended is not None and not ended.cancelled():
            ended.exception()  # retrieved, so asyncio does not log it as never retrieved
