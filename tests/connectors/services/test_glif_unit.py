"""GlifConnector unit tests: a real requests.Session over a scripted transport, no servers."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult
from connectors.redact import MAX_CONTEXT_CHARS
from connectors.rules import Rule, classify_message
from connectors.services.glif import (
    ATTRIBUTION,
    GLIF_FALLBACK,
    GLIF_RULES,
    GlifConnector,
    GlifPayload,
    GlifSettings,
    classify_glif_error,
    parse_price,
)
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    StubSaver,
    body_json,
    empty_reply,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)

R = FailureReason
T = FailureType
TOKEN = "glif-unit-test-token-5e6f7a8b"
WORKFLOW = "clxyz123workflow"
IMAGE_URL = "https://res.cloudinary.com/demo/glif-run-outputs/abc.png"


@pytest.fixture(autouse=True)
def _clean_glif_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GLIF_API_TOKEN",
        "GLIF_BASE_URL",
        "GLIF_TIMEOUT_SECONDS",
        "GLIF_RETRY_ATTEMPTS",
        "GLIF_MAX_CONCURRENT_JOBS",
        "GLIF_HEALTH_CHECK_WORKFLOW_ID",
    ):
        monkeypatch.delenv(name, raising=False)


def ticking_clock(*readings: float) -> Callable[[], float]:
    values: Iterator[float] = iter(readings)
    return lambda: next(values)


def make(
    *script: Reply | BaseException, settings: GlifSettings | None = None, **kwargs: Any
) -> tuple[GlifConnector, FakeAdapter]:
    session, adapter = fake_session(*script)
    kwargs.setdefault("assets", StubSaver())
    connector = GlifConnector(settings or GlifSettings(api_token=TOKEN), session=session, **kwargs)
    return connector, adapter


def job(**payload: Any) -> JobData:
    return JobData(id="job-glif-1", type="glif", payload=payload)


def ok_job(**extra: Any) -> JobData:
    # Output-shape tests see the provider's URLs; the asset tests below opt in to saving.
    extra.setdefault("save_assets", False)
    return job(workflow_id=WORKFLOW, inputs=["a cat in a hat"], **extra)


def run(reply: Reply | BaseException, data: JobData | None = None) -> JobResult:
    connector, _ = make(reply)
    return connector.process_job(data or ok_job())


def fail(
    reply: Reply | BaseException, data: JobData | None = None
) -> tuple[ConnectorError, FakeAdapter]:
    connector, adapter = make(reply)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data or ok_job())
    return info.value, adapter


def image_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "run-1",
        "inputs": {"prompt": "a cat in a hat"},
        "output": IMAGE_URL,
        "outputFull": {"type": "IMAGE", "value": IMAGE_URL},
        "price": "2.1000875",
        "nodes": [{"name": "prompt", "output": "a cat in a hat"}],
        **extra,
    }


def assert_token_absent(error: ConnectorError) -> None:
    for text in (
        str(error),
        repr(error),
        json.dumps(error.to_dict()),
        json.dumps(error.args),
        repr(pickle.loads(pickle.dumps(error)).to_dict()),
    ):
        assert TOKEN not in text


# --- payload validation -------------------------------------------------------------------------

BAD_PAYLOADS: list[tuple[str, dict[str, Any], str]] = [
    ("no_workflow_id", {"inputs": ["x"]}, "workflow_id"),
    ("empty_workflow_id", {"workflow_id": "", "inputs": ["x"]}, "workflow_id"),
    ("blank_workflow_id", {"workflow_id": "   ", "inputs": ["x"]}, "workflow_id"),
    ("numeric_workflow_id", {"workflow_id": 123, "inputs": ["x"]}, "workflow_id"),
    ("null_workflow_id", {"workflow_id": None, "inputs": ["x"]}, "workflow_id"),
    ("no_inputs", {"workflow_id": WORKFLOW}, "inputs"),
    ("inputs_string", {"workflow_id": WORKFLOW, "inputs": "a cat"}, "inputs"),
    ("inputs_null", {"workflow_id": WORKFLOW, "inputs": None}, "inputs"),
    ("inputs_number_item", {"workflow_id": WORKFLOW, "inputs": ["ok", 2]}, "inputs"),
    ("inputs_nested_list", {"workflow_id": WORKFLOW, "inputs": [["a"]]}, "inputs"),
    ("inputs_number_value", {"workflow_id": WORKFLOW, "inputs": {"prompt": 1}}, "inputs"),
    ("inputs_null_value", {"workflow_id": WORKFLOW, "inputs": {"prompt": None}}, "inputs"),
    ("inputs_empty_key", {"workflow_id": WORKFLOW, "inputs": {"": "x"}}, "inputs"),
    (
        "visibility_lowercase",
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "public"},
        "visibility",
    ),
    (
        "visibility_unknown",
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "UNLISTED"},
        "visibility",
    ),
    ("strict_string", {"workflow_id": WORKFLOW, "inputs": [], "strict": "yes"}, "strict"),
    ("strict_int", {"workflow_id": WORKFLOW, "inputs": [], "strict": 1}, "strict"),
]
BAD_IDS = [row[0] for row in BAD_PAYLOADS]


@pytest.mark.parametrize(("name", "payload", "field"), BAD_PAYLOADS, ids=BAD_IDS)
def test_validate_payload_rejects_and_names_the_field(
    name: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload(payload)
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert error.context["field"] == field
    assert field in str(error)
    assert error.service == "glif"


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        *BAD_PAYLOADS,
        pytest.param(
            "unknown_field",
            {"workflow_id": WORKFLOW, "inputs": [], "bogus": 1},
            "bogus",
        ),
    ],
    ids=[*BAD_IDS, "unknown_field"],
)
def test_process_job_rejects_a_bad_payload_before_any_request(
    name: str, payload: dict[str, Any], field: str
) -> None:
    connector, adapter = make()
    with pytest.raises(ConnectorError) as info:
        connector.process_job(job(**payload))
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert field in str(error)
    assert error.service == "glif"
    assert adapter.requests == []


def test_validate_payload_names_an_unknown_field() -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload({"workflow_id": WORKFLOW, "inputs": [], "bogus": 1})
    assert info.value.context["field"] == "bogus"


def test_missing_workflow_id_is_a_missing_required_field() -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload({"inputs": []})
    assert info.value.failure_reason is R.MISSING_REQUIRED_FIELD


@pytest.mark.parametrize(
    "payload",
    [
        {"workflow_id": WORKFLOW, "inputs": []},
        {"workflow_id": WORKFLOW, "inputs": ["a", "b"]},
        {"workflow_id": WORKFLOW, "inputs": {"prompt": "a", "style": "b"}},
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "PUBLIC", "strict": True},
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "PRIVATE", "strict": False},
        {"workflow_id": WORKFLOW, "inputs": [], "save_assets": False},
    ],
)
def test_valid_payloads_pass(payload: dict[str, Any]) -> None:
    assert isinstance(GlifConnector.validate_payload(payload), GlifPayload)


# --- configuration ------------------------------------------------------------------------------


def _config_error(build: Callable[[], object]) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        build()
    error = info.value
    assert (error.failure_type, error.failure_reason) == (T.SYSTEM_ERROR, R.CONFIG_ERROR)
    assert error.retryable is False
    assert "GLIF_API_TOKEN" in str(error)
    assert error.context["variables"] == ["GLIF_API_TOKEN"]
    return error


def test_missing_token_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GLIF_API_TOKEN", raising=False)
    _config_error(lambda: GlifConnector(GlifSettings()))


def test_missing_token_without_explicit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIF_API_TOKEN", raising=False)
    _config_error(GlifConnector)


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_token_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GLIF_API_TOKEN", value)
    _config_error(lambda: GlifConnector(GlifSettings()))


def test_token_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIF_API_TOKEN", "env-glif-token-123456")
    monkeypatch.setenv("GLIF_BASE_URL", "https://glif.sandbox.test/")
    monkeypatch.setenv("GLIF_TIMEOUT_SECONDS", "12.5")
    connector, adapter = make(json_reply(image_body()), settings=GlifSettings())
    connector.process_job(ok_job())
    assert adapter.last.headers["Authorization"] == "Bearer env-glif-token-123456"
    assert urlsplit(adapter.last_url).netloc == "glif.sandbox.test"
    assert adapter.timeouts == [(10.0, 12.5)]


def test_settings_repr_hides_the_token() -> None:
    assert TOKEN not in repr(GlifSettings(api_token=TOKEN))


def test_retry_and_concurrency_variables_are_the_service_mappings_not_the_connectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery retries and the pool sets concurrency (config/service-mapping.json reads these);
    # the connector neither keeps nor second-guesses them.
    monkeypatch.setenv("GLIF_RETRY_ATTEMPTS", "-1")
    monkeypatch.setenv("GLIF_MAX_CONCURRENT_JOBS", "0")
    settings = GlifSettings(api_token=TOKEN)
    assert {"retry_attempts", "max_concurrent_jobs"}.isdisjoint(type(settings).model_fields)


# --- request shape ------------------------------------------------------------------------------


def test_request_posts_id_and_list_inputs_with_bearer_token() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job())
    assert len(adapter.requests) == 1
    sent = adapter.last
    assert sent.method == "POST"
    parts = urlsplit(adapter.last_url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "https",
        "simple-api.glif.app",
        "/",
        "",
    )
    assert body_json(sent) == {"id": WORKFLOW, "inputs": ["a cat in a hat"]}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"


def test_request_sends_named_inputs_as_an_object() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(job(workflow_id=WORKFLOW, inputs={"prompt": "cat", "style": "ink"}))
    assert body_json(adapter.last)["inputs"] == {"prompt": "cat", "style": "ink"}


def test_request_carries_visibility_and_strict_query() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job(visibility="PUBLIC", strict=True))
    assert body_json(adapter.last) == {
        "id": WORKFLOW,
        "inputs": ["a cat in a hat"],
        "visibility": "PUBLIC",
    }
    assert parse_qs(urlsplit(adapter.last_url).query) == {"strict": ["1"]}


def test_strict_false_sends_no_query_and_save_assets_is_not_sent() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job(strict=False, save_assets=False))
    assert urlsplit(adapter.last_url).query == ""
    assert body_json(adapter.last) == {"id": WORKFLOW, "inputs": ["a cat in a hat"]}


def test_workflow_id_is_stripped() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(job(workflow_id=f"  {WORKFLOW} ", inputs=[]))
    assert body_json(adapter.last)["id"] == WORKFLOW


def test_one_request_per_job_even_on_failure() -> None:
    connector, adapter = make(json_reply({"error": "Rate limit exceeded"}))
    with pytest.raises(ConnectorError):
        connector.process_job(ok_job())
    assert len(adapter.requests) == 1


# --- the error matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "ftype", "reason", "retryable"),
    [
        ("Invalid workflow ID", T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        ("Workflow not found", T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        ("glif not found: clxyz", T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        ("Not enough inputs provided", T.VALIDATION_ERROR, R.MISSING_REQUIRED_FIELD, False),
        ("Insufficient credits", T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
        ("Quota exceeded", T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
        ("Rate limit exceeded", T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        ("Too many requests", T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        ("Authentication failed", T.AUTH_ERROR, R.INVALID_API_KEY, False),
        ("Unauthorized", T.AUTH_ERROR, R.INVALID_API_KEY, False),
        ("Invalid token", T.AUTH_ERROR, R.INVALID_API_KEY, False),
        ("Timeout", T.TIMEOUT, R.PROCESSING_TIMEOUT, True),
        ("Workflow timed out after 300s", T.TIMEOUT, R.PROCESSING_TIMEOUT, True),
        ("Network error", T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        ("connection reset by upstream", T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        ("NSFW content detected", T.GENERATION_REFUSAL, R.POLICY_VIOLATION, False),
        ("Model banned for API runs", T.VALIDATION_ERROR, R.UNSUPPORTED_OPERATION, False),
        ("Something exploded in block 3", T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        ("", T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ],
)
def test_classify_glif_error_matrix(
    message: str, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    assert classify_glif_error(message) == Classification(ftype, reason, retryable)


def test_matrix_is_case_insensitive() -> None:
    assert classify_glif_error("RATE LIMIT EXCEEDED")[0] is T.RATE_LIMIT


def test_the_matrix_is_rules_for_the_shared_engine() -> None:
    assert all(isinstance(rule, Rule) for rule in GLIF_RULES)
    message = "Workflow not found"
    found = classify_message(message, rules=GLIF_RULES, fallback=GLIF_FALLBACK)
    assert found == classify_glif_error(message)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # Glif's own order, where the generic rules would decide otherwise:
        ("Quota exceeded", R.INSUFFICIENT_CREDITS),  # generic: a rate limit
        ("Workflow not found: missing input 'x'", R.INVALID_PAYLOAD),  # not missing_required
        ("Request blocked: not allowed", R.POLICY_VIOLATION),  # refusal before unsupported
    ],
)
def test_the_matrix_keeps_its_own_order(message: str, reason: FailureReason) -> None:
    assert classify_glif_error(message).failure_reason is reason


@pytest.mark.parametrize(
    ("message", "ftype", "retryable"),
    [
        ("Invalid workflow ID", T.VALIDATION_ERROR, False),
        ("Insufficient credits", T.RESOURCE_LIMIT, False),
        ("Rate limit exceeded", T.RATE_LIMIT, True),
        ("Authentication failed", T.AUTH_ERROR, False),
        ("Timed out", T.TIMEOUT, True),
        ("weird failure", T.SERVICE_ERROR, True),
    ],
)
def test_error_on_200_is_raised_with_the_matrix_classification(
    message: str, ftype: FailureType, retryable: bool
) -> None:
    error, _ = fail(json_reply({"error": message}))
    assert error.failure_type is ftype
    assert error.retryable is retryable
    assert error.status_code == 200
    assert error.service == "glif"
    assert message in str(error)
    assert WORKFLOW in str(error)


def test_error_is_checked_before_the_output_even_with_an_image() -> None:
    error, _ = fail(json_reply(image_body(error="Insufficient credits")))
    assert error.failure_reason is R.INSUFFICIENT_CREDITS


def test_error_on_200_carries_forensic_context() -> None:
    body = {"error": "Workflow not found", "output": None, "price": "0"}
    error, _ = fail(json_reply(body), job(workflow_id=WORKFLOW, inputs={"prompt": "a cat"}))
    assert error.context == {
        "workflow_id": WORKFLOW,
        "inputs": {"prompt": "a cat"},
        "glif_error": "Workflow not found",
        "raw_response": body,
    }
    assert datetime.fromisoformat(error.to_dict()["timestamp"])


def test_forensic_context_truncates_inputs_and_raw_response() -> None:
    long_input = "p" * 20_000
    body = {"error": "Timeout", "output": "o" * 20_000, "nodes": list(range(500))}
    error, _ = fail(json_reply(body), job(workflow_id=WORKFLOW, inputs=[long_input]))
    assert len(error.context["inputs"][0]) <= MAX_CONTEXT_CHARS
    assert len(error.context["raw_response"]["output"]) <= MAX_CONTEXT_CHARS
    assert len(error.context["raw_response"]["nodes"]) <= 51
    assert len(json.dumps(error.to_dict())) < 10_000


def test_token_never_appears_in_an_error_even_when_glif_echoes_it() -> None:
    body = {"error": f"Invalid token {TOKEN}", "debug": {"authorization": f"Bearer {TOKEN}"}}
    error, _ = fail(json_reply(body))
    assert error.failure_type is T.AUTH_ERROR
    assert_token_absent(error)


def test_token_never_appears_in_a_network_error() -> None:
    error, _ = fail(requests.ConnectionError(f"refused while sending Bearer {TOKEN}"))
    assert error.failure_type is T.NETWORK_ERROR
    assert_token_absent(error)


def test_connector_repr_hides_the_token() -> None:
    connector, _ = make()
    assert TOKEN not in repr(connector.auth)
    assert TOKEN not in repr(connector.settings)


# --- non-200 and non-JSON responses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "ftype", "retryable"),
    [
        (html_reply("<html><h1>502 Bad Gateway</h1>cloudflare</html>", 502), T.SERVICE_ERROR, True),
        (empty_reply(503), T.SERVICE_ERROR, True),
        (empty_reply(500), T.SERVICE_ERROR, True),
        (html_reply("<html>Gateway Timeout</html>", 504), T.SERVICE_ERROR, True),
        (json_reply({"error": "Unauthorized"}, 401), T.AUTH_ERROR, False),
        (empty_reply(403), T.AUTH_ERROR, False),
        (json_reply({"error": "slow down"}, 429, {"Retry-After": "30"}), T.RATE_LIMIT, True),
    ],
    ids=["502_html", "503_empty", "500_empty", "504_html", "401", "403", "429"],
)
def test_error_status_is_classified(reply: Reply, ftype: FailureType, retryable: bool) -> None:
    error, adapter = fail(reply)
    assert error.failure_type is ftype
    assert error.retryable is retryable
    assert error.status_code == reply.status
    assert len(adapter.requests) == 1
    assert_token_absent(error)


def test_502_html_error_is_readable_and_keeps_the_page_in_context() -> None:
    error, _ = fail(html_reply("<html><h1>502 Bad Gateway</h1></html>", 502))
    assert error.failure_reason is R.SERVICE_UNAVAILABLE
    assert "502 Bad Gateway" in str(error)
    assert "<h1>" not in str(error)
    assert "<h1>502 Bad Gateway</h1>" in error.context["response"]["body"]


def test_503_empty_body_uses_the_reason_phrase() -> None:
    error, _ = fail(empty_reply(503))
    assert "Service Unavailable" in str(error)
    assert error.context["response"]["body"] == ""


def test_429_retry_after_is_kept() -> None:
    error, _ = fail(json_reply({"error": "slow down"}, 429, {"Retry-After": "30"}))
    assert error.retry_after == 30.0


@pytest.mark.parametrize(
    "reply",
    [
        html_reply("<html>upstream page</html>", 200),
        text_reply("OK", 200),
        empty_reply(200),
    ],
    ids=["html", "text", "empty"],
)
def test_200_non_json_is_a_response_error(reply: Reply) -> None:
    error, _ = fail(reply)
    assert (error.failure_type, error.failure_reason) == (
        T.RESPONSE_ERROR,
        R.INVALID_RESPONSE_FORMAT,
    )
    assert error.status_code == 200


@pytest.mark.parametrize("body", [[1, 2], "just a string", None, 42])
def test_200_json_that_is_not_an_object_is_a_response_error(body: Any) -> None:
    error, _ = fail(json_reply(body))
    assert error.failure_type is T.RESPONSE_ERROR


@pytest.mark.parametrize(
    ("exc", "ftype"),
    [
        (requests.ConnectionError("[Errno 111] Connection refused"), T.NETWORK_ERROR),
        (requests.exceptions.SSLError("certificate verify failed"), T.NETWORK_ERROR),
        (requests.ReadTimeout("read timeout=60"), T.TIMEOUT),
    ],
    ids=["refused", "tls", "read_timeout"],
)
def test_network_failure_is_retryable_and_names_the_request(
    exc: BaseException, ftype: FailureType
) -> None:
    error, _ = fail(exc)
    assert error.failure_type is ftype
    assert error.retryable is True
    assert error.context["request"]["body"] == {"id": WORKFLOW, "inputs": ["a cat in a hat"]}


def test_network_failure_context_truncates_inputs() -> None:
    error, _ = fail(
        requests.ConnectionError("refused"), job(workflow_id=WORKFLOW, inputs=["q" * 20_000])
    )
    assert len(error.context["request"]["body"]["inputs"][0]) <= MAX_CONTEXT_CHARS


# --- successful output --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "data"),
    [
        (
            {"type": "IMAGE", "value": IMAGE_URL},
            {"content_type": "image", "image_url": IMAGE_URL, "mime_type": "image/png"},
        ),
        (
            {"type": "AUDIO", "value": "https://cdn.test/a/song.mp3"},
            {
                "content_type": "audio",
                "asset_url": "https://cdn.test/a/song.mp3",
                "mime_type": "audio/mpeg",
            },
        ),
        (
            {"type": "VIDEO", "value": "https://cdn.test/v/clip.mp4"},
            {
                "content_type": "video",
                "asset_url": "https://cdn.test/v/clip.mp4",
                "mime_type": "video/mp4",
            },
        ),
        (
            {"type": "TEXT", "value": "once upon a time"},
            {"content_type": "text", "text": "once upon a time"},
        ),
        (
            {"type": "JSON", "value": '{"a": [1, 2], "b": "c"}'},
            {"content_type": "json", "json": {"a": [1, 2], "b": "c"}},
        ),
        ({"type": "JSON", "value": "{not json"}, {"content_type": "json", "json": "{not json"}),
        (
            {"type": "JSON", "value": {"already": "parsed"}},
            {"content_type": "json", "json": {"already": "parsed"}},
        ),
        ({"type": "HTML", "value": "<p>hi</p>"}, {"content_type": "html", "html": "<p>hi</p>"}),
        (
            {"type": "IMAGE", "value": "https://cdn.test/i/pic"},
            {
                "content_type": "image",
                "image_url": "https://cdn.test/i/pic",
                "mime_type": "image/png",
            },
        ),
    ],
    ids=[
        "image",
        "audio",
        "video",
        "text",
        "json",
        "json_unparsable",
        "json_object",
        "html",
        "image_no_ext",
    ],
)
def test_output_type_gives_the_data_shape(full: dict[str, Any], data: dict[str, Any]) -> None:
    body = {"output": full["value"], "outputFull": full, "price": "1"}
    result = run(json_reply(body))
    assert result.success is True
    assert result.data is not None
    assert {k: v for k, v in result.data.items() if k != "raw_response"} == data


@pytest.mark.parametrize("kind", ["image", "IMAGE", "Image", "iMaGe"])
def test_output_full_type_is_case_insensitive(kind: str) -> None:
    body = image_body(outputFull={"type": kind, "value": IMAGE_URL})
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["content_type"] == "image"
    assert result.data["image_url"] == IMAGE_URL


@pytest.mark.parametrize(
    ("output", "content_type", "key"),
    [
        (IMAGE_URL, "image", "image_url"),
        ("https://cdn.test/x/photo.JPG", "image", "image_url"),
        ("https://cdn.test/x/photo.webp?sig=1", "image", "image_url"),
        ("https://cdn.test/x/track.mp3", "audio", "asset_url"),
        ("https://cdn.test/x/movie.webm", "video", "asset_url"),
        ("https://cdn.test/x/page", "text", "text"),
        ("a plain text answer", "text", "text"),
    ],
)
def test_missing_output_full_infers_the_type_from_the_output(
    output: str, content_type: str, key: str
) -> None:
    result = run(json_reply({"output": output, "price": "0.5"}))
    assert result.data is not None
    assert result.data["content_type"] == content_type
    assert result.data[key] == output


def test_unknown_output_full_type_falls_back_to_inference() -> None:
    body = {"output": IMAGE_URL, "outputFull": {"type": "WIDGET", "value": IMAGE_URL}}
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["content_type"] == "image"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "wf"},
        {"output": None},
        {"error": "", "output": None},
        {"output": None, "outputFull": None},
        {"output": None, "outputFull": {"type": "TEXT"}},
    ],
)
def test_a_reply_without_any_output_is_not_a_success(body: dict[str, Any]) -> None:
    error, _ = fail(json_reply(body))
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.RESPONSE_ERROR,
        R.MISSING_EXPECTED_DATA,
        False,
    )


def test_an_empty_text_output_is_still_a_result() -> None:
    result = run(json_reply({"output": "", "outputFull": {"type": "TEXT", "value": ""}}))
    assert result.data is not None
    assert (result.data["content_type"], result.data["text"]) == ("text", "")


@pytest.mark.parametrize(
    ("message", "failure_type", "retryable"),
    [
        ("Rate limit exceeded. You have 0 credits left this minute", T.RATE_LIMIT, True),
        ("Timeout waiting for credit service", T.TIMEOUT, True),
        ("Insufficient credits: this run needs 2.1", T.RESOURCE_LIMIT, False),
    ],
)
def test_the_word_credit_alone_does_not_mean_out_of_credits(
    message: str, failure_type: FailureType, retryable: bool
) -> None:
    error, _ = fail(json_reply({"error": message}))
    assert (error.failure_type, error.retryable) == (failure_type, retryable)


@pytest.mark.parametrize("value", [None, ""])
def test_media_output_without_a_url_is_missing_expected_data(value: str | None) -> None:
    error, _ = fail(json_reply({"output": value, "outputFull": {"type": "IMAGE", "value": value}}))
    assert (error.failure_type, error.failure_reason) == (
        T.RESPONSE_ERROR,
        R.MISSING_EXPECTED_DATA,
    )
    assert error.retryable is False
    assert error.service == "glif"


@pytest.mark.parametrize(
    ("price", "expected"),
    [("2.1000875", 2.1000875), (0.05, 0.05), (3, 3.0), ("0", 0.0), (None, None), ("free", None)],
)
def test_price_string_or_number_becomes_a_float(price: Any, expected: float | None) -> None:
    result = run(json_reply(image_body(price=price)))
    assert result.metadata["price"] == expected
    if expected is not None:
        assert isinstance(result.metadata["price"], float)


@pytest.mark.parametrize(("value", "expected"), [(True, None), ([], None), ("1e2", 100.0)])
def test_parse_price_edge_values(value: Any, expected: float | None) -> None:
    assert parse_price(value) == expected


def test_result_metadata_and_attribution() -> None:
    result = run(json_reply(image_body()))
    assert result.metadata == {
        "service": "glif",
        "connector": "glif",
        "workflow_id": WORKFLOW,
        "price": 2.1000875,
        "attribution": "powered by glif.app",
    }
    assert ATTRIBUTION == "powered by glif.app"
    assert result.service_metadata is not None
    assert result.service_metadata.service_type == "glif"
    assert result.service_metadata.processing_stats == {"price": 2.1000875}


def test_result_keeps_the_raw_response() -> None:
    body = image_body()
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["raw_response"] == {
        "output": body["output"],
        "outputFull": body["outputFull"],
        "price": "2.1000875",
        "nodes": body["nodes"],
    }


def test_processing_time_is_measured() -> None:
    connector, _ = make(json_reply(image_body()), clock=ticking_clock(50.0, 53.5))
    assert connector.process_job(ok_job()).processing_time_ms == 3500


def test_result_serialises_to_json() -> None:
    result = run(json_reply(image_body()))
    assert json.loads(result.model_dump_json())["data"]["image_url"] == IMAGE_URL


# --- health and support -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "healthy", "detail"),
    [
        (json_reply({"error": "glif not found"}), True, "ok"),
        (json_reply({"error": "Unauthorized"}, 401), False, "auth_error/invalid_api_key: HTTP 401"),
        (empty_reply(503), False, "service_error/service_unavailable: HTTP 503"),
        (html_reply("<h1>proxy</h1>", 200), False, "response_error/invalid_response_format"),
        (requests.ConnectionError("refused"), False, "network_error/connection_failed"),
        (requests.ReadTimeout("slow"), False, "timeout/network_timeout"),
    ],
    ids=["200_error", "401", "503", "200_not_json", "refused", "timeout"],
)
def test_health_reports_why_and_check_health_never_raises(
    reply: Reply | BaseException, healthy: bool, detail: str
) -> None:
    connector, adapter = make(reply)
    report = connector.health()
    assert (report.healthy, report.detail.startswith(detail)) == (healthy, True), report.detail
    assert TOKEN not in report.detail
    assert body_json(adapter.last) == {"id": "", "inputs": []}
    adapter.add(reply)
    assert connector.check_health() is healthy


def test_health_probe_is_a_short_request_through_send() -> None:
    connector, adapter = make(json_reply({"error": "glif not found"}))
    assert connector.health().healthy
    assert adapter.timeouts == [(10.0, 10.0)]  # the probe's read timeout, not the job's 60 s


def test_health_probe_runs_the_configured_workflow() -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id="cheap-wf")
    connector, adapter = make(json_reply(image_body()), settings=settings)
    assert connector.check_health() is True
    assert body_json(adapter.last) == {"id": "cheap-wf", "inputs": ["health-check"]}
    assert adapter.last.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        ("Insufficient credits", "resource_limit/insufficient_credits"),
        ("glif not found", "validation_error/invalid_payload"),
    ],
)
def test_a_failing_health_check_workflow_is_unhealthy(error: str, detail: str) -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id="cheap-wf")
    connector, _ = make(json_reply({"error": error}), settings=settings)
    report = connector.health()
    assert not report.healthy
    assert report.detail.startswith(f"{detail}: Glif health-check workflow cheap-wf failed")


def test_a_redirect_is_not_followed_by_the_probe() -> None:
    connector, adapter = make(
        Reply(302, b"", {"Location": "https://elsewhere.example/"}),
        json_reply({"error": "glif not found"}),
    )
    report = connector.health()
    assert not report.healthy
    assert "HTTP 302" in report.detail
    assert "does not follow redirects" in report.detail
    assert [r.url for r in adapter.requests] == ["https://simple-api.glif.app/"]


@pytest.mark.parametrize(("workflow", "allowed"), [(None, False), ("cheap-wf", True)])
def test_periodic_checks_only_with_a_health_check_workflow(
    workflow: str | None, allowed: bool
) -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id=workflow)
    connector, _ = make(settings=settings)
    assert connector.periodic_health_check_allowed() is allowed


def test_glif_is_a_minimal_health_class_and_is_supported() -> None:
    connector, _ = make()
    assert connector.service_support()["isSupported"] is True


# --- asset saving --------------------------------------------------------------------------------


def test_image_output_is_saved_and_the_result_points_at_the_saved_copy() -> None:
    saver = StubSaver()
    connector, _ = make(json_reply(image_body()), assets=saver)
    result = connector.process_job(ok_job(save_assets=True))
    ((source, job_id, _mime),) = saver.saved
    provider_url = image_body()["output"]
    assert getattr(source, "url", None) == provider_url
    assert job_id == "job-glif-1"
    assert result.data is not None
    assert result.data["image_url"].startswith("https://cdn.example.test/")
    assert result.data["raw_response"]["output"] == provider_url  # the original is kept
    assert [f.type for f in result.output_files] == ["image"]
    assert result.metadata["saved_asset"]["fileUrl"] == result.data["image_url"]
    assert saver.expects == ["image"]  # the saver refuses anything that is not an image


def test_save_assets_false_keeps_the_provider_url_and_saves_nothing() -> None:
    saver = StubSaver()
    connector, _ = make(json_reply(image_body()), assets=saver)
    result = connector.process_job(ok_job(save_assets=False))
    assert saver.saved == []
    assert result.data is not None
    assert result.data["image_url"] == image_body()["output"]
    assert result.output_files == []


def test_an_output_that_cannot_be_saved_fails_the_job() -> None:
    refusal = ConnectorError(
        "storage unavailable",
        failure_type="service_error",
        failure_reason="service_unavailable",
        service="storage",
    )
    connector, _ = make(json_reply(image_body()), assets=StubSaver(error=refusal))
    with pytest.raises(ConnectorError) as info:
        connector.process_job(ok_job(save_assets=True))
    assert info.value.service == "storage"
    assert info.value.retryable is True


def test_text_outputs_are_not_saved() -> None:
    saver = StubSaver()
    connector, _ = make(
        json_reply(
            {
                "output": "hello",
                "outputFull": {"type": "TEXT", "value": "hello"},
                "price": "0.1",
                "nodes": [],
            }
        ),
        assets=saver,
    )
    connector.process_job(ok_job(save_assets=True))
    assert saver.saved == []
