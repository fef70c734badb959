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
    task_sent_event,
)


@pytest.mark.parametrize(
    ("progress", "decision"), [(0, "defer"), (10, "defer"), (99.9, "defer"), (100, "drop")]
)
def test_every_report_waits_for_the_timer_but_100_which_complete_job_carries(
    progress: float, decision: str
) -> None:
    assert ProgressThrottle().decide(progress) == decision


@pytest.mark.parametrize(
    ("sent_at", "report_at", "due_in"),
    [
        (None, 0.05, 0.2),  # the first: once the job has run first_after (0.25 s)
        (None, 0.4, 0.0),  # a first report that comes later is due at once
        (0.25, 0.8, 0.45),  # a later one: at least the interval (1 s) after the last sent
        (0.25, 3.0, 0.25),  # ... and first_after after it came, so the job's end can drop it
    ],
)
def test_a_report_is_due_after_first_after_and_at_least_an_interval_after_the_last(
    sent_at: float | None, report_at: float, due_in: float
) -> None:
    now = [0.0]
    throttle = ProgressThrottle(interval=1.0, first_after=0.25, clock=lambda: now[0])
    if sent_at is not None:
        now[0] = sent_at
        throttle.mark_sent()
    now[0] = report_at
    assert throttle.defer_for() == pytest.approx(due_in)


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


@pytest.mark.parametrize(
    ("raw", "sent"), [(None, True), ("1", True), ("true", True), ("0", False), ("FALSE", False)]
)
def test_the_task_sent_event_setting(raw: str | None, sent: bool) -> None:
    assert task_sent_event({} if raw is None else {"EMP_TASK_SENT_EVENT": raw}) is sent


def test_a_bad_task_sent_event_setting_names_it() -> None:
    with pytest.raises(ConnectorError, match="EMP_TASK_SENT_EVENT must be 1 or 0"):
        task_sent_event({"EMP_TASK_SENT_EVENT": "sometimes"})
