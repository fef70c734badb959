"""Interim states stored on the timer thread, many in one round trip.

A job's deferred progress report is sent from the process's timer thread (emp_tasks.timers),
and storing its PROGRESS state is a round trip of its own: at a thousand jobs in flight, py-spy
found about 8 % of the worker's time in them, one by one. A report made in a tick is kept here
until the tick's end, and then every state kept goes to the result backend together
(`store_many`: one pipeline per database on Redis). Reports made elsewhere (a test's timer, a
job's own thread), and on a backend without `store_many` (the embedded default's SQLite), are
stored at once.

The STARTED state Celery stores as a job begins is handed over too (`defer`, by
emp_tasks.redis_backend), and stored at the end of the next tick, at most `timers.GRID` later,
instead of by a round trip on the job's own thread: among hundreds of busy threads each such
round trip is a GIL release and a wait to get it back.

A state stored at once, and a job's outcome, drop the job's state still kept (`discard`), and
wait while it is being stored, so no older state lands after a newer one. A job never waits
for other jobs' states.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from emp_tasks import timers

__all__ = ["StateBatch", "state_batch"]

log = logging.getLogger(__name__)


class StateBatch:
    """Interim states kept for the timer thread, newest per job, stored a batch at a time."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._kept: dict[str, tuple[Any, str, Any, Any]] = {}  # backend, state, meta, request
        self._storing: set[str] = set()
        self._flush_due = False  # a flush is scheduled for the next tick

    def store(self, task: Any, job_id: str, state: str, meta: dict[str, Any]) -> None:
        """Store `state` for the job now, or at the tick's end when called in one."""
        if not timers.in_tick() or getattr(task.backend, "store_many", None) is None:
            task.update_state(task_id=job_id, state=state, meta=meta)
            return
        with self._changed:
            self._kept[job_id] = (task.backend, state, meta, task.request)
        timers.at_tick_end(self.flush)

    def defer(self, backend: Any, job_id: str, state: str, meta: Any, request: Any) -> None:
        """Store `state` at the next tick's end (`backend` has `store_many`), unless overtaken."""
        with self._changed:
            self._kept[job_id] = (backend, state, meta, request)
            if self._flush_due:
                return
            self._flush_due = True
        try:
            timers.schedule(0.0, self._flush_at_tick_end)
        except Exception:  # no timer thread (none could start): store on this thread instead
            log.warning("could not schedule a store of interim states", exc_info=True)
            self.flush()

    def _flush_at_tick_end(self) -> None:
        timers.at_tick_end(self.flush)  # with the tick's progress reports, one batch

    def discard(self, job_id: str) -> None:
        """A newer state of the job is being stored: drop its kept one, or wait for its store."""
        with self._changed:
            self._kept.pop(job_id, None)
            while job_id in self._storing:
                self._changed.wait()

    def flush(self) -> None:
        """Store every kept state, one batch per result database."""
        with self._changed:
            kept, self._kept = self._kept, {}
            self._storing = set(kept)
            self._flush_due = False
        try:
            by_database: dict[object, tuple[Any, list[tuple[str, Any, str, Any]]]] = {}
            for job_id, (backend, state, meta, request) in kept.items():
                entry = by_database.setdefault(_database(backend), (backend, []))
                entry[1].append((job_id, meta, state, request))
            for backend, items in by_database.values():
                try:
                    backend.store_many(items)
                except Exception:  # an interim state lost must not change the job's outcome
                    log.exception("could not store %d interim states", len(items))
        finally:
            with self._changed:
                self._storing = set()
                self._changed.notify_all()


def _database(backend: Any) -> object:
    """What a batch is grouped by: Celery keeps a backend per thread, one URL for them all."""
    url = getattr(backend, "url", None)
    return (type(backend), url) if isinstance(url, str) and url else id(backend)


_batch = StateBatch()


def state_batch() -> StateBatch:
    """The process's batch."""
    return _batch
