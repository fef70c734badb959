"""How long a job may run, how long a retry may wait, and how long the broker may hold a message.

One module, so the numbers that must agree are written once: a task's time limits
(`emp_tasks.tasks`), the retry cap (`emp_tasks.retry`) and the broker's visibility timeout
(`celeryconfig`). Pure arithmetic on a service's `timeout_seconds`; it imports nothing of the
runtime, so `celeryconfig` can use it while it is being loaded.

A job gets twice its service's timeout (a submission and a poll or stream can each take one)
plus a margin: the soft limit raises inside the task, so the job still fails classified with
its `fail_job`; the hard limit, 30 s later, kills a job that ignored the soft one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "RETRY_CAP_SECONDS",
    "VISIBILITY_MARGIN_SECONDS",
    "Timed",
    "longest_time_limit",
    "soft_time_limit",
    "time_limit",
    "visibility_timeout",
]

# The longest wait before a retry, however long a provider asks for: a longer hint fails the job.
RETRY_CAP_SECONDS = 300.0
# Slack on top of the longest job and retry wait, for broker and worker clock drift and restarts.
VISIBILITY_MARGIN_SECONDS = 600.0
# ServiceSpec's default `timeout_seconds`: the bound used when no service is mapped.
DEFAULT_TIMEOUT_SECONDS = 60.0
_SOFT_MARGIN_SECONDS = 30.0
_HARD_MARGIN_SECONDS = 60.0


class Timed(Protocol):
    """Anything with a service's `timeout_seconds` (a ServiceSpec, a connector's settings)."""

    @property
    def timeout_seconds(self) -> float: ...


@dataclass(frozen=True)
class _Default:
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


def soft_time_limit(spec: Timed) -> float:
    """Seconds after which a job is interrupted inside its task (and fails classified)."""
    return 2 * spec.timeout_seconds + _SOFT_MARGIN_SECONDS


def time_limit(spec: Timed) -> float:
    """Seconds after which a job's worker process is killed (prefork pools only)."""
    return 2 * spec.timeout_seconds + _HARD_MARGIN_SECONDS


def longest_time_limit(specs: Iterable[Timed]) -> float:
    """The hard time limit of the slowest service (the default service's when there are none)."""
    return max((time_limit(spec) for spec in specs), default=time_limit(_Default()))


def visibility_timeout(specs: Iterable[Timed]) -> int:
    """Seconds a broker may hold a message unacked before it redelivers it.

    A message stays unacked while its retry waits (up to the cap, as an ETA message) and then
    while it runs (up to its time limit); redelivering it sooner would run a paid job twice.
    """
    return int(longest_time_limit(specs) + RETRY_CAP_SECONDS + VISIBILITY_MARGIN_SECONDS)
