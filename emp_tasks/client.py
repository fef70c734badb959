"""The enqueue side: `submit()` and the job record that `emp-tasks submit/status` print."""

from __future__ import annotations

from typing import Any

from celery.result import AsyncResult

from connectors.classify import error_from_exception
from connectors.errors import ConnectorError
from emp_tasks import journal, waits
from emp_tasks.celery_app import app
from emp_tasks.config import resolve_service
from emp_tasks.job_types import named_payload
from emp_tasks.tasks import task_for
from emp_tasks.webhook_store import webhook_deliveries

__all__ = ["ERROR_FIELDS", "error_fields", "job_record", "submit"]

ERROR_FIELDS = (
    "message",
    "failure_type",
    "failure_reason",
    "retryable",
    "status_code",
    "retry_after",
)
_RUNNING = {
    "PENDING": "pending",
    "RECEIVED": "pending",
    "STARTED": "running",
    "PROGRESS": "running",
    "RETRY": "retrying",
}


def submit(
    service: str,
    payload: dict[str, Any],
    job_id: str | None = None,
    ctx: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> AsyncResult:
    """Enqueue a job on its service's queue. Unknown services and bad payloads are refused."""
    spec = resolve_service(service)
    payload = named_payload(service, payload)  # a named Glif workflow: glif + "workflow"
    return task_for(spec.name).apply_async(
        args=(payload,), kwargs={"ctx": ctx, "metadata": metadata}, task_id=job_id
    )


def error_fields(exc: BaseException) -> dict[str, Any]:
    """The `error` block of a job record: the ConnectorError fields a caller acts on."""
    error = error_from_exception(exc)
    data = error.to_dict()
    return {key: data[key] for key in ERROR_FIELDS}


def _attempts(result: AsyncResult) -> int | None:
    """Attempts so far by the stored request: Celery's retries less the job's waits."""
    if result.retries is None:
        return None
    return waits.attempt_of(result.retries, waits.metadata_in(result.args, result.kwargs)) + 1


def job_record(job_id: str | AsyncResult, service: str | None = None) -> dict[str, Any]:
    """`{job_id, service, status, attempts, result | error | progress}` for any job."""
    result = job_id if isinstance(job_id, AsyncResult) else AsyncResult(job_id, app=app)
    state = result.state
    name = result.name or ""
    record: dict[str, Any] = {
        "job_id": result.id,
        "service": service or (name.removeprefix("emp.") if name else None),
        "status": _RUNNING.get(state, state.lower()),
        "attempts": _attempts(result),
    }
    if state == "SUCCESS":
        value = result.result or {}
        record["status"] = "completed"
        record["attempts"] = (value.get("metadata") or {}).get("attempts", record["attempts"])
        record["result"] = value
    elif state == "FAILURE":
        exc = result.result
        record["status"] = "failed"
        if isinstance(exc, ConnectorError):
            record["attempts"] = exc.context.get("attempts", record["attempts"])
        record["error"] = error_fields(exc if isinstance(exc, BaseException) else Exception(exc))
    elif state == "PROGRESS":
        # One read: a running job's state can move on between two (to RETRY, whose info is
        # the exception), and each `info` of an unfinished job asks the backend again.
        info = result.info
        if isinstance(info, dict):
            record["progress"] = info
    record["provider_calls"] = journal.provider_calls(app, str(result.id))
    if deliveries := webhook_deliveries(app, str(result.id)):  # event, status, time, attempt
        record["webhook_deliveries"] = deliveries
    return record
