"""The runtime's call gate: rate limits, Retry-After holds and the circuit breaker, per provider.

`get_connector` hands every HTTP connector's client this process's `ProviderGate`; the client
asks it before each paid call (a POST) and tells it how the call went. So every call of every
job passes the same three checks, in this order:

1. the breaker (`emp_tasks.breaker`): open means no call, the job waits out the cool-down;
   after it, one caller is the probe;
2. the limiter (`emp_tasks.ratelimit`), which also holds a provider that answered 429 with a
   Retry-After: every worker waits until then, not only the job that got it;
3. a slot within `INLINE_WAIT` is slept in; a later one is reserved and the job re-queued
   until just before it (a wait, not a retry: `emp_tasks.waits`).

An admitted call is counted in the job's journal. When the journal counts in the gate's Redis
and the call may go at once, the limiter's script counts it: one round trip per call instead
of two (the README's Performance section says what that measured).

With a Redis result backend the state is in that Redis, shared by every worker on every host;
without one (the embedded default) it is per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import ConnectorError, FailureType
from connectors.journal import JobJournal
from connectors.protocol.gate import deferred_error
from emp_tasks import metrics
from emp_tasks.breaker import (
    ALLOWED,
    Admission,
    BreakerSettings,
    BreakerState,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    breaker_admit,
    breaker_record,
    breaker_release,
    counts_as_failure,
)
from emp_tasks.config import ServiceSpec
from emp_tasks.journal import Journal
from emp_tasks.limits import RETRY_CAP_SECONDS
from emp_tasks.ratelimit import Limiter, MemoryLimiter, Rate, RedisLimiter, Slot, parse_rate
from emp_tasks.results_redis import results_redis

__all__ = [
    "HORIZON",
    "INLINE_WAIT",
    "GateSettings",
    "ProviderGate",
    "gate_settings",
    "job_scope",
    "process_gate",
]

log = logging.getLogger(__name__)
BREAKER_READ_TTL = 1.0  # seconds a clean breaker state read is trusted
# The longest a job sleeps in a worker slot for its call; a later slot re-queues it.
INLINE_WAIT = 1.0
# How far ahead slots are reserved; a job further back waits without one and asks again.
HORIZON = 120.0
# A re-queued job comes back this much before its slot and sleeps the rest.
LEAD = 0.2
_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
Notify = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class GateSettings:
    """One service's limit and breaker settings."""

    rate: Rate | None = None
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


def gate_settings(spec: ServiceSpec) -> GateSettings:
    """A service's gate settings, from its mapping entry."""
    breaker = BreakerSettings(
        failures=spec.breaker_failures,
        cooldown=spec.breaker_cooldown_seconds,
        probe_timeout=spec.timeout_seconds + 10.0,
    )
    return GateSettings(parse_rate(spec.rate_limit), breaker)


@dataclass
class _Scope:
    reserved: float = 0.0  # a slot this job reserved before it was re-queued (limiter clock)
    notify: Notify | None = None  # sends a job event for this job


_scope: ContextVar[_Scope | None] = ContextVar("emp_gate_scope", default=None)
_probe: ContextVar[bool] = ContextVar("emp_gate_probe", default=False)


@contextmanager
def job_scope(notify: Notify | None, reserved: float = 0.0) -> Iterator[None]:
    """Run a job's calls with its reserved slot and its event sender known to the gate."""
    token = _scope.set(_Scope(reserved, notify))
    try:
        yield
    finally:
        _scope.reset(token)


def _limit_key(service: str, key: str | None) -> str:
    return f"{service}:{key or 'default'}"


def _is_hold(error: ConnectorError | None) -> bool:
    """A provider's "slow down, for this long": a retryable rate limit with a wait hint.

    A wait beyond the retry cap fails the job that got it (emp_tasks.retry), so it is not
    imposed on every other job either: each finds out with its own call, as without a gate.
    """
    return (
        error is not None
        and error.retryable
        and error.failure_type == FailureType.RATE_LIMIT
        and 0 < (error.retry_after or 0) <= RETRY_CAP_SECONDS
    )


def _clean(state: BreakerState) -> bool:
    """Closed with no failure counted: a success changes nothing."""
    return state.state == "closed" and not state.failures


class ProviderGate:
    """A `CallGate`: admits paid calls through the breaker and the limiter, learns outcomes."""

    def __init__(
        self,
        limiter: Limiter,
        breakers: BreakerStore,
        settings: Mapping[str, GateSettings],
        *,
        shared: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limiter = limiter
        self.breakers = breakers
        self.settings = dict(settings)
        self.shared = shared  # True when the state is in Redis, for every worker
        self._sleep = sleep
        # The last breaker state read per service and when: a closed, clean breaker read less
        # than BREAKER_READ_TTL ago is not read again, which saves two Redis reads per call
        # at the price of noticing another worker's opening that much later.
        self._seen: dict[str, tuple[BreakerState, float]] = {}

    def admit(self, service: str, key: str | None, journal: JobJournal | None = None) -> bool:
        try:
            return self._admit(service, key, journal)
        except ConnectorError:
            raise
        except Exception:  # the gate's Redis is down: the call goes, as it would without one
            # A count the script made before its reply was lost is counted again by the
            # client: a paid call is never left uncounted, at worst counted twice.
            log.warning("call gate unavailable: %s call sent unchecked", service, exc_info=True)
            return False

    def settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        try:
            self._settle(service, key, error)
        except Exception:  # an outcome not recorded must not change the job's
            log.warning("call gate unavailable: %s outcome not recorded", service, exc_info=True)

    def _admit(self, service: str, key: str | None, journal: JobJournal | None) -> bool:
        """Admit the call or raise a deferral; True when the limiter's step counted it."""
        settings = self.settings.get(service, GateSettings())
        admission = self._admit_breaker(service, settings.breaker)
        scope = _scope.get()
        reserved = scope.reserved if scope is not None else 0.0
        if scope is not None:
            scope.reserved = 0.0  # a reservation is used once
        limit_key = _limit_key(service, key)
        counter = journal.redis_counter() if isinstance(journal, Journal) else None
        slot = self.limiter.take(limit_key, settings.rate, HORIZON, reserved, counter)
        if reserved and slot.why != "reserved":  # came back too late: its slot went unused
            log.debug("%s: a reserved slot was missed; took another", service)
        if slot.granted and slot.delay <= INLINE_WAIT:
            if slot.delay > 0:
                self._sleep(slot.delay)
                # A 429 may have come back meanwhile: its hold binds this call too.
                if (held := self.limiter.held(limit_key)) > 0:
                    slot = Slot(False, held, "hold")
            if slot.granted:
                _probe.set(admission.probe)
                if slot.count is None or not isinstance(journal, Journal):
                    return False
                journal.counted(slot.count)  # one round trip for the slot and the count
                return True
        if admission.probe:  # the probe must not sit out a wait: the next caller takes it
            self._update(service, breaker_release)
        if slot.granted:
            raise deferred_error(service, "rate_limit", slot.delay - LEAD, slot_at=slot.at)
        raise deferred_error(service, slot.why, slot.delay)

    def _settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        probe = _probe.get()
        _probe.set(False)
        if _is_hold(error) and error is not None and error.retry_after:
            self.limiter.hold(_limit_key(service, key), error.retry_after)
            metrics.PROVIDER_HOLDS.labels(service).inc()
        settings = self.settings.get(service, GateSettings()).breaker
        if settings.failures:
            self._record(service, counts_as_failure(error), probe, settings)

    def _read(self, service: str) -> BreakerState:
        seen = self._seen.get(service)
        now = time.monotonic()
        if seen is not None and now - seen[1] < BREAKER_READ_TTL and _clean(seen[0]):
            return seen[0]
        state = self.breakers.read(service)
        self._seen[service] = (state, now)
        return state

    def _admit_breaker(self, service: str, settings: BreakerSettings) -> Admission:
        if not settings.failures or self._read(service).state == "closed":
            return ALLOWED  # the common case: one read, no write
        admission: Admission = self._update(
            service, lambda state, now: breaker_admit(state, now, settings)
        )
        if not admission.allowed:
            raise deferred_error(service, "circuit_open", admission.wait)
        return admission

    def _record(self, service: str, failed: bool, probe: bool, settings: BreakerSettings) -> None:
        state = self._read(service) if not failed else self.breakers.read(service)
        if state.state == "open" or (not failed and _clean(state)):
            return  # nothing would change: no write
        self._update(
            service, lambda s, now: (None, breaker_record(s, failed, probe, now, settings))
        )

    def _update(
        self, service: str, decide: Callable[[BreakerState, float], tuple[Any, BreakerState]]
    ) -> Any:
        result, old, new = self.breakers.update(service, decide)
        self._seen[service] = (new, time.monotonic())
        if old.state != new.state:
            self._changed(service, old, new)
        return result

    def _changed(self, service: str, old: BreakerState, new: BreakerState) -> None:
        metrics.BREAKER_STATE.labels(service).set(_STATE_VALUES[new.state])
        metrics.BREAKER_TRANSITIONS.labels(service, new.state).inc()
        log.warning("circuit breaker for %s: %s -> %s", service, old.state, new.state)
        scope = _scope.get()
        if scope is not None and scope.notify is not None:
            fields = {
                "service": service,
                "state": new.state,
                "previous": old.state,
                "failures": new.failures,
            }
            scope.notify("breaker_state", fields)


_gate: ProviderGate | None = None
_lock = threading.Lock()


def _redis_client(app: Any) -> Any:
    """The result backend's Redis client (as emp_tasks.deliveries finds it), or None."""
    return results_redis(getattr(app, "backend", None))


def process_gate(app: Any, specs: Mapping[str, ServiceSpec]) -> ProviderGate:
    """This process's gate (built once): in the result backend's Redis, else in memory."""
    global _gate
    with _lock:
        if _gate is None:
            settings = {name: gate_settings(spec) for name, spec in specs.items()}
            client = _redis_client(app)
            if client is None:
                _gate = ProviderGate(MemoryLimiter(), MemoryBreakerStore(), settings)
            else:
                limiter = RedisLimiter(client)
                _gate = ProviderGate(limiter, RedisBreakerStore(client), settings, shared=True)
        return _gate
