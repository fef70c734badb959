"""The three Gemini services through a real Celery worker, redis-server and the Gemini emulator."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.png import read_png_size
from tests.conftest import REDIS_URL
from tests.integration.conftest import GEMINI_KEY, INPUT_PNG
from tests.integration.helpers import finish, provider_calls
from tests.integration.processes import RedisServer, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("gemini_worker")]

KEY = GEMINI_KEY
SERVICES = ("gemini_text", "gemini_image", "gemini_image_edit")


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("gemini-assets"))


@pytest.fixture(scope="module")
def gemini_worker(
    redis_server: RedisServer,
    gemini_emulator: GeminiEmulator,
    asset_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        "GEMINI_API_KEY": KEY,
        "GEMINI_BASE_URL": f"{gemini_emulator.url}/v1beta",
        "GEMINI_RETRY_DELAY_SECONDS": "0.2",
        "CLOUD_STORAGE_PROVIDER": "local",
        "CLOUD_STORAGE_LOCAL_DIR": str(asset_dir),
        "ASSET_DOWNLOAD_ALLOW_HOSTS": "127.0.0.1",
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
    }
    log = Path(tmp_path_factory.mktemp("gemini-worker")) / "worker.log"
    worker = WorkerProcess(env, log, queues=",".join(SERVICES), name="gemini").start()
    yield worker
    worker.stop()


def payload(service: str, prompt: str, emulator: GeminiEmulator) -> dict[str, Any]:
    if service == "gemini_image_edit":
        return {"prompt": prompt, "image_url": emulator.file_url("input.png")}
    if service == "gemini_image":
        return {"prompt": prompt, "aspect_ratio": "16:9"}
    return {"prompt": prompt}


def assert_png_saved(record: dict[str, Any], asset_dir: Path) -> bytes:
    files = record["result"]["output_files"]
    assert files, "no output_files"
    saved = asset_dir / str(files[0]["path"])
    assert saved.is_file()
    assert record["result"]["data"]["image_url"] == saved.as_uri()
    data = saved.read_bytes()
    read_png_size(data)  # a real PNG, not a placeholder
    return data


# -- success ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_success_returns_the_result_and_saves_images(
    service: str, gemini_emulator: GeminiEmulator, asset_dir: Path
) -> None:
    prompt = f"success on {service}"
    result = emp_tasks.submit(service, payload(service, prompt, gemini_emulator))
    record = finish(result)
    assert result.state == "SUCCESS"
    assert record["attempts"] == 1
    data = record["result"]["data"]
    assert prompt in data["text"]
    assert record["result"]["metadata"]["response_id"]
    calls = provider_calls(gemini_emulator)
    assert len(calls) == 1
    if service == "gemini_text":
        assert data["content_type"] == "text"
        assert record["result"]["output_files"] == []
        return
    png = assert_png_saved(record, asset_dir)
    if service == "gemini_image":
        assert read_png_size(png) == (256, 144)  # the aspect ratio reached Gemini
    else:
        assert f"{len(INPUT_PNG)} bytes" in data["text"]  # the input image was sent inline


def test_the_original_service_name_routes_to_image_edit(
    gemini_emulator: GeminiEmulator, asset_dir: Path
) -> None:
    image = base64.b64encode(INPUT_PNG).decode()
    result = emp_tasks.submit("gem-nano-banana", {"prompt": "banana", "image_base64": image})
    record = finish(result)
    assert record["status"] == "completed"
    assert record["service"] == "gemini_image_edit"
    assert_png_saved(record, asset_dir)
    (call,) = provider_calls(gemini_emulator)
    assert call.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call.extra["prompt"] == "banana"


# -- errors that are not retried ------------------------------------------------------------------

NOT_RETRIED = [
    ("gemini_text", "invalid_key", "auth_error", "invalid_api_key"),
    ("gemini_text", "permission_denied", "auth_error", "insufficient_permissions"),
    ("gemini_text", "daily_quota", "rate_limit", "daily_quota_exceeded"),
    ("gemini_image", "prompt_blocked", "generation_refusal", "policy_violation"),
    ("gemini_image", "safety_finish", "generation_refusal", "safety_filter"),
    ("gemini_image", "no_image", "response_error", "missing_expected_data"),
    ("gemini_image_edit", "not_found", "validation_error", "model_not_found"),
    ("gemini_image_edit", "text_only", "response_error", "missing_expected_data"),
]


@pytest.mark.parametrize(
    ("service", "fault", "ftype", "reason"),
    NOT_RETRIED,
    ids=[f"{s}-{f}" for s, f, *_ in NOT_RETRIED],
)
def test_a_non_retryable_error_makes_one_call_and_fails(
    service: str, fault: str, ftype: str, reason: str, gemini_emulator: GeminiEmulator
) -> None:
    prompt = f"{fault} on {service}"
    gemini_emulator.queue_faults([{"kind": fault}], match={"prompt": prompt})
    result = emp_tasks.submit(service, payload(service, prompt, gemini_emulator))
    record = finish(result)
    assert result.state == "FAILURE"
    assert len(provider_calls(gemini_emulator)) == 1
    error = result.result
    assert isinstance(error, ConnectorError)
    assert (error.failure_type.value, error.failure_reason.value) == (ftype, reason)
    assert error.retryable is False
    assert record["attempts"] == 1
    assert KEY not in str(error.to_dict())


# -- errors that are retried ----------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_rate_limit_waits_the_retry_delay_before_the_next_call(
    service: str, gemini_emulator: GeminiEmulator
) -> None:
    prompt = f"rate limited on {service}"
    gemini_emulator.queue_faults(
        [{"kind": "rate_limit", "retry_after": "1.2s"}], match={"prompt": prompt}
    )
    record = finish(emp_tasks.submit(service, payload(service, prompt, gemini_emulator)))
    calls = provider_calls(gemini_emulator)
    assert record["status"] == "completed"
    assert record["attempts"] == 2
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].monotonic - calls[0].monotonic >= 1.2


def test_an_overloaded_model_is_retried(gemini_emulator: GeminiEmulator) -> None:
    gemini_emulator.queue_faults([{"kind": "overloaded"}], match={"prompt": "busy"})
    record = finish(emp_tasks.submit("gemini_text", {"prompt": "busy"}))
    assert record["status"] == "completed"
    assert [c.status for c in provider_calls(gemini_emulator)] == [503, 200]


# -- progress, refusal at submit, secrets ---------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_progress_is_visible_while_the_job_runs(
    service: str, gemini_emulator: GeminiEmulator
) -> None:
    prompt = f"slow on {service}"
    gemini_emulator.queue_faults([{"kind": "slow", "delay": 1.0}], match={"prompt": prompt})
    result = emp_tasks.submit(service, payload(service, prompt, gemini_emulator))
    seen: list[dict[str, Any]] = []
    while not result.ready():
        if result.state == "PROGRESS":
            seen.append(dict(result.info))
        time.sleep(0.05)
    assert result.state == "SUCCESS"
    assert seen, "no PROGRESS state observed"
    assert seen[0]["job_id"] == result.id
    assert 0 < seen[0]["progress"] < 100


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"prompt": "x"}, "image_base64"),
        ({"prompt": "x", "image_url": "http://127.0.0.1/a.png", "image_base64": "AAAA"}, "image"),
        ({"image_base64": "AAAA"}, "prompt"),
    ],
)
def test_a_bad_edit_payload_is_refused_at_submit(
    bad: dict[str, Any], field: str, gemini_emulator: GeminiEmulator
) -> None:
    with pytest.raises(ConnectorError, match=field):
        emp_tasks.submit("gem-nano-banana", bad)
    assert gemini_emulator.calls() == []


def test_an_input_image_that_cannot_be_fetched_fails_before_gemini_is_called(
    gemini_emulator: GeminiEmulator,
) -> None:
    missing = {"prompt": "x", "image_url": gemini_emulator.file_url("missing.png")}
    record = finish(emp_tasks.submit("gemini_image_edit", missing))
    assert record["status"] == "failed"
    assert record["error"]["failure_type"] == "validation_error"
    assert provider_calls(gemini_emulator) == []


def test_the_key_never_appears_in_results_errors_or_the_worker_log(
    gemini_emulator: GeminiEmulator, gemini_worker: WorkerProcess
) -> None:
    gemini_emulator.queue_faults([{"kind": "invalid_key"}], match={"prompt": "leak?"})
    ok = emp_tasks.submit("gemini_image", {"prompt": "fine"})
    bad = emp_tasks.submit("gemini_text", {"prompt": "leak?"})
    exposed = [
        str(finish(ok)),
        str(finish(bad)),
        repr(bad.result),
        str(bad.result.to_dict()),
        gemini_worker.text(),
    ]
    assert all(KEY not in text for text in exposed)
    assert all(c.auth_valid for c in provider_calls(gemini_emulator))
