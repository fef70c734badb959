"""Poison jobs bounded: each attempt's deliveries are counted outside the message.

A job that kills its worker every time (a segfault, the OOM killer, `os._exit`) never reaches the
code that would fail it: the broker just hands it out again (`acks_late` with
`reject_on_worker_lost`). So every redelivery of a job's attempt (a message the broker marks
as redelivered; the first delivery needs no count) is counted in the result backend's Redis
(`emp:deliveries:<job id>:<attempt>`, expiring with the results); a delivery
past `EMP_DELIVERY_LIMIT` fails the job at once - FAILURE, `fail_job`,
`system_error/worker_lost`, not retried - instead of running it again. A retry is a new attempt
with a count of its own, and a job put back by a graceful stop gives its delivery back. On
RabbitMQ the quorum queue's `x-delivery-limit`, one higher, is the backstop. Without a Redis
result backend (the embedded default's SQLite) nothing is counted.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from emp_tasks.results_redis import results_redis, results_ttl

__all__ = [
    "DeliveryCounter",
    "RedisDeliveryCounter",
    "counter_for",
    "delivery_key",
    "is_poison",
    "poison_error",
]

log = logging.getLogger(__name__)
WORKER_LOST = Classification(FailureType.SYSTEM_ERROR, FailureReason.WORKER_LOST, retryable=False)


class DeliveryCounter(Protocol):
    """Counts the deliveries of one attempt of a job."""

    def count(self, job_id: str, attempt: int) -> int:
        """Record one more delivery; return how many there have been."""
        ...

    def give_back(self, job_id: str, attempt: int) -> None:
        """Forget one delivery (the job was put back, not lost)."""
        ...


def delivery_key(job_id: str, attempt: int) -> str:
    """The Redis key that counts an attempt's deliveries."""
    return f"emp:deliveries:{job_id}:{attempt}"


def is_poison(deliveries: int, limit: int) -> bool:
    """Whether a delivery is past the limit: the worker was lost on every one before it."""
    return deliveries > limit


def poison_error(job_id: str, deliveries: int, limit: int, service: str) -> ConnectorError:
    """The failure of a job whose worker was lost on every delivery."""
    return WORKER_LOST.error(
        f"job {job_id} was delivered {deliveries} times and its worker was lost each time "
        f"(a crash, the OOM killer, a kill): not run again (EMP_DELIVERY_LIMIT={limit})",
        service=service,
        context={"deliveries": deliveries, "delivery_limit": limit},
    )


class RedisDeliveryCounter:
    """Delivery counts in Redis, each key expiring with the job's result."""

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = max(1, ttl_seconds)

    def count(self, job_id: str, attempt: int) -> int:
        key = delivery_key(job_id, attempt)
        deliveries, _ = self._client.pipeline().incr(key).expire(key, self._ttl).execute()
        return int(deliveries)

    def give_back(self, job_id: str, attempt: int) -> None:
        self._client.decr(delivery_key(job_id, attempt))


def counter_for(app: Any) -> DeliveryCounter | None:
    """The app's counter: its Redis result backend's, or None when results are not in Redis."""
    backend = getattr(app, "backend", None)
    client = results_redis(backend)
    return RedisDeliveryCounter(client, results_ttl(backend)) if client is not None else None
