"""Job event payloads, progress throttling and the `emp-tasks events` line format."""

from __future__ import annotations

import json

import pytest

from connectors.errors import ConnectorError
from connectors.models import JobProgress
from emp_tasks.event_stream import event_line
from emp_tasks.events import (
    ProgressThrottle,
    fail_fields,
    progress_fields,
    progress_timing,
    retry_fields,
)


@pytest.mark.parametrize(
    ("times", "progress", "expected"),
    [
        # a fast job: its first report waits, and the job ends before it is due
        ([0.05, 0.1, 0.2], [10, 90, 100], ["defer", "defer", "drop"]),
        # a slow one: first report once 0.25 s have passed, then at most one a second
        (
            [0.1, 0.3, 0.8, 1.2, 1.4, 2.5, 2.6],
            [5, 10, 20, 30, 40, 50, 100],
            # 100 % is never sent on its own: complete_job carries it
            ["defer", "emit", "drop", "drop", "emit", "emit", "drop"],
        ),
    ],
    ids=["fast-job", "slow-job"],
)
def test_progress_is_throttled(
    times: list[float], progress: list[float], expected: list[str]
) -> None:
    now = [0.0]
    throttle = ProgressThrottle(interval=1.0, first_after=0.25, clock=lambda: now[0])
    seen = []
    for at, pct in zip(times, progress, strict=True):
        now[0] = at
        seen.append(throttle.decide(pct))
    assert seen == expected


def test_a_deferred_first_report_is_due_when_first_after_has_passed() -> None:
    now = [0.0]
    throttle = ProgressThrottle(interval=1.0, first_after=0.25, clock=lambda: now[0])
    now[0] = 0.1
    assert throttle.decide(10) == "defer"
    assert throttle.defer_for() == pytest.approx(0.15)
    now[0] = 0.25
    throttle.mark_sent()
    now[0] = 0.5
    assert throttle.decide(20) == "drop"  # the deferred report counts as sent
    now[0] = 2.0
    assert throttle.decide(30) == "emit"
    assert throttle.decide(100) == "drop"  # complete_job carries it


def test_fail_job_carries_the_classification() -> None:
    error = ConnectorError(
        "nope", failure_type="auth_error", failure_reason="invalid_api_key", status_code=401
    )
    fields = fail_fields("glif", "j1", error, 1, "not retryable")
    assert fields | {"message": "nope"} == {
        "job_id": "j1",
        "service": "glif",
        "status": "failed",
        "attempts": 1,
        "failure_type": "auth_error",
        "failure_reason": "invalid_api_key",
        "retryable": False,
        "status_code": 401,
        "message": "nope",
        "reason": "not retryable",
    }


def test_retry_job_carries_countdown_and_attempt() -> None:
    error = ConnectorError(
        "slow down", failure_type="rate_limit", failure_reason="requests_per_minute", retry_after=2
    )
    fields = retry_fields("glif", "j1", error, 1, 2.4)
    assert (fields["attempt"], fields["countdown"], fields["retry_after"]) == (1, 2.4, 2.0)


def test_progress_fields_use_the_original_names() -> None:
    fields = progress_fields("glif", JobProgress(job_id="j", progress=40, message="m"), 2)
    assert {
        "job_id",
        "progress",
        "message",
        "current_step",
        "total_steps",
        "estimated_completion_ms",
    } <= set(fields)


def test_event_lines_drop_the_task_prefix_and_celery_bookkeeping() -> None:
    line = event_line({"type": "task-fail_job", "job_id": "j", "hostname": "w", "clock": 3})
    assert json.loads(line or "") == {"event": "fail_job", "job_id": "j"}
    assert event_line({"type": "worker-heartbeat"}) is None
    assert event_line({"type": "task-succeeded", "uuid": "j"}) is None
    assert event_line({"type": "task-succeeded", "uuid": "j"}, show_all=True) is not None


@pytest.mark.parametrize(
    ("env", "timing"),
    [
        ({}, (0.25, 1.0)),
        ({"EMP_PROGRESS_FIRST_AFTER": "2", "EMP_PROGRESS_INTERVAL": "5"}, (2.0, 5.0)),
        ({"EMP_PROGRESS_FIRST_AFTER": ""}, (0.25, 1.0)),
    ],
)
def test_progress_timing_comes_from_the_environment(
    env: dict[str, str], timing: tuple[float, float]
) -> None:
    assert progress_timing(env) == timing


@pytest.mark.parametrize("raw", ["soon", "-1", "7200"])
def test_a_bad_progress_timing_names_the_setting(raw: str) -> None:
    with pytest.raises(ConnectorError, match="EMP_PROGRESS_INTERVAL"):
        progress_timing({"EMP_PROGRESS_INTERVAL": raw})
