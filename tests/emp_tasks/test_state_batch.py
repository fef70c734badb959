"""StateBatch: progress states made in a timer tick are stored together at its end."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from emp_tasks import state_batch as batch_module
from emp_tasks import timers
from emp_tasks.state_batch import StateBatch


class FakeBackend:
    """Records every batch; `slow` makes a store take that long (to race a discard)."""

    def __init__(self, slow: float = 0.0, fails: bool = False) -> None:
        self.batches: list[list[tuple[str, Any, str, Any]]] = []
        self.slow, self.fails = slow, fails
        self.storing = threading.Event()  # set once a store has begun

    def store_many(self, items: list[tuple[str, Any, str, Any]]) -> None:
        self.storing.set()
        time.sleep(self.slow)
        if self.fails:
            raise ConnectionError("redis gone")
        self.batches.append(list(items))


class OneByOneBackend:
    """A backend without `store_many` (the embedded default's SQL one)."""


class Task:
    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.request = object()
        self.updated: list[tuple[str, str, Any]] = []

    def update_state(self, task_id: str, state: str, meta: Any) -> None:
        self.updated.append((task_id, state, meta))


@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A tick under way: `in_tick` is True and tick-end callbacks are collected, not run."""
    ending: list[Any] = []
    monkeypatch.setattr(timers, "in_tick", lambda: True)
    monkeypatch.setattr(timers, "at_tick_end", lambda cb: cb not in ending and ending.append(cb))
    return ending


def test_outside_a_tick_a_state_is_stored_at_once() -> None:
    task = Task(FakeBackend())
    StateBatch().store(task, "job-1", "PROGRESS", {"progress": 10})
    assert task.updated == [("job-1", "PROGRESS", {"progress": 10})]


def test_a_ticks_states_leave_together_at_its_end_newest_per_job(ticking: list[Any]) -> None:
    backend = FakeBackend()
    batch = StateBatch()
    for job, progress in (("a", 10), ("b", 10), ("a", 20)):
        batch.store(Task(backend), job, "PROGRESS", {"progress": progress})
    assert backend.batches == []
    assert ticking == [batch.flush]  # asked for once
    batch.flush()
    [items] = backend.batches
    assert [(job_id, meta, state) for job_id, meta, state, _ in items] == [
        ("a", {"progress": 20}, "PROGRESS"),
        ("b", {"progress": 10}, "PROGRESS"),
    ]


def test_a_job_that_ended_drops_its_kept_state(ticking: list[Any]) -> None:
    backend = FakeBackend()
    batch = StateBatch()
    batch.store(Task(backend), "a", "PROGRESS", {"progress": 10})
    batch.store(Task(backend), "b", "PROGRESS", {"progress": 10})
    batch.discard("a")
    batch.flush()
    assert [item[0] for item in backend.batches[0]] == ["b"]


def _storing(batch: StateBatch, backend: FakeBackend, job_id: str) -> threading.Thread:
    """The job's state kept, and a flush of it under way on another thread."""
    batch.store(Task(backend), job_id, "PROGRESS", {"progress": 10})
    flushing = threading.Thread(target=batch.flush)
    flushing.start()
    assert backend.storing.wait(timeout=5)
    return flushing


def test_a_discard_waits_for_a_store_under_way(ticking: list[Any]) -> None:
    backend = FakeBackend(slow=0.3)
    batch = StateBatch()
    flushing = _storing(batch, backend, "a")
    batch.discard("a")  # the job's outcome comes after this: the PROGRESS is already stored
    assert len(backend.batches) == 1
    flushing.join()


def test_a_backend_without_store_many_stores_each_state_at_once(ticking: list[Any]) -> None:
    task = Task(OneByOneBackend())  # the embedded default's SQLite: nothing to batch
    batch = StateBatch()
    batch.store(task, "a", "PROGRESS", {"progress": 10})
    assert task.updated == [("a", "PROGRESS", {"progress": 10})]
    assert ticking == []


def test_a_job_that_ends_never_waits_for_other_jobs_states(ticking: list[Any]) -> None:
    backend = FakeBackend(slow=1.0)
    batch = StateBatch()
    flushing = _storing(batch, backend, "a")
    started = time.monotonic()
    batch.discard("b")  # not being stored: returns at once
    assert time.monotonic() - started < 0.5
    flushing.join()


def test_a_failed_store_is_logged_not_raised(
    ticking: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    batch = StateBatch()
    batch.store(Task(FakeBackend(fails=True)), "a", "PROGRESS", {"progress": 10})
    batch.flush()
    assert "could not store 1 interim states" in caplog.text


def test_reports_from_the_process_timer_thread_are_batched_at_the_ticks_end() -> None:
    backend = FakeBackend()
    batch = StateBatch()
    done = threading.Event()
    timers.schedule(
        0.05, lambda: [batch.store(Task(backend), job, "PROGRESS", {}) for job in "abc"]
    )
    timers.schedule(0.3, done.set)
    assert done.wait(timeout=5)
    assert [[item[0] for item in items] for items in backend.batches] == [["a", "b", "c"]]
    assert batch_module.state_batch() is batch_module.state_batch()


def test_a_deferred_state_is_stored_by_the_next_tick_with_the_others_of_its_time() -> None:
    backend = FakeBackend()
    batch = StateBatch()
    for job in ("a", "b"):
        batch.defer(backend, job, "STARTED", {"pid": 1}, request=None)
    deadline = time.monotonic() + 5
    while not backend.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [[(item[0], item[2]) for item in items] for items in backend.batches] == [
        [("a", "STARTED"), ("b", "STARTED")]
    ]


def test_a_deferred_state_overtaken_by_the_jobs_outcome_is_never_stored(
    ticking: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduled: list[Any] = []
    monkeypatch.setattr(timers, "schedule", lambda delay, cb: scheduled.append(cb))
    backend = FakeBackend()
    batch = StateBatch()
    batch.defer(backend, "a", "STARTED", {"pid": 1}, request=None)
    batch.defer(backend, "b", "STARTED", {"pid": 1}, request=None)
    [callback] = scheduled  # one tick asked for, for both
    callback()
    assert ticking == [batch.flush]  # at the tick's end, with its progress reports
    batch.discard("a")  # "a" ended first
    batch.flush()
    assert [item[0] for item in backend.batches[0]] == ["b"]


def test_a_later_report_replaces_a_deferred_state_of_the_same_job(
    ticking: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timers, "schedule", lambda delay, cb: None)
    backend = FakeBackend()
    batch = StateBatch()
    batch.defer(backend, "a", "STARTED", {"pid": 1}, request=None)
    batch.store(Task(backend), "a", "PROGRESS", {"progress": 10})
    batch.flush()
    assert [(item[0], item[2]) for item in backend.batches[0]] == [("a", "PROGRESS")]


class Backend(FakeBackend):
    """One of Celery's per-thread backends of one app: they share its URL."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


def test_states_of_one_database_go_in_one_batch_whichever_threads_backend_made_them(
    ticking: list[Any],
) -> None:
    first, second, other = Backend("redis://h/1"), Backend("redis://h/1"), Backend("redis://h/2")
    batch = StateBatch()
    batch.store(Task(first), "a", "PROGRESS", {})
    batch.store(Task(second), "b", "PROGRESS", {})
    batch.store(Task(other), "c", "PROGRESS", {})
    batch.flush()
    assert [[item[0] for item in items] for items in first.batches] == [["a", "b"]]
    assert second.batches == []
    assert [[item[0] for item in items] for items in other.batches] == [["c"]]


def test_a_timer_that_cannot_start_stores_the_state_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_thread(delay: float, callback: Any) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(timers, "schedule", no_thread)
    backend = FakeBackend()
    batch = StateBatch()
    batch.defer(backend, "a", "STARTED", {"pid": 1}, request=None)
    assert [item[0] for item in backend.batches[0]] == ["a"]
    assert "could not schedule" in caplog.text
    batch.defer(backend, "b", "STARTED", {"pid": 1}, request=None)  # and it tries again
    assert len(backend.batches) == 2
