"""Graceful stop: SIGTERM lets running jobs finish for up to a timeout, then requeues the rest.

Celery's warm shutdown (SIGTERM) waits for running jobs without any bound, so an orchestrator's
SIGKILL ends it and the jobs sit unacked until the broker's visibility timeout (minutes). Celery's
own soft shutdown (`REMAP_SIGTERM=SIGQUIT` + `worker_soft_shutdown_timeout`) is bounded, but it
sleeps the whole timeout even when the jobs finish in a second, and under the threads pool it
ends in "does not implement kill_job". So the warm shutdown is kept and watched instead:

- a job that finishes within `EMP_SOFT_SHUTDOWN_TIMEOUT` (default 60 s) is acked as usual and the
  worker exits at once - nothing is lost and nothing is paid twice;
- a job still running then is rejected with `requeue=True` (back on its queue, for another
  worker) and the process exits, so it cannot also finish here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from celery import signals

__all__ = ["ActiveRequest", "wait_for_jobs"]

log = logging.getLogger(__name__)
_consumer: Any = None


class ActiveRequest(Protocol):
    """What the watchdog needs of a running Celery request."""

    id: str
    acknowledged: bool


def wait_for_jobs(
    running: Callable[[], Iterable[ActiveRequest]],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ActiveRequest]:
    """Wait up to `timeout` for running jobs to be acked; return those still unacked."""
    deadline = clock() + timeout
    while True:
        left = [req for req in running() if not req.acknowledged]
        if not left or clock() >= deadline:
            return left
        sleep(min(0.1, max(0.0, deadline - clock())))


def _requeue(request: Any) -> None:
    # Straight on the message: Celery's own Request.reject() only schedules the reject on the
    # worker's event loop, which is shutting down and would never run it.
    request.message.reject(requeue=True)
    request.acknowledged = True  # the job's thread must not ack it after this
    _give_back_delivery(request)


def _give_back_delivery(request: Any) -> None:
    # Put back, not lost: this delivery must not count towards the job's poison limit.
    from emp_tasks import deliveries
    from emp_tasks.celery_app import app

    counter = deliveries.counter_for(app)
    if counter is not None:
        retries = int((getattr(request, "request_dict", None) or {}).get("retries") or 0)
        with contextlib.suppress(Exception):
            counter.give_back(request.id, retries)


def _running() -> list[ActiveRequest]:
    from celery.worker import state

    return list(state.active_requests)


def _watch(timeout: float) -> None:
    left = wait_for_jobs(_running, timeout)
    if not left:
        return  # Celery's warm shutdown ends the worker normally
    for request in left:
        _requeue(request)
        log.warning(
            "requeued job %s: still running after the %.0f s soft-shutdown timeout",
            request.id,
            timeout,
            extra={"job_id": request.id, "outcome": "requeued"},
        )
    pool = getattr(_consumer, "pool", None)
    if (
        pool is not None
        and hasattr(pool, "terminate")
        and pool.__class__.__module__.endswith("prefork")
    ):
        pool.terminate()  # the jobs' child processes must not finish what was requeued
    _flush_acks()  # the jobs that did finish: their acks the loop still keeps
    logging.shutdown()
    os._exit(0)  # threads and greenlets cannot be stopped any other way


def _flush_acks() -> None:
    transport = getattr(getattr(_consumer, "connection", None), "transport", None)
    flush = getattr(transport, "flush_acks", None)
    if flush is not None:
        with contextlib.suppress(Exception):
            flush()


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _remember_consumer(sender: Any = None, **_: Any) -> None:
    global _consumer
    _consumer = sender


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _on_shutdown(how: str = "", **_: Any) -> None:
    from emp_tasks.celery_app import app

    timeout = float(app.conf.get("soft_shutdown_timeout") or 0)
    if how == "Warm" and timeout > 0:  # a cold stop (SIGQUIT) is Celery's own, at once
        _spawn(_watch, timeout)


def _spawn(target: Callable[[float], None], timeout: float) -> None:
    # Under gevent this handler runs in the hub's loop, where Thread.start() (which waits for
    # the thread to start) may not block: a greenlet is spawned instead.
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            import gevent

            gevent.spawn(target, timeout)
            return
    threading.Thread(target=target, args=(timeout,), daemon=True, name="soft-stop").start()
