"""The retry decision: one pure function that Celery's `Task.retry` obeys.

`retry_attempts` in the service mapping counts *retries*, not runs: the Glif record's "3 retries"
means at most 4 provider calls for a job that keeps failing with a retryable error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from connectors.errors import ConnectorError
from emp_tasks.limits import RETRY_CAP_SECONDS

__all__ = ["RetryDecision", "RetryPolicy", "backoff", "retry_decision"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a service's jobs are retried."""

    max_retries: int = 3
    base_delay: float = 2.0
    max_delay: float = RETRY_CAP_SECONDS
    jitter: float = 0.25  # fraction added on top of the backoff, so it is never 0


@dataclass(frozen=True)
class RetryDecision:
    """Retry after `countdown` seconds, or fail now (`countdown` is None) and say why."""

    countdown: float | None
    reason: str


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff for retry number `attempt` (0-based), capped, with upward jitter."""
    raw = policy.base_delay * float(2 ** max(0, attempt))
    capped = min(raw, policy.max_delay)
    # Jitter only adds (never 0, never below the base delay), then the cap still holds.
    return min(capped * (1.0 + policy.jitter * rand()), policy.max_delay)


def retry_decision(
    error: ConnectorError,
    attempt: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Decide whether a failed run is retried. `attempt` = retries already made (0 on the first)."""
    kind = f"{error.failure_type.value}/{error.failure_reason.value}"
    if not error.retryable:
        return RetryDecision(None, f"not retryable ({kind})")
    if attempt >= policy.max_retries:
        return RetryDecision(
            None, f"gave up after {attempt + 1} attempts ({policy.max_retries} retries) ({kind})"
        )
    wait = error.retry_after or 0.0
    if wait > policy.max_delay:
        return RetryDecision(
            None,
            f"provider asked to wait {wait:.0f}s, beyond the {policy.max_delay:.0f}s retry cap "
            f"({kind})",
        )
    countdown = max(wait, backoff(attempt, policy, rand))
    return RetryDecision(round(countdown, 3), f"retry {attempt + 1} of {policy.max_retries}")
