"""`emp-tasks failed` and `emp-tasks replay` as a user runs them, on a real Redis and worker.

The worker is `emp-tasks worker --service mock`; the commands run as the installed console script
from a temporary directory. Failed jobs are made by the mock's `should_fail`, retried fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult
from kombu.connection import Connection

import emp_tasks
from emp_tasks import queues
from emp_tasks.config import services
from tests.conftest import REDIS_URL
from tests.integration.helpers import finish
from tests.integration.processes import (
    RabbitMQServer,
    RedisServer,
    WorkerProcess,
    console_script,
)

pytestmark = pytest.mark.integration

EMP_TASKS = console_script("emp-tasks")
BROKER = {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1")}
FAILING = {"should_fail": True, "delay_ms": 0}


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("replay-worker")
    env = {**BROKER, "MOCK_RETRY_DELAY_SECONDS": "0.1"}
    argv = [EMP_TASKS, "worker", "--service", "mock"]
    started = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def failures(worker: WorkerProcess) -> dict[str, str]:
    """One failed job per kind: a retryable service_error and a validation_error."""
    ids = {}
    for kind in ("service_error", "validation_error"):
        job = emp_tasks.submit("mock", {**FAILING, "fail_kind": kind})
        assert finish(job)["status"] == "failed"
        ids[kind] = job.id
    return ids


def emp(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EMP_TASKS, *args],
        cwd=cwd,
        env={**os.environ, **BROKER, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def emp_json(cwd: Path, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    done = emp(cwd, *args, "--json", **env)
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr  # exactly one JSON object
    return done.returncode, json.loads(done.stdout)


def listed(cwd: Path, *args: str) -> dict[str, dict[str, Any]]:
    code, out = emp_json(cwd, "failed", "--service", "mock", "--since", "1h", *args)
    assert code == 0
    return {job["job_id"]: job for job in out["jobs"]}


def test_failed_lists_failed_jobs_with_their_type_and_reason(
    tmp_path: Path, failures: dict[str, str]
) -> None:
    jobs = listed(tmp_path)
    service_error = jobs[failures["service_error"]]
    assert (service_error["failure_type"], service_error["attempts"]) == ("service_error", 4)
    assert service_error["failure_reason"] == "service_unavailable"
    assert jobs[failures["validation_error"]]["failure_type"] == "validation_error"
    assert "Mock failure requested" in service_error["message"]


def test_failed_filters_by_failure_type(tmp_path: Path, failures: dict[str, str]) -> None:
    jobs = listed(tmp_path, "--failure-type", "validation_error")
    assert failures["validation_error"] in jobs
    assert {job["failure_type"] for job in jobs.values()} == {"validation_error"}


def test_failed_in_text_is_one_line_per_job_newest_first(
    tmp_path: Path, failures: dict[str, str]
) -> None:
    lines = emp(tmp_path, "failed", "--service", "mock").stdout.splitlines()
    ids = [line.split()[1] for line in lines]
    assert ids.index(failures["validation_error"]) < ids.index(failures["service_error"])


def test_replay_runs_the_job_again_as_a_new_job_naming_the_original(
    tmp_path: Path, failures: dict[str, str]
) -> None:
    old = failures["service_error"]
    done = emp(tmp_path, "replay", old)
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip()  # the new id alone on stdout
    assert new
    assert new != old
    result = AsyncResult(new, app=emp_tasks.app)
    record = finish(result)
    assert (record["service"], record["status"], record["attempts"]) == ("mock", "failed", 4)
    assert result.args == [{**FAILING, "fail_kind": "service_error"}]
    assert result.kwargs["metadata"] == {"replay_of": old}
    assert listed(tmp_path)[new]["replay_of"] == old


def test_a_validation_error_is_replayed_only_with_force(
    tmp_path: Path, failures: dict[str, str]
) -> None:
    old = failures["validation_error"]
    refused = emp(tmp_path, "replay", old)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert "--force" in refused.stderr
    code, out = emp_json(tmp_path, "replay", old, "--force")
    assert code == 0
    (replayed,) = out["replayed"]
    assert replayed["replay_of"] == old
    assert finish(AsyncResult(replayed["job_id"], app=emp_tasks.app))["status"] == "failed"


def test_a_job_that_did_not_fail_is_refused(tmp_path: Path, worker: WorkerProcess) -> None:
    job = emp_tasks.submit("mock", {"delay_ms": 0})
    assert finish(job)["status"] == "completed"
    for job_id, status in ((job.id, "completed"), ("no-such-job", "pending (or unknown)")):
        code, out = emp_json(tmp_path, "replay", job_id)
        assert code == 1
        assert out["replayed"] == []
        assert out["skipped"][0]["reason"].startswith(f"it is {status}, not failed")


def test_replay_by_filter_replays_the_matching_failures_up_to_the_limit(
    tmp_path: Path, failures: dict[str, str]
) -> None:
    args = ("replay", "--service", "mock", "--failure-type", "service_error", "--limit", "2")
    code, out = emp_json(tmp_path, *args)
    assert code == 0
    assert len(out["replayed"]) == 2
    assert out["skipped"] == []
    for item in out["replayed"]:
        assert item["service"] == "mock"
        assert finish(AsyncResult(item["job_id"], app=emp_tasks.app))["status"] == "failed"


# --- RabbitMQ: jobs the broker dead-lettered to <queue>.dead ------------------------------------


@pytest.fixture(scope="module")
def amqp_worker(
    rabbitmq: RabbitMQServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("replay-amqp-worker")
    env = {**BROKER, "EMP_BROKER_URL": rabbitmq.url}
    argv = [EMP_TASKS, "worker", "--service", "mock"]
    started = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield started
    started.stop()


def dead_letter(url: str, payload: dict[str, Any]) -> str:
    """Put a Celery job message on `mock.dead`, as RabbitMQ does past the delivery limit."""
    job_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": "emp.mock", "id": job_id, "root_id": job_id, "retries": 0}
    body = [[payload], {"ctx": None, "metadata": None}, {}]
    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        queues.declare_dead_letter_queues(connection, [services()["mock"]])
        connection.Producer().publish(
            body,
            exchange=queues.DEAD_LETTER_EXCHANGE,
            routing_key="mock",
            headers=headers,
            serializer="json",
        )
    return job_id


def test_dead_letters_are_listed_without_being_taken_off_their_queue(
    tmp_path: Path, rabbitmq: RabbitMQServer
) -> None:
    job_id = dead_letter(rabbitmq.url, {"delay_ms": 0})
    for _ in range(2):  # the second listing still sees it: the first put it back
        code, out = emp_json(
            tmp_path, "failed", "--dead-letters", "--service", "mock", EMP_BROKER_URL=rabbitmq.url
        )
        assert code == 0
        (found,) = [job for job in out["jobs"] if job["job_id"] == job_id]
        assert (found["service"], found["failure_type"]) == ("mock", "system_error")
        assert "mock.dead" in found["message"]


def test_dead_letters_are_replayed_as_new_jobs_and_acked_off_the_dead_queue(
    tmp_path: Path, rabbitmq: RabbitMQServer, amqp_worker: WorkerProcess
) -> None:
    env = {"EMP_BROKER_URL": rabbitmq.url}
    job_id = dead_letter(rabbitmq.url, {"delay_ms": 0, "test_data": "again"})
    code, out = emp_json(tmp_path, "replay", "--dead-letters", "--service", "mock", **env)
    assert code == 0
    replayed = {item["replay_of"]: item["job_id"] for item in out["replayed"]}
    result = AsyncResult(replayed[job_id], app=emp_tasks.app)
    assert finish(result)["status"] == "completed"
    assert result.kwargs["metadata"] == {"replay_of": job_id}
    code, out = emp_json(tmp_path, "failed", "--dead-letters", "--service", "mock", **env)
    assert job_id not in [job["job_id"] for job in out["jobs"]]


def test_dead_letters_need_rabbitmq_and_say_so_in_one_line(tmp_path: Path) -> None:
    done = emp(tmp_path, "failed", "--dead-letters")
    assert done.returncode == 2
    assert (
        done.stderr == "--dead-letters needs RabbitMQ as the broker (EMP_BROKER_URL=amqp://...)\n"
    )
