"""AUTOMATIC1111 jobs through a real `emp-tasks worker --service a1111`, redis-server and emulator.

The worker runs the mapping's pool for a GPU-bound service (prefork, one job at a time), with
HTTP Basic auth from A1111_AUTH. For txt2img and img2img: images saved to the asset folder, and
progress polled from `/sdapi/v1/progress` while the blocking call runs; each error class: an
out-of-memory 500 and a socket dropped mid-job are retried to success, a server without `--api`,
refused credentials and a 422 fail at once after one call. The password appears nowhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks.sandbox.a1111 import A1111Emulator
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import make_png, read_png_size
from tests.conftest import REDIS_URL
from tests.integration.conftest import A1111_AUTH
from tests.integration.helpers import finish, progress_seen
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("a1111_worker")]

PASSWORD = A1111_AUTH.split(":", 1)[1]
GENERATE = ("/sdapi/v1/txt2img", "/sdapi/v1/img2img")


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("a1111-assets"))


@pytest.fixture(scope="module")
def a1111_worker(
    redis_server: RedisServer,
    a1111_emulator: A1111Emulator,
    asset_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        "A1111_BASE_URL": a1111_emulator.url,
        "A1111_AUTH": A1111_AUTH,
        "A1111_RETRY_DELAY_SECONDS": "0.2",
        "A1111_PROGRESS_INTERVAL_SECONDS": "0.1",
        "CLOUD_STORAGE_PROVIDER": "local",
        "CLOUD_STORAGE_LOCAL_DIR": str(asset_dir),
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
    }
    tmp = Path(tmp_path_factory.mktemp("a1111-worker"))
    argv = [console_script("emp-tasks"), "worker", "--service", "a1111"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()
    assert PASSWORD not in worker.text()


def generations(emulator: A1111Emulator) -> list[Any]:
    return [c for c in emulator.calls() if c.path in GENERATE]


def failed(payload: dict[str, Any]) -> tuple[ConnectorError, dict[str, Any]]:
    result = emp_tasks.submit("a1111", payload)
    record = finish(result)
    assert result.state == "FAILURE"
    assert isinstance(result.result, ConnectorError)
    assert PASSWORD not in json.dumps(record)
    return result.result, record


def test_the_worker_runs_a1111_in_a_prefork_pool_of_one(a1111_worker: WorkerProcess) -> None:
    assert "prefork" in a1111_worker.text()


def test_txt2img_saves_the_image_and_reports_polled_progress(
    a1111_emulator: A1111Emulator, asset_dir: Path
) -> None:
    payload = {"prompt": "a red fox", "steps": 20, "width": 64, "height": 64, "seed": 7}
    result = emp_tasks.submit("a1111", payload)
    seen = progress_seen(result)
    record = finish(result)
    assert record["status"] == "completed"
    data = record["result"]["data"]
    assert (data["seed"], data["model_used"]) == (7, "v1-5-pruned-emaonly")
    saved = asset_dir / record["result"]["output_files"][0]["path"]
    assert read_png_size(saved.read_bytes()) == (64, 64)
    generating = [p for p in seen if p["current_step"] == "generating" and p["progress"] > 10]
    assert generating, seen
    assert all(10 < p["progress"] <= 90 for p in generating)
    assert a1111_emulator.calls("/sdapi/v1/progress"), "no progress poll reached the server"
    assert all(c.auth_valid for c in a1111_emulator.calls())


def test_img2img_is_sent_with_its_init_images(a1111_emulator: A1111Emulator) -> None:
    image = base64.b64encode(make_png("init", 16, 16)).decode()
    payload = {"prompt": "bluer", "init_images": [image], "steps": 2, "width": 64, "height": 64}
    record = finish(emp_tasks.submit("a1111", payload))
    assert record["status"] == "completed"
    assert record["result"]["data"]["mode"] == "img2img"
    assert [c.path for c in generations(a1111_emulator)] == ["/sdapi/v1/img2img"]


@pytest.mark.parametrize("fault", ["oom", "reset"])
def test_out_of_memory_and_a_dropped_socket_are_retried_to_success(
    a1111_emulator: A1111Emulator, fault: str
) -> None:
    a1111_emulator.queue_faults([Fault(fault)], match={"endpoint": "txt2img"})
    record = finish(emp_tasks.submit("a1111", {"prompt": f"retry {fault}", "steps": 4}))
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert [c.status for c in generations(a1111_emulator)] == [
        500 if fault == "oom" else None,
        200,
    ]


@pytest.mark.parametrize(
    ("fault", "failure", "words"),
    [
        (Fault("no_api"), ("system_error", "config_error"), "--api"),
        (Fault("unauthorized"), ("auth_error", "invalid_api_key"), "A1111_AUTH"),
        (Fault("validation", message="width"), ("validation_error", "invalid_payload"), "'width'"),
    ],
)
def test_permanent_errors_fail_after_one_call(
    a1111_emulator: A1111Emulator, fault: Fault, failure: tuple[str, str], words: str
) -> None:
    a1111_emulator.queue_faults([fault], match={"endpoint": "txt2img"})
    error, record = failed({"prompt": "no luck", "steps": 2})
    assert (error.failure_type.value, error.failure_reason.value) == failure
    assert not error.retryable
    assert words in error.message
    assert record["attempts"] == 1
    assert len(generations(a1111_emulator)) == 1
