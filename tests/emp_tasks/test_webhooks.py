"""The job side of webhooks: checked at submit, enqueued from job events, never in the way."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TimeLimitExceeded

from connectors.errors import ConnectorError
from connectors.redact import register_secret
from emp_tasks.config import services
from emp_tasks.runner import _fail_job_for_failures_outside_the_task as outside_handler
from emp_tasks.tasks import JobTask, _make_task
from emp_tasks.webhook_policy import WebhookTarget
from emp_tasks.webhooks import DELIVERY_TASK, QUEUE, JobWebhook, check_submit, webhook_body

SECRET = "whsec_" + base64.b64encode(b"unit-test-webhook-key-0123456789").decode()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALL = ("complete_job", "fail_job", "update_job_progress", "retry_job")
FAIL_FIELDS = {
    "job_id": "j-1",
    "service": "mock",
    "status": "failed",
    "attempts": 2,
    "failure_type": "service_error",
    "failure_reason": "service_unavailable",
    "retryable": True,
    "status_code": 503,
    "message": "down",
    "reason": "attempts spent",
}


class FakeApp:
    """An app that records `send_task` calls (no backend: the per-process store)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def send_task(self, name: str, args: tuple[Any, ...], queue: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append({"name": name, "message": args[0], "queue": queue})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _webhook(app: FakeApp, events: tuple[str, ...] = ALL, clock: Clock | None = None) -> JobWebhook:
    target = WebhookTarget("https://example.com/h", events)
    return JobWebhook(app, f"job-{uuid.uuid4().hex}", 0, target, clock=clock or Clock())


def test_each_wanted_event_is_one_message_on_the_webhooks_queue_with_a_rising_sequence() -> None:
    app = FakeApp()
    hook = _webhook(app, ("retry_job", "fail_job"))
    hook.notify("retry_job", {**FAIL_FIELDS, "countdown": 1.0, "attempt": 1})
    hook.notify("complete_job", {"job_id": "j-1"})  # not wanted
    hook.notify("fail_job", FAIL_FIELDS)
    assert [(s["name"], s["queue"]) for s in app.sent] == [(DELIVERY_TASK, QUEUE)] * 2
    bodies = [json.loads(s["message"]["body"]) for s in app.sent]
    assert [(b["type"], b["sequence"]) for b in bodies] == [("retry_job", 1), ("fail_job", 2)]
    assert len({s["message"]["id"] for s in app.sent}) == 2


def test_progress_webhooks_are_sent_at_most_once_a_second() -> None:
    app, clock = FakeApp(), Clock()
    hook = _webhook(app, clock=clock)
    for step in range(5):  # a report every 0.4 s: only those at 0 s and 1.2 s go out
        hook.notify("update_job_progress", {"job_id": "j", "progress": step * 10})
        clock.now += 0.4
    sent = [json.loads(s["message"]["body"])["progress"]["progress"] for s in app.sent]
    assert sent == [0, 30]


def test_a_broker_that_refuses_the_delivery_is_logged_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = _webhook(FakeApp(fail=True))
    with caplog.at_level(logging.ERROR):
        hook.notify("fail_job", FAIL_FIELDS)
    assert "could not enqueue the fail_job webhook" in caplog.text


def test_a_bad_webhook_met_in_the_worker_means_no_webhooks_not_a_failed_job() -> None:
    hook = JobWebhook.for_job(FakeApp(), "j-2", 0, {"webhook": {"url": "x", "events": ["nope"]}})
    assert hook.target is None
    hook.notify("fail_job", FAIL_FIELDS)


@pytest.mark.parametrize(
    ("event", "fields", "expected"),
    [
        (
            "complete_job",
            {"job_id": "j-1", "service": "mock", "attempts": 1, "processing_time_ms": 5},
            {"status": "completed", "attempts": 1, "processing_time_ms": 5},
        ),
        ("fail_job", FAIL_FIELDS, {"status": "failed", "attempts": 2, "reason": "attempts spent"}),
        (
            "retry_job",
            {**FAIL_FIELDS, "countdown": 2.5, "retry_after": 2},
            {"status": "retrying", "countdown": 2.5},
        ),
        (
            "update_job_progress",
            {"job_id": "j-1", "service": "mock", "progress": 40, "message": "step"},
            {"status": "running"},
        ),
    ],
)
def test_the_body_carries_the_event_and_the_job_record_fields(
    event: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = json.loads(webhook_body(event, fields, sequence=3, attempt=2, now=NOW))
    assert body["type"] == event
    assert (body["job_id"], body["service"], body["attempt"], body["sequence"]) == (
        "j-1",
        "mock",
        2,
        3,
    )
    assert body["timestamp"] == "2026-01-01T00:00:00+00:00"
    assert expected.items() <= body.items()
    if event in ("fail_job", "retry_job"):
        assert body["error"]["failure_type"] == "service_error"
    assert "ctx" not in body


def test_a_registered_secret_never_reaches_a_body() -> None:
    register_secret("sk-leaked-provider-token-123")
    result = {"data": {"echo": "Incorrect API key sk-leaked-provider-token-123"}}
    fields = {"job_id": "j", "service": "mock"}
    text = webhook_body("complete_job", fields, sequence=1, attempt=1, now=NOW, result=result)
    assert "sk-leaked-provider-token-123" not in text
    assert json.loads(text)["result"]["data"]["echo"].endswith("[REDACTED]")


def test_submit_refuses_a_webhook_when_no_secret_is_configured() -> None:
    with pytest.raises(ConnectorError) as caught:
        check_submit({"webhook": {"url": "https://93.184.216.34/h"}}, env={})
    assert "EMP_WEBHOOK_SECRET is not set" in caught.value.message


def test_submit_refuses_a_loopback_receiver_outside_the_allow_list() -> None:
    env = {"EMP_WEBHOOK_SECRET": SECRET, "EMP_WEBHOOK_ALLOW_HOSTS": "localhost"}
    with pytest.raises(ConnectorError, match="is loopback"):
        check_submit({"webhook": {"url": "http://127.0.0.1:9/h"}}, env=env)
    allowed = {**env, "EMP_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    check_submit({"webhook": {"url": "http://127.0.0.1:9/h"}}, env=allowed)


def test_submit_without_a_webhook_needs_no_secret() -> None:
    check_submit(None, env={})
    check_submit({"bucket": "my-bucket"}, env={})


@pytest.fixture
def memory_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[JobTask]:
    """The mock task on an app with kombu's in-memory transport, no webhook secret here."""
    monkeypatch.delenv("EMP_WEBHOOK_SECRET", raising=False)
    app = Celery("test-webhooks", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex}"
    yield _make_task(services()["mock"], celery_app=app)
    app.close()


def test_a_job_asking_for_webhooks_is_refused_at_submit_without_the_secret(
    memory_task: JobTask,
) -> None:
    with pytest.raises(ConnectorError, match="EMP_WEBHOOK_SECRET"):
        memory_task.delay({"delay_ms": 0}, {"webhook": {"url": "https://93.184.216.34/h"}})


def test_a_celery_retry_in_a_worker_without_the_secret_is_not_refused(
    memory_task: JobTask,
) -> None:
    ctx = {"webhook": {"url": "https://93.184.216.34/h"}}
    assert memory_task.apply_async(({"delay_ms": 0}, ctx), retries=1).id


class EventsApp(FakeApp):
    """A FakeApp that also takes the events the failure handler sends."""

    def __init__(self) -> None:
        super().__init__()
        self.events = SimpleNamespace(default_dispatcher=self._dispatcher)
        self.event_names: list[str] = []

    @contextmanager
    def _dispatcher(self, **_: Any) -> Iterator[Any]:
        yield SimpleNamespace(send=lambda name, **fields: self.event_names.append(name))


def test_a_job_failed_outside_its_task_body_still_sends_its_fail_job_webhook() -> None:
    app = EventsApp()
    ctx = {"webhook": {"url": "https://93.184.216.34/h"}}
    sender = SimpleNamespace(name="emp.mock", app=app)
    outside_handler(
        sender=sender, task_id="job-limit", exception=TimeLimitExceeded(5), args=({}, ctx)
    )
    assert app.event_names == ["task-fail_job"]
    body = json.loads(app.sent[0]["message"]["body"])
    assert (body["type"], body["job_id"], body["error"]["failure_type"]) == (
        "fail_job",
        "job-limit",
        "timeout",
    )


def test_a_failed_delivery_task_is_not_reported_as_a_failed_job() -> None:
    app = EventsApp()
    sender = SimpleNamespace(name=DELIVERY_TASK, app=app)
    outside_handler(sender=sender, task_id="d-1", exception=ConnectionError("redis"), args=({},))
    assert (app.event_names, app.sent) == ([], [])
