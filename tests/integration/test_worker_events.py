"""A real `emp-tasks worker` publishes its task and job events in batches, and none is lost.

The events are read off the broker's event channel with a plain Redis subscriber, so each
publish is seen as it was made.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

import emp_tasks
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_URL
from tests.integration.conftest import glif_env
from tests.integration.helpers import finish
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

BODY = {"workflow_id": "sandbox-text", "inputs": ["batch"]}


class Publishes:
    """Every event publish on the broker's event channel, in a background thread."""

    def __init__(self) -> None:
        self.bodies: list[list[dict[str, Any]]] = []
        self._pubsub = redis.Redis.from_url(REDIS_URL).pubsub()  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe("/0.celeryev/task.*")
        assert self._pubsub.get_message(timeout=5) is not None  # subscribed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                self.bodies.append(body if isinstance(body, list) else [body])

    def events(self, hostname: str) -> list[dict[str, Any]]:
        return [e for body in list(self.bodies) for e in body if e.get("hostname") == hostname]

    def wait_for(self, hostname: str, type_: str, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while sum(e["type"] == type_ for e in self.events(hostname)) < count:
            assert time.monotonic() < deadline, f"{type_}: not {count} in {timeout} s"
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()


@pytest.fixture
def publishes() -> Iterator[Publishes]:
    seen = Publishes()
    yield seen
    seen.close()


@contextmanager
def _worker(
    tmp: Path, emulator: GlifEmulator, prefix: str, latency: float
) -> Iterator[tuple[WorkerProcess, str]]:
    """`emp-tasks worker --service glif` with a name of its own, the emulator this slow."""
    name = f"{prefix}-{time.monotonic_ns()}@test"
    env = glif_env(
        emulator, EMP_BROKER_URL=REDIS_URL, EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1")
    )
    argv = [console_script("emp-tasks"), "worker", "--service", "glif", "--concurrency", "8"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=[*argv, "--name", name], cwd=tmp)
    worker.start()
    emulator.latency = latency
    try:
        yield worker, name
    finally:
        emulator.latency = 0.0
        worker.stop()


def test_a_workers_events_leave_in_few_publishes_with_every_jobs_events(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path: Path, publishes: Publishes
) -> None:
    # Long enough for each job's first progress report (0.25 s, on a 50 ms grid).
    with _worker(tmp_path, glif_emulator, "batch", latency=0.6) as (_, name):
        results = [emp_tasks.submit("glif", BODY) for _ in range(40)]
        for result in results:
            assert finish(result)["status"] == "completed"
        publishes.wait_for(name, "task-complete_job", 40)
        publishes.wait_for(name, "task-succeeded", 40)
    events = publishes.events(name)
    ids = {str(result.id) for result in results}
    for type_ in ("task-received", "task-started", "task-update_job_progress", "task-complete_job"):
        assert {e["uuid"] for e in events if e["type"] == type_} == ids, type_
    carrying = [body for body in publishes.bodies if any(e.get("hostname") == name for e in body)]
    # Celery's own flush on every loop turn made one publish per one or two events.
    assert len(carrying) * 4 <= len(events), (len(carrying), len(events))


def test_a_stopping_worker_publishes_the_events_of_the_jobs_it_lets_finish(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path: Path, publishes: Publishes
) -> None:
    with _worker(tmp_path, glif_emulator, "stop", latency=1.5) as (worker, name):
        results = [emp_tasks.submit("glif", BODY) for _ in range(8)]
        publishes.wait_for(name, "task-started", 8)
        assert worker.stop(timeout=30) == 0  # a warm stop: running jobs finish first
    for result in results:
        assert finish(result)["status"] == "completed"
    publishes.wait_for(name, "task-complete_job", 8, timeout=5)
    publishes.wait_for(name, "task-succeeded", 8, timeout=5)
