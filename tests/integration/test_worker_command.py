"""`emp-tasks worker` as the README shows it: registered tasks, several services, pools, refusals.

Every worker here is started by its console script from a temporary directory that is not the
repository, as a user would type it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import emp_tasks
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_URL, free_port
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.helpers import finish
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

BACKEND = REDIS_URL.replace("/0", "/1")
EMP_TASKS = console_script("emp-tasks")


def start_worker(tmp: Path, env: dict[str, str], *args: str, name: str = "worker") -> WorkerProcess:
    """`emp-tasks worker ARGS` with the test broker, from `tmp`."""
    env = {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": BACKEND, **env}
    return WorkerProcess(env, tmp / f"{name}.log", argv=[EMP_TASKS, "worker", *args], cwd=tmp)


@pytest.fixture(scope="module")
def fleet(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerProcess, str]]:
    """One worker for glif and mock, JSON logs, metrics on a free port."""
    tmp = Path(tmp_path_factory.mktemp("fleet"))
    port = free_port()
    env = glif_env(
        glif_emulator,
        EMP_LOG_FORMAT="json",
        EMP_METRICS_PORT=str(port),
        MOCK_RETRY_DELAY_SECONDS="0.1",
    )
    worker = start_worker(tmp, env, "--service", "glif,mock", "--concurrency", "4").start()
    yield worker, f"http://127.0.0.1:{port}/metrics"
    worker.stop()


def test_documented_worker_command_registers_every_task_and_runs_jobs(
    fleet: tuple[WorkerProcess, str],
) -> None:
    worker, _ = fleet
    glif = emp_tasks.submit("glif", {"workflow_id": "sandbox-image", "inputs": ["robot"]})
    mock = emp_tasks.submit("mock", {"delay_ms": 50})
    assert finish(glif)["status"] == "completed"
    assert finish(mock)["status"] == "completed"
    text = worker.text()
    assert "emp.glif" in text  # the [tasks] the worker registered
    assert "emp.mock" in text
    assert "NotRegistered" not in text


def log_lines(worker: WorkerProcess) -> list[dict[str, object]]:
    lines = [line for line in worker.text().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_json_logs_carry_job_fields_and_never_the_token(
    fleet: tuple[WorkerProcess, str], glif_emulator: GlifEmulator
) -> None:
    worker, _ = fleet
    glif_emulator.queue_faults([Fault("unauthorized")], match={"workflow_id": "sandbox-text"})
    bad = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    assert finish(bad)["status"] == "failed"  # before the next: the fault is the first call's
    good = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["y"]})
    assert finish(good)["status"] == "completed"
    outcomes = {
        line["job_id"]: line for line in log_lines(worker) if line.get("logger") == "emp_tasks.jobs"
    }
    assert outcomes[bad.id]["outcome"] == "failed"
    assert outcomes[bad.id]["failure_type"] == "auth_error"
    assert outcomes[good.id]["outcome"] == "completed"
    assert {"service", "attempt", "duration_ms"} <= set(outcomes[good.id])
    # Celery's own lines are JSON too, and nothing at all carries the token.
    messages = [str(line["message"]) for line in log_lines(worker)]
    assert any(message.startswith("Task emp.glif[") for message in messages)
    # One line per outcome: Celery's own success and failure lines are not repeated, and the
    # outcome line says what the error said.
    assert not any(" succeeded in " in message or " raised " in message for message in messages)
    assert str(outcomes[bad.id]["message"]).endswith(finish(bad)["error"]["message"])
    assert TOKEN not in worker.text()


def test_every_log_line_after_start_up_is_one_json_object(
    fleet: tuple[WorkerProcess, str],
) -> None:
    worker, _ = fleet
    text = worker.text()
    after_banner = text[text.index("{") :].splitlines()
    stray = [line for line in after_banner if line.strip() and not line.startswith("{")]
    assert stray == []


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_worker_metrics_count_jobs_calls_failures_and_cost(
    fleet: tuple[WorkerProcess, str], glif_emulator: GlifEmulator
) -> None:
    _, url = fleet
    before = requests.get(url, timeout=5).text
    glif_emulator.queue_faults(
        [Fault("insufficient_credits")], match={"workflow_id": "sandbox-json"}
    )
    failed = emp_tasks.submit("glif", {"workflow_id": "sandbox-json", "inputs": ["x"]})
    done = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["z"]})
    finish(failed), finish(done)
    text = requests.get(url, timeout=5).text

    def grew(name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert grew("emp_jobs_total", service="glif", outcome="completed") == 1
    assert grew("emp_jobs_total", service="glif", outcome="failed") == 1
    assert grew("emp_job_failures_total", service="glif", failure_type="resource_limit") == 1
    assert grew("emp_provider_calls_total", service="glif", status="200") == 2
    assert grew("emp_provider_call_seconds_count", service="glif") == 2
    assert grew("emp_job_cost_total", service="glif", currency="glif_credits") > 0
    assert metric(text, "emp_jobs_in_progress", service="glif") == 0
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--service", "nope"], {}, "Unknown service 'nope'"),
        (["--service", "mock", "--pool", "fibers"], {}, "--pool"),
        (["--service", "mock", "--autoscale", "4,2"], {}, "--autoscale"),
        (["--service", "mock", "--pool", "prefork", "--autoscale", "two"], {}, "--autoscale"),
        (["--service", "mock", "--all"], {}, "--all"),
        ([], {}, "--service"),
        (["--service", "mock"], {"EMP_METRICS_PORT": "http"}, "EMP_METRICS_PORT"),
        (["--service", "mock"], {"EMP_METRICS_PORT": "70000"}, "EMP_METRICS_PORT"),
        (["--service", "mock"], {"EMP_LOG_FORMAT": "xml"}, "EMP_LOG_FORMAT"),
        (["--service", "glif"], {"GLIF_API_TOKEN": ""}, "GLIF_API_TOKEN"),
    ],
)
def test_bad_worker_input_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, args: list[str], env: dict[str, str], names: str
) -> None:
    run = subprocess.run(
        [EMP_TASKS, "worker", *args],
        env={**start_worker(tmp_path, env).env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert names in lines[0]
    assert " ready." not in run.stdout  # refused before Celery started


def test_require_healthy_refuses_to_start_while_the_provider_rejects_the_token(
    tmp_path: Path, glif_emulator: GlifEmulator
) -> None:
    env = glif_env(glif_emulator, GLIF_API_TOKEN="not-the-emulators-token")
    run = subprocess.run(
        [EMP_TASKS, "worker", "--service", "glif", "--require-healthy"],
        env=start_worker(tmp_path, env).env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert "--require-healthy" in line
    assert "auth_error" in line
    assert "not-the-emulators-token" not in run.stderr + run.stdout


def test_an_unhealthy_provider_at_start_is_one_warning_and_the_worker_runs(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the provider is down
    env = {"GLIF_API_TOKEN": TOKEN, "GLIF_BASE_URL": closed}
    worker = start_worker(tmp_path, env, "--service", "glif").start()
    try:
        time.sleep(1.5)  # the start-up probe runs beside the worker, not before it
        assert worker.proc is not None
        assert worker.proc.poll() is None
    finally:
        worker.stop()
    warnings = [line for line in worker.text().splitlines() if "unhealthy at start" in line]
    assert len(warnings) == 1
    assert "network_error" in warnings[0]
