"""OllamaConnector: generate and chat streamed as NDJSON over a scripted transport."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.services.ollama import OllamaConnector, OllamaSettings, stats_of
from emp_tasks.sandbox.ollama_replies import chunks
from tests.connectors.protocol.stream_fakes import (
    Reply,
    ScriptedTransport,
    json_reply,
    ndjson_chunks,
)

R = FailureReason
T = FailureType
BASE = "http://ollama.test:11434"
GENERATE = f"{BASE}/api/generate"
CHAT = f"{BASE}/api/chat"
NDJSON = {"content-type": "application/x-ndjson"}
LINES = chunks("generate", "llama3.2", {"prompt": "hello fox"})


def make(transport: ScriptedTransport) -> OllamaConnector:
    return OllamaConnector(OllamaSettings(base_url=BASE), session=transport.session())


def job(**payload: Any) -> JobData:
    return JobData(id="job-ollama", type="ollama", payload=payload)


def stream(*lines: Any, url: str = GENERATE) -> ScriptedTransport:
    return ScriptedTransport().add("POST", url, Reply(200, ndjson_chunks(*lines), NDJSON))


def run(
    transport: ScriptedTransport, reports: list[JobProgress] | None = None, **payload: Any
) -> JobResult:
    data = job(**(payload or {"model": "llama3.2", "prompt": "hello fox"}))
    return make(transport).process_job(data, reports.append if reports is not None else None)


def fails(transport: ScriptedTransport, **payload: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        run(transport, **payload)
    return info.value


def kind(error: ConnectorError) -> tuple[FailureType, FailureReason, bool]:
    return error.failure_type, error.failure_reason, error.retryable


def test_generate_streams_text_and_final_stats_in_ms() -> None:
    transport = stream(*LINES)
    reports: list[JobProgress] = []
    result = run(transport, reports)
    assert result.data is not None
    assert result.data["text"] == "Sandbox reply to: hello fox"
    assert result.data["done_reason"] == "stop"
    final = LINES[-1]
    assert result.data["stats"]["eval_count"] == final["eval_count"]
    assert result.data["stats"]["total_duration_ms"] == round(final["total_duration"] / 1e6, 3)
    assert result.data["tokens_used"] == final["eval_count"] + final["prompt_eval_count"]
    assert transport.sent[0].json == {"model": "llama3.2", "prompt": "hello fox", "stream": True}
    assert transport.sent[0].stream is True
    streaming = [r for r in reports if r.current_step == "streaming"]
    assert len(streaming) == len(LINES)  # one report per chunk


def test_chat_goes_to_api_chat_with_system_as_first_message() -> None:
    lines = chunks("chat", "llama3.2", {"messages": [{"role": "user", "content": "hi"}]})
    transport = stream(*lines, url=CHAT)
    messages = [{"role": "user", "content": "hi"}]
    result = run(transport, model="llama3.2", messages=messages, system="Be brief", format="json")
    assert result.data is not None
    assert result.data["message"] == {"role": "assistant", "content": "Sandbox reply to: hi"}
    sent = transport.sent[0].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert (sent["format"], sent["stream"]) == ("json", True)


def status(code: int, error: str) -> Reply:
    return json_reply({"error": error}, code)


HTTP_ERRORS = [
    (
        status(404, "model 'llama9' not found"),
        (T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False),
        "ollama pull llama9",
    ),
    (
        Reply(404, [b"404 page not found"]),
        (T.SYSTEM_ERROR, R.CONFIG_ERROR, False),
        "OLLAMA_BASE_URL",
    ),
    (
        status(400, "invalid options"),
        (T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        "invalid options",
    ),
    (status(429, "too many requests"), (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True), "429"),
    (
        status(500, "llama runner process has terminated"),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        "runner",
    ),
    (
        status(500, "model requires more system memory (9 GiB)"),
        (T.RESOURCE_LIMIT, R.OUT_OF_MEMORY, True),
        "memory",
    ),
    (status(502, "upstream unreachable"), (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True), "502"),
    (
        requests.ConnectionError("Connection refused"),
        (T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        "refused",
    ),
]


@pytest.mark.parametrize(("reply", "expected", "words"), HTTP_ERRORS)
def test_error_replies_are_classified(reply: Any, expected: tuple[Any, ...], words: str) -> None:
    error = fails(ScriptedTransport().add("POST", GENERATE, reply))
    assert kind(error) == expected
    assert words in error.message


STREAM_ERRORS = [
    # (lines after two good ones, verdict)
    (
        [{"error": "an error was encountered while running the model: unexpected EOF"}],
        (T.SERVICE_ERROR, R.JOB_FAILED, True),
    ),
    ([{"error": "model 'x' not found"}], (T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False)),
    (['{"model": "oops", "response": '], (T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False)),
    ([], (T.NETWORK_ERROR, R.CONNECTION_FAILED, True)),  # clean end without `done`
]


@pytest.mark.parametrize(("tail", "expected"), STREAM_ERRORS)
def test_a_bad_stream_under_http_200_is_a_classified_error(
    tail: list[Any], expected: tuple[Any, ...]
) -> None:
    error = fails(stream(*LINES[:2], *tail))
    assert kind(error) == expected
    assert error.context["stream"]["chunks"] == 2


def test_a_connection_dropped_mid_stream_is_retryable() -> None:
    reply = Reply(200, ndjson_chunks(*LINES[:2]), NDJSON, error_after=ConnectionResetError("reset"))
    error = fails(ScriptedTransport().add("POST", GENERATE, reply))
    assert kind(error) == (T.NETWORK_ERROR, R.CONNECTION_FAILED, True)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"prompt": "hi"}, "model"),
        ({"model": "llama3.2"}, "prompt"),
        (
            {"model": "llama3.2", "prompt": "a", "messages": [{"role": "user", "content": "b"}]},
            "prompt",
        ),
        ({"model": "llama3.2", "prompt": "a", "format": "xml"}, "format"),
        ({"model": "llama3.2", "prompt": "a", "stream": False}, "stream"),
    ],
)
def test_bad_payloads_fail_before_any_call(payload: dict[str, Any], field: str) -> None:
    transport = ScriptedTransport()
    error = fails(transport, **payload)
    assert error.failure_type is T.VALIDATION_ERROR
    assert field in error.message
    assert transport.sent == []


def test_health_probe_asks_for_the_version() -> None:
    transport = ScriptedTransport().add(
        "GET", f"{BASE}/api/version", json_reply({"version": "0.6.2"})
    )
    assert make(transport).health().healthy
    assert len(transport.sent) == 1


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ({"eval_count": 3, "eval_duration": 2_500_000}, {"eval_count": 3, "eval_duration_ms": 2.5}),
        (
            {"total_duration": 1_000_000_000, "prompt_eval_count": None},
            {"total_duration_ms": 1000.0},
        ),
        ({"load_duration": True}, {}),
        ({}, {}),
    ],
)
def test_stats_table(final: dict[str, Any], expected: dict[str, Any]) -> None:
    assert stats_of(final) == expected
