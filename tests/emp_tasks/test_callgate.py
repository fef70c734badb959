"""The call gate on in-process stores and a fake clock; and HttpClient asking it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.errors import ConnectorError
from connectors.journal import JobJournal
from connectors.protocol.auth import BearerAuth
from connectors.protocol.client import HttpClient, HttpRequest
from connectors.protocol.gate import SLOT_AT, deferral
from connectors.testing import fake_session, json_reply
from emp_tasks.breaker import BreakerSettings, MemoryBreakerStore
from emp_tasks.callgate import INLINE_WAIT, LEAD, GateSettings, ProviderGate, job_scope
from emp_tasks.ratelimit import MemoryLimiter, Rate

TOKEN = "gate-test-token"


class Clock:
    """A clock a test moves; sleeps are recorded, not waited (as if callers came at once)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


TEN_A_SECOND = Rate(10, 1)


def gate(clock: Clock, rate: Rate | None = TEN_A_SECOND, failures: int = 3) -> ProviderGate:
    settings = GateSettings(rate, BreakerSettings(failures=failures, cooldown=30, probe_timeout=5))
    return ProviderGate(
        MemoryLimiter(clock), MemoryBreakerStore(clock), {"glif": settings}, sleep=clock.sleep
    )


def deferred(call: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as raised:
        call()
    assert deferral(raised.value) is not None
    return raised.value


def server_error() -> ConnectorError:
    return ConnectorError(
        "HTTP 503", failure_type="service_error", failure_reason="service_unavailable"
    )


def test_a_slot_within_the_inline_bound_is_slept_in() -> None:
    clock = Clock()
    g = gate(clock)
    for _ in range(round(INLINE_WAIT * 10)):  # 10/s: slots 0.0, 0.1, ... 0.9 s ahead
        g.admit("glif", "k")
    assert clock.slept == pytest.approx([0.1 * n for n in range(1, round(INLINE_WAIT * 10))])


def test_a_later_slot_is_reserved_and_the_job_deferred_until_just_before_it() -> None:
    clock = Clock()
    g = gate(clock, Rate(1, 1))
    g.admit("glif", "k")
    g.admit("glif", "k")  # its slot: 1 s ahead, slept
    error = deferred(lambda: g.admit("glif", "k"))
    assert deferral(error) == "rate_limit"
    assert error.context[SLOT_AT] == pytest.approx(clock.now + 2.0)
    assert error.retry_after == pytest.approx(2.0 - LEAD)
    assert error.retryable


def test_a_job_back_from_its_wait_uses_its_reserved_slot() -> None:
    clock = Clock()
    g = gate(clock, Rate(1, 1))
    for _ in range(2):
        g.admit("glif", "k")
    slot = deferred(lambda: g.admit("glif", "k")).context[SLOT_AT]
    clock.now = slot - LEAD
    with job_scope(None, reserved=slot):
        g.admit("glif", "k")
    assert clock.slept[-1] == pytest.approx(LEAD)
    # its slot was its own: the next newcomer still queues behind it
    assert deferral(deferred(lambda: g.admit("glif", "k"))) == "rate_limit"


def test_a_429_with_retry_after_holds_every_caller_of_that_key() -> None:
    clock = Clock()
    g = gate(clock, rate=None)
    g.admit("glif", "k")
    limited = ConnectorError(
        "HTTP 429", failure_reason="requests_per_minute", retry_after=3, status_code=429
    )
    g.settle("glif", "k", limited)
    error = deferred(lambda: g.admit("glif", "k"))
    assert deferral(error) == "hold"
    assert error.retry_after == pytest.approx(3.0)
    g.admit("glif", "other-key")  # another key's limit is its own
    clock.now += 3
    g.admit("glif", "k")


def test_a_retry_after_beyond_the_retry_cap_holds_no_one() -> None:
    # Such a wait fails the job that got it; the others find out with their own call.
    clock = Clock()
    g = gate(clock, rate=None)
    g.admit("glif", "k")
    quota = ConnectorError(
        "HTTP 429", failure_reason="requests_per_minute", retryable=True, retry_after=3600
    )
    g.settle("glif", "k", quota)
    g.admit("glif", "k")


def test_consecutive_failures_open_the_breaker_and_announce_it() -> None:
    clock = Clock()
    g = gate(clock, rate=None)
    sent: list[tuple[str, dict[str, Any]]] = []
    with job_scope(lambda name, fields: sent.append((name, fields))):
        for _ in range(3):
            g.admit("glif", "k")
            g.settle("glif", "k", server_error())
    assert sent == [
        ("breaker_state", {"service": "glif", "state": "open", "previous": "closed", "failures": 3})
    ]
    error = deferred(lambda: g.admit("glif", "k"))
    assert deferral(error) == "circuit_open"
    assert error.retry_after == pytest.approx(30.0)


def test_after_the_cool_down_one_probe_goes_and_its_success_closes_the_breaker() -> None:
    clock = Clock()
    g = gate(clock, rate=None)
    for _ in range(3):
        g.admit("glif", "k")
        g.settle("glif", "k", server_error())
    clock.now += 30
    g.admit("glif", "k")  # the probe
    assert deferral(deferred(lambda: g.admit("glif", "k"))) == "circuit_open"
    g.settle("glif", "k", None)
    assert g.breakers.read("glif").state == "closed"
    g.admit("glif", "k")


def test_a_failed_probe_opens_the_breaker_for_another_cool_down() -> None:
    clock = Clock()
    g = gate(clock, rate=None)
    for _ in range(3):
        g.admit("glif", "k")
        g.settle("glif", "k", server_error())
    clock.now += 30
    g.admit("glif", "k")
    g.settle("glif", "k", server_error())
    assert deferred(lambda: g.admit("glif", "k")).retry_after == pytest.approx(30.0)


def test_a_probe_that_must_wait_for_a_slot_is_given_back() -> None:
    clock = Clock()
    g = gate(clock, rate=Rate(1, 10))  # one call per 10 s
    g.admit("glif", "k")
    for _ in range(3):
        g.settle("glif", "k", server_error())
    clock.now += 30  # cooled down
    g.admit("glif", "k")  # the probe takes the slot
    g.settle("glif", "k", server_error())  # and fails: open again
    clock.now += 30
    g.limiter.take("glif:k", Rate(1, 10), 120)  # someone took the next slot meanwhile
    assert deferral(deferred(lambda: g.admit("glif", "k"))) == "rate_limit"
    assert g.breakers.read("glif").state == "open"  # the probe is free for the next caller


class DownLimiter(MemoryLimiter):
    """A limiter whose Redis is down."""

    def take(self, key: str, rate: Rate | None, horizon: float, reserved: float = 0.0) -> Any:
        raise ConnectionError("Redis is down")

    def hold(self, key: str, seconds: float) -> None:
        raise ConnectionError("Redis is down")


def test_with_its_redis_down_the_gate_lets_calls_go_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    g = ProviderGate(DownLimiter(clock), MemoryBreakerStore(clock), {}, sleep=clock.sleep)
    g.admit("glif", "k")
    g.settle(
        "glif", "k", ConnectorError("429", failure_reason="requests_per_minute", retry_after=2)
    )
    assert [r.getMessage() for r in caplog.records] == [
        "call gate unavailable: glif call sent unchecked",
        "call gate unavailable: glif outcome not recorded",
    ]


class RecordingGate:
    """A gate that records what the client asked and told it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []

    def admit(self, service: str, key: str | None, journal: JobJournal | None = None) -> bool:
        self.seen.append(("admit", key, None))
        return False

    def settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        self.seen.append(("settle", key, error.failure_reason.value if error else None))


def _client(*replies: Any) -> tuple[HttpClient, RecordingGate]:
    session, _ = fake_session(*replies)
    recorder = RecordingGate()
    client = HttpClient("glif", "http://127.0.0.1:9", auth=BearerAuth(TOKEN), session=session)
    return client.with_gate(recorder), recorder


def test_a_post_is_admitted_and_settled_with_a_hash_of_the_key_never_the_key() -> None:
    client, recorder = _client(json_reply({"ok": True}), json_reply({}, status=503))
    client.send(HttpRequest("POST", client.url()))
    with pytest.raises(ConnectorError):
        client.send(HttpRequest("POST", client.url()))
    key = recorder.seen[0][1]
    assert key is not None
    assert TOKEN not in key
    assert recorder.seen == [
        ("admit", key, None),
        ("settle", key, None),
        ("admit", key, None),
        ("settle", key, "service_unavailable"),
    ]


def test_polls_and_probes_pass_the_gate_by() -> None:
    client, recorder = _client(json_reply({}), json_reply({}))
    client.send(HttpRequest("GET", client.url("status")))
    client.send_probe(HttpRequest("POST", client.url()))
    assert recorder.seen == []


def test_a_deferred_call_is_not_sent() -> None:
    session, adapter = fake_session()
    clock = Clock()
    g = gate(clock, rate=Rate(1, 60))
    client = HttpClient("glif", "http://127.0.0.1:9", session=session).with_gate(g)
    g.admit("glif", None)  # the only slot of this minute
    with pytest.raises(ConnectorError):
        client.send(HttpRequest("POST", client.url()))
    assert adapter.requests == []
    assert isinstance(session, requests.Session)


class CountingBreakers(MemoryBreakerStore):
    """A breaker store that counts its reads (each one a Redis round trip in production)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.reads = 0

    def read(self, service: str) -> Any:
        self.reads += 1
        return super().read(service)


def test_a_clean_closed_breaker_is_read_once_per_ttl_not_twice_per_call() -> None:
    clock = Clock()
    breakers = CountingBreakers(clock)
    settings = GateSettings(None, BreakerSettings(failures=3, cooldown=30, probe_timeout=5))
    g = ProviderGate(MemoryLimiter(clock), breakers, {"glif": settings}, sleep=clock.sleep)
    for _ in range(20):
        g.admit("glif", "k")
        g.settle("glif", "k", None)
    assert breakers.reads == 1


def test_a_failure_is_always_recorded_against_the_shared_state() -> None:
    clock = Clock()
    breakers = CountingBreakers(clock)
    settings = GateSettings(None, BreakerSettings(failures=3, cooldown=30, probe_timeout=5))
    g = ProviderGate(MemoryLimiter(clock), breakers, {"glif": settings}, sleep=clock.sleep)
    g.admit("glif", "k")
    g.settle("glif", "k", server_error())
    assert breakers.read("glif").failures == 1
    g.admit("glif", "k")  # not clean any more: read afresh
    assert breakers.reads >= 3
