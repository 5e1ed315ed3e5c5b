"""Failed-login throttling, per account and per client address.

A login attempt first *reserves* one token from the account's bucket and one from the client
address's bucket; only then is the password checked, and a correct password gives both tokens
back. So once a bucket is empty the answer is 429 whatever the password, and guessing stops
instead of going on with 429 meaning "wrong" (an attacker who sprays one password over many
accounts runs out of their address's tokens, and one who spreads over many addresses runs out
of the account's).

``LoginThrottle`` keeps the buckets of one node in memory; with several nodes
``RedisLoginThrottle`` (``redis_throttle.py``) keeps them in Redis, so an attacker gains nothing
by spreading guesses over the nodes. Both are a ``LoginGuard``.

Memory is bounded: a bucket that has refilled says nothing and is dropped first; when the table
is still full, the buckets closest to full go, so a flood of made-up e-mails cannot push out the
buckets of accounts under attack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Allowance:
    burst: float
    """Failed attempts allowed at once."""
    interval: float
    """Seconds for one more attempt to become available."""


class LoginGuard(Protocol):
    async def reserve(self, email: str, address: str) -> float | None:
        """Take one attempt for this account and address; None if allowed, else the seconds
        to wait (and nothing is taken)."""
        ...

    async def succeeded(self, email: str, address: str) -> None:
        """The password was right: the reserved attempt was not a failure."""
        ...


def account_key(email: str) -> str:
    return email.strip().lower()


class _Buckets:
    def __init__(self, allowance: Allowance, max_entries: int, clock: Callable[[], float]) -> None:
        self.allowance = allowance
        self.max_entries = max_entries
        self._clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}
        """key -> (tokens, at): absent means a full bucket."""

    def level(self, key: str) -> float:
        tokens, at = self._tokens.get(key, (self.allowance.burst, self._clock()))
        refilled = tokens + (self._clock() - at) / self.allowance.interval
        return min(self.allowance.burst, refilled)

    def take(self, key: str) -> bool:
        tokens = self.level(key)
        if tokens < 1:
            return False
        self._set(key, tokens - 1)
        return True

    def give_back(self, key: str) -> None:
        self._set(key, self.level(key) + 1)

    def wait(self, key: str) -> float:
        """Seconds until the next attempt is allowed."""
        return max(0.0, (1 - self.level(key)) * self.allowance.interval)

    def _set(self, key: str, tokens: float) -> None:
        if tokens >= self.allowance.burst:
            self._tokens.pop(key, None)
            return
        self._tokens[key] = (tokens, self._clock())
        if len(self._tokens) > self.max_entries:
            self._shrink()

    def _shrink(self) -> None:
        levels = {key: self.level(key) for key in self._tokens}
        for key, level in levels.items():
            if level >= self.allowance.burst:
                del self._tokens[key]
        if len(self._tokens) > self.max_entries:
            keep = self.max_entries * 3 // 4
            by_level = sorted(self._tokens, key=lambda key: levels[key])
            for key in by_level[keep:]:
                del self._tokens[key]

    def __len__(self) -> int:
        return len(self._tokens)


class LoginThrottle:
    def __init__(
        self,
        per_account: Allowance,
        per_address: Allowance,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = _Buckets(per_account, max_entries, clock)
        self._addresses = _Buckets(per_address, max_entries, clock)

    async def reserve(self, email: str, address: str) -> float | None:
        account = account_key(email)
        if not self._addresses.take(address):
            return self._addresses.wait(address)
        if not self._accounts.take(account):
            self._addresses.give_back(address)
            return self._accounts.wait(account)
        return None

    async def succeeded(self, email: str, address: str) -> None:
        self._accounts.give_back(account_key(email))
        self._addresses.give_back(address)

    def tracked(self) -> int:
        """Buckets held (for tests of the memory bound)."""
        return len(self._accounts) + len(self._addresses)
