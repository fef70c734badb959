"""One timer thread per process for deferred callbacks (a job's first progress report).

A `threading.Timer` per job is a thread started per job: at a thousand jobs in flight that is a
thousand threads created and torn down for a report most jobs never send. One daemon thread
with a heap of due times serves them all; a cancelled entry is skipped when it comes due. The
thread is started on first use, so a prefork child starts its own after the fork.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Scheduled", "Scheduler", "schedule"]

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

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()  # ties run in the order they were scheduled
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Scheduled:
        entry = Scheduled(callback)
        with self._wakeup:
            heapq.heappush(self._heap, (self._clock() + max(0.0, delay), next(self._order), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="emp-timers", daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return entry

    def pending(self) -> int:
        """How many callbacks are waiting (cancelled ones included until they come due)."""
        with self._wakeup:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._heap or self._heap[0][0] > self._clock():
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    self._wakeup.wait(wait)
                _, _, entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            try:
                entry.callback()
            except Exception:  # one failed callback must not stop the others
                log.exception("scheduled callback failed")


_scheduler = Scheduler()


def schedule(delay: float, callback: Callable[[], None]) -> Scheduled:
    """Run `callback` after `delay` seconds on the process's timer thread."""
    return _scheduler.call_later(delay, callback)
