"""Pure decisions: HTTP status, headers, messages and exceptions to a classified failure.

Nothing here does I/O. Connectors call these from their edges; tests call them with tables.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from connectors.errors import DEFAULT_RETRYABLE, ConnectorError, FailureReason, FailureType
from connectors.rules import classify_message

__all__ = [
    "Classification",
    "classify_message",
    "classify_status",
    "error_from_exception",
    "error_from_status",
    "parse_retry_after",
    "should_retry_header",
]

R = FailureReason
T = FailureType


class Classification(NamedTuple):
    """A failure type, reason and retryability decided by a pure rule."""

    failure_type: FailureType
    failure_reason: FailureReason
    retryable: bool


def _c(ftype: FailureType, reason: FailureReason, retryable: bool | None = None) -> Classification:
    return Classification(
        ftype, reason, DEFAULT_RETRYABLE[ftype] if retryable is None else retryable
    )


_STATUS: dict[int, Classification] = {
    400: _c(T.VALIDATION_ERROR, R.INVALID_REQUEST),
    401: _c(T.AUTH_ERROR, R.INVALID_API_KEY),
    # 402 is billing, not a transient fault: retrying spends nothing but time and calls.
    402: _c(T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS),
    403: _c(T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
    404: _c(T.VALIDATION_ERROR, R.INVALID_REQUEST),
    408: _c(T.TIMEOUT, R.NETWORK_TIMEOUT),
    409: _c(T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE),
    413: _c(T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    422: _c(T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    429: _c(T.RATE_LIMIT, R.REQUESTS_PER_MINUTE),
}


def classify_status(status: int) -> Classification:
    """Map any HTTP status (100-599) to a classification."""
    if status in _STATUS:
        return _STATUS[status]
    if 500 <= status <= 599:
        return _c(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE)
    return _c(T.SYSTEM_ERROR, R.UNKNOWN_ERROR)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value.strip()
    return None


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    millis = _header(headers, "retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """The provider's own verdict from `x-should-retry: true|false`, if it gave one."""
    value = (_header(headers, "x-should-retry") or "").lower()
    return {"true": True, "false": False}.get(value)


def error_from_status(
    status: int,
    *,
    message: str,
    headers: Mapping[str, str] | None = None,
    service: str | None = None,
    context: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> ConnectorError:
    """Build the ConnectorError for an HTTP error response."""
    headers = headers or {}
    base = classify_status(status)
    override = should_retry_header(headers)
    return ConnectorError(
        message,
        failure_type=base.failure_type,
        failure_reason=base.failure_reason,
        retryable=base.retryable if override is None else override,
        retry_after=parse_retry_after(headers, now),
        status_code=status,
        service=service,
        context=context,
    )


# Exceptions are matched by class name so this package never imports Celery, and so requests'
# subclasses (ConnectTimeout is both ConnectionError and Timeout) resolve most-specific first.
_EXCEPTION_NAMES: tuple[tuple[str, Classification], ...] = (
    ("SoftTimeLimitExceeded", _c(T.TIMEOUT, R.JOB_TIMEOUT)),
    ("TimeLimitExceeded", _c(T.TIMEOUT, R.JOB_TIMEOUT)),
    ("ConnectTimeout", _c(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("ReadTimeout", _c(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("Timeout", _c(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("TimeoutError", _c(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("SSLError", _c(T.NETWORK_ERROR, R.SSL_CERTIFICATE)),
    ("gaierror", _c(T.NETWORK_ERROR, R.DNS_RESOLUTION)),
    # A malformed provider URL is the worker's configuration, and no retry can fix it.
    ("InvalidURL", _c(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("MissingSchema", _c(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("InvalidSchema", _c(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("ProxyError", _c(T.NETWORK_ERROR, R.PROXY_ERROR)),
    ("ChunkedEncodingError", _c(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("ContentDecodingError", _c(T.RESPONSE_ERROR, R.CORRUPTED_DATA)),
    ("ConnectionError", _c(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("ConnectionResetError", _c(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("JSONDecodeError", _c(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT)),
    ("MemoryError", _c(T.RESOURCE_LIMIT, R.OUT_OF_MEMORY, retryable=True)),
)
_DNS = re.compile(
    r"name or service not known|nodename nor servname|getaddrinfo|"
    r"name resolution|failed to resolve|nameresolutionerror",
    re.IGNORECASE,
)


_PROGRAMMING_ERRORS = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    AssertionError,
    NameError,
    NotImplementedError,
    ArithmeticError,
)


def _classify_exception(exc: BaseException) -> Classification | None:
    names = [cls.__name__ for cls in type(exc).__mro__]
    for name, found in _EXCEPTION_NAMES:
        if name in names:
            if found.failure_reason is R.CONNECTION_FAILED and _DNS.search(str(exc)):
                return _c(T.NETWORK_ERROR, R.DNS_RESOLUTION)
            return found
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return _c(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT)
    if isinstance(exc, _PROGRAMMING_ERRORS):
        # A bug in our own code: its text ("invalid literal for int()") is not a provider's
        # verdict, and the same payload would hit it again, so it is not retried.
        return _c(T.SYSTEM_ERROR, R.INTERNAL_ERROR, retryable=False)
    return None


def error_from_exception(exc: BaseException, service: str | None = None) -> ConnectorError:
    """Turn any exception into a ConnectorError, keeping one that already is."""
    if isinstance(exc, ConnectorError):
        if service and not exc.service:
            exc.attach_service(service)
        return exc
    message = str(exc) or type(exc).__name__
    found = _classify_exception(exc)
    if found is None:
        ftype, reason = classify_message(message)
        found = _c(ftype, reason)
    return ConnectorError(
        f"{type(exc).__name__}: {message}",
        failure_type=found.failure_type,
        failure_reason=found.failure_reason,
        retryable=found.retryable,
        service=service,
        context={"exception_type": f"{type(exc).__module__}.{type(exc).__qualname__}"},
    )
