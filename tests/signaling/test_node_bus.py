"""The bus between nodes notices a subscription that went silent while Redis still answers
(python-socketio's manager would wait for ever), subscribes again and tells its sockets to
resync. A node of several on the shared Redis, under a channel of this test's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signaling.app import bus_key
from tests.support import (
    PG_URL,
    REDIS_URL,
    Client,
    _postgres_url,
    provision,
    redis_or_skip,
    start_server,
    unique_prefix,
)


async def test_a_silent_subscription_is_noticed_and_made_again(tmp_path: Path) -> None:
    async with redis_or_skip():
        try:
            database_url = await _postgres_url(tmp_path)
        except Exception as exc:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc!r}")
        app, runner, base = await start_server(
            tmp_path,
            database_url=database_url,
            redis_url=REDIS_URL,
            redis_prefix=unique_prefix(),
            secret="bus-test-secret",
        )
        try:
            bus = app[bus_key]
            bus.canary_interval, bus.canary_timeout = 0.2, 1.0
            site, _other, _agents = await provision(app)
            customer = Client()
            hello = {"v": 2, "role": "customer", "site": site.public_key}
            await customer.connect(base, hello, origin="http://shop.test")
            # The subscription stays open but hears nothing of the node's channel any more.
            subscription = bus._subscription
            assert subscription is not None
            await subscription.subscribe(f"{bus.channel}:elsewhere")
            await subscription.unsubscribe(bus.channel)
            notice = await customer.wait_for("server.resync", timeout=15)
            assert notice == {"type": "server.resync", "reason": "bus_silent"}
            assert bus.resubscriptions == 1
            # Subscribed again, the node hears its canaries: it does not need to subscribe again.
            await asyncio.sleep(3 * bus.canary_timeout)
            assert bus.resubscriptions == 1
            await customer.close()
        finally:
            await runner.cleanup()
