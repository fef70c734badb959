"""`emp-tasks health` and `emp-tasks ping` as a user types them, against emulators and workers.

Every command runs the installed console script in a temporary directory that is not the
repository, with the environment a user would set. The workers' last checks come from a real
`celery -A emp_tasks worker`, whose start-up (emp_tasks.worker) runs the health monitor.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from tests.conftest import REDIS_URL
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.processes import RedisServer, WorkerProcess, start_mock_worker

pytestmark = pytest.mark.integration

EMP_TASKS = Path(sys.executable).with_name("emp-tasks")
BROKER = {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1")}
# Variables a developer's shell may hold that would change what the commands see.
_CLEARED = ("GLIF_", "OPENAI_", "GEMINI_")


def user_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED)}
    return {**env, **BROKER, **extra}


def emp_tasks(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EMP_TASKS), *args],
        cwd=cwd,
        env=user_env(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def health_json(cwd: Path, *args: str, env: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    done = emp_tasks(cwd, "health", *args, "--json", env=env)
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr  # exactly one JSON object
    return done.returncode, json.loads(done.stdout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _broker(redis_server: RedisServer) -> None:
    """Every command talks to a real broker, as in production."""


# --- health against the providers ---------------------------------------------------------------


def test_glif_healthy(cwd: Path, glif_emulator: GlifEmulator) -> None:
    code, doc = health_json(cwd, "--service", "glif", env=glif_env(glif_emulator))
    glif = doc["services"]["glif"]
    assert (code, doc["healthy"], glif["healthy"]) == (0, True, True)
    assert glif["health_check_class"] == "minimal"
    assert glif["support"]["isSupported"] is True
    assert glif["workers"] == {}
    calls = [c for c in glif_emulator.calls() if c.kind == "provider"]
    assert [c.body_json for c in calls] == [{"id": "", "inputs": []}]
    assert TOKEN not in json.dumps(doc)


def test_glif_runs_the_health_check_workflow_when_set(
    cwd: Path, glif_emulator: GlifEmulator
) -> None:
    env = glif_env(glif_emulator, GLIF_HEALTH_CHECK_WORKFLOW_ID="sandbox-text")
    code, doc = health_json(cwd, "--service", "glif", env=env)
    assert (code, doc["services"]["glif"]["periodic"]) == (0, True), doc
    calls = [c for c in glif_emulator.calls() if c.kind == "provider"]
    assert calls[-1].body_json == {"id": "sandbox-text", "inputs": ["health-check"]}


def test_glif_bad_token_is_an_auth_failure(cwd: Path, glif_emulator: GlifEmulator) -> None:
    env = glif_env(glif_emulator, GLIF_API_TOKEN="not-the-sandbox-token")
    code, doc = health_json(cwd, "--service", "glif", env=env)
    assert (code, doc["healthy"]) == (1, False)
    assert doc["services"]["glif"]["detail"].startswith("auth_error/invalid_api_key: HTTP 401")
    assert "not-the-sandbox-token" not in json.dumps(doc)


def test_glif_provider_down_is_a_network_error(cwd: Path, glif_emulator: GlifEmulator) -> None:
    env = {**glif_env(glif_emulator), "GLIF_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    code, doc = health_json(cwd, "--service", "glif", env=env)
    assert code == 1
    assert doc["services"]["glif"]["detail"].startswith("network_error/connection_failed")


def test_missing_env_is_unhealthy_and_an_unknown_name_is_refused(cwd: Path) -> None:
    code, doc = health_json(cwd, "--service", "glif", env={})
    assert code == 1
    assert "GLIF_API_TOKEN" in doc["services"]["glif"]["detail"]
    done = emp_tasks(cwd, "health", "--service", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "unknown service 'nope'" in done.stderr


def test_no_service_checks_what_is_configured_and_says_what_it_skipped(cwd: Path) -> None:
    done = emp_tasks(cwd, "health")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mock: healthy" in done.stdout
    assert "skipped glif: GLIF_API_TOKEN not set" in done.stdout


def test_openai_and_gemini_healthy(cwd: Path) -> None:
    key = "sk-health-cli-5c2d9e7f10"
    with (
        OpenAIEmulator(tokens=(key,)) as openai,
        GeminiEmulator(tokens=(key,)) as gemini,
    ):
        env = {
            "OPENAI_API_KEY": key,
            "OPENAI_BASE_URL": f"{openai.url}/v1",
            "GEMINI_API_KEY": key,
            "GEMINI_BASE_URL": f"{gemini.url}/v1beta",
        }
        args = ("--service", "openai_text", "--service", "openai", "--service", "gemini_text")
        code, doc = health_json(cwd, *args, env=env)
    assert code == 0, doc
    assert sorted(doc["services"]) == ["gemini_text", "openai_responses", "openai_text"]
    assert key not in json.dumps(doc)


# --- ping ---------------------------------------------------------------------------------------


def test_ping_without_any_worker_fails_within_the_timeout(cwd: Path) -> None:
    started = time.monotonic()
    done = emp_tasks(cwd, "ping", "--service", "mock", "--timeout", "2")
    assert done.returncode == 1
    assert done.stdout.strip() == "mock: no worker answered within 2s"
    assert time.monotonic() - started < 2 + 5  # the timeout plus interpreter start-up


@pytest.fixture(scope="module")
def mock_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    worker = start_mock_worker(tmp_path_factory.mktemp("health-worker"), "healthping", user_env({}))
    yield worker
    worker.stop()


def test_ping_a_served_service(cwd: Path, mock_worker: WorkerProcess) -> None:
    done = emp_tasks(cwd, "ping", "--service", "mock", "--timeout", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("mock: alive (healthping-")


def test_ping_a_service_no_worker_serves(cwd: Path, mock_worker: WorkerProcess) -> None:
    started = time.monotonic()
    done = emp_tasks(cwd, "ping", "--service", "glif", "--timeout", "3")
    assert done.returncode == 1
    assert done.stdout.startswith("glif: no worker consuming queue 'glif' answered")
    assert time.monotonic() - started < 3 + 5


# --- what the workers saw -----------------------------------------------------------------------


@pytest.fixture
def monitored_worker(glif_emulator: GlifEmulator, tmp_path: Path) -> Iterator[WorkerProcess]:
    # `celery -A emp_tasks worker` as users run it; emp_tasks.worker starts the monitor at
    # worker_ready. Its own token is wrong, so its view differs from a healthy CLI probe.
    # Mock is re-probed every half second; Glif, with no health-check workflow, never is.
    env = user_env(
        glif_env(
            glif_emulator,
            GLIF_API_TOKEN="worker-token-is-wrong",
            MOCK_HEALTH_CHECK_INTERVAL_SECONDS="0.5",
            GLIF_HEALTH_CHECK_INTERVAL_SECONDS="0.5",
        )
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="mock,glif", name="monitored")
    yield worker.start()
    worker.stop()


def _workers_view(cwd: Path, env: Mapping[str, str], node_prefix: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        _, doc = health_json(cwd, "--service", "mock", "--service", "glif", env=env)
        views = {
            name: {n: v for n, v in s["workers"].items() if n.startswith(node_prefix)}
            for name, s in doc["services"].items()
        }
        if all(views.values()) or time.monotonic() > deadline:
            return {"doc": doc, "views": views}
        time.sleep(0.5)


def test_health_json_shows_each_workers_last_check(
    cwd: Path, glif_emulator: GlifEmulator, monitored_worker: WorkerProcess
) -> None:
    found = _workers_view(cwd, glif_env(glif_emulator), "monitored-")
    doc, views = found["doc"], found["views"]
    assert doc["healthy"] is True  # the CLI's own probes use the right token
    (mock_seen,) = views["mock"].values()
    (glif_seen,) = views["glif"].values()
    assert (mock_seen["healthy"], glif_seen["healthy"]) == (True, False)
    assert glif_seen["detail"].startswith("auth_error/invalid_api_key")
    assert glif_seen["checked_at"]
    log = monitored_worker.text()
    assert log.count("unhealthy at start (worker keeps running)") == 1
    assert "worker-token-is-wrong" not in log
    assert monitored_worker.proc is not None
    assert monitored_worker.proc.poll() is None  # unhealthy at start, and still running


def test_workers_repeat_only_the_free_checks(
    cwd: Path, glif_emulator: GlifEmulator, monitored_worker: WorkerProcess
) -> None:
    first = _workers_view(cwd, glif_env(glif_emulator), "monitored-")["views"]
    time.sleep(1.5)
    later = _workers_view(cwd, glif_env(glif_emulator), "monitored-")["views"]
    (mock_before,), (mock_after,) = first["mock"].values(), later["mock"].values()
    (glif_before,), (glif_after,) = first["glif"].values(), later["glif"].values()
    assert mock_after["checked_at"] > mock_before["checked_at"]
    assert glif_after["checked_at"] == glif_before["checked_at"]
