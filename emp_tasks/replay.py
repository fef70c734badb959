"""Failed jobs: list them from the result backend and re-submit them as new jobs.

The decisions (parsing `--since`, filtering, whether a failure may be replayed) are pure
functions; reading the backend is kept to `failed_jobs` and `find_job`. Celery's Redis backend is
scanned (`celery-task-meta-*`), the SQLAlchemy backend (the embedded default) is queried. A replay
goes through `emp_tasks.client.submit`, so the stored payload and ctx are validated again.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.backends.database import DatabaseBackend
from celery.backends.redis import RedisBackend

from connectors.errors import ConnectorError, configuration_error
from emp_tasks import queues
from emp_tasks.client import error_fields, job_record
from emp_tasks.config import services
from emp_tasks.tasks import job_arguments

__all__ = [
    "DEFAULT_LIMIT",
    "NOT_REPLAYABLE",
    "DeadLetterHandler",
    "FailedJob",
    "dead_letter_job",
    "failed_job",
    "failed_jobs",
    "find_job",
    "handle_dead_letters",
    "matches",
    "parse_since",
    "replay_job",
    "replay_refusal",
]

DEFAULT_LIMIT = 100
# Failures that cannot succeed unchanged: the same payload or token meets the same answer.
NOT_REPLAYABLE = frozenset({"validation_error", "auth_error", "generation_refusal"})
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SINCE = re.compile(r"(\d+)([smhd])")
_SCAN_BATCH = 500


@dataclass(frozen=True)
class FailedJob:
    """A job that ended in FAILURE, with what it takes to run it again."""

    job_id: str
    service: str
    failure_type: str
    failure_reason: str
    message: str
    attempts: int | None
    failed_at: datetime | None
    payload: Any = None
    ctx: Any = None
    metadata: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """What `emp-tasks failed` shows: no payload or ctx (they may be large, or private)."""
        return {
            "job_id": self.job_id,
            "service": self.service,
            "failure_type": self.failure_type,
            "failure_reason": self.failure_reason,
            "message": self.message,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "replay_of": (self.metadata or {}).get("replay_of"),
        }


def parse_since(text: str) -> timedelta:
    """`30m`, `1h`, `2d` (also `45s`) as a timedelta; anything else is a ValueError."""
    found = _SINCE.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"--since must be a positive number and a unit (s, m, h, d), not {text!r}")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def matches(
    job: FailedJob,
    service: str | None = None,
    failure_type: str | None = None,
    after: datetime | None = None,
) -> bool:
    """Whether a failed job passes the filters (a job with no end time is never 'recent')."""
    if service is not None and job.service != service:
        return False
    if failure_type is not None and job.failure_type != failure_type:
        return False
    return after is None or (job.failed_at is not None and job.failed_at >= after)


def replay_refusal(status: str, failure_type: str | None, force: bool) -> str | None:
    """Why a job may not be replayed, or None when it may."""
    if status != "failed":
        known = "pending (or unknown)" if status == "pending" else status
        return f"it is {known}, not failed: only a failed job is replayed"
    if failure_type in NOT_REPLAYABLE and not force:
        return f"a {failure_type} cannot succeed unchanged (use --force to replay it anyway)"
    return None


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # Celery stores UTC


def failed_job(meta: dict[str, Any]) -> FailedJob | None:
    """A FailedJob from a decoded task meta (its `result` an exception), or None if not failed."""
    name = meta.get("name") or ""
    if meta.get("status") != "FAILURE" or not name.startswith("emp."):
        return None
    exc = meta.get("result")
    error = error_fields(exc if isinstance(exc, BaseException) else Exception(str(exc)))
    args: list[Any] = list(meta.get("args") or [])
    kwargs: dict[str, Any] = dict(meta.get("kwargs") or {})
    payload, ctx = job_arguments(args, kwargs)
    metadata = kwargs.get("metadata", args[2] if len(args) > 2 else None)
    attempts = exc.context.get("attempts") if isinstance(exc, ConnectorError) else None
    retries = meta.get("retries")
    return FailedJob(
        job_id=str(meta.get("task_id")),
        service=name.removeprefix("emp."),
        failure_type=str(error["failure_type"]),
        failure_reason=str(error["failure_reason"]),
        message=str(error["message"]),
        attempts=attempts or (retries + 1 if isinstance(retries, int) else None),
        failed_at=_when(meta.get("date_done")),
        payload=payload,
        ctx=ctx,
        metadata=metadata if isinstance(metadata, dict) else None,
    )


def _redis_metas(backend: RedisBackend) -> Iterator[dict[str, Any]]:
    prefix = backend.task_keyprefix  # bytes on the Redis backend
    pattern = (prefix.decode() if isinstance(prefix, bytes) else str(prefix)) + "*"
    keys = backend.client.scan_iter(match=pattern, count=_SCAN_BATCH)
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == _SCAN_BATCH:
            yield from _decode_failed(backend, backend.client.mget(batch))
            batch = []
    if batch:
        yield from _decode_failed(backend, backend.client.mget(batch))


def _decode_failed(backend: RedisBackend, values: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for value in values:
        if value is None:  # expired between SCAN and MGET
            continue
        meta = backend.decode(value)
        if isinstance(meta, dict) and meta.get("status") == "FAILURE":
            yield backend.meta_from_decoded(meta)


def _sql_metas(
    backend: DatabaseBackend, after: datetime | None, service: str | None
) -> Iterator[dict[str, Any]]:
    model = backend.task_cls
    session = backend.ResultSession()
    try:
        query = session.query(model.task_id).filter(model.status == "FAILURE")
        if service is not None:
            query = query.filter(model.name == f"emp.{service}")
        if after is not None:  # the table holds naive UTC times
            query = query.filter(model.date_done >= after.replace(tzinfo=None))
        ids = [row[0] for row in query.order_by(model.date_done.desc())]
    finally:
        session.close()
    for task_id in ids:
        yield dict(backend.get_task_meta(task_id))


def _failed_metas(
    app: Celery, after: datetime | None, service: str | None
) -> tuple[Iterator[dict[str, Any]], bool]:
    """The failed metas, and whether they come newest first already (SQL sorts, Redis cannot)."""
    backend = app.backend
    if isinstance(backend, RedisBackend):
        return _redis_metas(backend), False
    if isinstance(backend, DatabaseBackend):
        return _sql_metas(backend, after, service), True
    raise configuration_error(
        f"listing failed jobs is not supported on the {type(backend).__name__} result backend "
        "(Redis and SQLAlchemy are)",
        variables=["EMP_RESULT_BACKEND"],
    )


def failed_jobs(
    app: Celery,
    service: str | None = None,
    failure_type: str | None = None,
    since: timedelta | None = None,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> list[FailedJob]:
    """Up to `limit` failed jobs passing the filters, newest first."""
    after = None if since is None else (now or datetime.now(UTC)) - since
    metas, newest_first = _failed_metas(app, after, service)
    jobs = (failed_job(meta) for meta in metas)
    chosen = (job for job in jobs if job is not None and matches(job, service, failure_type, after))
    if newest_first:  # stop reading at the limit
        return list(itertools.islice(chosen, limit))
    oldest = datetime.min.replace(tzinfo=UTC)
    return heapq.nlargest(limit, chosen, key=lambda job: job.failed_at or oldest)


def find_job(app: Celery, job_id: str) -> tuple[str, FailedJob | None]:
    """A job's status, and the FailedJob when it failed."""
    status = str(job_record(job_id)["status"])
    if status != "failed":
        return status, None
    meta = dict(app.backend.get_task_meta(job_id))
    return status, failed_job({"task_id": job_id, **meta})


def replay_job(job: FailedJob, submit: Callable[..., Any]) -> str:
    """Submit `job` again as a new job whose metadata names the original; its new id."""
    metadata = {**(job.metadata or {}), "replay_of": job.job_id}
    result = submit(job.service, job.payload, ctx=job.ctx, metadata=metadata)
    return str(result.id)


def dead_letter_job(headers: dict[str, Any], body: Any, queue: str) -> FailedJob | None:
    """A FailedJob from a Celery message RabbitMQ dead-lettered to `queue`, or None."""
    name = str(headers.get("task") or "")
    if not name.startswith("emp.") or not isinstance(body, list | tuple) or len(body) < 2:
        return None
    args, kwargs = list(body[0] or []), dict(body[1] or {})
    payload, ctx = job_arguments(args, kwargs)
    metadata = kwargs.get("metadata", args[2] if len(args) > 2 else None)
    death = (headers.get("x-death") or [{}])[0]
    reason = death.get("reason") or headers.get("x-first-death-reason") or "dead-lettered"
    return FailedJob(
        job_id=str(headers.get("id")),
        service=name.removeprefix("emp."),
        failure_type="system_error",
        failure_reason="worker_lost",  # the broker's delivery limit: its workers kept dying
        message=f"dead-lettered by RabbitMQ to {queue} ({reason})",
        attempts=(headers.get("retries") or 0) + 1,
        failed_at=_when(death.get("time")),
        payload=payload,
        ctx=ctx,
        metadata=metadata if isinstance(metadata, dict) else None,
    )


def _get(queue: Any) -> Any:
    return queue.get(no_ack=False)  # unacked: it stays the queue's until acked or requeued


# Given a dead-lettered job (None: not an emp-tasks job), True to ack it off its dead queue.
DeadLetterHandler = Callable[[FailedJob | None], bool]


def handle_dead_letters(
    app: Celery, handle: DeadLetterHandler, service: str | None = None, limit: int = DEFAULT_LIMIT
) -> None:
    """Show up to `limit` messages of the `<queue>.dead` queues to `handle`; requeue the rest."""
    if not queues.is_amqp(str(app.conf.broker_url)):
        raise configuration_error(
            "--dead-letters needs RabbitMQ as the broker (EMP_BROKER_URL=amqp://...)",
            variables=["EMP_BROKER_URL"],
        )
    specs = [spec for spec in services().values() if service in (None, spec.name)]
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for dead in queues.dead_letter_queues(specs):
            bound = dead(channel)
            # Idempotent: a dead queue no worker has declared yet is simply empty.
            bound.declare()  # type: ignore[no-untyped-call]
            held: list[Any] = []  # unacked until all are read, so a requeued one is not read twice
            while len(held) < limit and (message := _get(bound)) is not None:
                held.append(message)
            for message in held:
                job = dead_letter_job(dict(message.headers or {}), message.decode(), dead.name)
                if handle(job):
                    message.ack()
                else:
                    message.requeue()
            limit -= len(held)
