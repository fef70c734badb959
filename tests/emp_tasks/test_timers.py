"""Scheduler: one thread runs every deferred callback, in due order, skipping cancelled ones."""

from __future__ import annotations

import threading

from emp_tasks.timers import Scheduler


def test_callbacks_run_in_due_order_not_in_scheduling_order() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    done = threading.Event()
    scheduler.call_later(0.2, lambda: (ran.append("late"), done.set()))
    scheduler.call_later(0.05, lambda: ran.append("early"))
    assert done.wait(timeout=5)
    assert ran == ["early", "late"]


def test_a_cancelled_callback_never_runs() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    done = threading.Event()
    scheduler.call_later(0.05, lambda: ran.append("cancelled")).cancel()
    scheduler.call_later(0.1, done.set)
    assert done.wait(timeout=5)
    assert ran == []


def test_a_failing_callback_does_not_stop_the_ones_after_it() -> None:
    scheduler = Scheduler()
    done = threading.Event()
    scheduler.call_later(0.0, lambda: 1 / 0)
    scheduler.call_later(0.05, done.set)
    assert done.wait(timeout=5)


def test_a_thousand_pending_callbacks_share_one_thread() -> None:
    scheduler = Scheduler()
    before = threading.active_count()
    entries = [scheduler.call_later(60, lambda: None) for _ in range(1000)]
    assert threading.active_count() <= before + 1
    assert scheduler.pending() == 1000
    for entry in entries:
        entry.cancel()
