"""Job webhooks, the job side: checked at submit, enqueued when a job event is sent.

A job asks for webhooks with `ctx.webhook = {"url": ..., "events": [...]}` (default events:
complete_job and fail_job); a worker with EMP_WEBHOOK_URL (and EMP_WEBHOOK_EVENTS) sends them for
jobs that do not. Each event the target wants becomes one message on the `webhooks` queue, for
the `emp.webhook` task (emp_tasks.webhook_delivery), which signs, posts and retries it. So a slow
or dead receiver holds a webhooks worker's slot, never a provider's, and nothing here can fail
or hold up the job: every error is logged and dropped.

The body is JSON: `type`, `timestamp`, `job_id`, `service`, `attempt`, `sequence` (per job,
increasing across attempts and workers), `status`, and the job record's fields - `result`,
`error` or `progress`. It never carries `ctx` (storage settings, the webhook itself) and every
registered secret is scrubbed from it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.errors import ConnectorError
from connectors.redact import scrub
from emp_tasks.webhook_policy import WebhookSettings, WebhookTarget, check_url, target_for
from emp_tasks.webhook_signing import new_message_id, secrets_from_env
from emp_tasks.webhook_store import store_for

__all__ = [
    "DELIVERY_TASK",
    "PROGRESS_INTERVAL_SECONDS",
    "QUEUE",
    "JobWebhook",
    "check_submit",
    "webhook_body",
]

log = logging.getLogger(__name__)
DELIVERY_TASK = "emp.webhook"
QUEUE = "webhooks"
PROGRESS_INTERVAL_SECONDS = 1.0
_ERROR_FIELDS = ("message", "failure_type", "failure_reason", "retryable", "status_code")
_PROGRESS_FIELDS = ("progress", "message", "current_step", "total_steps", "estimated_completion_ms")


def check_submit(ctx: Any, env: Mapping[str, str] | None = None) -> None:
    """Refuse, in the submitting process, a `ctx.webhook` that could never be delivered.

    Its shape, its URL (the SSRF rules, with this process's EMP_WEBHOOK_ALLOW_HOSTS) and that
    EMP_WEBHOOK_SECRET is configured here: whoever asks for signed webhooks holds the secret
    to verify them, and a job is not enqueued for deliveries nobody could verify.
    """
    if not isinstance(ctx, Mapping) or ctx.get("webhook") is None:
        return
    settings = WebhookSettings.from_env(env)
    target = target_for(ctx, settings)
    secrets_from_env(env)
    if target is not None:
        check_url(target.url, settings)


def _status_fields(event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    error = {key: fields.get(key) for key in _ERROR_FIELDS}
    if event == "complete_job":
        keep = ("attempts", "processing_time_ms")
        return {"status": "completed", **{key: fields.get(key) for key in keep}}
    if event == "fail_job":
        extra = {"attempts": fields.get("attempts"), "reason": fields.get("reason")}
        return {"status": "failed", **extra, "error": error}
    if event == "retry_job":
        error["retryable"], error["retry_after"] = True, fields.get("retry_after")
        return {"status": "retrying", "countdown": fields.get("countdown"), "error": error}
    progress = {key: fields.get(key) for key in _PROGRESS_FIELDS}
    return {"status": "running", "progress": progress}


def webhook_body(
    event: str,
    fields: Mapping[str, Any],
    *,
    sequence: int,
    attempt: int,
    now: datetime,
    result: Mapping[str, Any] | None = None,
) -> str:
    """The JSON body of one event's webhook, secrets scrubbed (the exact text that is signed)."""
    body: dict[str, Any] = {
        "type": event,
        "timestamp": now.astimezone(UTC).isoformat(),
        "job_id": fields.get("job_id"),
        "service": fields.get("service"),
        "attempt": attempt,
        "sequence": sequence,
        **_status_fields(event, fields),
    }
    if result is not None:
        body["result"] = dict(result)
    return scrub(json.dumps(body, separators=(",", ":"), default=str))


class JobWebhook:
    """Enqueues one job attempt's webhook deliveries; never raises, never waits on a receiver."""

    def __init__(
        self,
        app: Any,
        job_id: str,
        attempt: int,
        target: WebhookTarget | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.job_id, self.attempt, self.target = app, job_id, attempt, target
        self._clock = clock
        self._lock = threading.Lock()
        self._last_progress: float | None = None

    @classmethod
    def for_job(cls, app: Any, job_id: str, attempt: int, ctx: Any) -> JobWebhook:
        """The job's webhook from its `ctx` or EMP_WEBHOOK_URL; a bad one is logged, not fatal."""
        try:
            target = target_for(ctx, WebhookSettings.from_env())
        except ConnectorError as exc:
            log.warning("no webhooks for job %s: %s", job_id, exc.message)
            target = None
        return cls(app, job_id, attempt, target)

    def wants(self, event: str) -> bool:
        """Whether this event is sent now: wanted by the target, progress at most once a second."""
        if self.target is None or event not in self.target.events:
            return False
        if event != "update_job_progress":
            return True
        with self._lock:
            now = self._clock()
            if self._last_progress is not None and (
                now - self._last_progress < PROGRESS_INTERVAL_SECONDS
            ):
                return False
            self._last_progress = now
            return True

    def notify(
        self, event: str, fields: Mapping[str, Any], result: Mapping[str, Any] | None = None
    ) -> None:
        """Enqueue the event's delivery if the target wants it; any failure is only logged."""
        try:
            if self.wants(event):
                self._enqueue(event, fields, result)
        except Exception:  # a webhook must never change or delay the job's outcome
            log.exception("could not enqueue the %s webhook of job %s", event, self.job_id)

    def _enqueue(
        self, event: str, fields: Mapping[str, Any], result: Mapping[str, Any] | None
    ) -> None:
        assert self.target is not None
        sequence = store_for(self.app).next_sequence(self.job_id)
        body = webhook_body(
            event,
            fields,
            sequence=sequence,
            attempt=self.attempt + 1,
            now=datetime.now(UTC),
            result=result,
        )
        message = {
            "id": new_message_id(),
            "job_id": self.job_id,
            "event": event,
            "url": self.target.url,
            "body": body,
        }
        self.app.send_task(DELIVERY_TASK, args=(message,), queue=QUEUE)
