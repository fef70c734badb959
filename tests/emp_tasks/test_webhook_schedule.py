"""The webhook retry schedule: one pure decision per attempt, the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from emp_tasks.webhook_policy import WebhookSettings
from emp_tasks.webhook_schedule import MAX_RETRY_AFTER_SECONDS, decide, scheduled_delay

DEFAULTS = WebhookSettings()
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _decide(status: int | None, attempt: int = 1, **headers: str) -> tuple[str, float | None]:
    decision = decide(
        status,
        attempt,
        delays=DEFAULTS.retry_delays,
        max_attempts=DEFAULTS.max_attempts,
        headers=headers,
        clock=lambda: NOW,
    )
    return decision.outcome, decision.countdown


@pytest.mark.parametrize(
    ("status", "outcome", "countdown"),
    [
        (200, "delivered", None),
        (204, "delivered", None),
        (410, "gone", None),
        (400, "failed", None),
        (401, "failed", None),
        (404, "failed", None),
        (422, "failed", None),
        (408, "retrying", 5.0),
        (429, "retrying", 5.0),
        (500, "retrying", 5.0),
        (503, "retrying", 5.0),
        (302, "retrying", 5.0),  # redirects are not followed: the receiver must fix its URL
        (None, "retrying", 5.0),  # a timeout or a refused connection
    ],
)
def test_the_status_decides_whether_a_delivery_is_retried(
    status: int | None, outcome: str, countdown: float | None
) -> None:
    assert _decide(status) == (outcome, countdown)


def test_the_default_schedule_is_immediately_5s_5min_30min_2h_5h_10h_then_10h() -> None:
    waits = [_decide(503, attempt)[1] for attempt in range(1, DEFAULTS.max_attempts)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert _decide(503, DEFAULTS.max_attempts) == ("failed", None)


def test_the_last_wait_repeats_past_the_end_of_the_schedule() -> None:
    assert [scheduled_delay(n, (1, 2)) for n in (1, 2, 3, 9)] == [1, 2, 2, 2]


def test_a_longer_retry_after_wins_over_the_schedule_and_a_shorter_one_does_not() -> None:
    assert _decide(503, 1, **{"Retry-After": "120"}) == ("retrying", 120.0)
    assert _decide(429, 3, **{"Retry-After": "1"}) == ("retrying", 1800.0)


def test_a_retry_after_date_is_read_against_the_injected_clock() -> None:
    when = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    assert _decide(503, 1, **{"Retry-After": when}) == ("retrying", 600.0)


def test_a_retry_after_beyond_a_day_is_capped() -> None:
    assert _decide(503, 1, **{"Retry-After": "9999999"}) == ("retrying", MAX_RETRY_AFTER_SECONDS)


def test_the_schedule_and_total_come_from_the_environment() -> None:
    settings = WebhookSettings.from_env(
        {"EMP_WEBHOOK_RETRY_DELAYS": "0.2, 0.5", "EMP_WEBHOOK_MAX_ATTEMPTS": "3"}
    )
    assert (settings.retry_delays, settings.max_attempts) == ((0.2, 0.5), 3)
