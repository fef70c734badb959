"""The pools `emp-tasks worker` starts: gevent really runs calls concurrently, prefork scales.

Separate from test_worker_command.py, whose module-wide worker also consumes the mock queue.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

import emp_tasks
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import free_port
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.helpers import finish, provider_calls
from tests.integration.processes import RedisServer
from tests.integration.test_worker_command import metric, start_worker

pytestmark = pytest.mark.integration


def test_gevent_pool_runs_provider_calls_concurrently(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with GlifEmulator(tokens=(TOKEN,), latency=1.0) as slow:
        worker = start_worker(
            tmp_path, glif_env(slow), "--service", "glif", "--pool", "gevent", "--concurrency", "20"
        ).start()
        try:
            jobs = [
                emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": [str(i)]})
                for i in range(20)
            ]
            assert all(finish(job, timeout=60)["status"] == "completed" for job in jobs)
            starts = sorted(call.monotonic for call in provider_calls(slow))
        finally:
            worker.stop()
    # Each call takes 1 s at the emulator; cooperative sockets let many be in flight at once.
    in_flight = max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts)
    assert in_flight >= 10, starts
    assert "gevent" in worker.text()
    assert "raised:" not in worker.text()  # the graceful-stop watchdog started under gevent too


def test_prefork_pool_with_autoscale_runs_jobs_and_serves_merged_metrics(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {"EMP_METRICS_PORT": str(port), "EMP_METRICS_ADDRESS": "127.0.0.1"}
    worker = start_worker(
        tmp_path, env, "--service", "mock", "--pool", "prefork", "--autoscale", "2,1"
    ).start()
    try:
        jobs = [emp_tasks.submit("mock", {"delay_ms": 100}) for _ in range(3)]
        assert all(finish(job)["status"] == "completed" for job in jobs)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        worker.stop()
    assert metric(text, "emp_jobs_total", service="mock", outcome="completed") == 3


def test_a_job_that_kills_its_worker_every_time_fails_as_worker_lost_after_the_limit(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"EMP_MOCK_ALLOW_CRASH": "1", "EMP_DELIVERY_LIMIT": "2"}
    args = ("--service", "mock", "--pool", "prefork", "--concurrency", "1")
    worker = start_worker(tmp_path, env, *args).start()
    try:
        job = emp_tasks.submit("mock", {"crash_worker": True})
        record = finish(job, timeout=90)
    finally:
        worker.stop()
    assert job.state == "FAILURE"
    assert record["error"]["failure_type"] == "system_error"
    assert record["error"]["failure_reason"] == "worker_lost"
    assert record["error"]["retryable"] is False
    assert "delivered 3 times" in record["error"]["message"]
    # Two deliveries killed a child process each; the third was refused without running.
    assert worker.text().count("exited with 'exitcode 70'") == 2
