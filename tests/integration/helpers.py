"""Shared helpers for integration tests: waiting for jobs, counting calls, collecting events."""

from __future__ import annotations

import threading
import time
from typing import Any

from celery.result import AsyncResult

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks.sandbox.server import CallRecord, EmulatorServer

__all__ = ["EventCollector", "failed", "finish", "progress_seen", "provider_calls"]


def provider_calls(emulator: EmulatorServer) -> list[CallRecord]:
    """The provider calls an emulator answered (not its file downloads)."""
    return [c for c in emulator.calls() if c.kind == "provider"]


def finish(result: AsyncResult, timeout: float = 30) -> dict[str, Any]:
    """Wait for a job to end and return its job record."""
    deadline = time.monotonic() + timeout
    while not result.ready():
        assert time.monotonic() < deadline, f"job {result.id} did not finish"
        time.sleep(0.05)
    record: dict[str, Any] = emp_tasks.job_record(result.id)
    return record


class EventCollector:
    """Collects job events from the broker in a background thread."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.receiver: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with emp_tasks.app.connection_for_read() as conn:
            self.receiver = emp_tasks.app.events.Receiver(conn, handlers={"*": self.events.append})
            self.ready.set()
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventCollector:
        self.thread.start()
        self.ready.wait(10)
        time.sleep(0.3)  # the receiver's queue is bound once capture() starts consuming
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.should_stop = True
        self.thread.join(5)

    def for_job(self, job_id: str) -> list[str]:
        """The event names seen for one job, in arrival order."""
        return [
            e["type"].removeprefix("task-")
            for e in self.events
            if e.get("uuid") == job_id or e.get("job_id") == job_id
        ]


def progress_seen(result: AsyncResult, timeout: float = 30) -> list[dict[str, Any]]:
    """Every PROGRESS state seen while the job runs, polled every 30 ms."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not result.ready():
        assert time.monotonic() < deadline, f"job {result.id} did not finish"
        # One read for state and info: two would race the job's end (PROGRESS, then its result).
        meta = result.backend.get_task_meta(result.id)
        if meta["status"] == "PROGRESS":
            seen.append(dict(meta["result"]))
        time.sleep(0.03)
    return seen


def failed(result: AsyncResult) -> tuple[ConnectorError, dict[str, Any]]:
    """The error and job record of a job that must fail."""
    record = finish(result)
    assert result.state == "FAILURE"
    assert isinstance(result.result, ConnectorError)
    return result.result, record
