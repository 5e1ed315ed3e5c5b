"""The login throttle's buckets in Redis, shared by every node (see ``throttle.py``).

One Lua script takes a token from the address's bucket and one from the account's, or neither,
so two nodes answering guesses at once cannot both spend the last token. A bucket is a HASH
``{tokens, at}`` that expires once it would have refilled: full buckets cost nothing, and the
memory an attacker can make Redis hold is bounded by time, not by a table size.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from signaling.auth.throttle import Allowance, account_key

# KEYS: address bucket, account bucket. ARGV: now, address burst, address interval, account
# burst, account interval. Returns 0 (taken) or the seconds to wait (nothing taken), as a string.
_RESERVE = """
local function level(key, burst, interval, now)
  local held = redis.call('HMGET', key, 'tokens', 'at')
  if not held[1] then return burst end
  return math.min(burst, tonumber(held[1]) + (now - tonumber(held[2])) / interval)
end
local function store(key, tokens, burst, interval, now)
  if tokens >= burst then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) * interval * 1000) + 1000)
end
local now = tonumber(ARGV[1])
local a_burst, a_interval = tonumber(ARGV[2]), tonumber(ARGV[3])
local c_burst, c_interval = tonumber(ARGV[4]), tonumber(ARGV[5])
local address = level(KEYS[1], a_burst, a_interval, now)
if address < 1 then return tostring((1 - address) * a_interval) end
local account = level(KEYS[2], c_burst, c_interval, now)
if account < 1 then return tostring((1 - account) * c_interval) end
store(KEYS[1], address - 1, a_burst, a_interval, now)
store(KEYS[2], account - 1, c_burst, c_interval, now)
return '0'
"""

# KEYS: a bucket. ARGV: now, burst, interval.
_GIVE_BACK = """
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if not held[1] then return 0 end
local now, burst, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = math.min(burst, tonumber(held[1]) + (now - tonumber(held[2])) / interval) + 1
if tokens >= burst then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * interval * 1000) + 1000)
return 1
"""


class RedisLoginThrottle:
    """A ``LoginGuard`` whose buckets every node shares."""

    def __init__(
        self,
        redis: Redis,
        per_account: Allowance,
        per_address: Allowance,
        *,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._accounts = per_account
        self._addresses = per_address
        self._prefix = prefix
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        return f"{self._prefix}:lt:ip:{address}", f"{self._prefix}:lt:ac:{account_key(email)}"

    async def reserve(self, email: str, address: str) -> float | None:
        wait = await self._reserve(
            keys=list(self._keys(email, address)),
            args=[
                repr(self._clock()),
                self._addresses.burst,
                self._addresses.interval,
                self._accounts.burst,
                self._accounts.interval,
            ],
        )
        seconds = float(wait)
        return None if seconds == 0 else seconds

    async def succeeded(self, email: str, address: str) -> None:
        address_key, account_key_ = self._keys(email, address)
        now = repr(self._clock())
        for key, allowance in ((address_key, self._addresses), (account_key_, self._accounts)):
            await self._give_back(keys=[key], args=[now, allowance.burst, allowance.interval])

    async def tracked(self) -> int:
        """Buckets held (for tests: full ones are dropped)."""
        return len([key async for key in self._redis.scan_iter(match=f"{self._prefix}:lt:*")])
