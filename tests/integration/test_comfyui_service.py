"""ComfyUI jobs through a real `emp-tasks worker --service comfyui`, redis-server and emulator.

The worker runs the mapping's pool for a GPU-bound service (prefork, one job at a time) and
follows each prompt on the emulator's `/ws` socket. A success saves its image to the asset
folder and reports progress while the sampler runs; CUDA out of memory is retried to success
(the prompt queued again under the same id); any other node exception fails at once; a socket
dropped mid-job is retried and completes without a second POST /prompt; a refused workflow is
a validation error naming the node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from connectors.services.comfyui_messages import prompt_id_for
from emp_tasks.sandbox.comfyui import ComfyUIEmulator
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import read_png_size
from tests.conftest import REDIS_URL
from tests.connectors.services.comfyui_support import workflow
from tests.integration.helpers import failed, finish, progress_seen
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("comfyui_worker")]


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("comfyui-assets"))


@pytest.fixture(scope="module")
def comfyui_worker(
    redis_server: RedisServer,
    comfyui_emulator: ComfyUIEmulator,
    asset_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        "COMFYUI_BASE_URL": comfyui_emulator.url,
        "COMFYUI_RETRY_DELAY_SECONDS": "0.2",
        "COMFYUI_TIMEOUT_SECONDS": "20",
        "CLOUD_STORAGE_PROVIDER": "local",
        "CLOUD_STORAGE_LOCAL_DIR": str(asset_dir),
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
    }
    tmp = Path(tmp_path_factory.mktemp("comfyui-worker"))
    argv = [console_script("emp-tasks"), "worker", "--service", "comfyui"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()


def payload(prefix: str) -> dict[str, Any]:
    """The example workflow, its SaveImage prefix naming the test (faults match on it)."""
    save = {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}}
    return {"workflow": workflow(**{"9": save})}


def submitted(emulator: ComfyUIEmulator, job_id: str) -> list[Any]:
    return [
        c for c in emulator.calls("/prompt") if c.extra.get("prompt_id") == prompt_id_for(job_id)
    ]


def test_the_worker_runs_comfyui_in_a_prefork_pool_of_one(comfyui_worker: WorkerProcess) -> None:
    assert "prefork" in comfyui_worker.text()


def test_a_workflow_saves_its_image_and_reports_progress(
    comfyui_emulator: ComfyUIEmulator, asset_dir: Path
) -> None:
    # Six sampler steps of 0.25 s: long enough for the worker's throttled progress to show.
    comfyui_emulator.queue_faults([Fault("slow_run", delay=0.25)], match={"filename_prefix": "ok"})
    job = payload("ok")
    job["workflow"]["3"]["inputs"]["steps"] = 6
    result = emp_tasks.submit("comfyui", job)
    seen = progress_seen(result)
    record = finish(result)
    assert (record["status"], record["attempts"]) == ("completed", 1)
    body = record["result"]
    files = body["output_files"]
    assert len(files) == 1
    assert body["data"]["image_url"] == files[0]["metadata"]["url"]
    assert read_png_size((asset_dir / files[0]["path"]).read_bytes()) == (64, 64)
    running = [p for p in seen if p.get("current_step") == "running"]
    assert running, seen
    assert any("step" in (p.get("message") or "") for p in running), running
    assert len(submitted(comfyui_emulator, result.id)) == 1
    assert comfyui_emulator.calls("/ws"), "the worker never opened the socket"


def test_out_of_memory_is_retried_and_then_completes(comfyui_emulator: ComfyUIEmulator) -> None:
    comfyui_emulator.queue_faults([Fault("oom")], match={"filename_prefix": "oom"})
    result = emp_tasks.submit("comfyui", payload("oom"))
    record = finish(result)
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert len(submitted(comfyui_emulator, result.id)) == 2  # run again, under the same id


def test_another_node_exception_fails_at_once(comfyui_emulator: ComfyUIEmulator) -> None:
    comfyui_emulator.queue_faults([Fault("execution_error")], match={"filename_prefix": "bad"})
    result = emp_tasks.submit("comfyui", payload("bad"))
    error, record = failed(result)
    assert (error.failure_reason.value, error.retryable) == ("job_failed", False)
    assert "node 3 (KSampler)" in error.message
    assert record["attempts"] == 1
    assert len(submitted(comfyui_emulator, result.id)) == 1


def test_a_dropped_socket_is_retried_without_submitting_twice(
    comfyui_emulator: ComfyUIEmulator,
) -> None:
    comfyui_emulator.queue_faults([Fault("drop_socket")], match={"filename_prefix": "drop"})
    result = emp_tasks.submit("comfyui", payload("drop"))
    record = finish(result)
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert len(record["result"]["output_files"]) == 1
    assert len(submitted(comfyui_emulator, result.id)) == 1
    assert len([c for c in comfyui_emulator.calls("/ws") if c.status == 101]) == 2


def test_a_malformed_frame_is_retried_and_reads_the_history(
    comfyui_emulator: ComfyUIEmulator,
) -> None:
    comfyui_emulator.queue_faults([Fault("malformed_frame")], match={"filename_prefix": "mal"})
    result = emp_tasks.submit("comfyui", payload("mal"))
    record = finish(result)
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert len(submitted(comfyui_emulator, result.id)) == 1


def test_a_refused_workflow_is_a_validation_error_naming_the_node(
    comfyui_emulator: ComfyUIEmulator,
) -> None:
    broken = payload("refused")
    del broken["workflow"]["3"]["inputs"]["model"]
    error, record = failed(emp_tasks.submit("comfyui", broken))
    assert (error.failure_type.value, error.retryable) == ("validation_error", False)
    assert error.context["field"] == "workflow.3.inputs.model"
    assert "node 3 (KSampler)" in error.message
    assert record["attempts"] == 1
