"""A circuit breaker per provider, shared by every worker through Redis (per process without).

After `failures` consecutive retryable failures (5xx, network errors, timeouts) the provider is
*open* for `cooldown` seconds: calls are not sent, jobs wait (a countdown) instead. The first
call after the cool-down is the one *probe* (half-open); only one caller gets it, for at most
`probe_timeout` seconds, and every other caller keeps waiting. The probe's success closes the
breaker; its failure opens it for another cool-down. A 429 is not a failure here: it is the
rate limiter's business (a Retry-After hold).

`breaker_admit` and `breaker_record` are the decisions, pure, on an injected clock; the stores
only read and write the state (Redis: a hash, changed in a WATCH/MULTI transaction on Redis'
clock, so the common case - closed, no failures - is one HGETALL and no write).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from redis.exceptions import WatchError

from connectors.errors import ConnectorError, FailureType

__all__ = [
    "ALLOWED",
    "Admission",
    "BreakerSettings",
    "BreakerState",
    "BreakerStore",
    "MemoryBreakerStore",
    "RedisBreakerStore",
    "breaker_admit",
    "breaker_record",
    "breaker_release",
    "counts_as_failure",
]

State = Literal["closed", "open", "half_open"]
R = TypeVar("R")
Decide = Callable[["BreakerState", float], tuple[R, "BreakerState"]]
_FAILURE_TYPES = frozenset(
    {FailureType.SERVICE_ERROR, FailureType.NETWORK_ERROR, FailureType.TIMEOUT}
)
_STATES: dict[str, State] = {"closed": "closed", "open": "open", "half_open": "half_open"}


@dataclass(frozen=True)
class BreakerSettings:
    """When a provider's breaker opens, for how long, and how long its probe may take."""

    failures: int = 5  # 0 turns the breaker off
    cooldown: float = 30.0
    probe_timeout: float = 60.0


@dataclass(frozen=True)
class BreakerState:
    """One provider's breaker: its state, consecutive failures, and its clocks (seconds)."""

    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0  # while half-open: the probe's lease


@dataclass(frozen=True)
class Admission:
    """Whether a call may be sent (and whether it is the probe), or how long to wait."""

    allowed: bool
    wait: float = 0.0
    probe: bool = False


ALLOWED = Admission(True)


def counts_as_failure(error: ConnectorError | None) -> bool:
    """Whether a call's outcome is a breaker failure: retryable 5xx, network error, timeout."""
    if error is None or not error.retryable:
        return False
    return error.failure_type in _FAILURE_TYPES or (error.status_code or 0) >= 500


def breaker_admit(
    state: BreakerState, now: float, settings: BreakerSettings
) -> tuple[Admission, BreakerState]:
    """May a call go now? Open past its cool-down, or a probe's lease lapsed: this is the probe."""
    if state.state == "closed":
        return ALLOWED, state
    if state.state == "open" and now < state.opened_at + settings.cooldown:
        return Admission(False, state.opened_at + settings.cooldown - now), state
    if state.state == "half_open" and now < state.probe_until:
        # The probe decides soon: look again in a second, not a whole cool-down.
        return Admission(False, min(1.0, state.probe_until - now)), state
    probing = replace(state, state="half_open", probe_until=now + settings.probe_timeout)
    return Admission(True, probe=True), probing


def breaker_record(
    state: BreakerState, failed: bool, probe: bool, now: float, settings: BreakerSettings
) -> BreakerState:
    """The state after a call's outcome (`probe`: the call was the half-open probe)."""
    if state.state == "closed":
        if not failed:
            return state if state.failures == 0 else BreakerState()
        failures = state.failures + 1
        if settings.failures and failures >= settings.failures:
            return BreakerState("open", failures, opened_at=now)
        return replace(state, failures=failures)
    if state.state == "half_open" and probe:
        return BreakerState("open", state.failures + 1, opened_at=now) if failed else BreakerState()
    return state  # calls sent before it opened, ending now, change nothing


def breaker_release(state: BreakerState, now: float) -> tuple[None, BreakerState]:
    """Give a probe back unsent (it had to wait for a rate-limit slot): open, probe due now."""
    if state.state != "half_open":
        return None, state
    return None, replace(state, state="open", probe_until=0.0)


class BreakerStore(Protocol):
    """Reads a provider's breaker state and changes it atomically."""

    def read(self, service: str) -> BreakerState: ...

    def update(self, service: str, decide: Decide[R]) -> tuple[R, BreakerState, BreakerState]:
        """Apply `decide(state, now)` atomically; the result, the old and the new state."""
        ...


class MemoryBreakerStore:
    """Breaker states in this process: the embedded default."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def read(self, service: str) -> BreakerState:
        return self._states.get(service, BreakerState())

    def update(self, service: str, decide: Decide[R]) -> tuple[R, BreakerState, BreakerState]:
        with self._lock:
            old = self._states.get(service, BreakerState())
            result, new = decide(old, self._clock())
            self._states[service] = new
            return result, old, new


def _decode(raw: dict[Any, Any]) -> BreakerState:
    text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if not text:
        return BreakerState()
    raw_state = text.get("state", b"closed")
    name = raw_state.decode() if isinstance(raw_state, bytes) else str(raw_state)
    return BreakerState(
        state=_STATES.get(name, "closed"),
        failures=int(text.get("failures", 0)),
        opened_at=float(text.get("opened_at", 0)),
        probe_until=float(text.get("probe_until", 0)),
    )


class RedisBreakerStore:
    """Breaker states in Redis hashes (`emp:cb:<service>`), shared by every worker."""

    def __init__(self, client: Any, prefix: str = "emp:cb", ttl_seconds: int = 86400) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def read(self, service: str) -> BreakerState:
        return _decode(self._client.hgetall(f"{self._prefix}:{service}"))

    def update(self, service: str, decide: Decide[R]) -> tuple[R, BreakerState, BreakerState]:
        key = f"{self._prefix}:{service}"
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    old = _decode(pipe.hgetall(key))
                    seconds, micros = pipe.time()
                    result, new = decide(old, seconds + micros / 1e6)
                    if new == old:
                        pipe.unwatch()
                        return result, old, new
                    pipe.multi()
                    pipe.hset(key, mapping=_encode(new))
                    pipe.expire(key, self._ttl)
                    pipe.execute()
                    return result, old, new
                except WatchError:
                    continue  # another worker changed it first: decide again on its state


def _encode(state: BreakerState) -> dict[str, str]:
    return {
        "state": state.state,
        "failures": str(state.failures),
        "opened_at": repr(state.opened_at),
        "probe_until": repr(state.probe_until),
    }
