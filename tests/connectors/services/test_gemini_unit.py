"""Gemini connector unit tests: a real requests.Session over a scripted transport, no servers."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest
import requests

from connectors.assets import (
    AssetSaver,
    AssetSource,
    Base64Data,
    DownloadPolicy,
    ExpectedKind,
    SavedAsset,
)
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult
from connectors.services.gemini import (
    GeminiConnector,
    GeminiImageConnector,
    GeminiImageEditConnector,
    GeminiSettings,
    GeminiTextConnector,
)
from connectors.services.gemini_errors import (
    check_response,
    classify_error_body,
    parse_duration,
    quota_ids,
    retry_delay,
    strip_inline_data,
)
from connectors.services.gemini_input import InputImageFetcher
from emp_tasks.sandbox.png import make_png
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    body_json,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)

R = FailureReason
T = FailureType
KEY = "gemini-unit-test-key-3f9a1c7d"
BASE = "https://gemini.test/v1beta"
PNG = make_png("unit", 8, 8)
PNG_B64 = base64.b64encode(PNG).decode()
IMAGE_HOST = "images.example"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEY", "BASE_URL", "TIMEOUT", "TEXT_MODEL", "IMAGE_MODEL"):
        monkeypatch.delenv(f"GEMINI_{name}", raising=False)


class StubSaver:
    """An AssetSaver that records what it was asked to save and invents a URL for it."""

    def __init__(self, fail: ConnectorError | None = None) -> None:
        self.saved: list[tuple[AssetSource, str | None]] = []
        self.expects: list[str | None] = []
        self.fail = fail

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        if self.fail is not None:
            raise self.fail
        self.saved.append((source, mime_type))
        self.expects.append(expect)
        n = len(self.saved)
        return SavedAsset(
            url=f"https://cdn.test/{job.id}_{n}.png",
            key=f"emp/{job.id}_{n}.png",
            mime_type=mime_type or "image/png",
            size_bytes=len(PNG),
            sha256="ab" * 32,
        )


Connector = type[GeminiConnector]


def make(
    cls: Connector, *script: Reply | BaseException, **kwargs: Any
) -> tuple[GeminiConnector, FakeAdapter]:
    session, adapter = fake_session(*script)
    kwargs.setdefault("assets", StubSaver())
    connector = cls(GeminiSettings(api_key=KEY, base_url=BASE), session=session, **kwargs)
    return connector, adapter


def job(service: str = "gemini_text", **payload: Any) -> JobData:
    return JobData(id="job-gem-1", type=service, payload=payload)


def reply_body(*parts: dict[str, Any], finish: str = "STOP", **extra: Any) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "resp-123",
        **extra,
    }


def image_part(data: str = PNG_B64) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": data}}


def fail(cls: Connector, reply: Reply | BaseException, data: JobData) -> ConnectorError:
    connector, _ = make(cls, reply)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data)
    return info.value


def assert_key_absent(error: ConnectorError) -> None:
    for text in (
        str(error),
        repr(error),
        json.dumps(error.to_dict()),
        json.dumps(error.args),
        repr(pickle.loads(pickle.dumps(error)).to_dict()),
    ):
        assert KEY not in text


def test_stub_saver_satisfies_the_asset_saver_protocol() -> None:
    assert isinstance(StubSaver(), AssetSaver)


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("GEMINI_API_KEY", value)
    with pytest.raises(ConnectorError) as info:
        GeminiTextConnector()
    error = info.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.SYSTEM_ERROR,
        R.CONFIG_ERROR,
        False,
    )
    assert "GEMINI_API_KEY" in error.message
    assert error.context["variables"] == ["GEMINI_API_KEY"]


def test_settings_come_from_the_environment_with_documented_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    defaults = GeminiSettings()
    assert defaults.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert (defaults.timeout, defaults.text_model, defaults.image_model) == (
        45.0,
        "gemini-2.5-flash",
        "gemini-2.5-flash-image",
    )
    monkeypatch.setenv("GEMINI_TIMEOUT", "12.5")
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta")
    connector = GeminiImageConnector()
    assert connector.timeouts.read == 12.5
    assert connector.url("models") == "http://127.0.0.1:9/v1beta/models"


def test_an_invalid_setting_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_TIMEOUT", "soon")
    with pytest.raises(ConnectorError) as info:
        GeminiTextConnector()
    assert info.value.failure_reason is R.CONFIG_ERROR
    assert info.value.context["variables"] == ["GEMINI_TIMEOUT"]


# --- payload validation, before any request ------------------------------------------------------

BAD_PAYLOADS: list[tuple[str, Connector, dict[str, Any], str]] = [
    ("no_prompt", GeminiTextConnector, {}, "prompt"),
    ("blank_prompt", GeminiTextConnector, {"prompt": "  "}, "prompt"),
    ("prompt_not_text", GeminiTextConnector, {"prompt": 7}, "prompt"),
    (
        "prompt_and_contents",
        GeminiTextConnector,
        {"prompt": "x", "contents": [{"parts": [{"text": "y"}]}]},
        "prompt",
    ),
    ("empty_contents", GeminiTextConnector, {"contents": []}, "contents"),
    ("contents_without_parts", GeminiTextConnector, {"contents": [{"role": "user"}]}, "contents"),
    ("model_path_injection", GeminiTextConnector, {"prompt": "x", "model": "../files"}, "model"),
    ("model_with_query", GeminiTextConnector, {"prompt": "x", "model": "m?key=1"}, "model"),
    ("temperature_too_high", GeminiTextConnector, {"prompt": "x", "temperature": 3}, "temperature"),
    ("unknown_field", GeminiTextConnector, {"prompt": "x", "bogus": 1}, "bogus"),
    ("aspect_on_text", GeminiTextConnector, {"prompt": "x", "aspect_ratio": "1:1"}, "aspect_ratio"),
    ("bad_aspect", GeminiImageConnector, {"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio"),
    (
        "image_on_generate",
        GeminiImageConnector,
        {"prompt": "x", "image_url": "https://a/b"},
        "image",
    ),
    ("edit_without_image", GeminiImageEditConnector, {"prompt": "x"}, "image_base64"),
    (
        "edit_with_both_images",
        GeminiImageEditConnector,
        {"prompt": "x", "image_url": "https://a.test/i.png", "image_base64": PNG_B64},
        "image_base64",
    ),
    (
        "edit_url_not_http",
        GeminiImageEditConnector,
        {"prompt": "x", "image_url": "file:///etc/passwd"},
        "image_url",
    ),
    (
        "edit_base64_invalid",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": "not base64 at all!"},
        "image_base64",
    ),
    (
        "edit_data_url_not_base64",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": "data:image/png,abc"},
        "image_base64",
    ),
    (
        "edit_mime_not_image",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": PNG_B64, "mime_type": "text/html"},
        "mime_type",
    ),
    ("edit_without_prompt", GeminiImageEditConnector, {"image_base64": PNG_B64}, "prompt"),
]


@pytest.mark.parametrize(
    ("cls", "payload", "field"),
    [case[1:] for case in BAD_PAYLOADS],
    ids=[case[0] for case in BAD_PAYLOADS],
)
def test_bad_payload_is_refused_naming_the_field_before_any_request(
    cls: Connector, payload: dict[str, Any], field: str
) -> None:
    connector, adapter = make(cls)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(job(cls.service_type, **payload))
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert field in error.message
    assert adapter.requests == []
    with pytest.raises(ConnectorError):
        cls.validate_payload(payload)  # the same check runs at submit time


def test_an_edit_payload_accepts_exactly_one_image() -> None:
    assert GeminiImageEditConnector.validate_payload({"prompt": "x", "image_base64": PNG_B64})
    assert GeminiImageEditConnector.validate_payload(
        {"prompt": "x", "image_url": "https://images.example/cat.png"}
    )


# --- the request ------------------------------------------------------------------------------


def test_text_request_posts_generate_content_with_the_key_header() -> None:
    connector, adapter = make(GeminiTextConnector, json_reply(reply_body({"text": "hi"})))
    connector.process_job(job(prompt="hello", temperature=0.3))
    sent = adapter.last
    assert sent.method == "POST"
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert "key=" not in adapter.last_url  # never in the URL, where logs would keep it
    assert body_json(sent) == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"temperature": 0.3},
    }


def test_payload_model_overrides_the_default_and_loses_its_models_prefix() -> None:
    connector, adapter = make(GeminiTextConnector, json_reply(reply_body({"text": "hi"})))
    connector.process_job(job(prompt="x", model="models/gemini-2.5-pro"))
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-pro:generateContent"


def test_image_request_asks_for_image_output_and_the_aspect_ratio() -> None:
    connector, adapter = make(GeminiImageConnector, json_reply(reply_body(image_part())))
    connector.process_job(job("gemini_image", prompt="a fox", aspect_ratio="16:9"))
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-flash-image:generateContent"
    assert body_json(adapter.last)["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
    }


JPEG = b"\xff\xd8\xff\xe0jpeg"


@pytest.mark.parametrize(
    ("image_base64", "mime_type", "sent_mime", "sent_bytes"),
    [
        (PNG_B64, None, "image/png", PNG),
        (f"data:image/png;base64,{PNG_B64}", None, "image/png", PNG),
        (PNG_B64.rstrip("="), None, "image/png", PNG),
        (base64.urlsafe_b64encode(PNG).decode(), None, "image/png", PNG),
        (base64.b64encode(JPEG).decode(), None, "image/jpeg", JPEG),
        (PNG_B64, "image/webp", "image/webp", PNG),
    ],
    ids=["raw", "data_url", "unpadded", "urlsafe", "jpeg_sniffed", "declared_mime_wins"],
)
def test_edit_sends_the_base64_image_as_inline_data_after_the_prompt(
    image_base64: str, mime_type: str | None, sent_mime: str, sent_bytes: bytes
) -> None:
    connector, adapter = make(GeminiImageEditConnector, json_reply(reply_body(image_part())))
    payload: dict[str, Any] = {"prompt": "make it blue", "image_base64": image_base64}
    if mime_type:
        payload["mime_type"] = mime_type
    connector.process_job(job("gemini_image_edit", **payload))
    parts = body_json(adapter.last)["contents"][0]["parts"]
    assert parts[0] == {"text": "make it blue"}
    blob = parts[1]["inlineData"]
    assert blob["mimeType"] == sent_mime
    assert blob["data"] == base64.b64encode(sent_bytes).decode()


def test_edit_with_contents_appends_the_image_without_touching_the_payload() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "a"}]},
        {"role": "user", "parts": [{"text": "b"}]},
    ]
    payload = {"contents": contents, "image_base64": PNG_B64}
    connector, adapter = make(GeminiImageEditConnector, json_reply(reply_body(image_part())))
    data = job("gemini_image_edit", **payload)
    connector.process_job(data)
    sent = body_json(adapter.last)["contents"]
    assert sent[0] == contents[0]
    assert sent[1]["parts"][1]["inlineData"]["data"] == PNG_B64
    assert data.payload["contents"][1]["parts"] == [{"text": "b"}]


def edit_connector(*image_host: Reply, **kwargs: Any) -> tuple[GeminiConnector, FakeAdapter]:
    dl_session, _ = fake_session(*image_host)
    policy = DownloadPolicy(allow_hosts=frozenset({IMAGE_HOST}), max_bytes=1024 * 1024)
    fetcher = InputImageFetcher(dl_session, policy)
    connector, adapter = make(
        GeminiImageEditConnector, *kwargs.pop("gemini", ()), image_fetcher=fetcher
    )
    return connector, adapter


def test_edit_by_url_downloads_the_image_and_sends_it_inline() -> None:
    image = Reply(200, PNG, {"Content-Type": "image/png"})
    connector, adapter = edit_connector(image, gemini=[json_reply(reply_body(image_part()))])
    connector.process_job(
        job("gemini_image_edit", prompt="x", image_url=f"https://{IMAGE_HOST}/cat.png")
    )
    blob = body_json(adapter.last)["contents"][0]["parts"][1]["inlineData"]
    assert blob == {"mimeType": "image/png", "data": PNG_B64}


@pytest.mark.parametrize(
    ("image_host", "reason"),
    [
        (json_reply({"error": "gone"}, 404), R.INVALID_REQUEST),
        (html_reply("<html>login</html>", 200), R.INVALID_PAYLOAD),
        (Reply(200, b"x" * (2 * 1024 * 1024), {"Content-Type": "image/png"}), R.INVALID_PAYLOAD),
    ],
    ids=["not_found", "not_an_image", "too_large"],
)
def test_edit_url_that_cannot_be_fetched_fails_before_gemini_is_called(
    image_host: Reply, reason: FailureReason
) -> None:
    connector, adapter = edit_connector(image_host)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(
            job("gemini_image_edit", prompt="x", image_url=f"https://{IMAGE_HOST}/cat.png")
        )
    assert (info.value.failure_type, info.value.failure_reason) == (T.VALIDATION_ERROR, reason)
    assert info.value.retryable is False
    assert info.value.service == "gemini_image_edit"
    assert adapter.requests == []


def test_edit_url_pointing_inside_the_network_is_refused_without_any_request() -> None:
    dl_session, dl_adapter = fake_session()
    fetcher = InputImageFetcher(dl_session, DownloadPolicy())  # nothing allow-listed
    connector, adapter = make(GeminiImageEditConnector, image_fetcher=fetcher)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(
            job("gemini_image_edit", prompt="x", image_url="http://169.254.169.254/latest/")
        )
    assert info.value.failure_type is T.VALIDATION_ERROR
    assert info.value.context["field"] == "image_url"
    assert dl_adapter.requests == []
    assert adapter.requests == []


# --- successful results -------------------------------------------------------------------------


def test_text_reply_joins_text_parts_and_keeps_usage_and_ids() -> None:
    body = reply_body({"text": "Hello, "}, {"text": "thinking", "thought": True}, {"text": "world"})
    connector, _ = make(GeminiTextConnector, json_reply(body))
    result = connector.process_job(job(prompt="hi"))
    assert isinstance(result, JobResult)
    assert result.data == {
        "content_type": "text",
        "text": "Hello, world",
        "finish_reason": "STOP",
        "model_used": "gemini-2.5-flash-image",
    }
    assert result.metadata["usage"] == body["usageMetadata"]
    assert result.metadata["response_id"] == "resp-123"
    assert result.metadata["model_version"] == "gemini-2.5-flash-image"
    assert result.service_metadata is not None
    assert result.service_metadata.service_job_id == "resp-123"
    assert result.output_files == []


def test_every_inline_image_is_saved_and_the_first_is_the_image_url() -> None:
    saver = StubSaver()
    other = base64.b64encode(make_png("other", 4, 4)).decode()
    body = reply_body({"text": "Here you go"}, image_part(), image_part(other))
    connector, _ = make(GeminiImageConnector, json_reply(body), assets=saver)
    result = connector.process_job(job("gemini_image", prompt="two foxes"))
    assert saver.saved == [(Base64Data(PNG_B64), "image/png"), (Base64Data(other), "image/png")]
    assert saver.expects == ["image", "image"]  # the saver refuses anything that is not an image
    assert result.data is not None
    assert result.data["image_url"] == "https://cdn.test/job-gem-1_1.png"
    assert result.data["images"] == [
        "https://cdn.test/job-gem-1_1.png",
        "https://cdn.test/job-gem-1_2.png",
    ]
    assert (result.data["mime_type"], result.data["text"]) == ("image/png", "Here you go")
    assert [f.path for f in result.output_files] == ["emp/job-gem-1_1.png", "emp/job-gem-1_2.png"]


def test_snake_case_inline_data_is_saved_too() -> None:
    saver = StubSaver()
    body = reply_body({"inline_data": {"mime_type": "image/png", "data": PNG_B64}})
    connector, _ = make(GeminiImageConnector, json_reply(body), assets=saver)
    connector.process_job(job("gemini_image", prompt="x"))
    assert saver.saved == [(Base64Data(PNG_B64), "image/png")]


def test_a_save_failure_fails_the_job() -> None:
    broken = ConnectorError("bucket gone", failure_type=T.SYSTEM_ERROR, service="storage")
    connector, _ = make(
        GeminiImageConnector, json_reply(reply_body(image_part())), assets=StubSaver(broken)
    )
    with pytest.raises(ConnectorError, match="bucket gone"):
        connector.process_job(job("gemini_image", prompt="x"))


def test_text_replies_never_build_a_saver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_PROVIDER", "no-such-provider")
    session, _ = fake_session(json_reply(reply_body({"text": "hi"})))
    connector = GeminiTextConnector(GeminiSettings(api_key=KEY, base_url=BASE), session=session)
    assert connector.process_job(job(prompt="x")).data is not None


# --- error replies ------------------------------------------------------------------------------


def rpc(code: int, status: str, message: str = "boom", *details: dict[str, Any]) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json_reply({"error": error}, code)


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "m", "quotaId": quota_id}],
    }


KEY_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"

ERROR_TABLE = [  # (id, reply, "type/reason", retryable, retry_after)
    ("key_reason", rpc(400, "INVALID_ARGUMENT", "bad", KEY_INFO), "auth_error/invalid_api_key",
     False, None),
    ("key_message", rpc(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid key."),
     "auth_error/invalid_api_key", False, None),
    ("bad_argument", rpc(400, "INVALID_ARGUMENT", "* contents: required"),
     "validation_error/invalid_request", False, None),
    ("region", rpc(400, "FAILED_PRECONDITION", "User location is not supported"),
     "validation_error/unsupported_operation", False, None),
    ("permission", rpc(403, "PERMISSION_DENIED"), "auth_error/insufficient_permissions",
     False, None),
    ("model_not_found", rpc(404, "NOT_FOUND", "models/x is not found"),
     "validation_error/model_not_found", False, None),
    ("per_minute", rpc(429, "RESOURCE_EXHAUSTED", "q", quota(PER_MINUTE), retry_info("34s")),
     "rate_limit/requests_per_minute", True, 34.0),
    ("fractional_delay", rpc(429, "RESOURCE_EXHAUSTED", "q", retry_info("1.5s")),
     "rate_limit/requests_per_minute", True, 1.5),
    ("tokens_per_minute", rpc(429, "RESOURCE_EXHAUSTED", "q", quota("InputTokensPerMinute")),
     "rate_limit/tokens_per_minute", True, None),
    ("per_day", rpc(429, "RESOURCE_EXHAUSTED", "q", quota(PER_DAY), retry_info("20s")),
     "rate_limit/daily_quota_exceeded", False, None),
    ("internal", rpc(500, "INTERNAL"), "service_error/service_unavailable", True, None),
    ("overloaded", rpc(503, "UNAVAILABLE", "The model is overloaded."),
     "service_error/service_unavailable", True, None),
    ("deadline", rpc(504, "DEADLINE_EXCEEDED"), "timeout/processing_timeout", True, None),
    ("proxy_html", html_reply("<html>Bad Gateway</html>", 502),
     "service_error/service_unavailable", True, None),
    ("not_an_envelope", json_reply({"detail": "nope"}, 400), "validation_error/invalid_request",
     False, None),
    # An unnamed 4xx answers the request itself: the same request gets it again (not retried).
    ("unknown_rpc_status", rpc(418, "TEAPOT"), "system_error/unknown_error", False, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "kind", "retryable", "retry_after"),
    [case[1:] for case in ERROR_TABLE],
    ids=[str(case[0]) for case in ERROR_TABLE],
)
def test_error_replies_are_classified_by_their_rpc_status_and_details(
    reply: Reply, kind: str, retryable: bool, retry_after: float | None
) -> None:
    error = fail(GeminiTextConnector, reply, job(prompt="x"))
    assert f"{error.failure_type.value}/{error.failure_reason.value}" == kind
    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert error.status_code == reply.status
    assert error.service == "gemini_text"
    assert_key_absent(error)


def test_per_day_quota_says_why_it_is_not_retried() -> None:
    reply = rpc(429, "RESOURCE_EXHAUSTED", "quota", quota(PER_DAY), retry_info("20s"))
    error = fail(GeminiImageConnector, reply, job("gemini_image", prompt="x"))
    assert PER_DAY in error.message
    assert error.retry_after is None


def test_a_retry_after_header_is_the_fallback_when_retry_info_is_absent() -> None:
    body = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    error = fail(GeminiTextConnector, json_reply(body, 429, {"Retry-After": "5"}), job(prompt="x"))
    assert (error.failure_reason, error.retry_after) == (R.REQUESTS_PER_MINUTE, 5.0)


def test_a_key_echoed_by_the_provider_is_scrubbed_from_the_error() -> None:
    reply = rpc(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}", KEY_INFO)
    error = fail(GeminiTextConnector, reply, job(prompt="x"))
    assert error.failure_reason is R.INVALID_API_KEY
    assert_key_absent(error)


def test_network_failure_is_classified_and_carries_no_key() -> None:
    error = fail(GeminiTextConnector, requests.ConnectionError("refused"), job(prompt="x"))
    assert (error.failure_type, error.retryable) == (T.NETWORK_ERROR, True)
    assert_key_absent(error)


# --- 200 replies that are failures ----------------------------------------------------------------

REFUSAL = "generation_refusal"
MISSING = "response_error/missing_expected_data"
REFUSALS = [  # (id, 200 reply, "type/reason"): none of them is retried
    ("prompt_blocked", {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}},
     f"{REFUSAL}/policy_violation"),
    ("prompt_blocked_safety", {"promptFeedback": {"blockReason": "SAFETY"}},
     f"{REFUSAL}/safety_filter"),
    ("safety_finish", {"candidates": [{"finishReason": "SAFETY"}]}, f"{REFUSAL}/safety_filter"),
    ("prohibited", reply_body(finish="PROHIBITED_CONTENT"), f"{REFUSAL}/policy_violation"),
    ("spii", reply_body(finish="SPII"), f"{REFUSAL}/personal_info"),
    ("recitation", reply_body({"text": "..."}, finish="RECITATION"),
     f"{REFUSAL}/copyright_blocker"),
    ("image_safety", reply_body(finish="IMAGE_SAFETY"), f"{REFUSAL}/safety_filter"),
    ("image_prohibited", reply_body(finish="IMAGE_PROHIBITED_CONTENT"),
     f"{REFUSAL}/policy_violation"),
    ("no_image_finish", reply_body({"text": "sorry"}, finish="NO_IMAGE"), MISSING),
    ("image_other", reply_body(finish="IMAGE_OTHER"), MISSING),
    ("text_only_for_image", reply_body({"text": "I cannot draw"}), MISSING),
    ("no_candidates", {"usageMetadata": {}}, MISSING),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "kind"), [case[1:] for case in REFUSALS], ids=[str(case[0]) for case in REFUSALS]
)
def test_blocked_or_imageless_replies_fail_without_retry(body: dict[str, Any], kind: str) -> None:
    error = fail(GeminiImageConnector, json_reply(body), job("gemini_image", prompt="x"))
    assert f"{error.failure_type.value}/{error.failure_reason.value}" == kind
    assert error.retryable is False
    assert error.status_code == 200
    assert "raw_response" in error.context


def test_a_refusal_keeps_the_feedback_but_not_the_image_bytes() -> None:
    body = reply_body(image_part(), finish="IMAGE_SAFETY")
    body["candidates"][0]["safetyRatings"] = [{"category": "X", "probability": "HIGH"}]
    error = fail(GeminiImageConnector, json_reply(body), job("gemini_image", prompt="x"))
    assert error.context["finish_reason"] == "IMAGE_SAFETY"
    assert error.context["safety_ratings"] == [{"category": "X", "probability": "HIGH"}]
    assert PNG_B64 not in json.dumps(error.to_dict())


def test_text_only_reply_is_fine_for_the_text_service() -> None:
    connector, _ = make(
        GeminiTextConnector, json_reply(reply_body({"text": "ok"}, finish="MAX_TOKENS"))
    )
    result = connector.process_job(job(prompt="x"))
    assert result.data is not None
    assert result.data["finish_reason"] == "MAX_TOKENS"


@pytest.mark.parametrize(
    ("reply", "reason", "retryable"),
    [
        (text_reply("<html>oops</html>", 200, "text/html"), R.INVALID_RESPONSE_FORMAT, True),
        (json_reply([1, 2]), R.INVALID_RESPONSE_FORMAT, False),
        (json_reply(reply_body(finish="MAX_TOKENS")), R.MISSING_EXPECTED_DATA, False),
    ],
    ids=["not_json", "not_an_object", "thoughts_ate_the_budget"],
)
def test_unusable_200_replies_are_response_errors(
    reply: Reply, reason: FailureReason, retryable: bool
) -> None:
    error = fail(GeminiTextConnector, reply, job(prompt="x"))
    assert (error.failure_type, error.failure_reason) == (T.RESPONSE_ERROR, reason)
    assert error.retryable is retryable


# --- health -------------------------------------------------------------------------------------


def test_health_probe_lists_models_with_the_key() -> None:
    connector, adapter = make(GeminiTextConnector, json_reply({"models": []}))
    assert connector.check_health() is True
    assert adapter.last_url.startswith(f"{BASE}/models?")
    assert adapter.last.headers["x-goog-api-key"] == KEY
    assert adapter.timeouts[-1][1] == 10.0  # the probe's short read timeout


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (rpc(400, "INVALID_ARGUMENT", "API key not valid", KEY_INFO), "auth_error/invalid_api_key"),
        (rpc(503, "UNAVAILABLE", "overloaded"), "service_error/"),
        (requests.ConnectionError("refused"), "network_error/connection_failed"),
    ],
    ids=["bad_key", "503", "down"],
)
def test_health_is_unhealthy_with_the_classified_reason(
    reply: Reply | BaseException, detail: str
) -> None:
    connector, _ = make(GeminiTextConnector, reply)
    report = connector.health()
    assert not report.healthy
    assert report.detail.startswith(detail), report.detail
    assert KEY not in report.detail
    connector, _ = make(GeminiTextConnector, reply)
    assert connector.check_health() is False


def test_health_probe_does_not_follow_a_redirect_with_the_key() -> None:
    connector, adapter = make(
        GeminiTextConnector,
        Reply(302, b"", {"Location": "https://attacker.example/models"}),
        json_reply({"models": []}),
    )
    report = connector.health()
    assert not report.healthy
    assert "does not follow redirects" in report.detail
    assert len(adapter.requests) == 1  # attacker.example is never contacted
    assert adapter.last_url.startswith(f"{BASE}/models?")


# --- the pure decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("34s", 34.0),
        ("1.5s", 1.5),
        ("0.000340s", 0.00034),
        (".5s", 0.5),
        ("7", 7.0),
        (12, 12.0),
        ("", None),
        ("-3s", None),
        ("3m", None),
        ("nan", None),
        (True, None),
        (None, None),
        ({"seconds": 3}, None),
    ],
)
def test_parse_duration_reads_protobuf_duration_strings(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


def test_retry_delay_and_quota_ids_come_from_typed_details_only() -> None:
    error = {
        "details": [
            {"@type": "type.googleapis.com/google.rpc.Help", "retryDelay": "99s"},
            quota(PER_MINUTE),
            retry_info("4.25s"),
            "not an object",
        ]
    }
    assert retry_delay(error) == 4.25
    assert quota_ids(error) == [PER_MINUTE]
    assert retry_delay({"details": "junk"}) is None
    assert quota_ids({}) == []


@pytest.mark.parametrize(
    "body",
    [None, "text", [], {"error": "plain string"}, {"error": {"code": 400}}, {"message": "x"}],
)
def test_classify_error_body_leaves_non_gemini_bodies_to_the_status(body: Any) -> None:
    assert classify_error_body(body) is None


def test_classify_error_body_reads_a_stream_error_wrapped_in_an_array() -> None:
    found = classify_error_body([{"error": {"code": 503, "status": "UNAVAILABLE"}}])
    assert found is not None
    assert found[0].failure_reason is R.SERVICE_UNAVAILABLE


def test_an_expired_key_is_an_expired_token_auth_error() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_EXPIRED"}
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [info]}}
    found = classify_error_body(body)
    assert found is not None
    assert found[0] == Classification(T.AUTH_ERROR, R.EXPIRED_TOKEN, False)


@pytest.mark.parametrize(
    ("body", "image_required", "reason"),
    [
        (reply_body({"text": "a"}), False, None),
        (reply_body(image_part()), True, None),
        (reply_body({"text": "only thinking", "thought": True}), False, R.MISSING_EXPECTED_DATA),
        (
            reply_body({"inlineData": {"mimeType": "image/png", "data": ""}}),
            True,
            R.MISSING_EXPECTED_DATA,
        ),
        ({"candidates": ["junk"]}, False, R.INVALID_RESPONSE_FORMAT),
        (
            {"candidates": [], "promptFeedback": {"blockReason": "NEW_REASON"}},
            False,
            R.POLICY_VIOLATION,
        ),
        (reply_body({"text": "x"}, finish="LANGUAGE"), False, R.UNSUPPORTED_OPERATION),
    ],
    ids=["text", "image", "thought_only", "empty_blob", "junk", "unknown_block", "language"],
)
def test_check_response_table(
    body: dict[str, Any], image_required: bool, reason: FailureReason | None
) -> None:
    found = check_response(body, image_required=image_required)
    assert (found[0].failure_reason if found else None) == reason


def test_strip_inline_data_keeps_everything_but_the_bytes() -> None:
    body = reply_body({"text": "t"}, image_part())
    stripped = strip_inline_data(body)
    blob = stripped["candidates"][0]["content"]["parts"][1]["inlineData"]
    assert blob == {"mimeType": "image/png", "data": f"<{len(PNG_B64)} base64 chars>"}
    assert stripped["candidates"][0]["content"]["parts"][0] == {"text": "t"}
    assert body["candidates"][0]["content"]["parts"][1] == image_part()  # not mutated
