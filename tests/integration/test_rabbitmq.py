"""RabbitMQ as the broker: quorum queues with a delivery limit, dead letters, broker-side delays.

A real rabbitmq-server node of the test's own (loopback ports, a temporary folder); results in
the test Redis. Jobs are submitted with `emp-tasks submit`, workers started with
`emp-tasks worker`, both as a user types them, from a directory outside the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_URL
from tests.integration.conftest import glif_env
from tests.integration.helpers import provider_calls
from tests.integration.processes import RabbitMQServer, RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

BACKEND = REDIS_URL.replace("/0", "/2")


@pytest.fixture(scope="module")
def amqp_env(rabbitmq: RabbitMQServer, redis_server: RedisServer) -> dict[str, str]:
    return {"EMP_BROKER_URL": rabbitmq.url, "EMP_RESULT_BACKEND": BACKEND}


@pytest.fixture(scope="module")
def glif_worker(
    amqp_env: dict[str, str],
    glif_emulator: GlifEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("amqp-worker")
    env = glif_env(glif_emulator, **amqp_env)
    argv = [console_script("emp-tasks"), "worker", "--service", "glif"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()


def submit(env: dict[str, str], cwd: Path, payload: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [console_script("emp-tasks"), "submit", "glif", json.dumps(payload), "--wait", "--json"],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
    )
    record: dict[str, object] = json.loads(done.stdout)
    return record


def queues(rabbitmq: RabbitMQServer) -> dict[str, str]:
    """Queue name -> its `type arguments` as rabbitmqctl prints them."""
    listed = rabbitmq.ctl("list_queues", "name", "type", "arguments", "--no-table-headers")
    return {
        line.split("\t", 1)[0]: line.split("\t", 1)[1]
        for line in listed.stdout.splitlines()
        if "\t" in line
    }


def test_a_job_runs_on_a_quorum_queue_with_a_delivery_limit_and_dead_letters(
    rabbitmq: RabbitMQServer, amqp_env: dict[str, str], glif_worker: WorkerProcess, tmp_path: Path
) -> None:
    record = submit(amqp_env, tmp_path, {"workflow_id": "sandbox-text", "inputs": ["hi"]})
    assert record["status"] == "completed"
    found = queues(rabbitmq)
    assert "quorum" in found["glif"]
    assert "x-delivery-limit" in found["glif"]
    assert "emp.dead" in found["glif"]  # its dead-letter exchange
    assert "quorum" in found["glif.dead"]


def received_at(log: str, job_id: str) -> list[datetime]:
    """When the worker received each delivery of a job (its log's timestamps)."""
    pattern = re.compile(r"^\[(\S+ \S+): INFO/MainProcess\] Task emp\.glif\[" + re.escape(job_id))
    return [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for line in log.splitlines()
        if (m := pattern.match(line)) and "received" in line
    ]


def test_a_countdown_retry_waits_in_the_broker_not_in_the_worker(
    rabbitmq: RabbitMQServer,
    amqp_env: dict[str, str],
    glif_worker: WorkerProcess,
    glif_emulator: GlifEmulator,
    tmp_path: Path,
) -> None:
    glif_emulator.queue_faults(
        [Fault("rate_limit", retry_after=2)], match={"workflow_id": "sandbox-json"}
    )
    record = submit(amqp_env, tmp_path, {"workflow_id": "sandbox-json", "inputs": ["x"]})
    assert record["status"] == "completed"
    assert record["attempts"] == 2
    assert [c.status for c in provider_calls(glif_emulator)] == [429, 200]
    # Native delayed delivery: the retry reached the worker only once its countdown had run
    # out; an ETA retry would be received at once and held in the worker's memory.
    first, retry = received_at(glif_worker.text(), str(record["job_id"]))
    assert (retry - first).total_seconds() >= 2
    exchanges = rabbitmq.ctl("list_exchanges", "name", "--no-table-headers").stdout
    assert "celery_delayed_delivery" in exchanges


def test_a_job_that_kills_its_worker_every_time_fails_as_worker_lost(
    amqp_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**amqp_env, "EMP_MOCK_ALLOW_CRASH": "1", "EMP_DELIVERY_LIMIT": "2"}
    argv = [console_script("emp-tasks"), "worker", "--service", "mock", "--pool", "prefork"]
    worker = WorkerProcess(env, tmp_path / "worker.log", argv=[*argv, "--concurrency", "1"])
    worker.cwd = tmp_path
    worker.start()
    try:
        done = subprocess.run(
            [console_script("emp-tasks"), "submit", "mock", '{"crash_worker": true}', "--wait",
             "--json", "--timeout", "90"],
            env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        worker.stop()
    record = json.loads(done.stdout)
    assert done.returncode == 1
    assert record["error"]["failure_reason"] == "worker_lost"
    assert record["error"]["retryable"] is False
    assert worker.text().count("exited with 'exitcode 70'") == 2
