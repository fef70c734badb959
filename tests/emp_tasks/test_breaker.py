"""The circuit breaker's decisions, pure, on an injected clock; and the in-process store."""

from __future__ import annotations

import pytest

from connectors.errors import ConnectorError
from emp_tasks.breaker import (
    Admission,
    BreakerSettings,
    BreakerState,
    MemoryBreakerStore,
    breaker_admit,
    breaker_record,
    breaker_release,
    counts_as_failure,
)

SETTINGS = BreakerSettings(failures=3, cooldown=30.0, probe_timeout=10.0)
CLOSED = BreakerState()
OPEN = BreakerState("open", 3, opened_at=100.0)
PROBING = BreakerState("half_open", 3, opened_at=100.0, probe_until=140.0)


# (state, now) -> (admission, new state)
ADMIT = [
    (CLOSED, 0.0, Admission(True), CLOSED),
    (OPEN, 110.0, Admission(False, 20.0), OPEN),  # cooling down: wait the rest
    (OPEN, 130.0, Admission(True, probe=True), BreakerState("half_open", 3, 100.0, 140.0)),
    (PROBING, 135.0, Admission(False, 1.0), PROBING),  # someone else probes: look again soon
    (PROBING, 139.5, Admission(False, 0.5), PROBING),
    # the probe's lease ran out (its worker died): the next caller probes
    (PROBING, 141.0, Admission(True, probe=True), BreakerState("half_open", 3, 100.0, 151.0)),
]


@pytest.mark.parametrize(("state", "now", "admission", "after"), ADMIT)
def test_admit(state: BreakerState, now: float, admission: Admission, after: BreakerState) -> None:
    got, new = breaker_admit(state, now, SETTINGS)
    assert got.allowed == admission.allowed
    assert got.probe == admission.probe
    assert got.wait == pytest.approx(admission.wait)
    assert new == after


# (state, failed, probe, now) -> new state
RECORD = [
    (CLOSED, False, False, 5.0, CLOSED),
    (CLOSED, True, False, 5.0, BreakerState("closed", 1)),
    (BreakerState("closed", 1), False, False, 5.0, CLOSED),  # consecutive failures only
    (BreakerState("closed", 2), True, False, 5.0, BreakerState("open", 3, opened_at=5.0)),
    (PROBING, False, True, 131.0, CLOSED),  # the probe succeeded
    (PROBING, True, True, 131.0, BreakerState("open", 4, opened_at=131.0)),  # another cool-down
    (PROBING, True, False, 131.0, PROBING),  # a call sent before it opened
    (PROBING, False, False, 131.0, PROBING),
    (OPEN, True, False, 110.0, OPEN),
    (OPEN, False, False, 110.0, OPEN),
]


@pytest.mark.parametrize(("state", "failed", "probe", "now", "after"), RECORD)
def test_record(
    state: BreakerState, failed: bool, probe: bool, now: float, after: BreakerState
) -> None:
    assert breaker_record(state, failed, probe, now, SETTINGS) == after


def test_a_breaker_with_zero_failures_never_opens() -> None:
    off = BreakerSettings(failures=0)
    state = CLOSED
    for _ in range(50):
        state = breaker_record(state, True, False, 1.0, off)
    assert state.state == "closed"


def test_a_released_probe_is_open_and_due_at_once() -> None:
    _, released = breaker_release(PROBING, 131.0)
    assert released.state == "open"
    admission, _ = breaker_admit(released, 131.0, SETTINGS)
    assert admission.probe


def _error(**fields: object) -> ConnectorError:
    return ConnectorError("x", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (None, False),
        (_error(failure_type="service_error", failure_reason="service_unavailable"), True),
        (_error(failure_type="network_error", failure_reason="connection_failed"), True),
        (_error(failure_type="timeout", failure_reason="network_timeout"), True),
        (_error(failure_reason="internal_error", retryable=True, status_code=502), True),
        (_error(failure_type="rate_limit", failure_reason="requests_per_minute"), False),
        (_error(failure_type="auth_error", failure_reason="invalid_api_key"), False),
        (_error(failure_type="service_error", failure_reason="job_failed", retryable=False), False),
    ],
)
def test_which_outcomes_count_as_failures(error: ConnectorError | None, counts: bool) -> None:
    assert counts_as_failure(error) is counts


def test_a_provider_fails_opens_cools_down_probes_once_and_recovers() -> None:
    now = [0.0]
    store = MemoryBreakerStore(lambda: now[0])
    for _ in range(3):
        store.update("glif", lambda s, t: (None, breaker_record(s, True, False, t, SETTINGS)))
    assert store.read("glif").state == "open"
    now[0] = 31.0
    first, _, _ = store.update("glif", lambda s, t: breaker_admit(s, t, SETTINGS))
    second, _, _ = store.update("glif", lambda s, t: breaker_admit(s, t, SETTINGS))
    assert (first.probe, second.allowed) == (True, False)  # one probe, the others wait
    _, old, new = store.update(
        "glif", lambda s, t: (None, breaker_record(s, False, True, t, SETTINGS))
    )
    assert (old.state, new.state) == ("half_open", "closed")
