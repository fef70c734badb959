"""Redis recovery: a killed worker's job runs again soon; a live long job is delivered once.

The visibility timeout is made short here (EMP_VISIBILITY_TIMEOUT=6 s) so both properties show
in seconds: a job longer than the timeout still runs once, because its worker keeps extending
it; a job whose worker is killed comes back within the timeout plus kombu's sweep.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import emp_tasks
from tests.integration.helpers import finish
from tests.integration.processes import RedisServer, WorkerProcess
from tests.integration.test_worker_command import start_worker

pytestmark = pytest.mark.integration

SHORT = {"EMP_VISIBILITY_TIMEOUT": "6"}


def deliveries(worker: WorkerProcess, job_id: str) -> int:
    return sum(1 for line in worker.text().splitlines() if f"[{job_id}] received" in line)


def test_a_live_job_longer_than_the_visibility_timeout_is_delivered_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    first = start_worker(tmp_path, SHORT, "--service", "mock", name="first").start()
    second = start_worker(tmp_path, SHORT, "--service", "mock", name="second").start()
    try:
        job = emp_tasks.submit("mock", {"delay_ms": 15_000, "steps": 5})  # 2.5 timeouts
        record = finish(job, timeout=60)
    finally:
        first.stop(), second.stop()
    assert record["status"] == "completed"
    assert deliveries(first, job.id) + deliveries(second, job.id) == 1


def test_a_killed_workers_job_runs_again_on_a_live_worker_within_a_minute(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    doomed = start_worker(tmp_path, SHORT, "--service", "mock", name="doomed").start()
    job = emp_tasks.submit("mock", {"delay_ms": 3_000})
    deadline = time.monotonic() + 20
    while deliveries(doomed, job.id) == 0:
        assert time.monotonic() < deadline, "the first worker never took the job"
        time.sleep(0.05)
    assert doomed.proc is not None
    os.kill(doomed.proc.pid, signal.SIGKILL)
    doomed.proc.wait()
    killed_at = time.monotonic()
    survivor = start_worker(tmp_path, SHORT, "--service", "mock", name="survivor").start()
    try:
        record = finish(job, timeout=60)
    finally:
        survivor.stop()
    recovered_in = time.monotonic() - killed_at
    print(f"recovered {recovered_in:.1f} s after kill -9 (visibility timeout 6 s)")
    assert record["status"] == "completed"
    assert deliveries(survivor, job.id) == 1
    assert recovered_in < 60
