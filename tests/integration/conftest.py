"""Fixtures that start real parts: redis-server, the Glif emulator, Celery workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_PORT, REDIS_URL
from tests.integration.processes import RedisServer, WorkerProcess

TOKEN = "sandbox-token-7c1e9f0b2a"  # distinctive, so a leak is easy to grep for


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(REDIS_PORT).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def glif_emulator() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "glif_emulator" in request.fixturenames:
        request.getfixturevalue("glif_emulator").reset()


def glif_env(emulator: GlifEmulator, **extra: str) -> dict[str, str]:
    return {
        "GLIF_API_TOKEN": TOKEN,
        "GLIF_BASE_URL": emulator.url,
        "GLIF_RETRY_DELAY_SECONDS": "0.2",
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
