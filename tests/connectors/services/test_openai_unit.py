"""OpenAI connectors (text, responses, image) over a scripted transport, with an injected clock."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from connectors.assets import (
    AssetSaver,
    AssetSource,
    Base64Data,
    ExpectedKind,
    LazyAssetSaver,
    SavedAsset,
)
from connectors.base import BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol.polling import PollPolicy
from connectors.services.openai_common import (
    BASE64_REMOVED,
    OpenAISettings,
    classify_openai_error,
    image_mime,
    is_refusal,
    strip_base64,
)
from connectors.services.openai_image import OpenAIImageConnector
from connectors.services.openai_responses import OpenAIResponsesConnector
from connectors.services.openai_text import OpenAITextConnector
from emp_tasks.sandbox.png import make_png
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply, sse_chunks

R = FailureReason
T = FailureType
KEY = "sk-unit-test-key-3f9a1c7e5d"
BASE = "https://api.openai.test/v1"
CHAT = f"{BASE}/chat/completions"
RESPONSES = f"{BASE}/responses"
POLL = f"{RESPONSES}/resp_1"
CANCEL = f"{POLL}/cancel"
IMAGES = f"{BASE}/images/generations"
SSE = {"content-type": "text/event-stream"}
PNG_B64 = base64.b64encode(make_png("unit", 16, 16)).decode()
Connector = OpenAITextConnector | OpenAIResponsesConnector | OpenAIImageConnector


@pytest.fixture(autouse=True)
def _clean_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEY", "BASE_URL", "ORGANIZATION", "PROJECT", "MAX_TOKENS", "TEMPERATURE"):
        monkeypatch.delenv(f"OPENAI_{name}", raising=False)


class FakeClock:
    """A clock that moves only when the connector sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StubSaver:
    """An AssetSaver that records what it was given and pretends to store it."""

    def __init__(self) -> None:
        self.saved: list[tuple[AssetSource, str | None]] = []
        self.expects: list[str | None] = []

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        assert isinstance(source, Base64Data)
        data = base64.b64decode(source.data)
        self.saved.append((source, mime_type))
        self.expects.append(expect)
        key = f"emp/{job.id}_{len(self.saved)}.png"
        digest = hashlib.sha256(data).hexdigest()
        mime = mime_type or "image/png"
        return SavedAsset(
            url=f"https://cdn.test/{key}",
            key=key,
            mime_type=mime,
            size_bytes=len(data),
            sha256=digest,
        )


def settings(**extra: Any) -> OpenAISettings:
    return OpenAISettings(api_key=KEY, base_url=BASE, **extra)


def make(cls: type[Connector], transport: ScriptedTransport, **kwargs: Any) -> Any:
    return cls(settings(**kwargs.pop("settings", {})), session=transport.session(), **kwargs)


def job(service: str, **payload: Any) -> JobData:
    return JobData(id=f"job-{service}", type=service, payload=payload)


def fails(connector: BaseConnector, data: JobData) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data)
    assert KEY not in json.dumps(info.value.to_dict())
    return info.value


def kind(error: ConnectorError) -> tuple[FailureType, FailureReason, bool]:
    return error.failure_type, error.failure_reason, error.retryable


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [OpenAITextConnector, OpenAIResponsesConnector, OpenAIImageConnector]
)
@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_api_key_is_a_configuration_error_naming_the_variable(
    cls: type[Connector], key: str | None
) -> None:
    with pytest.raises(ConnectorError) as info:
        cls(OpenAISettings(api_key=key))
    error = info.value
    assert kind(error) == (T.SYSTEM_ERROR, R.CONFIG_ERROR, False)
    assert "OPENAI_API_KEY" in error.message
    assert error.context["variables"] == ["OPENAI_API_KEY"]


def test_settings_come_from_openai_env_and_empty_values_count_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.setenv("OPENAI_TEXT_MODEL", "gpt-test")
    loaded = OpenAISettings()
    assert loaded.api_key is not None
    assert loaded.api_key.get_secret_value() == KEY
    assert loaded.base_url == "https://api.openai.com/v1"
    assert loaded.text_model == "gpt-test"
    monkeypatch.setenv("OPENAI_ORG_ID", "org-sdk-name")
    assert OpenAISettings().organization == "org-sdk-name"
    assert KEY not in repr(loaded)


def test_constructing_a_connector_never_touches_asset_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_PROVIDER", "no-such-storage")
    connector = OpenAIResponsesConnector(settings())
    assert isinstance(connector.assets, LazyAssetSaver)
    assert isinstance(connector.assets, AssetSaver)
    with pytest.raises(ConnectorError, match="CLOUD_STORAGE_PROVIDER"):
        connector.assets.save(Base64Data(PNG_B64), job=job("openai_responses"))


def test_bearer_organization_and_project_headers_are_sent() -> None:
    transport = ScriptedTransport().add(
        "POST", IMAGES, json_reply({"data": [{"b64_json": PNG_B64}]})
    )
    connector = make(
        OpenAIImageConnector,
        transport,
        assets=StubSaver(),
        settings={"organization": "org-1", "project": "proj-1"},
    )
    connector.process_job(job("openai_image", prompt="a fox"))
    headers = transport.sent[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert (headers["OpenAI-Organization"], headers["OpenAI-Project"]) == ("org-1", "proj-1")


# --- payload validation ---------------------------------------------------------------------

BAD_PAYLOADS: list[tuple[type[Connector], dict[str, Any], str]] = [
    (OpenAITextConnector, {}, "give exactly one"),
    (
        OpenAITextConnector,
        {"prompt": "x", "messages": [{"role": "user", "content": "x"}]},
        "exactly one",
    ),
    (OpenAITextConnector, {"prompt": ""}, "prompt"),
    (OpenAITextConnector, {"messages": []}, "messages"),
    (OpenAITextConnector, {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    (OpenAITextConnector, {"prompt": "x", "temperature": 3}, "temperature"),
    (OpenAITextConnector, {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    (OpenAITextConnector, {"prompt": "x", "bogus": 1}, "bogus"),
    (OpenAIResponsesConnector, {}, "input"),
    (OpenAIResponsesConnector, {"input": "  "}, "input"),
    (OpenAIResponsesConnector, {"dynamic_json": {}}, "dynamic_json"),
    (OpenAIResponsesConnector, {"input": "x", "save_assets": "no"}, "save_assets"),
    (OpenAIImageConnector, {}, "prompt"),
    (OpenAIImageConnector, {"prompt": "x", "n": 11}, "n"),
    (OpenAIImageConnector, {"prompt": "x", "output_format": "gif"}, "output_format"),
    (OpenAIImageConnector, {"prompt": "x", "quantity": 2}, "quantity"),
]


@pytest.mark.parametrize(("cls", "payload", "named"), BAD_PAYLOADS)
def test_bad_payload_fails_validation_before_any_request(
    cls: type[Connector], payload: dict[str, Any], named: str
) -> None:
    transport = ScriptedTransport()
    error = fails(make(cls, transport), job(cls.service_type, **payload))
    assert kind(error) == (T.VALIDATION_ERROR, error.failure_reason, False)
    assert named in error.message
    assert transport.sent == []


# --- error-body mapping ---------------------------------------------------------------------


def err(status: int, code: str | None, kind_: str, message: str, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": kind_, "param": None, "code": code}}
    return json_reply(body, status, headers)


SAFETY = "Your request was rejected by the safety system. Include the request ID wfr_0198abc."
ERRORS: dict[str, tuple[Reply, tuple[FailureType, FailureReason, bool], float | None]] = {
    "quota": (
        err(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota"),
        (T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
        None,
    ),
    "rate_requests": (
        err(
            429,
            "rate_limit_exceeded",
            "requests",
            "Rate limit reached for requests",
            **{"retry-after-ms": "1500", "retry-after": "2"},
        ),
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        1.5,
    ),
    "rate_tokens": (
        err(
            429,
            "rate_limit_exceeded",
            "tokens",
            "Rate limit reached on tokens per min (TPM)",
            **{"retry-after": "2"},
        ),
        (T.RATE_LIMIT, R.TOKENS_PER_MINUTE, True),
        2.0,
    ),
    "rate_daily": (
        err(429, "rate_limit_exceeded", "requests", "Rate limit reached on requests per day (RPD)"),
        (T.RATE_LIMIT, R.DAILY_QUOTA_EXCEEDED, True),
        None,
    ),
    "moderation": (
        err(400, "moderation_blocked", "image_generation_user_error", SAFETY),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
        None,
    ),
    "content_policy": (
        err(
            400,
            "content_policy_violation",
            "invalid_request_error",
            "Rejected as a result of our safety system.",
        ),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
        None,
    ),
    "bad_key": (
        err(401, "invalid_api_key", "invalid_request_error", f"Incorrect API key provided: {KEY}."),
        (T.AUTH_ERROR, R.INVALID_API_KEY, False),
        None,
    ),
    "model": (
        err(404, "model_not_found", "invalid_request_error", "The model `gpt-9` does not exist"),
        (T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False),
        None,
    ),
    "bad_param": (
        err(400, None, "invalid_request_error", "Invalid value for 'safety_identifier'."),
        (T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        None,
    ),
    "server": (
        err(500, None, "server_error", "The server had an error"),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        None,
    ),
    "overloaded": (
        err(503, None, "server_error", "overloaded", **{"retry-after": "1"}),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        1.0,
    ),
    "no_retry_header": (
        err(500, None, "server_error", "boom", **{"x-should-retry": "false"}),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, False),
        None,
    ),
}


@pytest.mark.parametrize(("reply", "expected", "wait"), ERRORS.values(), ids=ERRORS.keys())
def test_error_bodies_are_classified_by_code_type_and_headers(
    reply: Reply, expected: tuple[FailureType, FailureReason, bool], wait: float | None
) -> None:
    transport = ScriptedTransport().add("POST", IMAGES, reply)
    error = fails(make(OpenAIImageConnector, transport), job("openai_image", prompt="a fox"))
    assert kind(error) == expected
    assert error.retry_after == wait
    assert error.status_code == reply.status
    assert len(transport.sent) == 1


# One error of each kind: (status, code, type, message) and its verdict without the header.
KINDS: dict[str, tuple[int, str | None, str, str, tuple[FailureType, FailureReason, bool]]] = {
    "quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota",
        (T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
    ),
    "billing": (
        400,
        "billing_hard_limit_reached",
        "invalid_request_error",
        "Billing hard limit has been reached",
        (T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
    ),
    "moderation": (
        400,
        "moderation_blocked",
        "image_generation_user_error",
        SAFETY,
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "content_policy": (
        400,
        "content_policy_violation",
        "invalid_request_error",
        "Rejected as a result of our safety system.",
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "bad_key": (
        401,
        "invalid_api_key",
        "invalid_request_error",
        "Incorrect API key provided",
        (T.AUTH_ERROR, R.INVALID_API_KEY, False),
    ),
    "model_not_found": (
        404,
        "model_not_found",
        "invalid_request_error",
        "The model `gpt-9` does not exist",
        (T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False),
    ),
    "bad_param": (
        400,
        "unknown_parameter",
        "invalid_request_error",
        "Unknown parameter: 'temprature'.",
        (T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
    ),
    "context_length": (
        400,
        "context_length_exceeded",
        "invalid_request_error",
        "This model's maximum context length is 128000 tokens.",
        (T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    ),
    "rate_limit": (
        429,
        "rate_limit_exceeded",
        "requests",
        "Rate limit reached for requests",
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    ),
    "server_error_code": (
        500,
        "server_error",
        "server_error",
        "The server had an error",
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ),
    # Status-only: the body names nothing this module knows, so the status decides.
    "status_only_server": (
        502,
        None,
        "server_error",
        "Bad gateway",
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ),
    "status_only_forbidden": (
        403,
        "unsupported_country_region_territory",
        "request_forbidden",
        "Country, region, or territory not supported",
        (T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
    ),
}
STATUS_ONLY = {"status_only_server", "status_only_forbidden"}
HEADER_CASES = [
    pytest.param(name, header, id=f"{name}-{header}")
    for name in KINDS
    for header in ("true", "false")
]


@pytest.mark.parametrize(("name", "header"), HEADER_CASES)
def test_x_should_retry_can_veto_a_retry_but_never_revive_a_permanent_body_verdict(
    name: str, header: str
) -> None:
    status, code, kind_, message, (ftype, reason, retryable) = KINDS[name]
    reply = err(status, code, kind_, message, **{"x-should-retry": header})
    transport = ScriptedTransport().add("POST", IMAGES, reply)
    error = fails(make(OpenAIImageConnector, transport), job("openai_image", prompt="a fox"))
    if header == "false":
        expected = False  # "don't retry" always wins
    elif name in STATUS_ONLY:
        expected = True  # the header may make a status-only classification retryable
    else:
        expected = retryable  # a body verdict: permanent stays permanent, transient stays
    assert kind(error) == (ftype, reason, expected)
    assert len(transport.sent) == 1


@pytest.mark.parametrize("name", list(KINDS))
def test_without_the_header_each_kind_keeps_its_own_verdict(name: str) -> None:
    status, code, kind_, message, expected = KINDS[name]
    transport = ScriptedTransport().add("POST", IMAGES, err(status, code, kind_, message))
    error = fails(make(OpenAIImageConnector, transport), job("openai_image", prompt="a fox"))
    assert kind(error) == expected


def test_safety_rejection_keeps_the_openai_safety_request_id() -> None:
    transport = ScriptedTransport().add("POST", IMAGES, ERRORS["moderation"][0])
    error = fails(make(OpenAIImageConnector, transport), job("openai_image", prompt="x"))
    assert error.context["safety_request_id"] == "wfr_0198abc"
    assert error.context["openai_error"]["code"] == "moderation_blocked"


def test_an_unknown_error_code_leaves_the_status_classification() -> None:
    assert classify_openai_error(418, {"code": "teapot", "message": "short and stout"}) is None


REFUSALS = [
    ("I'm sorry, but I can't assist with that request.", True),
    ("I\u2019m sorry, but I cannot help with that.", True),
    ("I can't create images of real people.", True),
    ("That request goes against our content policy.", True),
    ("Here is a fox in the snow.", False),
    ("An essay on moderation. " * 30 + "It is against the content policy to ...", False),
]


@pytest.mark.parametrize(("text", "refused"), REFUSALS)
def test_refusal_detector_matches_apologies_at_the_head_only(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_strip_base64_replaces_long_runs_anywhere_in_a_structure() -> None:
    value = {"a": [PNG_B64, "short"], "b": f"data:image/png;base64,{PNG_B64}", "n": 3}
    assert strip_base64(value) == {
        "a": [BASE64_REMOVED, "short"],
        "b": f"data:image/png;base64,{BASE64_REMOVED}",
        "n": 3,
    }


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (PNG_B64, "jpeg", "image/png"),
        (f"data:image/png;base64,{PNG_B64}", None, "image/png"),
        ("AAAA", "webp", "image/webp"),
        ("!!", None, "image/png"),
    ],
)
def test_image_mime_trusts_the_bytes_then_the_format(data: str, fmt: str | None, mime: str) -> None:
    assert image_mime(data, fmt) == mime


# --- text: Chat Completions streamed --------------------------------------------------------


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


# --- responses: background + polling --------------------------------------------------------


def response(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "model": "gpt-4.1",
        "output": [],
        **extra,
    }


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def image_call(result: str | None = PNG_B64, status: str = "completed") -> dict[str, Any]:
    return {"type": "image_generation_call", "id": "ig_1", "status": status, "result": result}


def responses_connector(
    *polls: dict[str, Any], saver: StubSaver | None = None, **policy: Any
) -> tuple[OpenAIResponsesConnector, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = (
        ScriptedTransport()
        .add("POST", RESPONSES, json_reply(response("queued")))
        .add("GET", POLL, *(json_reply(p) for p in polls))
        .add("POST", CANCEL, json_reply(response("cancelled")))
    )
    policy = {"interval": 2.0, "deadline": 30.0, **policy}
    connector = make(
        OpenAIResponsesConnector,
        transport,
        assets=saver or StubSaver(),
        poll_policy=PollPolicy(clock=clock, sleep=clock.sleep, **policy),
        clock=clock,
    )
    return connector, transport, clock


DONE_TEXT = response("completed", output=[message("A fox.")], usage={"total_tokens": 5})


def test_request_is_forced_to_background_with_job_keys_removed() -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    payload = {
        "input": "a fox",
        "temperature": 0.2,
        "save_assets": True,
        "user_id": "u1",
        "stream": True,
    }
    connector.process_job(job("openai_responses", **payload))
    assert transport.sent[0].json == {
        "input": "a fox",
        "temperature": 0.2,
        "model": "gpt-4.1",
        "background": True,
    }


def test_dynamic_json_is_sent_as_the_request() -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    dynamic = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}], "background": False}
    connector.process_job(
        job("openai_responses", dynamic_json={**dynamic, "ctx": {}}, ctx={"note": "x"})
    )
    assert transport.sent[0].json == {**dynamic, "background": True}


GOOD_PAYLOADS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "every_allowed_knob": (
        {
            "input": "a fox",
            "model": "gpt-5",
            "instructions": "be brief",
            "tools": [{"type": "image_generation", "size": "1024x1024"}],
            "tool_choice": "auto",
            "temperature": 1,
            "top_p": 0.9,
            "max_output_tokens": 400,
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "text"}},
            "metadata": {"job": "42"},
            "parallel_tool_calls": False,
            "previous_response_id": "resp_0",
            "truncation": "auto",
            "user": "u-1",
            "include": ["reasoning.encrypted_content"],
            "service_tier": "flex",
            "store": True,
        },
        set(),
    ),
    "prompt_template_without_input": ({"prompt": {"id": "pmpt_1", "version": "2"}}, set()),
    "input_items": ({"input": [{"role": "user", "content": "hi"}]}, set()),
    "nulls_are_left_out": ({"input": "x", "instructions": None}, {"instructions"}),
    "job_keys_are_left_out": (
        {"input": "x", "bucket": "b", "user_id": "u1", "stream": True},
        {"bucket", "user_id", "stream"},
    ),
}


@pytest.mark.parametrize(("payload", "left_out"), GOOD_PAYLOADS.values(), ids=GOOD_PAYLOADS.keys())
def test_known_responses_parameters_are_sent_as_given(
    payload: dict[str, Any], left_out: set[str]
) -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    connector.process_job(job("openai_responses", **payload))
    sent = {key: value for key, value in payload.items() if key not in left_out}
    assert transport.sent[0].json == {"model": "gpt-4.1", **sent, "background": True}


BAD_RESPONSES: dict[str, tuple[dict[str, Any], str]] = {
    "dynamic_json_unknown_key": ({"dynamic_json": {"foo": 1}}, "dynamic_json.foo"),
    "dynamic_json_without_input": ({"dynamic_json": {"model": "gpt-5"}}, "dynamic_json"),
    "dynamic_json_model_not_text": (
        {"dynamic_json": {"input": "x", "model": 5}},
        "dynamic_json.model",
    ),
    "dynamic_json_store_false": (
        {"dynamic_json": {"input": "x", "store": False}},
        "dynamic_json.store",
    ),
    "dynamic_json_typo": (
        {"dynamic_json": {"input": "x", "temprature": 0.2}},
        "dynamic_json.temprature",
    ),
    "dynamic_json_not_an_object": ({"dynamic_json": '{"input": "x"}'}, "dynamic_json"),
    "dynamic_json_nested": (
        {"dynamic_json": {"input": "x", "dynamic_json": {}}},
        "dynamic_json.dynamic_json",
    ),
    "dynamic_json_save_assets": (
        {"dynamic_json": {"input": "x", "save_assets": False}},
        "dynamic_json.save_assets",
    ),
    "beside_dynamic_json": ({"input": "x", "dynamic_json": {"input": "y"}}, "dynamic_json"),
    "typo": ({"input": "x", "temprature": 0.2}, "temprature"),
    "store_false": ({"input": "x", "store": False}, "store"),
    "model_not_text": ({"input": "x", "model": 5}, "model"),
    "input_not_text_or_list": ({"input": 5}, "input"),
    "input_empty_list": ({"input": []}, "input"),
    "input_item_not_object": ({"input": ["hi"]}, "input"),
    "temperature_too_high": ({"input": "x", "temperature": 2.5}, "temperature"),
    "temperature_text": ({"input": "x", "temperature": "0.5"}, "temperature"),
    "top_p_too_high": ({"input": "x", "top_p": 1.5}, "top_p"),
    "max_output_tokens_zero": ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    "max_output_tokens_float": ({"input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
    "tools_not_a_list": ({"input": "x", "tools": {"type": "image_generation"}}, "tools"),
    "tool_not_an_object": ({"input": "x", "tools": ["image_generation"]}, "tools.0"),
    "truncation_unknown": ({"input": "x", "truncation": "sometimes"}, "truncation"),
    "metadata_value_not_text": ({"input": "x", "metadata": {"n": 1}}, "metadata.n"),
}


@pytest.mark.parametrize(("payload", "field"), BAD_RESPONSES.values(), ids=BAD_RESPONSES.keys())
def test_bad_responses_payload_names_the_field_and_sends_nothing(
    payload: dict[str, Any], field: str
) -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    error = fails(connector, job("openai_responses", **payload))
    assert kind(error) == (T.VALIDATION_ERROR, error.failure_reason, False)
    assert error.context["field"] == field
    assert f"'{field}'" in error.message
    assert transport.sent == []
    with pytest.raises(ConnectorError) as at_submit:
        OpenAIResponsesConnector.validate_payload(payload)
    assert at_submit.value.context["field"] == field


def test_store_false_is_refused_because_background_mode_needs_it() -> None:
    with pytest.raises(ConnectorError, match="background mode needs a stored response"):
        OpenAIResponsesConnector.validate_payload({"input": "x", "store": False})


def test_queued_and_in_progress_report_progress_then_completed_returns_text() -> None:
    connector, transport, clock = responses_connector(
        response("queued"), response("in_progress"), DONE_TEXT
    )
    reports: list[JobProgress] = []
    result = connector.process_job(job("openai_responses", input="a fox"), reports.append)
    assert result.data is not None
    assert (result.data["content_type"], result.data["text"]) == ("text", "A fox.")
    assert result.data["openai_response_id"] == "resp_1"
    assert [r.progress for r in reports if r.current_step == "polling"] == [25, 30, 60]
    assert reports[-1].progress == 100
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert len(transport.calls("GET", POLL)) == 3
    assert transport.calls("POST", CANCEL) == []


def test_generated_image_is_saved_and_no_base64_stays_in_the_result() -> None:
    saver = StubSaver()
    done = response("completed", output=[image_call(), message("Here is your fox.")])
    connector, _, _ = responses_connector(done, saver=saver)
    result = connector.process_job(
        job("openai_responses", input="draw a fox", tools=[{"type": "image_generation"}])
    )
    assert [(src.data, mime) for src, mime in saver.saved] == [(PNG_B64, "image/png")]  # type: ignore[union-attr]
    assert saver.expects == ["image"]  # the saver refuses anything that is not an image
    data = result.data or {}
    assert data["content_type"] == "image"
    assert data["image_url"] == "https://cdn.test/emp/job-openai_responses_1.png"
    assert data["mime_type"] == "image/png"
    assert data["text"] == "Here is your fox."
    assert data["raw_output"][0]["result"] == BASE64_REMOVED
    assert [f.path for f in result.output_files] == ["emp/job-openai_responses_1.png"]
    assert PNG_B64[:100] not in result.model_dump_json()


def test_save_assets_false_returns_the_image_inline_without_saving() -> None:
    saver = StubSaver()
    connector, _, _ = responses_connector(response("completed", output=[image_call()]), saver=saver)
    result = connector.process_job(job("openai_responses", input="x", save_assets=False))
    assert saver.saved == []
    assert (result.data or {})["image_base64"] == PNG_B64
    assert result.output_files == []


FOX = [image_call(), message("Here is your fox.")]
RESPONSE_FAILURES: dict[str, tuple[dict[str, Any], tuple[FailureType, FailureReason, bool]]] = {
    "refusal_text": (
        response("completed", output=[message("I'm sorry, but I can't assist with that.")]),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "refusal_beats_image": (
        response("completed", output=[image_call(), message("I can't create that image.")]),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "refusal_part": (
        response(
            "completed",
            output=[{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}],
        ),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "image_without_result": (
        response("completed", output=[image_call(None, "failed")]),
        (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False),
    ),
    "empty_output": (response("completed"), (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)),
    "failed_server_error": (
        response("failed", error={"code": "server_error", "message": "oops"}),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ),
    "failed_rate_limit": (
        response("failed", error={"code": "rate_limit_exceeded", "message": "busy"}),
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    ),
    "failed_image_policy": (
        response("failed", error={"code": "image_content_policy_violation", "message": "no"}),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "failed_bio_policy": (
        response("failed", error={"code": "bio_policy", "message": "no"}),
        (T.GENERATION_REFUSAL, R.POLICY_VIOLATION, False),
    ),
    "failed_bad_image_url": (
        response("failed", error={"code": "invalid_image_url", "message": "404"}),
        (T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    ),
    "failed_unknown_code": (
        response("failed", error={"code": "mystery", "message": "?"}),
        (T.SERVICE_ERROR, R.JOB_FAILED, False),
    ),
    "cancelled": (response("cancelled"), (T.SERVICE_ERROR, R.JOB_FAILED, False)),
    "incomplete_tokens": (
        response(
            "incomplete",
            incomplete_details={"reason": "max_output_tokens"},
            output=[message("A fo")],
        ),
        (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False),
    ),
    "incomplete_filter": (
        response("incomplete", incomplete_details={"reason": "content_filter"}),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "unknown_status": (response("exploded"), (T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False)),
}


@pytest.mark.parametrize(
    ("final", "expected"), RESPONSE_FAILURES.values(), ids=RESPONSE_FAILURES.keys()
)
def test_every_terminal_status_is_classified(
    final: dict[str, Any], expected: tuple[FailureType, FailureReason, bool]
) -> None:
    saver = StubSaver()
    connector, transport, _ = responses_connector(response("in_progress"), final, saver=saver)
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == expected
    assert len(transport.calls("GET", POLL)) == 2
    assert saver.saved == []  # a refused or failed response saves nothing
    assert PNG_B64[:100] not in json.dumps(error.to_dict())


def test_incomplete_keeps_the_partial_text_for_forensics() -> None:
    final = RESPONSE_FAILURES["incomplete_tokens"][0]
    connector, _, _ = responses_connector(final)
    error = fails(connector, job("openai_responses", input="x"))
    assert error.context["incomplete_reason"] == "max_output_tokens"
    assert error.context["partial_text"] == "A fo"


def test_deadline_cancels_the_response_and_is_a_retryable_timeout() -> None:
    connector, transport, clock = responses_connector(response("in_progress"), deadline=10.0)
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == (T.TIMEOUT, R.SERVICE_TIMEOUT, True)
    assert len(transport.calls("POST", CANCEL)) == 1
    assert error.context["cancel_succeeded"] is True
    assert sum(clock.sleeps) == 10.0


def test_a_poll_404_stops_polling_at_once() -> None:
    connector, transport, _ = responses_connector()
    transport.add(
        "GET", POLL, err(404, None, "invalid_request_error", "Response with id 'resp_1' not found.")
    )
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == (T.VALIDATION_ERROR, R.INVALID_REQUEST, False)
    assert len(transport.calls("GET", POLL)) == 1


def test_a_poll_rate_limit_waits_the_hint_and_polls_on() -> None:
    connector, transport, clock = responses_connector()
    limited = err(429, "rate_limit_exceeded", "requests", "slow down", **{"retry-after-ms": "7000"})
    transport.add("GET", POLL, limited, json_reply(DONE_TEXT))
    result = connector.process_job(job("openai_responses", input="x"))
    assert (result.data or {})["text"] == "A fox."
    assert clock.sleeps == [2.0, 7.0]


# --- images ---------------------------------------------------------------------------------


def images_reply(*items: dict[str, Any]) -> Reply:
    usage = {"input_tokens": 3, "output_tokens": 272, "total_tokens": 275}
    return json_reply(
        {
            "created": 1,
            "data": list(items),
            "size": "1024x1024",
            "output_format": "png",
            "usage": usage,
        }
    )


def test_each_b64_image_is_saved_and_listed() -> None:
    saver = StubSaver()
    transport = ScriptedTransport().add(
        "POST", IMAGES, images_reply({"b64_json": PNG_B64}, {"b64_json": PNG_B64})
    )
    connector = make(OpenAIImageConnector, transport, assets=saver)
    result = connector.process_job(job("openai_image", prompt="a fox", n=2, quality="low"))
    assert transport.sent[0].json == {
        "prompt": "a fox",
        "n": 2,
        "quality": "low",
        "model": "gpt-image-1",
    }
    assert len(saver.saved) == 2
    assert saver.expects == ["image", "image"]
    data = result.data or {}
    assert data["image_url"] == "https://cdn.test/emp/job-openai_image_1.png"
    assert [i["url"] for i in data["images"]] == [
        f"https://cdn.test/emp/job-openai_image_{n}.png" for n in (1, 2)
    ]
    assert (data["size"], data["usage"]["total_tokens"]) == ("1024x1024", 275)
    assert len(result.output_files) == 2
    assert PNG_B64[:100] not in result.model_dump_json()


def test_dall_e_is_asked_for_base64_not_a_url() -> None:
    transport = ScriptedTransport().add("POST", IMAGES, images_reply({"b64_json": PNG_B64}))
    make(OpenAIImageConnector, transport, assets=StubSaver()).process_job(
        job("openai_image", prompt="x", model="dall-e-3")
    )
    assert transport.sent[0].json["response_format"] == "b64_json"


@pytest.mark.parametrize(
    "reply",
    [images_reply({"url": "https://x/1.png"}), images_reply(), json_reply({"created": 1})],
    ids=["url_only", "empty", "no_data"],
)
def test_reply_without_base64_images_is_a_response_error(reply: Reply) -> None:
    transport = ScriptedTransport().add("POST", IMAGES, reply)
    error = fails(
        make(OpenAIImageConnector, transport, assets=StubSaver()), job("openai_image", prompt="x")
    )
    assert kind(error) == (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)


def test_image_save_assets_false_returns_base64_inline() -> None:
    saver = StubSaver()
    transport = ScriptedTransport().add("POST", IMAGES, images_reply({"b64_json": PNG_B64}))
    result = make(OpenAIImageConnector, transport, assets=saver).process_job(
        job("openai_image", prompt="x", save_assets=False)
    )
    assert saver.saved == []
    assert (result.data or {})["image_base64"] == PNG_B64


# --- health ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [OpenAITextConnector, OpenAIResponsesConnector, OpenAIImageConnector]
)
@pytest.mark.parametrize(
    ("reply", "healthy", "detail"),
    [
        (json_reply({"data": []}), True, "ok"),
        (
            err(401, "invalid_api_key", "invalid_request_error", f"Incorrect API key: {KEY}"),
            False,
            "auth_error/invalid_api_key: HTTP 401",
        ),
        (err(500, None, "server_error", "boom"), False, "service_error/"),
        (requests.ConnectionError("refused"), False, "network_error/connection_failed"),
    ],
    ids=["ok", "401", "500", "refused"],
)
def test_health_is_get_models(
    cls: type[Connector], reply: Reply | BaseException, healthy: bool, detail: str
) -> None:
    transport = ScriptedTransport().add("GET", f"{BASE}/models", reply)
    connector = make(cls, transport)
    report = connector.health()
    assert report.healthy is healthy
    assert report.detail.startswith(detail), report.detail
    assert KEY not in report.detail  # the provider echoed the key; the report must not
    assert connector.check_health() is healthy
    assert connector.health_check_class.value == "minimal"
    assert connector.service_support()["isSupported"] is True


def test_health_probe_does_not_follow_a_redirect() -> None:
    elsewhere = "https://elsewhere.example/v1/models"
    transport = (
        ScriptedTransport()
        .add("GET", f"{BASE}/models", Reply(302, headers={"Location": elsewhere}))
        .add("GET", elsewhere, json_reply({"data": []}))
    )
    report = make(OpenAITextConnector, transport).health()
    assert not report.healthy
    assert "HTTP 302" in report.detail
    assert transport.calls("GET", elsewhere) == []


def test_chat_streams_are_bounded_by_the_same_limit_as_the_task() -> None:
    settings = OpenAISettings(api_key=SecretStr("k" * 12), timeout_seconds=60)
    connector = OpenAITextConnector(settings)
    assert connector.deadline == 2 * 60 + 30  # the task's soft time limit, from the same setting
