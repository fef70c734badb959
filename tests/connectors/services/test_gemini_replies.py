"""Gemini connectors: successful results, error replies and 200 replies that fail."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from connectors.assets import (
    Base64Data,
)
from connectors.errors import ConnectorError, FailureReason
from connectors.models import JobResult
from connectors.services.gemini import (
    GeminiImageConnector,
    GeminiSettings,
    GeminiTextConnector,
)
from emp_tasks.sandbox.png import make_png
from tests.connectors.fakes import (
    Reply,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)
from tests.connectors.services.gemini_support import (
    BASE,
    KEY,
    KEY_INFO,
    PER_DAY,
    PER_MINUTE,
    PNG_B64,
    R,
    StubSaver,
    T,
    assert_key_absent,
    clean_env,
    fail,
    image_part,
    job,
    make,
    quota,
    reply_body,
    retry_info,
    rpc,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


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
