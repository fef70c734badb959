"""Ollama jobs through a real `emp-tasks worker --service ollama`, redis-server and emulator.

Generate and chat stream NDJSON into `data.text` with the final stats in ms, reporting progress
while the lines arrive; each error class: a 500, a 429, a 502, a mid-stream `{"error"}` line
and a socket dropped mid-stream are retried to success; a model that is not pulled, a 400 and a
malformed line fail at once after one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.ollama import OllamaEmulator
from tests.conftest import REDIS_URL
from tests.integration.helpers import finish, progress_seen
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ollama_worker")]

MODEL = "llama3.2"
STREAMS = ("/api/generate", "/api/chat")


@pytest.fixture(scope="module")
def ollama_worker(
    redis_server: RedisServer,
    ollama_emulator: OllamaEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = {
        "OLLAMA_BASE_URL": ollama_emulator.url,
        "OLLAMA_RETRY_DELAY_SECONDS": "0.2",
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
    }
    tmp = Path(tmp_path_factory.mktemp("ollama-worker"))
    argv = [console_script("emp-tasks"), "worker", "--service", "ollama"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()


def streams(emulator: OllamaEmulator) -> list[Any]:
    return [c for c in emulator.calls() if c.path in STREAMS]


def test_generate_streams_text_stats_and_progress(ollama_emulator: OllamaEmulator) -> None:
    prompt = " ".join(f"word{n}" for n in range(24))  # ~28 lines, 50 ms apart
    result = emp_tasks.submit("ollama", {"model": MODEL, "prompt": prompt})
    seen = progress_seen(result)
    record = finish(result)
    assert record["status"] == "completed"
    data = record["result"]["data"]
    assert data["text"] == f"Sandbox reply to: {prompt}"
    assert data["stats"]["eval_count"] == 27
    assert 0 < data["stats"]["eval_duration_ms"] < 10_000  # ns became ms
    assert any(p["current_step"] == "streaming" for p in seen), seen
    assert len(streams(ollama_emulator)) == 1


def test_chat_returns_the_assistant_message(ollama_emulator: OllamaEmulator) -> None:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "system": "Brief"}
    record = finish(emp_tasks.submit("ollama", payload))
    assert record["status"] == "completed"
    assert record["result"]["data"]["message"]["content"] == "Sandbox reply to: hi"
    sent = streams(ollama_emulator)[0].body_json
    assert sent["messages"][0] == {"role": "system", "content": "Brief"}


@pytest.mark.parametrize(
    "fault", ["server_error", "rate_limit", "bad_gateway", "mid_stream_error", "reset"]
)
def test_transient_errors_are_retried_to_success(
    ollama_emulator: OllamaEmulator, fault: str
) -> None:
    ollama_emulator.queue_faults([Fault(fault, retry_after=0)], match={"endpoint": "generate"})
    record = finish(emp_tasks.submit("ollama", {"model": MODEL, "prompt": f"retry {fault}"}))
    assert (record["status"], record["attempts"]) == ("completed", 2)
    assert len(streams(ollama_emulator)) == 2


@pytest.mark.parametrize(
    ("model", "fault", "failure", "words"),
    [
        ("llama9", None, ("validation_error", "model_not_found"), "ollama pull llama9"),
        (MODEL, "bad_request", ("validation_error", "invalid_request"), "invalid options"),
        (MODEL, "malformed", ("response_error", "invalid_response_format"), "not JSON"),
    ],
)
def test_permanent_errors_fail_after_one_call(
    ollama_emulator: OllamaEmulator,
    model: str,
    fault: str | None,
    failure: tuple[str, str],
    words: str,
) -> None:
    if fault is not None:
        ollama_emulator.queue_faults([Fault(fault)], match={"endpoint": "generate"})
    result = emp_tasks.submit("ollama", {"model": model, "prompt": "no luck"})
    record = finish(result)
    error = result.result
    assert isinstance(error, ConnectorError)
    assert (error.failure_type.value, error.failure_reason.value) == failure
    assert not error.retryable
    assert words in error.message
    assert record["attempts"] == 1
    assert len(streams(ollama_emulator)) == 1
