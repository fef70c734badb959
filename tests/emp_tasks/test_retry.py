"""retry_decision: the one pure function that decides retries."""

from __future__ import annotations

from dataclasses import fields

import pytest

from connectors.errors import ConnectorError
from emp_tasks.retry import RetryDecision, RetryPolicy, backoff, retry_decision

POLICY = RetryPolicy(max_retries=3, base_delay=2.0, max_delay=300.0, jitter=0.25)


def err(
    ftype: str, retryable: bool | None = None, retry_after: float | None = None
) -> ConnectorError:
    reasons = {
        "rate_limit": "requests_per_minute",
        "auth_error": "invalid_api_key",
        "service_error": "service_unavailable",
        "validation_error": "invalid_payload",
    }
    return ConnectorError(
        "x",
        failure_type=ftype,
        failure_reason=reasons[ftype],
        retryable=retryable,
        retry_after=retry_after,
    )


@pytest.mark.parametrize(
    ("error", "attempt", "retries"),
    [
        (err("auth_error"), 0, False),
        (err("validation_error"), 0, False),
        (err("service_error"), 0, True),
        (err("service_error"), 2, True),
        (err("service_error"), 3, False),  # 3 retries made: the 4th run was the last
        (err("rate_limit", retryable=False), 0, False),  # explicit override wins
        (err("rate_limit", retry_after=301), 0, False),  # beyond the cap: fail now
        (err("rate_limit", retry_after=300), 0, True),
    ],
)
def test_decision_table(error: ConnectorError, attempt: int, retries: bool) -> None:
    assert (retry_decision(error, attempt, POLICY).countdown is not None) is retries


def test_retry_after_is_never_shortened() -> None:
    decision = retry_decision(err("rate_limit", retry_after=17.5), 0, POLICY, rand=lambda: 0.0)
    assert decision.countdown == 17.5


def test_backoff_wins_when_larger_than_retry_after() -> None:
    decision = retry_decision(err("rate_limit", retry_after=1), 2, POLICY, rand=lambda: 0.0)
    assert decision.countdown == 8.0


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 20])
def test_backoff_is_exponential_jittered_never_zero_and_capped(rand: float, attempt: int) -> None:
    value = backoff(attempt, POLICY, rand=lambda: rand)
    base = min(2.0 * 2**attempt, 300.0)
    assert base <= value <= min(base * 1.25, 300.0)
    assert value > 0


def test_beyond_the_cap_says_so() -> None:
    decision = retry_decision(err("rate_limit", retry_after=3600), 0, POLICY)
    assert decision.countdown is None
    assert "3600s" in decision.reason
    assert "300s" in decision.reason


def test_exhausted_retries_say_how_many_attempts_were_made() -> None:
    assert "after 4 attempts" in retry_decision(err("service_error"), 3, POLICY).reason


def test_a_decision_is_only_its_countdown_and_reason() -> None:
    # `countdown is None` is the one way to say "fail now"; a second flag could disagree with it.
    assert [f.name for f in fields(RetryDecision)] == ["countdown", "reason"]
    assert not hasattr(RetryDecision(None, "x"), "retry")
