"""The worker's task events go out in batches: one publish per `EMP_EVENT_FLUSH_INTERVAL`.

Celery buffers a worker's task events (`task-received`, `task-succeeded`, ...) and flushes the
buffer on the event loop's next turn; an event sent from a pool thread wakes the loop to do
it. Under load the buffer then holds one or two events a flush, and a job pays for two or three
publishes: measured at 200 jobs in flight, about 1.6 ms of the worker's 7.5 ms of CPU per job.

Here the first event after a flush schedules the next flush `interval` later, so every event
of that interval leaves in one `task.multi` publish, which Celery's receivers (Flower's, and
`emp-tasks events`) read as a list. The jobs' own events (emp_tasks.event_sender) join the same
buffer while the consumer is up, instead of a publish each. An event is seen up to `interval`
later; the consumer's stop flushes what is left, and a flush that fails while the broker is
down keeps its events for the reconnected consumer, as Celery's own does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from celery import bootsteps
from celery.events.event import group_from

from emp_tasks.events import seconds_setting

__all__ = ["EventBatching", "WorkerEvents", "current", "flush_interval"]

# A safety valve, not the batch size: Celery's default of 24 would flush from a pool thread
# before the interval ends at a few hundred jobs a second.
BUFFER_LIMIT = 2000

_current: WorkerEvents | None = None


def flush_interval(env: Mapping[str, str] | None = None) -> float:
    """EMP_EVENT_FLUSH_INTERVAL: seconds from 0 to 5 (default 0.1; 0 is Celery's behaviour)."""
    return seconds_setting(env, "EMP_EVENT_FLUSH_INTERVAL", 0.1, 5)


def current() -> WorkerEvents | None:
    """This process's live worker events, or None (no consumer here, or it is stopped)."""
    events = _current
    if events is None or events.pid != os.getpid():  # a forked pool child has no consumer
        return None
    return events


class WorkerEvents:
    """A consumer's event dispatcher, flushed on a timer instead of on every loop turn."""

    def __init__(self, hub: Any, dispatcher: Any, interval: float) -> None:
        self.hub = hub
        self.dispatcher = dispatcher
        self.interval = interval
        self.pid = os.getpid()
        self._lock = threading.RLock()  # dispatcher.send calls on_send_buffered under it
        self._live = True
        self._due = False
        dispatcher.on_send_buffered = self.on_send_buffered
        dispatcher.buffer_limit = BUFFER_LIMIT

    def send(self, hostname: str | None, type_: str, fields: Mapping[str, Any]) -> bool:
        """Buffer one event; False if this dispatcher cannot carry it (the caller sends it)."""
        dispatcher = self.dispatcher
        groups = dispatcher.groups
        with self._lock:  # so stop() cannot flush between this check and the append
            if not (self._live and dispatcher.enabled and hostname == dispatcher.hostname):
                return False
            if groups and group_from(type_) not in groups:  # events disabled remotely
                return False
            dispatcher.send(type_, **fields)
            return True

    def on_send_buffered(self) -> None:
        """Any thread: the first event after a flush asks the loop for the next one."""
        with self._lock:
            if self._due:
                return
            self._due = True
        self.hub.call_soon(self._schedule)  # wakes the loop once per interval, not per event

    def _schedule(self) -> None:
        # Once stopped (a warm shutdown lets running jobs finish), the hub's timers may no
        # longer fire: the events of the jobs still finishing go out on the next turn.
        if self.interval and self._live:
            self.hub.call_later(self.interval, self.flush)
        else:
            self.flush()

    def flush(self) -> None:
        """Publish what is buffered (on the loop's thread, or at stop)."""
        with self._lock:
            self._due = False
        self.dispatcher.flush()

    def stop(self) -> None:
        """No more events through here; what is buffered is published now.

        Celery's own events still come (a warm stop lets jobs finish; a lost broker restarts
        the consumer): each is published at once from then on, and one that fails waits in the
        dispatcher's outbound buffer, which Celery hands to the reconnected consumer's.
        """
        with self._lock:
            self._live = False
            self.dispatcher.buffer_limit = 1
        self.flush()


class EventBatching(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer step: batches the event dispatcher that Celery's Events step has just built."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.interval = flush_interval()
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        global _current
        dispatcher = getattr(parent, "event_dispatcher", None)
        # Celery buffers only with an event loop (not under gevent or eventlet), and only
        # the task group. The solo pool runs each job on the loop's own thread: the loop
        # would not turn, and a job's progress events would wait for its end.
        if parent.hub is None or dispatcher is None or _is_solo(parent):
            return
        if "task" not in (dispatcher.buffer_group or ()):
            return
        _current = WorkerEvents(parent.hub, dispatcher, self.interval)

    def stop(self, parent: Any) -> None:
        global _current
        events, _current = _current, None
        if events is not None and events.pid == os.getpid():
            events.stop()

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)


def _is_solo(parent: Any) -> bool:
    return type(getattr(parent, "pool", None)).__module__ == "celery.concurrency.solo"
