"""One Celery task per service, `emp.<service>` on queue `<service>`, made from the mapping.

    from emp_tasks import tasks
    tasks.glif.delay({"workflow_id": "...", "inputs": ["a happy horse"]})

`delay` / `apply_async` validate the payload and `ctx` first, whether they are passed by position
or by name: one that cannot succeed is refused in the caller's process with a validation_error
naming the field, and never reaches a queue.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from connectors.context import validate_ctx
from connectors.errors import ConnectorError
from emp_tasks import budgets, limits, webhook_delivery, webhooks
from emp_tasks.celery_app import app
from emp_tasks.config import ServiceSpec, connector_class, services
from emp_tasks.job_types import prepare_payload
from emp_tasks.runner import run_job

__all__ = ["TASKS", "JobTask", "job_arguments", "task_for"]

_PARAMETERS = ("payload", "ctx", "metadata")  # the order of every job task's arguments


class JobTask(Task):  # type: ignore[misc]
    """A service's job task: validates payloads at enqueue time."""

    spec: ServiceSpec

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        payload, ctx = job_arguments(args, kwargs)
        # A named Glif workflow is resolved to validate it; the message keeps the name.
        connector_class(self.spec).validate_payload(prepare_payload(self.spec.name, payload))
        validate_ctx(ctx, service=self.spec.name)
        if not options.get("retries"):  # a Celery retry re-enters here, in the worker
            webhooks.check_submit(ctx)  # URL (SSRF rules) and EMP_WEBHOOK_SECRET, at submit
        if not options.get("retries"):  # a Celery retry is checked by the worker instead
            budgets.refuse_over_budget(self.app, self.spec.name, ctx)  # refused: nothing queued
        return super().apply_async(args, kwargs, **options)


def job_arguments(args: Any, kwargs: Any) -> tuple[Any, Any]:
    """The `(payload, ctx)` of a task call, whether each was passed by position or by name."""
    named = {**dict(zip(_PARAMETERS, args or (), strict=False)), **(kwargs or {})}
    return named.get("payload"), named.get("ctx")


def _make_task(spec: ServiceSpec, celery_app: Celery = app) -> JobTask:
    def run(
        self: JobTask,
        payload: dict[str, Any],
        ctx: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return run_job(self, spec, payload, ctx, metadata)

    run.__name__ = run.__qualname__ = f"run_{spec.name}"
    run.__doc__ = f"Run a {spec.name} job: {spec.description}"
    task: JobTask = celery_app.task(
        name=spec.task_name,
        bind=True,
        base=JobTask,
        max_retries=None,  # bounded by retry_decision, not by Celery's counter
        throws=(ConnectorError,),  # expected failures: recorded, logged without a traceback
        # Enforced by prefork pools; the threads pool ignores them, and the connectors' own
        # timeouts and deadlines (from the same timeout_seconds) bound the job there.
        time_limit=limits.time_limit(spec),
        soft_time_limit=limits.soft_time_limit(spec),
        spec=spec,
    )(run)
    return task


_ = webhook_delivery  # registers `emp.webhook`, the webhooks queue's task, on every worker
TASKS: dict[str, JobTask] = {name: _make_task(spec) for name, spec in services().items()}
globals().update(TASKS)


def task_for(service: str) -> JobTask:
    """The task for a service name (no aliases: see emp_tasks.client.submit)."""
    return TASKS[service]


def __getattr__(name: str) -> JobTask:
    try:
        return TASKS[name]
    except KeyError:
        raise AttributeError(f"no task for service {name!r}") from None
