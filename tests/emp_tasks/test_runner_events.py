"""JobEvents: which progress reports reach the result backend and the event stream, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from connectors.models import JobProgress
from emp_tasks.events import ProgressThrottle
from emp_tasks.runner import JobEvents


class FakeTask:
    """Records update_state calls and sent events like a Celery task would make them."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float | str]] = []
        self.lock = threading.Lock()
        self.request = SimpleNamespace(hostname="worker@test", id="job-1")
        self.app = SimpleNamespace(events=SimpleNamespace(default_dispatcher=self._dispatcher))

    @contextmanager
    def _dispatcher(self, hostname: str) -> Iterator[Any]:
        yield SimpleNamespace(send=self._send)

    def _send(self, event: str, uuid: str, **fields: Any) -> None:
        with self.lock:
            self.log.append(
                (
                    event.removeprefix("task-"),
                    fields.get("progress", fields.get("failure_type", "-")),
                )
            )

    def update_state(self, task_id: str, state: str, meta: dict[str, Any]) -> None:
        with self.lock:
            self.log.append((state, meta["progress"]))


def report(events: JobEvents, pct: float) -> None:
    events.progress(JobProgress(job_id="job-1", progress=pct))


def test_a_fast_job_sends_no_progress_at_all() -> None:
    task = FakeTask()
    events = JobEvents(task, "glif", "job-1", 0)  # type: ignore[arg-type]
    report(events, 10)
    report(events, 100)
    events.close()
    time.sleep(0.4)  # past first_after: the deferred report must not fire after close
    assert task.log == []


def test_a_deferred_first_report_is_sent_by_the_timer() -> None:
    task = FakeTask()
    events = JobEvents(
        task,
        "glif",
        "job-1",
        0,  # type: ignore[arg-type]
        throttle=ProgressThrottle(first_after=0.05),
    )
    report(events, 10)
    time.sleep(0.3)
    events.close()
    assert task.log == [("PROGRESS", 10), ("update_job_progress", 10)]


def test_a_newer_report_sent_directly_cancels_the_older_deferred_one() -> None:
    now = [0.0]
    task = FakeTask()
    throttle = ProgressThrottle(first_after=0.25, clock=lambda: now[0])
    events = JobEvents(task, "glif", "job-1", 0, throttle=throttle)  # type: ignore[arg-type]
    report(events, 10)  # deferred; its timer waits 0.25 s of real time
    now[0] = 0.3
    report(events, 60)  # due already: sent at once
    time.sleep(0.4)  # the timer has fired by now
    events.close()
    assert task.log == [("PROGRESS", 60), ("update_job_progress", 60)]


def test_the_final_hundred_is_an_event_without_a_backend_write() -> None:
    now = [0.0]
    task = FakeTask()
    throttle = ProgressThrottle(first_after=0.0, clock=lambda: now[0])
    events = JobEvents(task, "glif", "job-1", 0, throttle=throttle)  # type: ignore[arg-type]
    report(events, 50)
    report(events, 100)
    events.close()
    assert task.log == [("PROGRESS", 50), ("update_job_progress", 50), ("update_job_progress", 100)]


class TimeLimitExceeded(Exception):
    """Stands in for billiard's TimeLimitExceeded (classified by class name)."""


def test_a_failure_the_task_never_saw_still_emits_fail_job() -> None:
    from connectors.errors import ConnectorError
    from emp_tasks.runner import _fail_job_for_failures_outside_the_task as handler

    task = FakeTask()
    sender = SimpleNamespace(
        name="emp.glif",
        app=SimpleNamespace(
            events=SimpleNamespace(default_dispatcher=lambda: task._dispatcher("parent"))
        ),
    )
    handler(sender=sender, task_id="job-9", exception=TimeLimitExceeded("62s"))
    handler(
        sender=sender,
        task_id="job-9",
        exception=ConnectorError("seen", failure_reason="job_failed"),
    )
    handler(sender=SimpleNamespace(name="other.task"), task_id="x", exception=ValueError("x"))
    assert task.log == [("fail_job", "timeout")]
