"""The ordered message rules: every category and sub-reason, and the original's quirks fixed."""

from __future__ import annotations

import pytest

from connectors.errors import REASON_TYPES, Classification, FailureReason, FailureType
from connectors.rules import RULES, Rule, classify_message, rx

R = FailureReason
T = FailureType

MESSAGES: list[tuple[str, FailureType, FailureReason]] = [
    # generation_refusal
    ("Your request was rejected by the safety system", T.GENERATION_REFUSAL, R.SAFETY_FILTER),
    ("moderation_blocked: wfr_abc123", T.GENERATION_REFUSAL, R.SAFETY_FILTER),
    ("Image contains violence and cannot be generated", T.GENERATION_REFUSAL, R.VIOLENCE_DETECTED),
    ("Blocked: copyright violation", T.GENERATION_REFUSAL, R.COPYRIGHT_BLOCKER),
    ("Cannot create intellectual property", T.GENERATION_REFUSAL, R.COPYRIGHT_BLOCKER),
    ("The prompt was declined: nsfw content", T.GENERATION_REFUSAL, R.NSFW_CONTENT),
    ("Adult content is not allowed", T.GENERATION_REFUSAL, R.NSFW_CONTENT),
    ("Hate speech is not allowed", T.GENERATION_REFUSAL, R.HATE_SPEECH),
    ("Cannot generate images of personal information", T.GENERATION_REFUSAL, R.PERSONAL_INFO),
    ("Content flagged by the safety checker", T.GENERATION_REFUSAL, R.SAFETY_FILTER),
    ("Your request violates our content policy", T.GENERATION_REFUSAL, R.POLICY_VIOLATION),
    # auth_error
    ("Invalid API key provided", T.AUTH_ERROR, R.INVALID_API_KEY),
    ("Authentication failed", T.AUTH_ERROR, R.INVALID_API_KEY),
    ("Access token expired", T.AUTH_ERROR, R.EXPIRED_TOKEN),
    ("Invalid bearer token", T.AUTH_ERROR, R.INVALID_API_KEY),
    ("Permission denied for this project", T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
    ("403 Forbidden", T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
    ("Unauthorized: account suspended", T.AUTH_ERROR, R.ACCOUNT_SUSPENDED),
    # resource_limit: credits
    ("Insufficient credits to run this workflow", T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS),
    (
        "You exceeded your current quota, check your billing details: insufficient_quota",
        T.RESOURCE_LIMIT,
        R.INSUFFICIENT_CREDITS,
    ),
    ("402 Payment Required", T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS),
    # rate_limit
    ("Rate limit exceeded", T.RATE_LIMIT, R.REQUESTS_PER_MINUTE),
    ("Too many requests", T.RATE_LIMIT, R.REQUESTS_PER_MINUTE),
    ("Daily quota exceeded", T.RATE_LIMIT, R.DAILY_QUOTA_EXCEEDED),
    ("Rate limit: too many concurrent requests", T.RATE_LIMIT, R.CONCURRENT_REQUESTS),
    ("Rate limit reached for tokens per min", T.RATE_LIMIT, R.TOKENS_PER_MINUTE),
    # timeout
    ("Job timeout after 30 minutes", T.TIMEOUT, R.JOB_TIMEOUT),
    ("Deadline exceeded", T.TIMEOUT, R.JOB_TIMEOUT),
    ("Read timed out", T.TIMEOUT, R.NETWORK_TIMEOUT),
    ("Processing timeout", T.TIMEOUT, R.PROCESSING_TIMEOUT),
    ("Queue timeout exceeded", T.TIMEOUT, R.QUEUE_TIMEOUT),
    # network_error
    ("Network error", T.NETWORK_ERROR, R.CONNECTION_FAILED),
    ("read ECONNRESET", T.NETWORK_ERROR, R.CONNECTION_FAILED),
    ("DNS lookup failed for api.example.com", T.NETWORK_ERROR, R.DNS_RESOLUTION),
    ("getaddrinfo ENOTFOUND api.example.com", T.NETWORK_ERROR, R.DNS_RESOLUTION),
    ("SSL handshake failed", T.NETWORK_ERROR, R.SSL_CERTIFICATE),
    ("Proxy connection failed", T.NETWORK_ERROR, R.PROXY_ERROR),
    # validation_error: request too large for the model
    ("max tokens exceeded", T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    ("This model's maximum context length is 8192 tokens", T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    # resource_limit: machine resources
    ("CUDA out of memory", T.RESOURCE_LIMIT, R.GPU_MEMORY_FULL),
    ("Out of memory", T.RESOURCE_LIMIT, R.OUT_OF_MEMORY),
    ("No disk space left on device", T.RESOURCE_LIMIT, R.DISK_SPACE_FULL),
    ("Storage is full", T.RESOURCE_LIMIT, R.DISK_SPACE_FULL),
    ("Concurrent job limit reached", T.RESOURCE_LIMIT, R.CONCURRENT_LIMIT),
    ("Capacity exceeded", T.RESOURCE_LIMIT, R.OUT_OF_MEMORY),
    # service_error
    ("Service is under maintenance", T.SERVICE_ERROR, R.MAINTENANCE_MODE),
    ("Service unavailable", T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE),
    ("Service degraded", T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE),
    ("Internal server error", T.SERVICE_ERROR, R.SERVICE_DOWN),
    # validation_error
    ("Validation failed", T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    ("Missing required field 'prompt'", T.VALIDATION_ERROR, R.MISSING_REQUIRED_FIELD),
    ("Invalid image format", T.VALIDATION_ERROR, R.INVALID_FORMAT),
    ("Unsupported operation: invalid mode", T.VALIDATION_ERROR, R.UNSUPPORTED_OPERATION),
    ("Error in component 'KSampler'", T.VALIDATION_ERROR, R.COMPONENT_ERROR),
    ("Model 'gpt-9' does not exist", T.VALIDATION_ERROR, R.MODEL_NOT_FOUND),
    ("Model not found: flux-9", T.VALIDATION_ERROR, R.MODEL_NOT_FOUND),
    # response_error
    ("Malformed response body", T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT),
    ("Unexpected content type text/html", T.RESPONSE_ERROR, R.UNEXPECTED_CONTENT_TYPE),
    ("Corrupted data received", T.RESPONSE_ERROR, R.CORRUPTED_DATA),
    ("Expected field 'images' in output", T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA),
    # system_error
    ("CUDA error: device-side assert triggered", T.SYSTEM_ERROR, R.GPU_ERROR),
    ("Internal error", T.SYSTEM_ERROR, R.INTERNAL_ERROR),
    ("Bad config value", T.SYSTEM_ERROR, R.CONFIG_ERROR),
    ("dependency failed to load", T.SYSTEM_ERROR, R.DEPENDENCY_ERROR),
    # nothing matched
    ("Mock failure requested", T.SYSTEM_ERROR, R.UNKNOWN_ERROR),
    ("Request failed with status code 500", T.SYSTEM_ERROR, R.UNKNOWN_ERROR),
    ("", T.SYSTEM_ERROR, R.UNKNOWN_ERROR),
]


@pytest.mark.parametrize(("message", "ftype", "reason"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_message_rule(message: str, ftype: FailureType, reason: FailureReason) -> None:
    assert classify_message(message) == Classification(ftype, reason)


def test_table_covers_every_rule_category() -> None:
    covered = {(ftype, reason) for _, ftype, reason in MESSAGES}
    for rule in RULES:
        assert (rule.failure_type, rule.default) in covered or any(
            (rule.failure_type, sub) in covered for _, sub in rule.subrules
        ), rule.failure_type
    assert {ftype for _, ftype, _ in MESSAGES} == set(FailureType)


def test_every_rule_outcome_is_a_consistent_type_and_reason() -> None:
    for rule in RULES:
        for reason in (rule.default, *(sub for _, sub in rule.subrules)):
            assert REASON_TYPES[reason] is rule.failure_type, (rule.failure_type, reason)


def test_matching_ignores_case() -> None:
    assert classify_message("RATE LIMIT EXCEEDED") == Classification(
        T.RATE_LIMIT, R.REQUESTS_PER_MINUTE
    )


# --- the original's quirks, fixed ---------------------------------------------------------------


def test_job_timeout_after_30_minutes_is_a_timeout_not_a_network_error() -> None:
    # The original tested "timeout" inside its network rule, so this became network_timeout.
    assert classify_message("Job timeout after 30 minutes") == Classification(
        T.TIMEOUT, R.JOB_TIMEOUT
    )


def test_max_tokens_exceeded_is_not_an_auth_error() -> None:
    # The original treated any "token" as auth and said expired_token.
    ftype = classify_message("max tokens exceeded").failure_type
    assert ftype is not T.AUTH_ERROR
    assert classify_message("max tokens exceeded") == Classification(
        T.VALIDATION_ERROR, R.INVALID_PAYLOAD
    )


def test_connection_timed_out_is_a_timeout() -> None:
    assert classify_message("connection timed out") == Classification(T.TIMEOUT, R.NETWORK_TIMEOUT)


def test_connection_refused_is_a_network_error_not_a_refusal() -> None:
    assert classify_message("Connection refused") == Classification(
        T.NETWORK_ERROR, R.CONNECTION_FAILED
    )
    assert classify_message("[Errno 111] Connection refused") == Classification(
        T.NETWORK_ERROR,
        R.CONNECTION_FAILED,
    )
    assert classify_message("connect ECONNREFUSED 127.0.0.1:8188") == Classification(
        T.NETWORK_ERROR,
        R.CONNECTION_FAILED,
    )


def test_a_refused_prompt_is_still_a_refusal() -> None:
    assert classify_message("The model refused to draw this") == Classification(
        T.GENERATION_REFUSAL,
        R.POLICY_VIOLATION,
    )


def test_token_usage_words_are_not_credentials() -> None:
    assert classify_message("prompt used 5000 tokens")[0] is not T.AUTH_ERROR


# --- HTTP status as context ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ftype", "reason"),
    [
        (401, T.AUTH_ERROR, R.INVALID_API_KEY),
        (403, T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
        (429, T.RATE_LIMIT, R.REQUESTS_PER_MINUTE),
        (500, T.SERVICE_ERROR, R.SERVICE_DOWN),
        (503, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE),
        (None, T.SYSTEM_ERROR, R.UNKNOWN_ERROR),
    ],
)
def test_status_selects_a_category_for_an_opaque_message(
    status: int | None, ftype: FailureType, reason: FailureReason
) -> None:
    assert classify_message("oops", status=status) == Classification(ftype, reason)


def test_status_403_forces_insufficient_permissions_within_auth() -> None:
    assert classify_message("Invalid API key", status=403) == Classification(
        T.AUTH_ERROR,
        R.INSUFFICIENT_PERMISSIONS,
    )


@pytest.mark.parametrize(
    ("message", "failure_type"),
    [
        ("Too many requests: your IP has been temporarily blocked", FailureType.RATE_LIMIT),
        ("Rate limit reached; requests blocked for 20s", FailureType.RATE_LIMIT),
        ("405 Method Not Allowed", FailureType.SYSTEM_ERROR),
        ("Payment required: billing hard limit reached", FailureType.RESOURCE_LIMIT),
        ("Your request was blocked by the safety system", FailureType.GENERATION_REFUSAL),
    ],
)
def test_rate_limit_and_billing_phrases_win_over_refusal_words(
    message: str, failure_type: FailureType
) -> None:
    assert classify_message(message)[0] is failure_type


# --- the engine, for any rule table -------------------------------------------------------------


def test_a_status_reason_settles_the_reason_within_its_category() -> None:
    auth = next(rule for rule in RULES if rule.failure_type is T.AUTH_ERROR)
    assert auth.reason("invalid api key", 403) is R.INSUFFICIENT_PERMISSIONS
    assert auth.reason("invalid api key", 401) is R.INVALID_API_KEY


def test_a_provider_table_and_fallback_run_on_the_same_engine() -> None:
    rules = (Rule(T.RATE_LIMIT, rx(r"slow down"), (), R.CONCURRENT_REQUESTS),)
    fallback = Classification(T.SERVICE_ERROR, R.JOB_FAILED, retryable=False)
    assert classify_message("Slow down!", rules=rules, fallback=fallback) == Classification(
        T.RATE_LIMIT, R.CONCURRENT_REQUESTS, True
    )
    assert classify_message("Connection refused", rules=rules, fallback=fallback) == fallback
