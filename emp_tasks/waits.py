"""Waits: a job re-queued because its provider call could not go yet. Not a retry.

The call gate (emp_tasks.callgate) defers a call that would have to wait longer than a short
bound - for a rate-limit slot, a provider's Retry-After hold, an open circuit breaker. The job
then gives its worker slot back: it is re-queued with a countdown through Celery's
`Task.retry` (the one way to re-publish a job with the same id), which increments
`request.retries`. So waits are counted apart, in the job's `metadata` (`emp_waits`, carried
in the message's kwargs), and a job's attempt is `retries - waits`: a wait is not an attempt,
not a paid call and not counted against `retry_attempts`. The slot the gate reserved rides
along (`emp_slot`), so the job does not queue twice. After `EMP_MAX_WAITS` waits (default 1000)
a further deferral is handled as a retryable failure, so a provider that never recovers still
ends the job.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from typing import Any

from connectors.errors import ConnectorError
from connectors.protocol.gate import SLOT_AT, deferral

__all__ = [
    "MIN_COUNTDOWN",
    "SLOT",
    "WAITS",
    "attempt_of",
    "countdown",
    "max_waits",
    "metadata_in",
    "reserved_of",
    "wait_fields",
    "wait_metadata",
    "waits_of",
]

WAITS = "emp_waits"
SLOT = "emp_slot"
# Celery's native delayed delivery (RabbitMQ quorum queues) refuses a countdown under 1 s
# ("countdown must be a positive number": it routes by whole seconds), so no wait is shorter.
MIN_COUNTDOWN = 1.0


def waits_of(metadata: Any) -> int:
    """How many times this job has waited so far."""
    value = metadata.get(WAITS) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def metadata_in(args: Any, kwargs: Any) -> Any:
    """A job task call's `metadata` (its third parameter), by position or by name."""
    named = {**dict(zip(("payload", "ctx", "metadata"), args or (), strict=False))}
    named.update(kwargs if isinstance(kwargs, Mapping) else {})
    return named.get("metadata")


def attempt_of(retries: int | None, metadata: Any) -> int:
    """Retries made so far (0 on the first attempt): Celery's counter less the waits."""
    return max(0, int(retries or 0) - waits_of(metadata))


def reserved_of(metadata: Any) -> float:
    """The limiter slot reserved for this job before its wait (0: none)."""
    value = metadata.get(SLOT) if isinstance(metadata, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def max_waits(env: Mapping[str, str] | None = None) -> int:
    """EMP_MAX_WAITS: waits before a deferral counts as a retryable failure (default 1000)."""
    raw = ((os.environ if env is None else env).get("EMP_MAX_WAITS") or "").strip()
    return int(raw) if raw.isdigit() else 1000


def wait_metadata(metadata: Any, error: ConnectorError) -> dict[str, Any]:
    """The job's metadata for its next delivery: one more wait, and its reserved slot if any."""
    meta = {k: v for k, v in dict(metadata or {}).items() if k != SLOT}
    meta[WAITS] = waits_of(metadata) + 1
    slot = error.context.get(SLOT_AT)
    if isinstance(slot, int | float):
        meta[SLOT] = slot
    return meta


def countdown(error: ConnectorError, rand: Callable[[], float] = random.random) -> float:
    """Seconds until the job's next delivery.

    A reserved slot is exact; a hold or an open breaker ends for every waiting job at once, so
    those spread over 20% more, not to arrive as one crowd.
    """
    wait = max(MIN_COUNTDOWN, error.retry_after or 0.0)
    if error.context.get(SLOT_AT) is not None:
        return round(wait, 3)
    return round(wait * (1.0 + 0.2 * rand()), 3)


def wait_fields(
    service: str, job_id: str, error: ConnectorError, waits: int, attempt: int, seconds: float
) -> dict[str, Any]:
    """The `wait_job` event: job_id, service, reason, waits, attempt, countdown."""
    return {
        "job_id": job_id,
        "service": service,
        "reason": deferral(error),
        "waits": waits,
        "attempt": attempt,
        "countdown": seconds,
    }
