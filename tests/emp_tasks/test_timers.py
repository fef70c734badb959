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


def test_due_times_are_rounded_up_to_the_grid() -> None:
    now = [10.01]
    scheduler = Scheduler(clock=lambda: now[0], grid=0.05)
    scheduler._thread = threading.current_thread()  # no thread: the heap is what is tested
    scheduler.call_later(0.25, lambda: None)
    scheduler.call_later(0.26, lambda: None)
    scheduler.call_later(0.30, lambda: None)
    assert sorted(round(due, 6) for due, _, _ in scheduler._heap) == [10.3, 10.3, 10.35]


def test_one_tick_runs_every_callback_due_then_its_tick_end_callbacks_once() -> None:
    scheduler = Scheduler(clock=lambda: 1.0, grid=0.5)  # a frozen clock on the grid
    seen: list[str] = []
    done = threading.Event()

    def report(name: str) -> None:
        seen.append(f"{name}:{scheduler.in_tick()}")
        scheduler.at_tick_end(end)

    def end() -> None:
        seen.append(f"end:{scheduler.in_tick()}")
        done.set()

    with scheduler._wakeup:  # the thread takes none before all three are in
        for name in ("a", "b", "c"):
            scheduler.call_later(0, lambda name=name: report(name))
    assert done.wait(timeout=5)
    assert seen == ["a:True", "b:True", "c:True", "end:False"]
    assert not scheduler.in_tick()  # not from another thread
