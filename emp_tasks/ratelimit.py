"""Provider rate limits: a GCRA shared by every worker through Redis, or per process without it.

A limit (`"rate_limit": "${GLIF_RATE_LIMIT:-10/s}"` in the mapping: `N/s`, `N/m` or `N/h`;
empty or 0 means none) spaces a provider's calls one emission interval apart (1/N of the
period, no burst). The GCRA keeps one number per provider and API key, the theoretical arrival
time (TAT) of the next call: a caller takes the slot at `max(TAT, now)` if it is no further
than `horizon` ahead, and moves the TAT one interval on. So the slot is *reserved*: the caller
sends at its slot (sleeping when it is close, re-queued with a countdown when it is not), and a
backlog of waiting jobs is a queue in time rather than a crowd retrying. A Retry-After hold is
checked in the same step, and pushes the TAT past its end.

`gcra_step` is the decision, pure; `MemoryLimiter` runs it in-process and `RedisLimiter` runs
the same arithmetic as one Lua script on Redis' own clock (`TIME`), so hosts' clocks don't
matter. Times in Redis are integer milliseconds since the epoch. Given the job's paid-call
counter in the same Redis, the script also counts a call it lets go at once, which saves the
job's own count a round trip on every call (`Slot.count`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.errors import configuration_error
from emp_tasks.journal import RedisCounter
from emp_tasks.results_redis import same_database

__all__ = [
    "GCRA_SCRIPT",
    "HELD_SCRIPT",
    "HOLD_SCRIPT",
    "RESERVATION_GRACE",
    "Limiter",
    "MemoryLimiter",
    "Rate",
    "RedisLimiter",
    "Slot",
    "gcra_step",
    "parse_rate",
]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    """A limit of `count` calls per `period` seconds."""

    count: float
    period: float

    @property
    def interval(self) -> float:
        """Seconds between two calls (the GCRA's emission interval)."""
        return self.period / self.count


def parse_rate(text: str | None, *, setting: str = "rate_limit") -> Rate | None:
    """`"10/s"`, `"600/m"`, `"5/h"` as a Rate; empty or 0 as None (no limit)."""
    raw = (text or "").strip()
    if raw in ("", "0") or re.fullmatch(r"0+(\.0+)?\s*/.*", raw):
        return None
    match = _RATE.match(raw)
    if match is None:
        raise configuration_error(
            f"{setting} must look like 10/s, 600/m or 5/h (or be empty for none), not {raw!r}",
            variables=[setting],
        )
    return Rate(float(match.group(1)), _PERIODS[match.group(2)[0]])


@dataclass(frozen=True)
class Slot:
    """A limiter's answer: send after `delay` seconds (granted), or ask again after `delay`.

    `at` is the granted slot on the limiter's clock: a job re-queued until then presents it
    on its return (`reserved`), so it is not queued a second time.
    """

    granted: bool
    delay: float
    why: str = "rate_limit"  # rate_limit, hold (a provider's Retry-After), reserved, none
    at: float = 0.0
    count: int | None = None  # the job's paid calls, when the limiter counted this one


# A job back from a wait may be this late for its reserved slot and still use it.
RESERVATION_GRACE = 1.0


def gcra_step(
    tat: float | None,
    now: float,
    interval: float,
    horizon: float,
    hold_until: float = 0.0,
    reserved: float = 0.0,
) -> tuple[Slot, float | None]:
    """One GCRA decision: the slot and the new TAT to store (None: store nothing).

    `interval` 0 means no limit: only a hold can defer the call. `reserved` is a slot taken
    before (0: none); it is kept unless the job came back more than RESERVATION_GRACE late.
    """
    if hold_until > now:
        return Slot(False, hold_until - now, "hold"), None
    if interval <= 0:
        return Slot(True, 0.0, "none", now), None
    if reserved > 0 and reserved - now >= -RESERVATION_GRACE:
        return Slot(True, max(0.0, reserved - now), "reserved", reserved), None
    start = max(tat if tat is not None else now, now)
    delay = start - now
    if delay > horizon:
        return Slot(False, delay - horizon), None
    return Slot(True, delay, "rate_limit", start), start + interval


class Limiter(Protocol):
    """Takes slots for one provider key; holds it when the provider says so."""

    def take(
        self,
        key: str,
        rate: Rate | None,
        horizon: float,
        reserved: float = 0.0,
        count: RedisCounter | None = None,
    ) -> Slot:
        """A slot; with `count`, a call granted at once may be counted there (`Slot.count`)."""
        ...

    def hold(self, key: str, seconds: float) -> None: ...

    def held(self, key: str) -> float:
        """Seconds the key's hold has left (0: none)."""
        ...


class MemoryLimiter:
    """The GCRA in this process only: the embedded default, where there is no Redis."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._hold: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(
        self,
        key: str,
        rate: Rate | None,
        horizon: float,
        reserved: float = 0.0,
        count: RedisCounter | None = None,
    ) -> Slot:
        interval = rate.interval if rate is not None else 0.0
        with self._lock:
            now = self._clock()
            hold = self._hold.get(key, 0.0)
            slot, tat = gcra_step(self._tat.get(key), now, interval, horizon, hold, reserved)
            if tat is not None:
                self._tat[key] = tat
            return slot

    def hold(self, key: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._hold[key] = max(self._hold.get(key, 0.0), until)
            self._tat[key] = max(self._tat.get(key, 0.0), until)

    def held(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._hold.get(key, 0.0) - self._clock())


# `gcra_step` in Lua. KEYS: tat, hold, and optionally a job's paid-call counter. ARGV: interval
# ms (0: no limit), horizon ms, reserved slot ms (0: none), grace ms, the counter's expiry in
# seconds. Returns {granted 0/1, delay ms, why, slot ms}, and the count when it counted: only a
# call granted with no delay, which goes at once (a later one may still meet a hold).
GCRA_SCRIPT = """
local function grant(delay, why, slot)
  if delay > 0 or not KEYS[3] then return {1, delay, why, slot} end
  local calls = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  return {1, delay, why, slot, calls}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local reserved = tonumber(ARGV[3])
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then return {0, hold - now, 'hold', 0} end
if interval <= 0 then return grant(0, 'none', now) end
if reserved > 0 and reserved - now >= -tonumber(ARGV[4]) then
  return grant(math.max(0, reserved - now), 'reserved', reserved)
end
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local delay = start - now
if delay > horizon then return {0, delay - horizon, 'rate_limit', 0} end
redis.call('SET', KEYS[1], start + interval, 'PX', delay + interval + 1000)
return grant(delay, 'rate_limit', start)
"""
# KEYS: tat, hold. ARGV: seconds ms. A hold only ever grows; the TAT moves past its end.
HOLD_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local untl = now + ms
if untl > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], untl, 'PX', ms)
end
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], untl, 'PX', ms + 1000)
end
return untl
"""
# KEYS: hold. Returns the ms the hold has left, on Redis' clock.
HELD_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now)
"""


class RedisLimiter:
    """The GCRA in Redis: one atomic script per call, shared by every worker on every host."""

    def __init__(self, client: Any, prefix: str = "emp:rl") -> None:
        self._client = client
        self._prefix = prefix
        # Registered once per process: redis-py sends EVALSHA, and the script on a NOSCRIPT.
        self._take = client.register_script(GCRA_SCRIPT)
        self._hold = client.register_script(HOLD_SCRIPT)
        self._held = client.register_script(HELD_SCRIPT)

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}:{key}:tat", f"{self._prefix}:{key}:hold"]

    def take(
        self,
        key: str,
        rate: Rate | None,
        horizon: float,
        reserved: float = 0.0,
        count: RedisCounter | None = None,
    ) -> Slot:
        interval_ms = 0 if rate is None else max(1, round(rate.interval * 1000))
        keys = self._keys(key)
        grace_ms = round(RESERVATION_GRACE * 1000)
        args = [interval_ms, round(horizon * 1000), round(reserved * 1000), grace_ms]
        if count is not None and same_database(count.client, self._client):  # else: not here
            keys.append(count.key)
            args.append(count.ttl)
        granted, delay_ms, why, at_ms, *calls = self._take(keys=keys, args=args)
        reason = why.decode() if isinstance(why, bytes) else str(why)
        counted = int(calls[0]) if calls else None
        return Slot(bool(granted), int(delay_ms) / 1000.0, reason, int(at_ms) / 1000.0, counted)

    def hold(self, key: str, seconds: float) -> None:
        self._hold(keys=self._keys(key), args=[max(1, round(seconds * 1000))])

    def held(self, key: str) -> float:
        return int(self._held(keys=self._keys(key)[1:])) / 1000.0
