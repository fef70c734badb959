"""Fixtures that start real parts: redis-server, the provider emulators, Celery workers.

The emulators are module-scoped and shared by every integration module that asks for them; each
is reset before every test that uses it, after the test's workers have started (their start-up
health probes are not a test's calls).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emp_tasks.sandbox.a1111 import A1111Emulator
from emp_tasks.sandbox.comfyui import ComfyUIEmulator
from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.ollama import OllamaEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.png import make_png
from tests.conftest import REDIS_PORT, REDIS_URL, free_port
from tests.integration.processes import (
    RabbitMQServer,
    RedisServer,
    WorkerProcess,
    start_mock_worker,
)

# Distinctive credentials, so a leak is easy to grep for.
TOKEN = "sandbox-token-7c1e9f0b2a"
OPENAI_KEY = "sk-openai-integration-9d3b7f21a6"
GEMINI_KEY = "gemini-integration-key-5b0c3e7a19"
A1111_AUTH = "artist:a1111-integration-pass-62d0"
INPUT_PNG = make_png("integration-input", 24, 24)  # served by the Gemini emulator for edits
EMULATORS = (
    "glif_emulator",
    "openai_emulator",
    "gemini_emulator",
    "a1111_emulator",
    "ollama_emulator",
    "comfyui_emulator",
)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(REDIS_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own: its command counts and restarts are the test's alone."""
    server = RedisServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A rabbitmq-server node of the module's own, on free loopback ports."""
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        pytest.skip("rabbitmq-server is not installed (`make system-deps` installs it as root)")
    server = RabbitMQServer(free_port(), free_port(), tmp_path_factory.mktemp("rabbitmq"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mock_worker(
    redis_server: RedisServer, flower: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A mock worker on the test Redis, started after the module's `flower` (which sees it)."""
    env = {"EMP_BROKER_URL": REDIS_URL, "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1")}
    worker = start_mock_worker(tmp_path_factory.mktemp("flower-mock"), "flower-mock", env)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def glif_emulator() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def openai_emulator() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(tokens=(OPENAI_KEY,), polls_to_complete=3) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gemini_emulator() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(tokens=(GEMINI_KEY,)) as emulator:
        emulator.add_file("input.png", INPUT_PNG, "image/png")
        yield emulator


@pytest.fixture(scope="module")
def a1111_emulator() -> Iterator[A1111Emulator]:
    """AUTOMATIC1111 with --api-auth A1111_AUTH; 20 steps take 0.6 s, so progress is seen."""
    with A1111Emulator(tokens=(A1111_AUTH,), step_seconds=0.03) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ollama_emulator() -> Iterator[OllamaEmulator]:
    with OllamaEmulator(line_pause=0.05) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def comfyui_emulator() -> Iterator[ComfyUIEmulator]:
    """ComfyUI with its /ws socket; a sampler step takes 0.05 s, so progress is seen."""
    with ComfyUIEmulator(step_delay=0.05) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    for name in request.fixturenames:
        if name.endswith("_worker"):
            request.getfixturevalue(name)  # started first: its probes are not the test's calls
    for name in EMULATORS:
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def glif_env(emulator: GlifEmulator, **extra: str) -> dict[str, str]:
    return {
        "GLIF_API_TOKEN": TOKEN,
        "GLIF_BASE_URL": emulator.url,
        "GLIF_RETRY_DELAY_SECONDS": "0.2",
        # No 10/s spacing and no breaker in tests that are not about them (test_rate_limits.py
        # sets its own): a call delayed past its test's end would land in the next test's call
        # log, and a breaker opened by one module's faults (in the shared Redis) would hold the
        # next module's jobs for its cool-down.
        "GLIF_RATE_LIMIT": "0",
        "GLIF_BREAKER_FAILURES": "0",
        "ASSET_DOWNLOAD_ALLOW_HOSTS": "127.0.0.1",
        "CLOUD_STORAGE_LOCAL_DIR": str(Path(os.environ["EMP_VAR_DIR"]) / "assets"),
        **extra,
    }


@pytest.fixture(scope="module")
def redis_glif_worker(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    env = glif_env(
        glif_emulator, EMP_BROKER_URL=REDIS_URL, EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1")
    )
    worker = WorkerProcess(env, log).start()
    yield worker
    worker.stop()
