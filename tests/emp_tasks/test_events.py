"""Job event payloads, progress throttling and the `emp-tasks events` line format."""

from __future__ import annotations

import json

from connectors.errors import ConnectorError
from connectors.models import JobProgress
from emp_tasks.event_stream import event_line
from emp_tasks.events import ProgressThrottle, fail_fields, progress_fields, retry_fields


def test_progress_is_throttled_to_one_a_second_but_first_and_last_pass() -> None:
    now = [0.0]
    throttle = ProgressThrottle(interval=1.0, clock=lambda: now[0])
    seen = []
    for step, pct in enumerate([5, 10, 20, 30, 100]):
        now[0] = step * 0.4
        seen.append(throttle.allow(pct))
    assert seen == [True, False, False, True, True]


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
