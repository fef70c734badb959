"""The failure taxonomy: what went wrong, why, and whether a retry can help by default.

`FailureType` and `FailureReason` keep the original system's string values (10 types, 46
reasons) plus the few reasons the design records need. Kept apart from `connectors.errors` so the
tables read on their own; `connectors.errors` re-exports every name here.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DEFAULT_RETRYABLE",
    "REASON_RETRYABLE",
    "REASON_TYPES",
    "FailureReason",
    "FailureType",
    "default_retryable",
]


class FailureType(StrEnum):
    """What kind of thing went wrong (the original's 10 values)."""

    GENERATION_REFUSAL = "generation_refusal"
    SERVICE_ERROR = "service_error"
    TIMEOUT = "timeout"
    VALIDATION_ERROR = "validation_error"
    RESOURCE_LIMIT = "resource_limit"
    AUTH_ERROR = "auth_error"
    RATE_LIMIT = "rate_limit"
    NETWORK_ERROR = "network_error"
    RESPONSE_ERROR = "response_error"
    SYSTEM_ERROR = "system_error"


class FailureReason(StrEnum):
    """Why it went wrong: the original's 46 reasons plus the few the design records add."""

    # generation_refusal
    VIOLENCE_DETECTED = "violence_detected"
    COPYRIGHT_BLOCKER = "copyright_blocker"
    NSFW_CONTENT = "nsfw_content"
    HATE_SPEECH = "hate_speech"
    PERSONAL_INFO = "personal_info"
    SAFETY_FILTER = "safety_filter"
    POLICY_VIOLATION = "policy_violation"
    # service_error
    SERVICE_DOWN = "service_down"
    SERVICE_UNAVAILABLE = "service_unavailable"
    MAINTENANCE_MODE = "maintenance_mode"
    DEGRADED_PERFORMANCE = "degraded_performance"
    JOB_FAILED = "job_failed"  # added: the provider ran the job and reported failure
    # timeout
    JOB_TIMEOUT = "job_timeout"
    NETWORK_TIMEOUT = "network_timeout"
    PROCESSING_TIMEOUT = "processing_timeout"
    QUEUE_TIMEOUT = "queue_timeout"
    SERVICE_TIMEOUT = "service_timeout"  # added: a polling deadline passed
    # validation_error
    INVALID_PAYLOAD = "invalid_payload"
    MISSING_REQUIRED_FIELD = "missing_required_field"
    INVALID_FORMAT = "invalid_format"
    UNSUPPORTED_OPERATION = "unsupported_operation"
    MODEL_NOT_FOUND = "model_not_found"
    COMPONENT_ERROR = "component_error"
    INVALID_REQUEST = "invalid_request"  # added: the provider rejected the request (HTTP 400)
    # resource_limit
    OUT_OF_MEMORY = "out_of_memory"
    DISK_SPACE_FULL = "disk_space_full"
    GPU_MEMORY_FULL = "gpu_memory_full"
    CONCURRENT_LIMIT = "concurrent_limit"
    INSUFFICIENT_CREDITS = "insufficient_credits"  # added: out of credits / billing quota
    BUDGET_EXCEEDED = "budget_exceeded"  # added: the tenant's own spending limit was reached
    # auth_error
    INVALID_API_KEY = "invalid_api_key"
    EXPIRED_TOKEN = "expired_token"
    INSUFFICIENT_PERMISSIONS = "insufficient_permissions"
    ACCOUNT_SUSPENDED = "account_suspended"
    # rate_limit
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"
    DAILY_QUOTA_EXCEEDED = "daily_quota_exceeded"
    CONCURRENT_REQUESTS = "concurrent_requests"
    # network_error
    CONNECTION_FAILED = "connection_failed"
    DNS_RESOLUTION = "dns_resolution"
    SSL_CERTIFICATE = "ssl_certificate"
    PROXY_ERROR = "proxy_error"
    # response_error
    INVALID_RESPONSE_FORMAT = "invalid_response_format"
    UNEXPECTED_CONTENT_TYPE = "unexpected_content_type"
    CORRUPTED_DATA = "corrupted_data"
    MISSING_EXPECTED_DATA = "missing_expected_data"
    # system_error
    INTERNAL_ERROR = "internal_error"
    CONFIG_ERROR = "config_error"
    DEPENDENCY_ERROR = "dependency_error"
    GPU_ERROR = "gpu_error"
    UNKNOWN_ERROR = "unknown_error"
    WORKER_LOST = "worker_lost"  # added: the worker died on every delivery of the job


def _group(failure_type: FailureType, *reasons: FailureReason) -> dict[FailureReason, FailureType]:
    return dict.fromkeys(reasons, failure_type)


R = FailureReason
T = FailureType
# The type each reason belongs to. `network_timeout` is listed under timeout; the original also
# emitted it with type network_error, which a caller may still do explicitly.
REASON_TYPES: dict[FailureReason, FailureType] = {
    **_group(
        T.GENERATION_REFUSAL,
        R.VIOLENCE_DETECTED,
        R.COPYRIGHT_BLOCKER,
        R.NSFW_CONTENT,
        R.HATE_SPEECH,
        R.PERSONAL_INFO,
        R.SAFETY_FILTER,
        R.POLICY_VIOLATION,
    ),
    **_group(
        T.SERVICE_ERROR,
        R.SERVICE_DOWN,
        R.SERVICE_UNAVAILABLE,
        R.MAINTENANCE_MODE,
        R.DEGRADED_PERFORMANCE,
        R.JOB_FAILED,
    ),
    **_group(
        T.TIMEOUT,
        R.JOB_TIMEOUT,
        R.NETWORK_TIMEOUT,
        R.PROCESSING_TIMEOUT,
        R.QUEUE_TIMEOUT,
        R.SERVICE_TIMEOUT,
    ),
    **_group(
        T.VALIDATION_ERROR,
        R.INVALID_PAYLOAD,
        R.MISSING_REQUIRED_FIELD,
        R.INVALID_FORMAT,
        R.UNSUPPORTED_OPERATION,
        R.MODEL_NOT_FOUND,
        R.COMPONENT_ERROR,
        R.INVALID_REQUEST,
    ),
    **_group(
        T.RESOURCE_LIMIT,
        R.OUT_OF_MEMORY,
        R.DISK_SPACE_FULL,
        R.GPU_MEMORY_FULL,
        R.CONCURRENT_LIMIT,
        R.INSUFFICIENT_CREDITS,
        R.BUDGET_EXCEEDED,
    ),
    **_group(
        T.AUTH_ERROR,
        R.INVALID_API_KEY,
        R.EXPIRED_TOKEN,
        R.INSUFFICIENT_PERMISSIONS,
        R.ACCOUNT_SUSPENDED,
    ),
    **_group(
        T.RATE_LIMIT,
        R.REQUESTS_PER_MINUTE,
        R.TOKENS_PER_MINUTE,
        R.DAILY_QUOTA_EXCEEDED,
        R.CONCURRENT_REQUESTS,
    ),
    **_group(
        T.NETWORK_ERROR, R.CONNECTION_FAILED, R.DNS_RESOLUTION, R.SSL_CERTIFICATE, R.PROXY_ERROR
    ),
    **_group(
        T.RESPONSE_ERROR,
        R.INVALID_RESPONSE_FORMAT,
        R.UNEXPECTED_CONTENT_TYPE,
        R.CORRUPTED_DATA,
        R.MISSING_EXPECTED_DATA,
    ),
    **_group(
        T.SYSTEM_ERROR,
        R.INTERNAL_ERROR,
        R.CONFIG_ERROR,
        R.DEPENDENCY_ERROR,
        R.GPU_ERROR,
        R.UNKNOWN_ERROR,
        R.WORKER_LOST,
    ),
}

# Whether a retry can help, per type. An error may override this (a 429 that means "out of
# credits" is not retryable; a system_error that is a config error is not either).
DEFAULT_RETRYABLE: dict[FailureType, bool] = {
    T.RATE_LIMIT: True,
    T.SERVICE_ERROR: True,
    T.NETWORK_ERROR: True,
    T.TIMEOUT: True,
    T.SYSTEM_ERROR: True,
    T.AUTH_ERROR: False,
    T.VALIDATION_ERROR: False,
    T.GENERATION_REFUSAL: False,
    T.RESPONSE_ERROR: False,
    T.RESOURCE_LIMIT: False,
}
# Reasons whose retryability differs from their type's default.
REASON_RETRYABLE: dict[FailureReason, bool] = {R.CONFIG_ERROR: False, R.WORKER_LOST: False}


def default_retryable(failure_type: FailureType, failure_reason: FailureReason) -> bool:
    """Whether a retry helps by default: the reason's own verdict, else its type's."""
    return REASON_RETRYABLE.get(failure_reason, DEFAULT_RETRYABLE[failure_type])
