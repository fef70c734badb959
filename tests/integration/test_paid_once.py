"""Never pay twice for what is done: checkpoints, resumed polling and completed redeliveries.

Real parts only: `emp-tasks worker` processes on the test Redis, the Glif and OpenAI emulators
(whose call logs count the paid calls), a moto S3 server that is down for the first attempt,
and kombu consumers that take a job's message and drop it unacked, as a dying worker would -
so the broker itself marks the copy as redelivered.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kombu import Connection, Consumer, Message, Queue
from moto.server import ThreadedMotoServer

import emp_tasks
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from tests.conftest import REDIS_URL, free_port
from tests.integration.conftest import OPENAI_KEY, glif_env
from tests.integration.helpers import finish, provider_calls
from tests.integration.processes import RabbitMQServer, RedisServer, WorkerProcess, console_script
from tests.integration.test_worker_command import start_worker

pytestmark = pytest.mark.integration

BACKEND = REDIS_URL.replace("/0", "/1")
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "moto-secret-paid-once",
    "AWS_DEFAULT_REGION": "us-east-1",
}
IMAGE = {"workflow_id": "sandbox-image", "inputs": ["a fox"]}


def runs(glif_emulator: GlifEmulator) -> int:
    """The workflow runs the emulator answered (not the workers' start-up health probes)."""
    return sum(
        1 for c in provider_calls(glif_emulator) if (c.body_json or {}).get("id") == "sandbox-image"
    )


def status(job_id: str, env: dict[str, str], cwd: Path) -> dict[str, object]:
    """`emp-tasks status --json JOB_ID`, as a user runs it."""
    done = subprocess.run(
        [console_script("emp-tasks"), "status", "--json", job_id],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    record: dict[str, object] = json.loads(done.stdout)
    return record


def test_a_retry_after_a_storage_failure_uploads_from_the_checkpoint_with_one_paid_call(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path: Path
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = glif_env(
        glif_emulator,
        GLIF_RETRY_DELAY_SECONDS="1",
        GLIF_RETRY_ATTEMPTS="6",
        CLOUD_STORAGE_PROVIDER="s3",
        CLOUD_STORAGE_ENDPOINT_URL=endpoint,  # nothing listens there yet
        CLOUD_STORAGE_BUCKET="paid-once",
        CLOUD_STORAGE_REGION="us-east-1",
        **AWS,
    )
    worker = start_worker(tmp_path, env, "--service", "glif", name="storage").start()
    glif_emulator.reset()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    try:
        job = emp_tasks.submit("glif", IMAGE)
        deadline = time.monotonic() + 20
        while job.state != "RETRY":
            assert time.monotonic() < deadline, "the storage failure was never retried"
            time.sleep(0.05)
        moto.start()
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys()).create_bucket(
            Bucket="paid-once"
        )
        record = finish(job, timeout=60)
        shown = status(
            job.id, {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": BACKEND}, tmp_path
        )
    finally:
        worker.stop()
        moto.stop()
    assert record["status"] == "completed", record
    assert record["attempts"] >= 2
    assert runs(glif_emulator) == 1
    assert record["provider_calls"] == 1 == shown["provider_calls"]
    assert record["result"]["metadata"]["provider_calls"] == 1
    assert record["result"]["output_files"][0]["path"].endswith(".png")


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture
def slow_openai() -> Iterator[OpenAIEmulator]:
    """Background Responses that take 25 polls (5 s at 0.2 s) to complete."""
    with OpenAIEmulator(tokens=(OPENAI_KEY,), polls_to_complete=25) as emulator:
        yield emulator


def test_a_redelivered_polled_job_resumes_its_response_instead_of_creating_another(
    redis_server: RedisServer, slow_openai: OpenAIEmulator, tmp_path: Path
) -> None:
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{slow_openai.url}/v1",
        "OPENAI_RESPONSES_POLL_INTERVAL_SECONDS": "0.2",
        "EMP_VISIBILITY_TIMEOUT": "6",
    }
    doomed = start_worker(tmp_path, env, "--service", "openai_responses", name="doomed").start()
    slow_openai.reset()
    job = emp_tasks.submit("openai_responses", {"input": "a long essay"})
    deadline = time.monotonic() + 20
    while len([c for c in slow_openai.calls("/v1/responses/") if c.method == "GET"]) < 2:
        assert time.monotonic() < deadline, "the job never started polling"
        time.sleep(0.05)
    assert doomed.proc is not None
    os.kill(doomed.proc.pid, signal.SIGKILL)  # mid-poll: the message is unacked
    doomed.proc.wait()
    survivor = start_worker(tmp_path, env, "--service", "openai_responses", name="survivor")
    survivor.start()
    try:
        record = finish(job, timeout=60)
    finally:
        survivor.stop()
    created = [c for c in slow_openai.calls("/v1/responses") if c.method == "POST"]
    assert record["status"] == "completed", record
    assert len(created) == 1
    assert record["provider_calls"] == 1
    assert f"[{job.id}] received" in survivor.text()


# --- a completed job delivered again ------------------------------------------------------------


def drop_unacked(broker_url: str, queue: str, job_id: str) -> None:
    """Take the job's message like a worker that then dies: never acked, the connection closed."""
    taken: list[Message] = []
    with Connection(broker_url) as conn:
        consumer = Consumer(
            conn.channel(),
            queues=[Queue(queue, no_declare=True)],
            accept=["json"],
            on_message=taken.append,
            prefetch_count=1,
        )
        with consumer:
            deadline = time.monotonic() + 20
            while not taken:
                assert time.monotonic() < deadline, "the copy never reached the queue"
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
    assert taken[0].headers["id"] == job_id


def submit_cli(env: dict[str, str], cwd: Path, job_id: str, *flags: str) -> dict[str, object]:
    argv = [console_script("emp-tasks"), "submit", "glif", json.dumps(IMAGE), "--json"]
    done = subprocess.run(
        [*argv, "--job-id", job_id, *flags],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
    )
    record: dict[str, object] = json.loads(done.stdout)
    return record


def completed_job_delivered_again(
    broker: dict[str, str], glif_emulator: GlifEmulator, tmp_path: Path
) -> tuple[dict[str, object], dict[str, object], WorkerProcess]:
    env = glif_env(glif_emulator, **broker)
    argv = [console_script("emp-tasks"), "worker", "--service", "glif"]
    first = WorkerProcess(env, tmp_path / "first.log", argv=argv, cwd=tmp_path).start()
    glif_emulator.reset()
    job_id = f"done-once-{time.monotonic_ns()}"
    try:
        done = submit_cli(broker, tmp_path, job_id, "--wait")
    finally:
        first.stop()
    submit_cli(broker, tmp_path, job_id)  # the same job's message, queued again
    drop_unacked(broker["EMP_BROKER_URL"], "glif", job_id)
    second = WorkerProcess(env, tmp_path / "second.log", argv=argv, cwd=tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        while "already completed successfully" not in second.text():
            assert time.monotonic() < deadline, second.text()[-3000:]
            time.sleep(0.1)
        again = status(job_id, broker, tmp_path)
    finally:
        second.stop()
    return done, again, second


def test_a_completed_job_redelivered_on_redis_returns_its_result_without_a_call(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path: Path
) -> None:
    broker = {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": BACKEND}
    done, again, _ = completed_job_delivered_again(broker, glif_emulator, tmp_path)
    assert done["status"] == "completed" == again["status"]
    assert again["result"] == done["result"]
    assert runs(glif_emulator) == 1


def test_a_completed_job_redelivered_on_rabbitmq_returns_its_result_without_a_call(
    rabbitmq: RabbitMQServer, redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path: Path
) -> None:
    broker = {"EMP_BROKER_URL": rabbitmq.url, "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/3")}
    done, again, _ = completed_job_delivered_again(broker, glif_emulator, tmp_path)
    assert done["status"] == "completed" == again["status"]
    assert again["result"] == done["result"]
    assert runs(glif_emulator) == 1
