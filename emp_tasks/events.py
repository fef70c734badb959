"""Job events: the original's names, sent as Celery task events so Flower records them.

- `update_job_progress`: progress, at most one a second per job (the first always; 100 % is
  `complete_job`'s): job_id, service, progress, message, current_step, total_steps,
  estimated_completion_ms, attempt.
- `retry_job`: an attempt failed and will be retried: job_id, service, attempt, countdown,
  failure_type, failure_reason, retry_after, message.
- `complete_job`: the job succeeded: job_id, service, status="completed", progress=100,
  attempts, processing_time_ms.
- `fail_job`: the job failed for good: job_id, service, status="failed", attempts,
  failure_type, failure_reason, retryable, status_code, message, reason (why no retry).

On the wire each is a Celery event of type `task-<name>` (the `task-` prefix is what makes Celery
and Flower attach it to the task); `emp-tasks events` prints them without the prefix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.errors import ConnectorError, configuration_error
from connectors.models import JobProgress

__all__ = [
    "EVENT_NAMES",
    "EVENT_PREFIX",
    "Decision",
    "ProgressThrottle",
    "complete_fields",
    "fail_fields",
    "progress_fields",
    "progress_throttle",
    "progress_timing",
    "retry_fields",
    "seconds_setting",
    "task_sent_event",
]

EVENT_PREFIX = "task-"
EVENT_NAMES = (
    "update_job_progress",
    "retry_job",
    "complete_job",
    "fail_job",
    "wait_job",  # emp_tasks.waits: re-queued to wait for the provider, not a retry
    "breaker_state",  # emp_tasks.callgate: a provider's circuit breaker changed state
)


Decision = Literal["defer", "drop"]


@dataclass
class ProgressThrottle:
    """Decides when a job's progress reports are sent: the newest one, once it is due.

    Every report waits on the job's timer and is replaced by a newer one meanwhile; the job's
    end drops whatever is still waiting. The first is due once the job has run `first_after`
    seconds, a later one `first_after` after it came and at least `interval` after the last one
    sent. So a job that finishes sooner reports no progress at all (its STARTED state and
    `complete_job` say everything, and each report costs a result-backend write and an event),
    and neither does the end of a longer one: the 90 % "parsing" a blocking call reports as it
    returns is overtaken by `complete_job`. A 100 % report is never sent: `complete_job`
    carries progress 100 and completes a visible bar (a job that fails after its 100 % ends
    with `fail_job` instead, never with a full bar).
    """

    interval: float = 1.0
    first_after: float = 0.25
    clock: Callable[[], float] = time.monotonic
    _started: float = field(default=0.0, init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def decide(self, progress: float) -> Decision:
        """Defer a report (it waits for the timer, replacing one waiting) or drop it (100 %)."""
        return "drop" if progress >= 100 else "defer"

    def defer_for(self) -> float:
        """Seconds until a report that came now is due."""
        now = self.clock()
        if self._last is None:
            due = self._started + self.first_after
        else:
            due = max(now + self.first_after, self._last + self.interval)
        return max(0.0, due - now)

    def mark_sent(self) -> None:
        """Record that a report was sent."""
        self._last = self.clock()


def progress_timing(env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """`(first_after, interval)`: EMP_PROGRESS_FIRST_AFTER (0.25 s), EMP_PROGRESS_INTERVAL (1 s).

    Each progress report shown costs a result-backend write (PROGRESS) and an event: at a
    thousand jobs in flight a longer first delay or interval is throughput.
    """
    return (
        seconds_setting(env, "EMP_PROGRESS_FIRST_AFTER", 0.25, 3600),
        seconds_setting(env, "EMP_PROGRESS_INTERVAL", 1.0, 3600),
    )


def seconds_setting(env: Mapping[str, str] | None, name: str, default: float, most: float) -> float:
    """The setting `name` as seconds from 0 to `most`; `default` when unset or empty."""
    raw = (os.environ if env is None else env).get(name) or ""
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:  # NaN fails this too
        raise configuration_error(
            f"{name} must be seconds from 0 to {most:g}, not {raw!r}", variables=[name]
        )
    return value


def task_sent_event(env: Mapping[str, str] | None = None) -> bool:
    """EMP_TASK_SENT_EVENT: whether a client sends Celery's `task-sent` event (default 1).

    Flower shows a queued job from it. It is a second publish per submit: measured with
    benchmarks/overhead.py, 1,000 Glif jobs took 1.8-2.3 s to submit with it, 1.1-1.5 s
    without (and a worker's throughput did not change measurably).
    """
    raw = ((os.environ if env is None else env).get("EMP_TASK_SENT_EVENT") or "1").lower()
    if raw not in ("0", "1", "true", "false"):
        raise configuration_error(
            f"EMP_TASK_SENT_EVENT must be 1 or 0, not {raw!r}", variables=["EMP_TASK_SENT_EVENT"]
        )
    return raw in ("1", "true")


def progress_throttle() -> ProgressThrottle:
    """A job's throttle, timed by the worker's settings."""
    first_after, interval = progress_timing()
    return ProgressThrottle(interval=interval, first_after=first_after)


def progress_fields(service: str, progress: JobProgress, attempt: int) -> dict[str, Any]:
    return {
        "job_id": progress.job_id,
        "service": service,
        "progress": progress.progress,
        "message": progress.message,
        "current_step": progress.current_step,
        "total_steps": progress.total_steps,
        "estimated_completion_ms": progress.estimated_completion_ms,
        "attempt": attempt,
    }


def retry_fields(
    service: str, job_id: str, error: ConnectorError, attempt: int, countdown: float
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "service": service,
        "attempt": attempt,
        "countdown": countdown,
        "failure_type": error.failure_type.value,
        "failure_reason": error.failure_reason.value,
        "retry_after": error.retry_after,
        "message": error.message,
    }


def complete_fields(
    service: str, job_id: str, attempts: int, processing_time_ms: int
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "service": service,
        "status": "completed",
        "progress": 100,
        "attempts": attempts,
        "processing_time_ms": processing_time_ms,
    }


def fail_fields(
    service: str, job_id: str, error: ConnectorError, attempts: int, reason: str
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "service": service,
        "status": "failed",
        "attempts": attempts,
        "failure_type": error.failure_type.value,
        "failure_reason": error.failure_reason.value,
        "retryable": error.retryable,
        "status_code": error.status_code,
        "message": error.message,
        "reason": reason,
    }
