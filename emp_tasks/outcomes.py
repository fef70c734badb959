"""One place that records how each job attempt ended: a log line and the worker's metrics.

The runner calls `started` when an attempt begins and `ended` once with its outcome
(`completed`, `failed` or `retried`), so the log, `emp_jobs_total`, `emp_job_failures_total`,
`emp_jobs_in_progress` and `emp_job_cost_total` can never disagree.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal, TypeGuard

from connectors.errors import ConnectorError
from emp_tasks import metrics

__all__ = ["Outcome", "ended", "job_cost", "started"]

log = logging.getLogger("emp_tasks.jobs")
Outcome = Literal["completed", "failed", "retried", "waited"]
LOGGED_MESSAGE = 500  # characters of an error's message in its outcome line


def job_cost(service: str, metadata: Mapping[str, Any]) -> tuple[float, str] | None:
    """What a completed job cost as its provider priced it, when the result says.

    Glif reports `price` in its own credits; others report nothing yet (token pricing comes with
    the budgets work), so they record no cost rather than a guessed one.
    """
    cost = metadata.get("cost")
    if isinstance(cost, Mapping) and _is_amount(amount := cost.get("amount")):
        return float(amount), str(cost.get("currency") or "unknown")
    price = metadata.get("price")
    if service == "glif" and _is_amount(price):
        return float(price), "glif_credits"
    return None


def _is_amount(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def started(service: str) -> None:
    """An attempt of a `service` job began in this worker."""
    metrics.JOBS_IN_PROGRESS.labels(service).inc()


def ended(
    service: str,
    outcome: Outcome,
    *,
    job_id: str,
    attempt: int,
    duration_ms: int,
    error: ConnectorError | None = None,
    metadata: Mapping[str, Any] | None = None,
    again_in: float | None = None,  # seconds until a retried or waiting job runs again
) -> None:
    """The attempt ended: one log line, and the counters."""
    metrics.JOBS_IN_PROGRESS.labels(service).dec()
    metrics.JOBS.labels(service, outcome).inc()
    fields: dict[str, Any] = {
        "job_id": job_id,
        "service": service,
        "attempt": attempt,
        "outcome": outcome,
        "duration_ms": duration_ms,
    }
    if error is not None:
        fields["failure_type"] = error.failure_type.value
        fields["failure_reason"] = error.failure_reason.value
        if outcome == "failed":
            metrics.JOB_FAILURES.labels(
                service, error.failure_type.value, error.failure_reason.value
            ).inc()
    cost = job_cost(service, metadata or {}) if outcome == "completed" else None
    if cost is not None:
        metrics.JOB_COST.labels(service, cost[1]).inc(cost[0])
    detail = f" ({fields['failure_type']}/{fields['failure_reason']})" if error else ""
    if again_in is not None:
        detail += f", again in {again_in:g} s"
    if error is not None:  # what Celery's own line said; it is no longer logged at INFO
        detail += f": {error.message[:LOGGED_MESSAGE]}"
    level = logging.WARNING if outcome == "failed" else logging.INFO
    log.log(
        level,
        "job %s %s %s after %d ms, attempt %d%s",
        service, job_id, outcome, duration_ms, attempt, detail,
        extra=fields,
    )  # fmt: skip
