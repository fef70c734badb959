"""Gemini connectors: health probes and the pure decisions of gemini_errors."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.errors import Classification, FailureReason
from connectors.services.gemini import (
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
from tests.connectors.fakes import (
    Reply,
    json_reply,
)
from tests.connectors.services.gemini_support import (
    BASE,
    KEY,
    KEY_INFO,
    PER_MINUTE,
    PNG_B64,
    R,
    T,
    clean_env,
    image_part,
    make,
    quota,
    reply_body,
    retry_info,
    rpc,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


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
