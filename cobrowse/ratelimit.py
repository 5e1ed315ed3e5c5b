"""Per-session token buckets on events/s and bytes/s.

python-socketio has no built-in event rate limiting, so signaling keeps one
:class:`SessionRateLimiter` per customer socket and calls :meth:`~SessionRateLimiter.check`
before accepting a batch. A refused batch consumes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .exceptions import CobrowseError

__all__ = ["RateLimits", "SessionRateLimiter", "TokenBucket"]


class TokenBucket:
    """Classic token bucket: ``rate`` tokens/s, at most ``capacity`` banked."""

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "rate")

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)

    def available(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def can_take(self, cost: float) -> bool:
        """Whether ``cost`` tokens are available (does not consume)."""
        return self.available() >= cost

    def take(self, cost: float) -> None:
        """Consume ``cost`` tokens (call after :meth:`can_take`)."""
        self._refill()
        self._tokens -= cost

    def retry_after(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are available (inf if above capacity)."""
        if cost > self.capacity:
            return float("inf")
        return max(0.0, (cost - self.available()) / self.rate)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Sustained rates and bursts for one customer tab."""

    events_per_second: float = 500.0
    event_burst: float = 5_000.0
    bytes_per_second: float = 512 * 1024.0
    byte_burst: float = 16 * 1024 * 1024.0
    """Large enough for a full snapshot batch plus some slack."""


class SessionRateLimiter:
    """Events/s and bytes/s limits for one session; all-or-nothing per batch."""

    def __init__(
        self, limits: RateLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        lim = limits or RateLimits()
        self.events = TokenBucket(lim.events_per_second, lim.event_burst, clock)
        self.bytes = TokenBucket(lim.bytes_per_second, lim.byte_burst, clock)

    def check(self, n_events: int, n_bytes: int) -> None:
        """Consume budget for a batch or raise.

        Raises:
            CobrowseError: ``too_large`` if the batch can never fit the bursts,
                ``rate_limited`` (message says how long to wait) otherwise.
        """
        if n_events > self.events.capacity or n_bytes > self.bytes.capacity:
            raise CobrowseError("too_large", "batch exceeds the burst allowance")
        if not (self.events.can_take(n_events) and self.bytes.can_take(n_bytes)):
            wait = max(self.events.retry_after(n_events), self.bytes.retry_after(n_bytes))
            raise CobrowseError("rate_limited", f"too much co-browse data; retry in {wait:.1f}s")
        self.events.take(n_events)
        self.bytes.take(n_bytes)
