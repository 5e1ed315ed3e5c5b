"""Password guessing against ``POST /api/auth/login`` (issue 8, finding 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling import auth
from signaling.auth import tokens
from signaling.auth.redis_throttle import RedisLoginThrottle
from signaling.auth.throttle import Allowance, LoginGuard, LoginThrottle
from tests.support import PASSWORD, Running, redis_or_skip, running_server, unique_prefix


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Running]:
    """The default allowances, refilling too slowly to matter however slow the machine is
    (each login costs a scrypt check, and the refills are what the unit tests below check)."""
    async with running_server(
        tmp_path, login_account_interval=3600.0, login_address_interval=3600.0
    ) as running:
        yield running


async def login(server: Running, email: str, password: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.base_url}/api/auth/login",
            json={"email": email, "password": password},
            headers=headers,
        )
        return response.status


async def test_right_password_is_refused_once_the_account_is_throttled(server: Running) -> None:
    email = server.agents["alice"].email
    codes = [await login(server, email, f"guess-{n}") for n in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # Before the fix the right password answered 200 here, so 429 only meant "wrong".
    assert await login(server, email, PASSWORD) == 429
    # Another account is not affected.
    assert await login(server, server.agents["bob"].email, PASSWORD) == 200


async def test_one_password_sprayed_over_many_accounts_is_throttled(server: Running) -> None:
    codes = [await login(server, f"user{n}@victim.test", "Summer2026!") for n in range(25)]
    assert codes[:20] == [401] * 20
    assert set(codes[20:]) == {429}
    # The sprayer's address is throttled, even for a real account with the right password.
    assert await login(server, server.agents["bob"].email, PASSWORD) == 429


async def test_retry_after_is_given(server: Running) -> None:
    email = server.agents["alice"].email
    for n in range(5):
        await login(server, email, f"guess-{n}")
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.base_url}/api/auth/login", json={"email": email, "password": "x"}
        )
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        body: Any = await response.json()
        assert body["error"]["code"] == "rate_limited"


async def test_unknown_accounts_run_the_same_password_check(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown e-mails skipped scrypt (3 ms against 200 ms told which accounts exist)."""
    checked: list[str] = []
    real = tokens.verify_password

    def spy(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(tokens, "verify_password", spy)
    assert await login(server, "nobody@tandem.test", "whatever") == 401
    assert checked == [auth.unknown_account_hash()]
    assert checked[0].startswith("scrypt$32768$8$1$")


async def test_made_up_emails_cannot_evict_an_attacked_account() -> None:
    """~10,000 made-up e-mails used to evict the bucket table (the oldest half went)."""
    now = [0.0]
    throttle = LoginThrottle(
        Allowance(burst=5, interval=12),
        Allowance(burst=10**9, interval=0.001),
        max_entries=1000,
        clock=lambda: now[0],
    )
    for _ in range(5):
        assert await throttle.reserve("victim@tandem.test", "10.0.0.1") is None
    assert await throttle.reserve("victim@tandem.test", "10.0.0.1") is not None
    for n in range(10_000):
        await throttle.reserve(f"made-up-{n}@x.test", f"10.1.{n // 250}.{n % 250}")
        now[0] += 0.0001
    assert throttle.tracked() <= 2 * 1000
    assert await throttle.reserve("victim@tandem.test", "10.9.9.9") is not None


@pytest.fixture(params=["memory", "redis"])
async def throttle_and_clock(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[LoginGuard, list[float]]]:
    """Each login throttle (one node's memory, and Redis shared by nodes) on a clock of the
    test's own."""
    now = [1_000_000.0]
    accounts, addresses = Allowance(burst=2, interval=10), Allowance(burst=100, interval=1)
    if request.param == "memory":
        yield LoginThrottle(accounts, addresses, clock=lambda: now[0]), now
        return
    async with redis_or_skip() as client:
        yield (
            RedisLoginThrottle(
                client, accounts, addresses, prefix=unique_prefix(), clock=lambda: now[0]
            ),
            now,
        )


async def test_buckets_refill_and_are_forgotten_when_full(
    throttle_and_clock: tuple[LoginGuard, list[float]],
) -> None:
    throttle, now = throttle_and_clock
    assert await throttle.reserve("a@x", "1.1.1.1") is None
    assert await throttle.reserve("a@x", "1.1.1.1") is None
    wait = await throttle.reserve("a@x", "1.1.1.1")
    assert wait is not None and 9 < wait <= 10
    now[0] += 10
    assert await throttle.reserve("a@x", "1.1.1.1") is None
    await throttle.succeeded("a@x", "1.1.1.1")
    now[0] += 100
    assert await throttle.reserve("b@x", "1.1.1.1") is None
    await throttle.succeeded("b@x", "1.1.1.1")
    # Full buckets are forgotten: only a's, still refilling, is held.
    if isinstance(throttle, LoginThrottle):
        assert throttle.tracked() <= 1
    else:
        assert isinstance(throttle, RedisLoginThrottle)
        assert await throttle.tracked() <= 1


async def test_nodes_share_the_buckets_in_redis() -> None:
    """Guesses spread over the nodes of a deployment spend one allowance."""
    async with redis_or_skip() as client:
        prefix = unique_prefix()
        nodes = [
            RedisLoginThrottle(
                client, Allowance(burst=3, interval=3600), Allowance(100, 1), prefix=prefix
            )
            for _ in range(3)
        ]
        for node in nodes:
            assert await node.reserve("Victim@tandem.test", "10.0.0.1") is None
        for node in nodes:
            assert await node.reserve("victim@tandem.test ", "10.0.0.2") is not None


async def test_a_nul_in_the_email_is_malformed(server: Running) -> None:
    """Found by schemathesis on PostgreSQL, whose TEXT cannot hold U+0000: login answered 500."""
    assert await login(server, "alice\x00@tandem.test", "whatever") == 400
