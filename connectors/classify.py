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
from typing import Any

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
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
C = Classification

_STATUS: dict[int, Classification] = {
    400: C(T.VALIDATION_ERROR, R.INVALID_REQUEST),
    401: C(T.AUTH_ERROR, R.INVALID_API_KEY),
    # 402 is billing, not a transient fault: retrying spends nothing but time and calls.
    402: C(T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS),
    403: C(T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
    404: C(T.VALIDATION_ERROR, R.INVALID_REQUEST),
    408: C(T.TIMEOUT, R.NETWORK_TIMEOUT),
    409: C(T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE),
    413: C(T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    422: C(T.VALIDATION_ERROR, R.INVALID_PAYLOAD),
    # 425 Too Early: the server asks for the same request again later.
    425: C(T.SYSTEM_ERROR, R.UNKNOWN_ERROR, retryable=True),
    429: C(T.RATE_LIMIT, R.REQUESTS_PER_MINUTE),
}
_SERVER = C(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE)
# Any other status (405, 410, 415, 451, an unfollowed 3xx, ...) answers the request itself, so
# the same request gets the same answer: retrying would only pay for it again.
_UNNAMED = C(T.SYSTEM_ERROR, R.UNKNOWN_ERROR, retryable=False)


def classify_status(status: int) -> Classification:
    """Map any HTTP status (100-599) to a classification."""
    if status in _STATUS:
        return _STATUS[status]
    return _SERVER if 500 <= status <= 599 else _UNNAMED


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
    found = classify_status(status)
    override = should_retry_header(headers)
    if override is not None:
        found = found._replace(retryable=override)
    return found.error(
        message,
        retry_after=parse_retry_after(headers, now),
        status_code=status,
        service=service,
        context=context,
    )


# Exceptions are matched by class name so this package never imports Celery, and so requests'
# subclasses (ConnectTimeout is both ConnectionError and Timeout) resolve most-specific first.
_EXCEPTION_NAMES: tuple[tuple[str, Classification], ...] = (
    # Celery's (billiard's) own time limits: the job ran out of the time it is allowed, and a
    # re-run would take as long and be paid again, so it is a timeout that is not retried.
    ("SoftTimeLimitExceeded", C(T.TIMEOUT, R.JOB_TIMEOUT, retryable=False)),
    ("TimeLimitExceeded", C(T.TIMEOUT, R.JOB_TIMEOUT, retryable=False)),
    ("ConnectTimeout", C(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("ReadTimeout", C(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("Timeout", C(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("TimeoutError", C(T.TIMEOUT, R.NETWORK_TIMEOUT)),
    ("SSLError", C(T.NETWORK_ERROR, R.SSL_CERTIFICATE)),
    ("gaierror", C(T.NETWORK_ERROR, R.DNS_RESOLUTION)),
    # A malformed provider URL is the worker's configuration, and no retry can fix it.
    ("InvalidURL", C(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("MissingSchema", C(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("InvalidSchema", C(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False)),
    ("ProxyError", C(T.NETWORK_ERROR, R.PROXY_ERROR)),
    ("ChunkedEncodingError", C(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("ContentDecodingError", C(T.RESPONSE_ERROR, R.CORRUPTED_DATA)),
    ("ConnectionError", C(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("ConnectionResetError", C(T.NETWORK_ERROR, R.CONNECTION_FAILED)),
    ("JSONDecodeError", C(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT)),
    ("MemoryError", C(T.RESOURCE_LIMIT, R.OUT_OF_MEMORY, retryable=True)),
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
                return C(T.NETWORK_ERROR, R.DNS_RESOLUTION)
            return found
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return C(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT)
    if isinstance(exc, _PROGRAMMING_ERRORS):
        # A bug in our own code: its text ("invalid literal for int()") is not a provider's
        # verdict, and the same payload would hit it again, so it is not retried.
        return C(T.SYSTEM_ERROR, R.INTERNAL_ERROR, retryable=False)
    return None


def error_from_exception(
    exc: BaseException, service: str | None = None, *, context: Mapping[str, Any] | None = None
) -> ConnectorError:
    """Turn any exception into a ConnectorError; one that already is comes back as it is.

    `service` names the raiser: a ConnectorError keeps its own, and one without gets a copy
    naming `service` (errors are rebuilt, never rewritten). `context` adds where it happened.
    """
    if isinstance(exc, ConnectorError):
        if context or (service and not exc.service):
            return exc.with_context(context, service=exc.service or service)
        return exc
    message = str(exc) or type(exc).__name__
    found = _classify_exception(exc) or classify_message(message)
    return found.error(
        f"{type(exc).__name__}: {message}",
        service=service,
        context={
            "exception_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            **(context or {}),
        },
    )
