"""What a job task does: validate, run the connector, and turn its outcome into Celery's.

The only two outcomes are a returned result (SUCCESS, `complete_job`) or a raised ConnectorError
(FAILURE, `fail_job`) - or a Celery retry in between (`retry_job`), decided by `retry_decision`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn, Protocol

from celery import Task, current_app, signals

import celeryconfig
from connectors.base import BaseConnector
from connectors.classify import error_from_exception
from connectors.context import validate_ctx
from connectors.errors import ConnectorError
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol import HTTP_MODES
from connectors.protocol.gate import deferral
from connectors.protocol.sessions import size_pool
from emp_tasks import (
    budgets,
    callgate,
    deliveries,
    journal,
    metrics,
    outcomes,
    queues,
    timers,
    waits,
    webhooks,
    worker,
)
from emp_tasks import events as ev
from emp_tasks.config import ServiceSpec, connector_class, services
from emp_tasks.event_sender import sender_for
from emp_tasks.job_types import prepare_payload
from emp_tasks.retry import RetryDecision, RetryPolicy, retry_decision
from emp_tasks.state_batch import state_batch

__all__ = [
    "Cancellable",
    "JobEvents",
    "TimerFactory",
    "final_error",
    "get_connector",
    "policy_for",
    "run_job",
    "start_timer",
]

log = logging.getLogger(__name__)
_connectors: dict[str, BaseConnector[Any]] = {}
_lock = threading.Lock()


class Cancellable(Protocol):
    """A started timer that can still be called off."""

    def cancel(self) -> None: ...


# Starts `callback` after `delay` seconds and returns the handle to cancel it.
TimerFactory = Callable[[float, Callable[[], None]], Cancellable]


def start_timer(delay: float, callback: Callable[[], None]) -> Cancellable:
    """`callback` after `delay` on the process's one daemon timer thread (not a thread a job)."""
    return timers.schedule(delay, callback)


def policy_for(spec: ServiceSpec) -> RetryPolicy:
    return RetryPolicy(max_retries=spec.retry_attempts, base_delay=spec.retry_delay_seconds)


def get_connector(spec: ServiceSpec) -> BaseConnector[Any]:
    """One connector per service per worker process (its HTTP session is a keep-alive pool)."""
    with _lock:
        if spec.name not in _connectors:
            cls = connector_class(spec)
            kwargs: dict[str, Any] = {}
            if issubclass(cls, HTTP_MODES):  # each builds an HttpClient that reports its calls
                kwargs["on_call"] = partial(metrics.observe_call, spec.name)
            connector = cls(**kwargs)
            if isinstance(connector, HTTP_MODES):  # its paid calls pass the rate limit, breaker
                gate = callgate.process_gate(current_app, services())
                connector.client = connector.client.with_gate(gate)
                # Every slot of the worker shares this connector's keep-alive pool.
                size_pool(connector.client.session, max(10, worker.slots() or spec.concurrency))
            _connectors[spec.name] = connector
        return _connectors[spec.name]


class JobEvents:
    """Sends one job's events and progress state from inside its task.

    Events carry the job id explicitly (not through Celery's thread-local request), because a
    deferred progress report is sent from a timer thread.
    """

    def __init__(
        self,
        task: Task,
        service: str,
        job_id: str,
        attempt: int,
        throttle: ev.ProgressThrottle | None = None,
        timer: TimerFactory = start_timer,
        webhook: webhooks.JobWebhook | None = None,
    ) -> None:
        self.task = task
        self.service = service
        self.job_id = job_id
        self.attempt = attempt
        self.hostname = task.request.hostname
        self._events = sender_for(task.app)  # one kept dispatcher per process
        self.throttle = throttle or ev.progress_throttle()
        self._lock = threading.Lock()
        self._start_timer = timer
        self._pending: JobProgress | None = None
        self._timer: Cancellable | None = None
        self._closed = False
        self.webhook = webhook or webhooks.JobWebhook(task.app, job_id, attempt, None)

    def send(self, name: str, fields: dict[str, Any], result: dict[str, Any] | None = None) -> None:
        try:
            self._events.send(self.hostname, ev.EVENT_PREFIX + name, uuid=self.job_id, **fields)
        except Exception:  # an event lost must not change the job's outcome
            log.exception("could not send %s for %s", name, self.job_id)
        # Only enqueued here (never raises, never waits on the receiver): emp_tasks.webhooks.
        self.webhook.notify(name, fields, result)

    def progress(self, progress: JobProgress) -> None:
        with self._lock:
            if self._closed or self.throttle.decide(progress.progress) == "drop":
                return
            self._pending = progress  # the newest report replaces one still waiting
            if self._timer is None:
                self._timer = self._start_timer(self.throttle.defer_for(), self._flush)

    def _flush(self) -> None:
        with self._lock:  # held while sending, so close() cannot overtake a late report
            self._timer = None
            if self._closed or self._pending is None:
                return
            pending, self._pending = self._pending, None
            self.throttle.mark_sent()
            self._emit(pending)

    def _emit(self, progress: JobProgress) -> None:
        fields = ev.progress_fields(self.service, progress, self.attempt + 1)
        try:  # never a 100 % report: the throttle leaves that to complete_job
            # On the timer thread, stored at the tick's end with the tick's other reports.
            state_batch().store(self.task, self.job_id, "PROGRESS", fields)
        except Exception:
            log.exception("could not store progress for %s", self.job_id)
        self.send("update_job_progress", fields)

    def close(self) -> None:
        """No progress after this: the job's outcome event comes next."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        state_batch().discard(self.job_id)  # a report kept for the tick's end is overtaken


def _job(task: Task, spec: ServiceSpec, payload: Any, ctx: Any, metadata: Any) -> JobData:
    """The job, its payload validated here once and carried to the connector's hooks."""
    payload = prepare_payload(spec.name, payload)  # a named Glif workflow, with this env
    validated = connector_class(spec).validate_payload(payload)
    validate_ctx(ctx, service=spec.name)
    job = JobData(
        id=str(task.request.id),
        type=spec.name,
        payload=dict(payload),
        ctx=ctx,
        metadata={
            **(metadata or {}),
            "attempt": waits.attempt_of(task.request.retries, metadata) + 1,
        },
    )
    fresh = not task.request.retries and not _redelivered(task)
    kept = journal.journal_for(task.app, job.id, celeryconfig.VAR_DIR / "journal", fresh=fresh)
    return job.with_validated(validated).with_journal(kept)


def run_job(
    task: Task, spec: ServiceSpec, payload: Any, ctx: Any = None, metadata: Any = None
) -> dict[str, Any]:
    """The body of every `emp.<service>` task."""
    attempt = waits.attempt_of(task.request.retries, metadata)  # a wait is not an attempt
    job_id = str(task.request.id)
    webhook = webhooks.JobWebhook.for_job(task.app, job_id, attempt, ctx)
    events = JobEvents(task, spec.name, job_id, attempt, webhook=webhook)
    began = time.monotonic()
    outcomes.started(spec.name)
    try:
        _refuse_poison(task, spec, events.job_id, int(task.request.retries or 0))
        job = _job(task, spec, payload, ctx, metadata)
        if not job.journal.provider_calls():  # a job already paid for is finished, not refused
            budgets.refuse_over_budget(task.app, spec.name, job.ctx)
        with callgate.job_scope(events.send, waits.reserved_of(metadata)):
            result = get_connector(spec).process_job(job, events.progress)
    except Exception as exc:  # process_job already converts; this covers setup failures
        error = error_from_exception(exc, spec.name)
        if deferral(error) and waits.waits_of(metadata) < waits.max_waits():
            _wait_for_provider(task, spec, error, (payload, ctx, metadata), events, began)
        # A billed failure (a refusal after generation) records and charges what it cost.
        error = budgets.settle_error(task.app, spec.name, ctx, error)
        _fail_or_retry(task, spec, error, events, began)
    budgets.settle_result(task.app, job, result)  # metadata["cost"], charged to ctx.tenant
    result.metadata["provider_calls"] = job.journal.provider_calls()
    return _complete(spec, result, events, began)


def _redelivered(task: Task) -> bool:
    """Whether the broker marked this message as delivered before (kombu's restore, RabbitMQ)."""
    delivery = getattr(task.request, "delivery_info", None) or {}
    return bool(delivery.get("redelivered"))


def _refuse_poison(task: Task, spec: ServiceSpec, job_id: str, attempt: int) -> None:
    """Fail a job whose worker was lost on every earlier delivery of this attempt.

    Only a message the broker marks as redelivered is counted: a first delivery is the first
    whatever the counter says, so the common case costs no round trip. The key counts the
    redeliveries; a graceful requeue gives one back either way.
    """
    counter = deliveries.counter_for(task.app) if _redelivered(task) else None
    if counter is None:
        return
    try:
        seen = counter.count(job_id, attempt) + 1  # and the first delivery
    except Exception:  # counting is a guard; a Redis hiccup must not fail the job itself
        log.warning("could not count the deliveries of %s", job_id, exc_info=True)
        return
    limit = queues.delivery_limit()
    if deliveries.is_poison(seen, limit):
        raise deliveries.poison_error(job_id, seen, limit, spec.name)


def _complete(
    spec: ServiceSpec, result: JobResult, events: JobEvents, began: float
) -> dict[str, Any]:
    events.close()
    attempts = events.attempt + 1
    result.metadata["attempts"] = attempts
    record = result.model_dump(mode="json")
    events.send(
        "complete_job",
        ev.complete_fields(spec.name, events.job_id, attempts, result.processing_time_ms),
        result=record,
    )
    _ended(spec, "completed", events, began, metadata=result.metadata)
    return record


def _ended(
    spec: ServiceSpec,
    outcome: outcomes.Outcome,
    events: JobEvents,
    began: float,
    **details: Any,
) -> None:
    duration_ms = round((time.monotonic() - began) * 1000)
    outcomes.ended(
        spec.name,
        outcome,
        job_id=events.job_id,
        attempt=events.attempt + 1,
        duration_ms=duration_ms,
        **details,
    )


def _fail_or_retry(
    task: Task, spec: ServiceSpec, error: ConnectorError, events: JobEvents, began: float
) -> NoReturn:
    """Raise Celery's retry for `error`, or `error` itself when the job fails for good."""
    events.close()
    attempt = events.attempt
    decision = retry_decision(error, attempt, policy_for(spec))
    error = final_error(error, spec.name, attempt + 1, decision)
    if decision.countdown is not None:
        countdown = queues.broker_countdown(decision.countdown, str(task.app.conf.broker_url))
        events.send(
            "retry_job", ev.retry_fields(spec.name, events.job_id, error, attempt + 1, countdown)
        )
        _ended(spec, "retried", events, began, error=error, again_in=countdown)
        # Celery's own retry: a new message with the same id, delivered after `countdown`.
        # max_retries=None because retry_decision is the one place that bounds attempts.
        raise task.retry(exc=error, countdown=countdown, max_retries=None)
    events.send(
        "fail_job", ev.fail_fields(spec.name, events.job_id, error, attempt + 1, decision.reason)
    )
    _ended(spec, "failed", events, began, error=error)
    raise error


def _wait_for_provider(
    task: Task,
    spec: ServiceSpec,
    error: ConnectorError,
    job_args: tuple[Any, Any, Any],
    events: JobEvents,
    began: float,
) -> NoReturn:
    """Re-queue a job whose call the gate deferred: a wait (`wait_job`), not a retry.

    The worker slot is given back at once; the message carries the wait count (attempts are
    `retries - waits`, see emp_tasks.waits) and the slot the limiter reserved, if any.
    """
    events.close()
    payload, ctx, metadata = job_args
    meta = waits.wait_metadata(metadata, error)
    seconds = waits.countdown(error)
    fields = waits.wait_fields(
        spec.name, events.job_id, error, meta[waits.WAITS], events.attempt + 1, seconds
    )
    events.send("wait_job", fields)
    metrics.JOB_WAITS.labels(spec.name, fields["reason"]).inc()
    _ended(spec, "waited", events, began, again_in=seconds)
    kwargs = {"ctx": ctx, "metadata": meta}
    raise task.retry(args=[payload], kwargs=kwargs, countdown=seconds, max_retries=None)


def final_error(
    error: ConnectorError, service: str, attempts: int, decision: RetryDecision
) -> ConnectorError:
    """The error as the job record keeps it, built once: service, and why it stopped if it did."""
    if decision.countdown is not None:
        return error if error.service else error.with_context(service=service)
    # Retryable but not retried (attempts spent, or a wait beyond the cap): say why in the
    # message itself, which is what the job record and `submit --json` show.
    note = f"not retried: {decision.reason}" if error.retryable else None
    return error.with_context(
        {"attempts": attempts, "gave_up": decision.reason},
        note=note,
        service=error.service or service,
    )


@signals.task_failure.connect  # type: ignore[untyped-decorator]
def _fail_job_for_failures_outside_the_task(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    """`fail_job` for failures the task body never saw (a hard time limit, a lost worker).

    Every failure the body sees is already a ConnectorError with its `fail_job` sent; these come
    from the worker's parent process under prefork, and must not end silently.
    """
    name = getattr(sender, "name", "") or ""
    if not name.startswith("emp.") or exception is None or isinstance(exception, ConnectorError):
        return
    if name == webhooks.DELIVERY_TASK:  # not a job: a delivery's failure is only logged
        return
    service = name.removeprefix("emp.")
    error = error_from_exception(exception, service)
    fields = ev.fail_fields(service, str(task_id), error, 0, "failed outside the task body")
    fields["attempts"] = None  # not known in the parent process
    try:
        with sender.app.events.default_dispatcher() as dispatcher:  # type: ignore[union-attr]
            dispatcher.send(ev.EVENT_PREFIX + "fail_job", uuid=task_id, **fields)
    except Exception:
        log.exception("could not send fail_job for %s", task_id)
    ctx = (kwargs or {}).get("ctx") or (args[1] if len(args or ()) > 1 else None)
    app = getattr(sender, "app", None)
    webhooks.JobWebhook.for_job(app, str(task_id), 0, ctx).notify("fail_job", fields)
