"""A real Flower process records our jobs and their job events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import emp_tasks
from tests.conftest import REDIS_URL, free_port
from tests.integration.processes import RedisServer, WorkerProcess

pytestmark = pytest.mark.integration

BACKEND = REDIS_URL.replace("/0", "/1")


@pytest.fixture(scope="module")
def flower(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": BACKEND,
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    log = Path(tmp_path_factory.mktemp("flower")) / "flower.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "emp_tasks",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthcheck", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError(log.read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def wait_for(check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "Flower did not record it in time"
        time.sleep(0.2)


def event_count(flower: str, event: str) -> float:
    text = requests.get(f"{flower}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("flower_events_total{")
        and 'task="emp.mock"' in line
        and f'type="task-{event}"' in line
    )


def test_flower_records_job_states_and_job_events(flower: str, mock_worker: WorkerProcess) -> None:
    ok = emp_tasks.submit("mock", {"delay_ms": 1200, "steps": 3})
    bad = emp_tasks.submit(
        "mock", {"delay_ms": 10, "should_fail": True, "fail_kind": "validation_error"}
    )
    ok.get(timeout=30)
    with pytest.raises(Exception, match="Mock failure"):
        bad.get(timeout=30, propagate=True)

    def info(job_id: str) -> dict[str, object]:
        reply = requests.get(f"{flower}/api/task/info/{job_id}", timeout=5)
        return reply.json() if reply.ok else {}

    wait_for(
        lambda: info(ok.id).get("state") == "SUCCESS" and info(bad.id).get("state") == "FAILURE"
    )
    assert "validation_error" in str(info(bad.id)["exception"])
    wait_for(
        lambda: event_count(flower, "fail_job") >= 1 and event_count(flower, "complete_job") >= 1
    )
    assert event_count(flower, "update_job_progress") >= 1


def test_events_command_streams_job_events_as_json_lines(mock_worker: WorkerProcess) -> None:
    env = {**os.environ, "EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": BACKEND}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emp_tasks.cli", "events"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(3)  # the receiver binds its queue once it starts consuming
        job = emp_tasks.submit("mock", {"delay_ms": 600, "steps": 2})
        job.get(timeout=30)
        lines: list[dict[str, object]] = []
        assert proc.stdout is not None
        while not any(line.get("event") == "complete_job" for line in lines):
            lines.append(json.loads(proc.stdout.readline()))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ours = [line for line in lines if line.get("job_id") == job.id]
    assert [line["event"] for line in ours][-1] == "complete_job"
    assert "update_job_progress" in [line["event"] for line in ours]
