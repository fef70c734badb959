"""One failure taxonomy for every connector, and the error that carries it.

`FailureType` and `FailureReason` keep the original system's string values (10 types, 46
reasons) plus the four reasons the design records need. `ConnectorError` is the only exception a
connector lets escape: it says what failed, why, whether a retry can help and how long to wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from connectors.redact import redact, scrub, truncate

__all__ = [
    "DEFAULT_RETRYABLE",
    "REASON_TYPES",
    "ConnectorError",
    "FailureReason",
    "FailureType",
    "configuration_error",
    "require_secret",
    "validation_error",
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
    """Why it went wrong: the original's 46 reasons plus four the design records add."""

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
_REASON_RETRYABLE: dict[FailureReason, bool] = {R.CONFIG_ERROR: False}


class ConnectorError(Exception):
    """A classified connector failure: type, reason, retryability and a wait hint.

    `args` is `(message, fields)` so Celery's JSON result backend (which rebuilds an exception
    as `cls(*args)`) and pickle both restore every field.
    """

    def __init__(
        self,
        message: str,
        fields: Mapping[str, Any] | None = None,
        /,
        *,
        failure_type: FailureType | str | None = None,
        failure_reason: FailureReason | str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        service: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        given = dict(fields or {})
        reason = FailureReason(failure_reason or given.get("failure_reason") or R.UNKNOWN_ERROR)
        ftype = FailureType(failure_type or given.get("failure_type") or REASON_TYPES[reason])
        if retryable is None:
            retryable = given.get("retryable")
        if retryable is None:
            retryable = _REASON_RETRYABLE.get(reason, DEFAULT_RETRYABLE[ftype])
        self.message = truncate(scrub(str(message)), 4000)
        self.failure_type = ftype
        self.failure_reason = reason
        self.retryable = bool(retryable)
        wait = retry_after if retry_after is not None else given.get("retry_after")
        self.retry_after = None if wait is None else max(0.0, float(wait))
        self.status_code = status_code if status_code is not None else given.get("status_code")
        self.service = service or given.get("service")
        self.context: dict[str, Any] = redact(dict(context or given.get("context") or {}))
        self.timestamp: str = given.get("timestamp") or datetime.now(UTC).isoformat()
        super().__init__(self.message, self._fields())

    def _fields(self) -> dict[str, Any]:
        return {
            "failure_type": self.failure_type.value,
            "failure_reason": self.failure_reason.value,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "status_code": self.status_code,
            "service": self.service,
            "context": self.context,
            "timestamp": self.timestamp,
        }

    def attach_service(self, service: str) -> None:
        """Name the service that raised this error (kept in `args` for the result backend)."""
        self.service = service
        self.args = (self.message, self._fields())

    def annotate(self, **context: Any) -> None:
        """Add forensic context after the fact (redacted, and kept in `args`)."""
        self.context.update(redact(context))
        self.args = (self.message, self._fields())

    def explain(self, note: str) -> None:
        """Append a note to the message (kept in `args` for the result backend)."""
        self.message = f"{self.message} ({note})"
        self.args = (self.message, self._fields())

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"ConnectorError({self.message!r}, failure_type={self.failure_type.value!r}, "
            f"failure_reason={self.failure_reason.value!r}, retryable={self.retryable})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record of the error (secrets already redacted)."""
        return {"message": self.message, **self._fields()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectorError:
        """Rebuild an error from `to_dict` output."""
        return cls(str(data.get("message", "")), dict(data))

    @classmethod
    def from_exception(cls, exc: BaseException, service: str | None = None) -> ConnectorError:
        """Classify any exception (requests, JSON, Celery time limits, ...) as a ConnectorError."""
        from connectors.classify import error_from_exception  # classify imports this module

        return error_from_exception(exc, service)


def validation_error(field: str, problem: str, *, service: str | None = None) -> ConnectorError:
    """A non-retryable error for a payload field that can never succeed."""
    reason = R.MISSING_REQUIRED_FIELD if "required" in problem.lower() else R.INVALID_PAYLOAD
    return ConnectorError(
        f"Invalid payload field '{field}': {problem}",
        failure_type=T.VALIDATION_ERROR,
        failure_reason=reason,
        retryable=False,
        service=service,
        context={"field": field},
    )


def configuration_error(
    message: str, *, variables: list[str] | None = None, service: str | None = None
) -> ConnectorError:
    """A non-retryable error for a worker that is missing configuration (e.g. an API token)."""
    return ConnectorError(
        message,
        failure_type=T.SYSTEM_ERROR,
        failure_reason=R.CONFIG_ERROR,
        retryable=False,
        service=service,
        context={"variables": variables or []},
    )


def require_secret(secret: SecretStr | None, variable: str, *, service: str) -> str:
    """The secret's value, or a configuration_error naming the variable when unset or blank."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        raise configuration_error(
            f"{variable} is required but not set in the worker's environment",
            variables=[variable],
            service=service,
        )
    return value
