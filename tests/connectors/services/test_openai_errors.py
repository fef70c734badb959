"""OpenAI error bodies: code, type, status and x-should-retry into one classification."""

from __future__ import annotations

import pytest

from connectors.errors import FailureReason, FailureType
from connectors.services.openai_common import classify_openai_error
from connectors.services.openai_image import OpenAIImageConnector
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport
from tests.connectors.services.openai_support import IMAGES, KEY, R, T, err, fails, job, kind, make

pytestmark = pytest.mark.usefixtures("clean_openai_env")


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
