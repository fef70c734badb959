"""`emp.webhook`: one signed POST of a job event to its receiver, on the `webhooks` queue.

Each attempt re-checks the URL (scheme and every resolved address, EMP_WEBHOOK_ALLOW_HOSTS),
connects through netguard's pinned session to the address that passed, signs the stored body
with a fresh timestamp (the `webhook-id` stays the message's), waits at most
EMP_WEBHOOK_TIMEOUT_SECONDS (15 s), records the attempt on the job (`webhook_deliveries`) and
lets `webhook_schedule.decide` say what follows. Retries are Celery's (`Task.retry`), the one
retry owner; a delivery that gives up is logged and recorded, and the task itself succeeds: the
message was handled, and the job it reports on is long finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from celery import Task

from connectors.assets.netguard import display_url, guarded_session
from connectors.errors import ConnectorError
from emp_tasks.celery_app import app
from emp_tasks.webhook_policy import WebhookSettings, check_url
from emp_tasks.webhook_schedule import DeliveryDecision, decide
from emp_tasks.webhook_signing import secrets_from_env, signed_headers
from emp_tasks.webhook_store import WebhookStore, store_for
from emp_tasks.webhooks import DELIVERY_TASK, QUEUE

__all__ = ["Answer", "Poster", "deliver", "deliver_once", "post"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What one POST got: the HTTP status and headers, or None and why there was no answer."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


Poster = Callable[[str, str, Mapping[str, str], WebhookSettings], Answer]


def post(url: str, body: str, headers: Mapping[str, str], settings: WebhookSettings) -> Answer:
    """POST `body` to `url` over a session pinned to checked addresses; never follows redirects."""
    timeout = (settings.policy().connect_timeout_seconds, settings.timeout_seconds)
    session = guarded_session(settings.policy())
    try:
        with session.post(
            url,
            data=body.encode(),
            headers=dict(headers),
            timeout=timeout,
            allow_redirects=False,
            stream=True,  # the answer's body is not read: only its status and headers count
        ) as response:
            return Answer(response.status_code, dict(response.headers))
    except ConnectorError as exc:  # the pinned connection refused the address it resolved
        return Answer(None, error=exc.message)
    except requests.RequestException as exc:  # its message quotes the URL: keep the type only
        return Answer(None, error=type(exc).__name__)
    finally:
        session.close()


def _record(store: WebhookStore, job_id: str, entry: dict[str, Any]) -> None:
    try:
        store.record(job_id, entry)
    except Exception:  # the record is for people; losing one must not lose the delivery
        log.warning("could not record a webhook delivery of job %s", job_id, exc_info=True)


def _precheck(url: str, settings: WebhookSettings) -> ConnectorError | None:
    """Why this attempt cannot be made (no secret, URL refused or unresolved now), or None."""
    try:
        secrets_from_env()
        check_url(url, settings, field="webhook url")
    except ConnectorError as exc:
        return exc
    return None


def deliver_once(
    message: Mapping[str, Any],
    attempt: int,
    store: WebhookStore,
    *,
    settings: WebhookSettings,
    poster: Poster = post,
    clock: Callable[[], float] = time.time,
) -> DeliveryDecision:
    """Make attempt `attempt` (1-based) of one message, record it, and decide what follows."""
    url, job_id = str(message["url"]), str(message["job_id"])
    entry: dict[str, Any] = {
        "event": message["event"],
        "webhook_id": message["id"],
        "attempt": attempt,
        "time": datetime.fromtimestamp(clock(), UTC).isoformat(),
        "url": display_url(url),
    }
    if store.is_gone(url):
        decision = DeliveryDecision("failed", reason="the receiver answered 410 Gone before")
        _record(
            store,
            job_id,
            {**entry, "status": None, "outcome": "skipped", "reason": decision.reason},
        )
        return decision
    problem = _precheck(url, settings)
    if problem is not None and not problem.retryable:
        _record(
            store, job_id, {**entry, "status": None, "outcome": "failed", "reason": problem.message}
        )
        return DeliveryDecision("failed", reason=problem.message)
    if problem is not None:  # a DNS failure: retried like a receiver that does not answer
        answer = Answer(None, error=problem.message)
    else:
        body = str(message["body"])
        headers = signed_headers(str(message["id"]), int(clock()), body, secrets_from_env())
        answer = poster(url, body, headers, settings)
    decision = decide(
        answer.status,
        attempt,
        delays=settings.retry_delays,
        max_attempts=settings.max_attempts,
        headers=answer.headers,
    )
    if decision.outcome == "gone":
        store.mark_gone(url)
    reason = "; ".join(part for part in (answer.error, decision.reason) if part)
    _record(
        store,
        job_id,
        {**entry, "status": answer.status, "outcome": decision.outcome, "reason": reason},
    )
    return decision


@app.task(name=DELIVERY_TASK, bind=True, max_retries=None, ignore_result=True, queue=QUEUE)  # type: ignore[untyped-decorator]
def deliver(self: Task, message: dict[str, Any]) -> str:
    """Deliver one job event's webhook; retried by Celery on the schedule."""
    attempt = int(self.request.retries or 0) + 1
    decision = deliver_once(
        message, attempt, store_for(self.app), settings=WebhookSettings.from_env()
    )
    log.info(
        "webhook %s %s of job %s, attempt %d: %s %s",
        message.get("event"),
        message.get("id"),
        message.get("job_id"),
        attempt,
        decision.outcome,
        decision.reason,
    )
    if decision.outcome == "retrying":
        # max_retries=None: webhook_schedule.decide bounds the attempts (EMP_WEBHOOK_MAX_ATTEMPTS).
        raise self.retry(countdown=decision.countdown, max_retries=None)
    return decision.outcome
