"""OpenAITextConnector: Chat Completions streamed over a scripted transport."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobProgress, JobResult
from connectors.services.openai_common import OpenAISettings
from connectors.services.openai_text import OpenAITextConnector
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, sse_chunks
from tests.connectors.services.openai_support import CHAT, SSE, R, T, fails, job, kind, make

pytestmark = pytest.mark.usefixtures("clean_openai_env")


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini-2024",
        "choices": [choice],
    }


USAGE = {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}
STREAM = [
    chunk("", role="assistant"),
    chunk("Hel"),
    chunk("lo!"),
    chunk(finish="stop"),
    {"id": "chatcmpl-1", "choices": [], "usage": USAGE},
    "[DONE]",
]


def run_text(
    *events: Any, reports: list[JobProgress] | None = None, **payload: Any
) -> tuple[JobResult, ScriptedTransport]:
    transport = ScriptedTransport().add("POST", CHAT, Reply(200, sse_chunks(*events), SSE))
    connector = make(OpenAITextConnector, transport)
    data = job("openai_text", **(payload or {"prompt": "hi"}))
    return connector.process_job(data, reports.append if reports is not None else None), transport


def text_fails(*events: Any) -> ConnectorError:
    transport = ScriptedTransport().add("POST", CHAT, Reply(200, sse_chunks(*events), SSE))
    return fails(make(OpenAITextConnector, transport), job("openai_text", prompt="hi"))


def test_streamed_chat_is_folded_into_text_with_usage_and_finish_reason() -> None:
    result, transport = run_text(*STREAM)
    assert result.data == {
        "content_type": "text",
        "text": "Hello!",
        "model_used": "gpt-4o-mini-2024",
        "finish_reason": "stop",
        "usage": USAGE,
        "tokens_used": 10,
    }
    assert result.service_metadata is not None
    assert result.service_metadata.service_job_id == "chatcmpl-1"
    sent = transport.sent[0]
    assert sent.stream is True
    assert sent.json == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_messages_and_sampling_knobs_pass_through() -> None:
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]
    _, transport = run_text(*STREAM, messages=messages, model="gpt-4o", max_tokens=5, temperature=0)
    body = transport.sent[0].json
    assert body["messages"] == messages
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("gpt-4o", 5, 0)


def test_progress_rises_while_chunks_arrive() -> None:
    reports: list[JobProgress] = []
    many = [chunk("x") for _ in range(25)]
    run_text(*many, chunk(finish="stop"), "[DONE]", reports=reports)
    streaming = [r.progress for r in reports if r.current_step == "streaming"]
    assert len(streaming) == 2
    assert streaming == sorted(streaming)
    assert reports[-1].progress == 100


TEXT_FAILURES: dict[str, tuple[list[Any], tuple[FailureType, FailureReason, bool]]] = {
    "content_filter": (
        [chunk("Hel"), chunk(finish="content_filter"), "[DONE]"],
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "refusal_delta": (
        [chunk(refusal="I can't"), chunk(finish="stop"), "[DONE]"],
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "mid_stream_server_error": (
        [
            chunk("Hel"),
            {
                "error": {
                    "message": "The server had an error",
                    "type": "server_error",
                    "code": "server_error",
                }
            },
        ],
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ),
    "mid_stream_rate_limit": (
        [
            chunk("Hel"),
            {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
        ],
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    ),
    "no_done_marker": (
        [chunk("Hel"), chunk(finish="stop")],
        (T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
    ),
    "done_without_finish": ([chunk("Hel"), "[DONE]"], (T.NETWORK_ERROR, R.CONNECTION_FAILED, True)),
}


@pytest.mark.parametrize(("events", "expected"), TEXT_FAILURES.values(), ids=TEXT_FAILURES.keys())
def test_stream_failures_are_classified(
    events: list[Any], expected: tuple[FailureType, FailureReason, bool]
) -> None:
    assert kind(text_fails(*events)) == expected


def test_chat_streams_are_bounded_by_the_same_limit_as_the_task() -> None:
    settings = OpenAISettings(api_key=SecretStr("k" * 12), timeout_seconds=60)
    connector = OpenAITextConnector(settings)
    assert connector.deadline == 2 * 60 + 30  # the task's soft time limit, from the same setting
