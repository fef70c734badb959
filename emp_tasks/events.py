"""Job events: the original's names, sent as Celery task events so Flower records them.

- `update_job_progress`: progress, at most one a second per job (the first and 100 % always):
  job_id, service, progress, message, current_step, total_steps, estimated_completion_ms,
  attempt.
- `retry_job`: an attempt failed and will be retried: job_id, service, attempt, countdown,
  failure_type, failure_reason, retry_after, message.
- `complete_job`: the job succeeded: job_id, service, status="completed", attempts,
  processing_time_ms.
- `fail_job`: the job failed for good: job_id, service, status="failed", attempts,
  failure_type, failure_reason, retryable, status_code, message, reason (why no retry).

On the wire each is a Celery event of type `task-<name>` (the `task-` prefix is what makes Celery
and Flower attach it to the task); `emp-tasks events` prints them without the prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import ConnectorError
from connectors.models import JobProgress

__all__ = [
    "EVENT_NAMES",
    "EVENT_PREFIX",
    "ProgressThrottle",
    "complete_fields",
    "fail_fields",
    "progress_fields",
    "retry_fields",
]

EVENT_PREFIX = "task-"
EVENT_NAMES = ("update_job_progress", "retry_job", "complete_job", "fail_job")


@dataclass
class ProgressThrottle:
    """Lets a progress report through at most once per `interval` (first and 100 % always)."""

    interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, init=False)

    def allow(self, progress: float) -> bool:
        now = self.clock()
        if self._last is None or progress >= 100 or now - self._last >= self.interval:
            self._last = now
            return True
        return False


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
