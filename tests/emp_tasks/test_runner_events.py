"""JobEvents: which progress reports reach the result backend and the event stream, in order.

Timers are fakes fired by the test and the throttle's clock is a list, so nothing here sleeps.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from connectors.errors import ConnectorError
from connectors.models import JobProgress
from emp_tasks.events import ProgressThrottle
from emp_tasks.runner import JobEvents, start_timer
from emp_tasks.runner import _fail_job_for_failures_outside_the_task as outside_handler
from tests.emp_tasks.fakes import FakeTask, FakeTimers


def log(task: FakeTask) -> list[tuple[str, float | str]]:
    """Backend writes and events in the order they happened, as (state or event, value)."""
    return [
        (name, fields.get("progress", fields.get("failure_type", "-")))
        for name, fields in task.timeline
    ]


def job_events(
    task: FakeTask, timers: FakeTimers, now: list[float], first_after: float = 0.25
) -> JobEvents:
    throttle = ProgressThrottle(first_after=first_after, clock=lambda: now[0])
    return JobEvents(task, "glif", "job-1", 0, throttle=throttle, timer=timers)  # type: ignore[arg-type]


def report(events: JobEvents, pct: float) -> None:
    events.progress(JobProgress(job_id="job-1", progress=pct))


def test_a_fast_job_sends_no_progress_at_all() -> None:
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = job_events(task, timers, now)
    report(events, 10)
    report(events, 100)
    events.close()
    [timer] = timers.started
    assert timer.cancelled
    timer.fire_late()  # the deferred report must not go out after close, however late it fires
    assert log(task) == []


def test_a_deferred_first_report_is_sent_by_the_timer() -> None:
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = job_events(task, timers, now, first_after=0.05)
    report(events, 10)
    [timer] = timers.started
    assert timer.delay == 0.05
    now[0] = 0.05
    timer.fire()
    events.close()
    assert log(task) == [("PROGRESS", 10), ("update_job_progress", 10)]


def test_the_timer_waits_only_what_is_left_of_first_after() -> None:
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = job_events(task, timers, now, first_after=0.25)
    now[0] = 0.2
    report(events, 10)
    assert timers.started[0].delay == pytest.approx(0.05)


def test_the_latest_deferred_report_is_the_one_sent() -> None:
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = job_events(task, timers, now)
    report(events, 10)
    report(events, 20)  # still young: replaces the pending report, no second timer
    assert len(timers.started) == 1
    timers.started[0].fire()
    assert log(task) == [("PROGRESS", 20), ("update_job_progress", 20)]


def first_report_sent(task: FakeTask, timers: FakeTimers, now: list[float]) -> JobEvents:
    """A job whose first report (10 %) went out by its timer at 0.25 s."""
    events = job_events(task, timers, now)
    report(events, 10)
    now[0] = 0.25
    timers.started[0].fire()
    return events


def test_later_reports_wait_too_and_the_jobs_end_drops_the_one_it_overtakes() -> None:
    # A blocking call's 90 % "parsing" as it returns: complete_job comes a moment later.
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = first_report_sent(task, timers, now)
    now[0] = 5.0
    report(events, 90)
    second = timers.started[1]
    assert second.delay == pytest.approx(0.25)
    events.close()
    assert second.cancelled
    second.fire_late()
    assert log(task) == [("PROGRESS", 10), ("update_job_progress", 10)]


def test_reports_keep_coming_at_most_one_an_interval() -> None:
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = first_report_sent(task, timers, now)
    now[0] = 0.5
    report(events, 20)
    report(events, 30)  # replaces 20, on the same timer
    assert len(timers.started) == 2
    assert timers.started[1].delay == pytest.approx(0.75)  # 1 s after the last one sent
    now[0] = 1.25
    timers.started[1].fire()
    events.close()
    assert log(task) == [
        ("PROGRESS", 10),
        ("update_job_progress", 10),
        ("PROGRESS", 30),
        ("update_job_progress", 30),
    ]


def test_the_final_hundred_is_left_to_complete_job() -> None:
    # complete_job carries progress 100; a 100 % report would cost an event for nothing.
    task, timers, now = FakeTask(), FakeTimers(), [0.0]
    events = job_events(task, timers, now, first_after=0.0)
    report(events, 50)
    timers.started[0].fire()
    report(events, 100)
    events.close()
    assert len(timers.started) == 1
    assert log(task) == [("PROGRESS", 50), ("update_job_progress", 50)]


def test_the_default_timer_runs_the_callback_on_the_shared_daemon_thread() -> None:
    fired = threading.Event()
    ran_on: list[threading.Thread] = []
    start_timer(0.0, lambda: (ran_on.append(threading.current_thread()), fired.set()))
    assert fired.wait(timeout=5)
    assert ran_on[0].name == "emp-timers"
    assert ran_on[0].daemon  # a deferred report must not keep a stopping worker alive


class TimeLimitExceeded(Exception):
    """Stands in for billiard's TimeLimitExceeded (classified by class name)."""


def test_a_failure_the_task_never_saw_still_emits_fail_job() -> None:
    task = FakeTask()
    sender = SimpleNamespace(
        name="emp.glif",
        app=SimpleNamespace(events=SimpleNamespace(default_dispatcher=task.dispatcher)),
    )
    outside_handler(sender=sender, task_id="job-9", exception=TimeLimitExceeded("62s"))
    outside_handler(
        sender=sender,
        task_id="job-9",
        exception=ConnectorError("seen", failure_reason="job_failed"),
    )
    outside_handler(
        sender=SimpleNamespace(name="other.task"), task_id="x", exception=ValueError("x")
    )
    assert log(task) == [("fail_job", "timeout")]
    assert task.sent[0].fields["attempts"] is None  # not known in the parent process
