"""One timer thread per process for deferred callbacks (a job's first progress report).

A `threading.Timer` per job is a thread started per job: at a thousand jobs in flight that is a
thousand threads created and torn down for a report most jobs never send. One daemon thread
with a heap of due times serves them all; a cancelled entry is skipped when it comes due. The
thread is started on first use, so a prefork child starts its own after the fork.

The thread runs in ticks: every callback due by then, then what they asked to run at the
tick's end. The process's due times are rounded up to a 50 ms grid, so the first progress
reports of the jobs started within 50 ms of each other fall due in one tick.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

__all__ = ["GRID", "Scheduled", "Scheduler", "at_tick_end", "in_tick", "schedule"]

log = logging.getLogger(__name__)


class Scheduled:
    """A callback waiting in a `Scheduler`; `cancel()` keeps it from running."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Runs callbacks at their due time on one daemon thread, in due-time order."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, grid: float = 0.0) -> None:
        self._clock = clock
        self._grid = grid
        self._ticking: int | None = None  # the thread id while due callbacks run
        self._tick_end: list[Callable[[], None]] = []
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()  # ties run in the order they were scheduled
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Scheduled:
        entry = Scheduled(callback)
        with self._wakeup:
            due = self._aligned(self._clock() + max(0.0, delay))
            heapq.heappush(self._heap, (due, next(self._order), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="emp-timers", daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return entry

    def _aligned(self, due: float) -> float:
        # Due times rounded up to the grid fall due together: one tick runs them all, and
        # what they store leaves in one round trip at the tick's end (emp_tasks.state_batch).
        return math.ceil(due / self._grid) * self._grid if self._grid else due

    def pending(self) -> int:
        """How many callbacks are waiting (cancelled ones included until they come due)."""
        with self._wakeup:
            return len(self._heap)

    def in_tick(self) -> bool:
        """Whether the caller is a callback this scheduler is running now."""
        return threading.get_ident() == self._ticking

    def at_tick_end(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the callbacks due now have run (once, however often asked)."""
        if callback not in self._tick_end:
            self._tick_end.append(callback)

    def _due(self) -> list[Scheduled]:
        """Waits for the first due callback; returns every one due by then, in order."""
        with self._wakeup:
            while not self._heap or self._heap[0][0] > self._clock():
                wait = self._heap[0][0] - self._clock() if self._heap else None
                self._wakeup.wait(wait)
            now, due = self._clock(), []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
            return due

    def _run(self) -> None:
        while True:
            due = self._due()
            self._ticking = threading.get_ident()
            try:
                for entry in due:
                    if not entry.cancelled:
                        self._call(entry.callback)
            finally:
                self._ticking = None
            ending, self._tick_end = self._tick_end, []
            for callback in ending:
                self._call(callback)

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # one failed callback must not stop the others
            log.exception("scheduled callback failed")


GRID = 0.05  # seconds: a callback runs at most this much after its delay
_scheduler = Scheduler(grid=GRID)


def schedule(delay: float, callback: Callable[[], None]) -> Scheduled:
    """Run `callback` after `delay` seconds (up to `GRID` more) on the process's timer thread."""
    return _scheduler.call_later(delay, callback)


def in_tick() -> bool:
    """Whether the caller runs as a callback of the process's timer thread."""
    return _scheduler.in_tick()


def at_tick_end(callback: Callable[[], None]) -> None:
    """Run `callback` on the timer thread once this tick's due callbacks have run."""
    _scheduler.at_tick_end(callback)
