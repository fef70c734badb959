"""OpenAI jobs (text, responses, image) through a real Celery worker, redis-server and emulator.

One worker consumes the three OpenAI queues; for each service: a success (images saved to the
local asset folder), a non-retryable error (one provider call, FAILURE), a retryable one (the
calls counted across Celery's retry) and progress seen while the job runs. The API key must not
show up in any result, error, event or log line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.png import read_png_size
from tests.conftest import REDIS_URL
from tests.integration.conftest import OPENAI_KEY
from tests.integration.helpers import EventCollector, failed, finish, progress_seen
from tests.integration.processes import RedisServer, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("openai_worker")]

KEY = OPENAI_KEY
QUEUES = "openai_text,openai_responses,openai_image"
IMAGE_TOOL = {"type": "image_generation", "size": "128x128"}


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("openai-assets"))


@pytest.fixture(scope="module")
def openai_worker(
    redis_server: RedisServer,
    openai_emulator: OpenAIEmulator,
    asset_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": f"{openai_emulator.url}/v1",
        "OPENAI_RETRY_DELAY_SECONDS": "0.2",
        "OPENAI_RESPONSES_POLL_INTERVAL_SECONDS": "0.2",
        "OPENAI_RESPONSES_TIMEOUT_SECONDS": "20",
        "CLOUD_STORAGE_PROVIDER": "local",
        "CLOUD_STORAGE_LOCAL_DIR": str(asset_dir),
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
    }
    log = Path(tmp_path_factory.mktemp("openai-worker")) / "worker.log"
    worker = WorkerProcess(env, log, queues=QUEUES, concurrency=4, name="openai").start()
    yield worker
    worker.stop()


def calls(emulator: OpenAIEmulator, path: str) -> list[Any]:
    return [c for c in emulator.calls(path) if c.kind == "provider"]


def saved_file(asset_dir: Path, body: dict[str, Any]) -> Path:
    files = body["output_files"]
    assert len(files) == 1
    path = asset_dir / str(files[0]["path"])
    assert path.is_file()
    return path


# --- openai_text ----------------------------------------------------------------------------


def test_text_success_returns_streamed_text_and_usage(openai_emulator: OpenAIEmulator) -> None:
    result = emp_tasks.submit("openai_text", {"prompt": "hello fox"})
    record = finish(result)
    assert record["status"] == "completed"
    data = record["result"]["data"]
    assert (data["text"], data["finish_reason"]) == ("Sandbox reply to: hello fox", "stop")
    assert data["usage"]["total_tokens"] > 0
    assert len(calls(openai_emulator, "/v1/chat/completions")) == 1


def test_text_bad_key_fails_after_one_call(openai_emulator: OpenAIEmulator) -> None:
    # The message echoes the whole key, as a careless proxy might: it must be scrubbed.
    fault = Fault("invalid_api_key", message=f"Incorrect API key provided: {KEY}")
    openai_emulator.queue_faults([fault], match={"endpoint": "chat.completions"})
    error, record = failed(emp_tasks.submit("openai_text", {"prompt": "x"}))
    assert (error.failure_type.value, error.retryable) == ("auth_error", False)
    assert record["attempts"] == 1
    assert KEY not in error.message
    assert len(calls(openai_emulator, "/v1/chat/completions")) == 1


def test_text_mid_stream_error_is_retried_to_success(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults([Fault("mid_stream_error")], match={"prompt": "retry me"})
    record = finish(emp_tasks.submit("openai_text", {"prompt": "retry me"}))
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert [c.status for c in calls(openai_emulator, "/v1/chat/completions")] == [200, 200]


def test_text_progress_is_visible_while_streaming(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults([Fault("slow", delay=1.2)], match={"prompt": "slowly"})
    seen = progress_seen(emp_tasks.submit("openai_text", {"prompt": "slowly"}))
    assert seen, "no PROGRESS state observed"
    assert 0 < seen[0]["progress"] < 100


# --- openai_responses -----------------------------------------------------------------------


def test_responses_image_is_polled_and_saved(
    openai_emulator: OpenAIEmulator, asset_dir: Path
) -> None:
    payload = {"input": "draw a fox", "tools": [IMAGE_TOOL]}
    result = emp_tasks.submit("openai_responses", payload)
    seen = progress_seen(result)
    record = finish(result)
    assert record["status"] == "completed"
    body = record["result"]
    assert body["data"]["content_type"] == "image"
    assert body["data"]["image_url"] == body["output_files"][0]["metadata"]["url"]
    assert read_png_size(saved_file(asset_dir, body).read_bytes()) == (128, 128)
    assert "[BASE64_DATA_REMOVED]" in str(body["data"]["raw_output"])
    polls = calls(openai_emulator, "/v1/responses/")
    assert [c.extra["status"] for c in polls] == ["in_progress", "in_progress", "completed"]
    assert any(25 <= p["progress"] < 100 for p in seen), seen


def test_responses_refusal_fails_after_one_submission(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults([Fault("refusal")], match={"endpoint": "responses.create"})
    error, record = failed(emp_tasks.submit("openai_responses", {"input": "something bad"}))
    assert (error.failure_type.value, error.retryable) == ("generation_refusal", False)
    assert record["attempts"] == 1
    assert len([c for c in calls(openai_emulator, "/v1/responses") if c.method == "POST"]) == 1


def test_responses_server_failure_is_retried_with_a_new_response(
    openai_emulator: OpenAIEmulator,
) -> None:
    openai_emulator.queue_faults(
        [Fault("response_failed", message="server_error")], match={"prompt": "flaky"}
    )
    record = finish(emp_tasks.submit("openai_responses", {"input": "flaky"}))
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert record["result"]["data"]["text"] == "Sandbox reply to: flaky"
    creates = [c for c in calls(openai_emulator, "/v1/responses") if c.path == "/v1/responses"]
    assert len(creates) == 2


# --- openai_image ---------------------------------------------------------------------------


def test_image_success_saves_the_png(openai_emulator: OpenAIEmulator, asset_dir: Path) -> None:
    payload = {"prompt": "a red fox", "size": "128x128", "quality": "low"}
    record = finish(emp_tasks.submit("openai_image", payload))
    assert record["status"] == "completed"
    body = record["result"]
    assert body["data"]["mime_type"] == "image/png"
    assert read_png_size(saved_file(asset_dir, body).read_bytes()) == (128, 128)
    assert "b64_json" not in str(body)
    sent = calls(openai_emulator, "/v1/images/generations")[0].body_json
    assert sent == {**payload, "model": "gpt-image-1"}


def test_image_out_of_quota_fails_after_one_call(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults([Fault("insufficient_quota")], match={"prompt": "broke"})
    error, record = failed(emp_tasks.submit("openai_image", {"prompt": "broke"}))
    assert (error.failure_type.value, error.failure_reason.value) == (
        "resource_limit",
        "insufficient_credits",
    )
    assert record["attempts"] == 1
    assert len(calls(openai_emulator, "/v1/images/generations")) == 1


def test_image_rate_limit_waits_the_hint_then_succeeds(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults(
        [Fault("rate_limit", retry_after_ms=700)], match={"prompt": "busy"}
    )
    record = finish(emp_tasks.submit("openai_image", {"prompt": "busy", "size": "64x64"}))
    made = calls(openai_emulator, "/v1/images/generations")
    assert (record["status"], [c.status for c in made]) == ("completed", [429, 200])
    assert made[1].monotonic - made[0].monotonic >= 0.7


def test_image_progress_is_visible_while_generating(openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.queue_faults([Fault("slow", delay=1.2)], match={"prompt": "slow fox"})
    seen = progress_seen(emp_tasks.submit("openai_image", {"prompt": "slow fox", "size": "64x64"}))
    assert seen, "no PROGRESS state observed"
    assert seen[0]["service"] == "openai_image"


# --- secrets --------------------------------------------------------------------------------


def test_key_never_appears_in_results_errors_events_or_logs(
    openai_emulator: OpenAIEmulator, openai_worker: WorkerProcess
) -> None:
    leak = Fault("server_error", message=f"upstream said: Bearer {KEY} is odd")
    openai_emulator.queue_faults([leak], match={"prompt": "leaky"})
    openai_emulator.queue_faults([Fault("invalid_api_key", message=KEY)], match={"prompt": "bad"})
    with EventCollector() as collector:
        jobs = [
            emp_tasks.submit("openai_text", {"prompt": "leaky"}),
            emp_tasks.submit("openai_image", {"prompt": "bad"}),
            emp_tasks.submit("openai_responses", {"input": "fine", "tools": [IMAGE_TOOL]}),
        ]
        records = [finish(job) for job in jobs]
        time.sleep(0.5)
    exposed = [str(records), str(collector.events), openai_worker.text()]
    exposed += [repr(job.result) for job in jobs if job.state == "FAILURE"]
    assert [r["status"] for r in records] == ["completed", "failed", "completed"]
    assert all(KEY not in text for text in exposed)
