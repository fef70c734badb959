"""How long a job may run and how long a retry may wait.

One module, so the numbers that must agree are written once: a task's time limits
(`emp_tasks.tasks`) and the retry cap (`emp_tasks.retry`). Pure arithmetic on a service's
`timeout_seconds`; it imports nothing of the runtime. (The broker's visibility timeout no longer
has to outlast them: live workers extend it, see `emp_tasks.visibility`.)

A job gets twice its service's timeout (a submission and a poll or stream can each take one)
plus a margin: the soft limit raises inside the task, so the job still fails classified with
its `fail_job`; the hard limit, 30 s later, kills a job that ignored the soft one.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "RETRY_CAP_SECONDS",
    "Timed",
    "soft_time_limit",
    "time_limit",
]

# The longest wait before a retry, however long a provider asks for: a longer hint fails the job.
RETRY_CAP_SECONDS = 300.0
# ServiceSpec's default `timeout_seconds`: the bound used when no service is mapped.
DEFAULT_TIMEOUT_SECONDS = 60.0
_SOFT_MARGIN_SECONDS = 30.0
_HARD_MARGIN_SECONDS = 60.0


class Timed(Protocol):
    """Anything with a service's `timeout_seconds` (a ServiceSpec, a connector's settings)."""

    @property
    def timeout_seconds(self) -> float: ...


def soft_time_limit(spec: Timed) -> float:
    """Seconds after which a job is interrupted inside its task (and fails classified)."""
    return 2 * spec.timeout_seconds + _SOFT_MARGIN_SECONDS


def time_limit(spec: Timed) -> float:
    """Seconds after which a job's worker process is killed (prefork pools only)."""
    return 2 * spec.timeout_seconds + _HARD_MARGIN_SECONDS
