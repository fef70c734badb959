"""`emp-tasks flower` as a user types it: basic auth on the UI and API, /metrics, refusals."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

import emp_tasks
from tests.conftest import REDIS_URL, free_port
from tests.integration.processes import RedisServer, WorkerProcess

pytestmark = pytest.mark.integration

EMP_TASKS = Path(sys.executable).with_name("emp-tasks")
BACKEND = REDIS_URL.replace("/0", "/1")
USER, PASSWORD = "ops", "flower-pw-4c7e1d"  # distinctive, so a leak is easy to grep for
CREDENTIALS = (USER, PASSWORD)


def flower_env(**extra: str) -> dict[str, str]:
    """This session's environment for Flower: our Redis, and no FLOWER_* settings but `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    return {**env, "EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": BACKEND, **extra}


@contextlib.contextmanager
def running_flower(
    port: int, env: Mapping[str, str], cwd: Path, address: str = "127.0.0.1"
) -> Iterator[str]:
    """`emp-tasks flower --address A --port N` from `cwd`, until it answers; yields its URL."""
    log = cwd / "flower.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EMP_TASKS), "flower", "--address", address, "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"Flower exited {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"Flower did not answer: {log.read_text()}"
            with contextlib.suppress(requests.ConnectionError):
                # /healthcheck needs no login, so readiness does not depend on the auth under test
                if requests.get(f"{url}/healthcheck", timeout=1).ok:
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mock_events(metrics: str) -> list[str]:
    """The flower_events_total samples of emp.mock in a /metrics scrape."""
    return [
        line
        for line in metrics.splitlines()
        if line.startswith("flower_events_total{") and 'task="emp.mock"' in line
    ]


@pytest.fixture(scope="module")
def flower(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cwd = tmp_path_factory.mktemp("flower-auth")  # not the repository: no stray flowerconfig.py
    env = flower_env(FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD},second:other-pw")
    with running_flower(free_port(), env, cwd) as url:
        yield url


@pytest.mark.parametrize("path", ["/", "/tasks", "/api/workers", "/api/tasks"])
def test_ui_and_api_answer_401_without_credentials_and_200_with(flower: str, path: str) -> None:
    assert requests.get(f"{flower}{path}", timeout=5).status_code == 401
    assert requests.get(f"{flower}{path}", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{flower}{path}", auth=CREDENTIALS, timeout=5).status_code == 200
    second_user = requests.get(f"{flower}{path}", auth=("second", "other-pw"), timeout=5)
    assert second_user.status_code == 200


def test_ui_asks_the_browser_for_basic_auth(flower: str) -> None:
    reply = requests.get(f"{flower}/", timeout=5)
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="flower"'


def test_metrics_scrape_with_credentials_gets_flower_events_total(
    flower: str, mock_worker: WorkerProcess
) -> None:
    emp_tasks.submit("mock", {"delay_ms": 200}).get(timeout=30)
    deadline = time.monotonic() + 15
    while not mock_events(requests.get(f"{flower}/metrics", auth=CREDENTIALS, timeout=5).text):
        assert time.monotonic() < deadline, "no flower_events_total for emp.mock in /metrics"
        time.sleep(0.2)
    reply = requests.get(f"{flower}/metrics", auth=CREDENTIALS, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_metrics_and_healthcheck_are_not_behind_basic_auth_in_flower_2_2(flower: str) -> None:
    # Flower's Metrics and Healthcheck handlers skip @authenticated: anyone who reaches the port
    # can scrape. If a Flower upgrade closes this, the credentialed scrape above keeps working.
    assert requests.get(f"{flower}/metrics", timeout=5).status_code == 200
    assert requests.get(f"{flower}/healthcheck", timeout=5).text == "OK"


def refused(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `emp-tasks flower ARGS`, which is expected to exit by itself, within a bound."""
    return subprocess.run(
        [str(EMP_TASKS), "flower", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def listening(port: int) -> bool:
    """Whether anything accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("address", ["0.0.0.0", "::", ""])
def test_non_loopback_address_without_auth_exits_with_one_line_and_never_listens(
    tmp_path: Path, address: str
) -> None:
    port = free_port()
    done = refused(["--address", address, "--port", str(port)], flower_env(), tmp_path)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"emp-tasks flower: --address {address!r} is not loopback")
    assert not listening(port)


@pytest.mark.parametrize(
    "raw", [f"{USER}{PASSWORD}", f"{USER}:", f":{PASSWORD}", f"{USER}:{PASSWORD},", ""]
)
def test_malformed_basic_auth_exits_with_one_line_without_the_password(
    tmp_path: Path, raw: str
) -> None:
    port = free_port()
    env = flower_env(FLOWER_BASIC_AUTH=raw)
    done = refused(["--address", "127.0.0.1", "--port", str(port)], env, tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("emp-tasks flower: FLOWER_BASIC_AUTH must be user:pass")
    assert PASSWORD not in done.stderr
    assert not listening(port)


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_port_outside_1_to_65535_exits_with_one_line(tmp_path: Path, port: str) -> None:
    done = refused(["--port", port], flower_env(), tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("emp-tasks flower: --port must be a whole number 1-65535")
