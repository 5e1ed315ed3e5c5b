"""A node's background tasks stop when told, even one that swallowed a cancellation (as
Python 3.11's ``asyncio.wait_for`` does when what it waits for ends at the same moment)."""

from __future__ import annotations

import asyncio

from signaling import background


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.set()  # carries on, as a tick whose Redis write raced the cancel did
        while True:
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(background.stop(task), timeout=10)
    assert swallowed.is_set() and task.cancelled()


async def test_stop_skips_none_and_drops_what_the_tasks_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("ended badly before it was stopped")

    async def finishes() -> str:
        return "done"

    failed, finished = asyncio.ensure_future(fails()), asyncio.ensure_future(finishes())
    await asyncio.sleep(0)
    await background.stop(failed, None, finished)
    assert failed.done() and finished.result() == "done"
