"""GlifConnector: the error matrix, error statuses, non-JSON replies and network failures."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import requests

from connectors.errors import Classification, FailureReason, FailureType
from connectors.redact import MAX_CONTEXT_CHARS
from connectors.rules import Rule, classify_message
from connectors.services.glif import (
    GLIF_FALLBACK,
    GLIF_RULES,
    classify_glif_error,
)
from tests.connectors.fakes import (
    Reply,
    empty_reply,
    html_reply,
    json_reply,
    text_reply,
)
from tests.connectors.services.glif_support import (
    TOKEN,
    WORKFLOW,
    R,
    T,
    assert_token_absent,
    clean_env,
    fail,
    image_body,
    job,
    make,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


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
    assert TOKEN not in repr(connector.client.auth)
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
