"""SIGTERM during a job: it finishes once within the soft-shutdown timeout, or is requeued."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

import emp_tasks
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_PORT
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.helpers import finish, provider_calls
from tests.integration.processes import RedisServer
from tests.integration.test_worker_command import start_worker

pytestmark = pytest.mark.integration


def wait_until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def job_calls(emulator: GlifEmulator) -> list[object]:
    """Calls that ran the job's workflow (not the worker's start-up health probe)."""
    return [c for c in provider_calls(emulator) if c.extra.get("workflow_id") == "sandbox-text"]


def test_sigterm_lets_a_running_job_finish_and_pays_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with GlifEmulator(tokens=(TOKEN,), latency=2.0) as slow:
        env = glif_env(slow, EMP_SOFT_SHUTDOWN_TIMEOUT="30")
        worker = start_worker(tmp_path, env, "--service", "glif").start()
        job = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
        wait_until(lambda: len(job_calls(slow)) >= 1)  # the provider call is in flight
        stopped_at = time.monotonic()
        code = worker.stop(timeout=60)
        took = time.monotonic() - stopped_at
        record = finish(job)
        calls = job_calls(slow)
    assert code == 0
    assert record["status"] == "completed"
    assert record["attempts"] == 1
    assert len(calls) == 1  # finished here, not requeued and paid again elsewhere
    assert took < 30, "the worker waited out the whole timeout instead of exiting when done"
    # Its ack reached Redis on the way out: nothing of it is left in `unacked` to come back.
    unacked = redis.Redis(port=REDIS_PORT).hvals("unacked")
    assert not any(job.id.encode() in value for value in unacked)


def test_sigterm_requeues_a_job_still_running_at_the_timeout(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = redis.Redis(port=REDIS_PORT)
    first = start_worker(
        tmp_path, {"EMP_SOFT_SHUTDOWN_TIMEOUT": "1"}, "--service", "mock", name="first"
    ).start()
    job = emp_tasks.submit("mock", {"delay_ms": 4000, "steps": 4})
    wait_until(lambda: emp_tasks.job_record(job.id)["status"] == "running")
    assert first.stop(timeout=30) == 0
    assert "requeued job " + job.id in first.text()
    assert client.llen("mock") == 1  # back on its queue, not stranded in `unacked`
    second = start_worker(tmp_path, {}, "--service", "mock", name="second").start()
    try:
        record = finish(job, timeout=30)
    finally:
        second.stop()
    assert record["status"] == "completed"
    assert job.id in second.text()
