"""The embedded default (filesystem broker + SQLite results), driven through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator
from tests.integration.conftest import glif_env
from tests.integration.processes import WorkerProcess, console_script

pytestmark = pytest.mark.integration


def embedded_env(var: Path, emulator: GlifEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EMP_BROKER_URL", "EMP_RESULT_BACKEND")}
    env.update(glif_env(emulator, EMP_VAR_DIR=str(var)))
    return env


@pytest.fixture(scope="module")
def embedded(
    glif_emulator: GlifEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    var = Path(tmp_path_factory.mktemp("embedded"))
    env = embedded_env(var, glif_emulator)
    worker = WorkerProcess({}, var / "worker.log", name="embedded")
    worker.env = env
    worker.start()
    yield env
    worker.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emp_tasks.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_submit_wait_json_prints_one_completed_record(embedded: dict[str, str]) -> None:
    payload = json.dumps({"workflow_id": "sandbox-image", "inputs": ["robot"]})
    done = cli(embedded, "submit", "glif", payload, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record) == {"job_id", "service", "status", "attempts", "provider_calls", "result"}
    assert (record["service"], record["status"], record["attempts"]) == ("glif", "completed", 1)
    assert record["provider_calls"] == 1  # counted in the SQLite backend's journal
    assert record["result"]["data"]["content_type"] == "image"


def test_failed_job_exits_one_with_the_error_fields(
    embedded: dict[str, str], glif_emulator: GlifEmulator
) -> None:
    glif_emulator.queue_faults([Fault("invalid_workflow")], match={"workflow_id": "sandbox-text"})
    payload = json.dumps({"workflow_id": "sandbox-text", "inputs": ["x"]})
    done = cli(embedded, "submit", "glif", payload, "--wait", "--json", "--job-id", "job-fail-1")
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["job_id"] == "job-fail-1"
    assert record["status"] == "failed"
    assert set(record["error"]) == {
        "message",
        "failure_type",
        "failure_reason",
        "retryable",
        "status_code",
        "retry_after",
    }
    assert record["error"]["failure_type"] == "validation_error"
    status = cli(embedded, "status", "job-fail-1", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["error"] == record["error"]


@pytest.mark.parametrize(
    ("service", "payload"),
    [
        ("glif", '{"workflow_id": "sandbox-text", "inputs": [1]}'),
        ("glif", "{not json"),
        ("no-such-service", "{}"),
    ],
)
def test_refused_input_exits_two_and_reaches_no_provider(
    embedded: dict[str, str], glif_emulator: GlifEmulator, service: str, payload: str
) -> None:
    done = cli(embedded, "submit", service, payload, "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["status"] == "refused"
    assert glif_emulator.calls() == []


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "emp_tasks.cli", "worker", "--service", "glif"],
        ["-m", "celery", "-A", "emp_tasks", "worker", "-Q", "glif", "-P", "threads"],
    ],
    ids=["emp-tasks", "celery"],
)
def test_worker_without_its_token_exits_at_start_naming_it(tmp_path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GLIF_API_TOKEN"}
    env["EMP_VAR_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        "emp-tasks worker: missing required environment variables: glif: GLIF_API_TOKEN"
    ]


def test_the_cli_works_from_any_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EMP_BROKER_URL", "EMP_RESULT_BACKEND")}
    env["EMP_VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "emp_tasks.cli", "status", "no-such-job", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # still pending: known to nobody yet
    assert json.loads(done.stdout)["status"] == "pending"


def test_a_worker_on_the_embedded_default_warns_once_that_it_can_lose_held_jobs(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EMP_BROKER_URL", "EMP_RESULT_BACKEND")}
    env["EMP_VAR_DIR"] = str(tmp_path / "var")
    argv = [console_script("emp-tasks"), "worker", "--service", "mock"]
    worker = WorkerProcess({}, tmp_path / "worker.log", argv=argv, cwd=tmp_path)
    worker.env = env
    worker.start()
    worker.stop()
    warnings = [line for line in worker.text().splitlines() if "warning: no EMP_BROKER_URL" in line]
    assert len(warnings) == 1
    assert "loses the jobs a worker holds if it is killed" in warnings[0]


def test_submit_ctx_charges_the_jobs_tenant(embedded: dict[str, str]) -> None:
    tenant = f"cli-{os.getpid()}"
    payload = json.dumps({"workflow_id": "sandbox-text", "inputs": ["tenant"]})
    ctx = json.dumps({"tenant": tenant})
    done = cli(embedded, "submit", "glif", payload, "--ctx", ctx, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    cost = json.loads(done.stdout)["result"]["metadata"]["cost"]
    spend = cli(embedded, "spend", "--tenant", tenant, "--json")
    assert spend.returncode == 0, spend.stderr
    rows = json.loads(spend.stdout)["spend"]
    assert {(r["tenant"], r["currency"], r["period"], r["amount"]) for r in rows} == {
        (tenant, cost["currency"], period, cost["amount"]) for period in ("day", "month")
    }
