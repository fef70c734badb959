"""Pure classification of HTTP statuses, retry headers and exceptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from billiard.exceptions import SoftTimeLimitExceeded as CelerySoftTimeLimit
from billiard.exceptions import TimeLimitExceeded as CeleryTimeLimit

from connectors.classify import (
    Classification,
    classify_status,
    error_from_exception,
    error_from_status,
    parse_retry_after,
    should_retry_header,
)
from connectors.errors import ConnectorError, FailureReason, FailureType

R = FailureReason
T = FailureType
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


# --- classify_status ----------------------------------------------------------------------------


def test_every_status_from_100_to_599_maps_to_a_classification() -> None:
    for status in range(100, 600):
        found = classify_status(status)
        assert isinstance(found, Classification), status
        assert isinstance(found.failure_type, FailureType), status
        assert isinstance(found.failure_reason, FailureReason), status
        assert isinstance(found.retryable, bool), status
        if 500 <= status <= 599:
            assert found == Classification(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True), status


@pytest.mark.parametrize(
    ("status", "ftype", "reason", "retryable"),
    [
        (400, T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        (401, T.AUTH_ERROR, R.INVALID_API_KEY, False),
        (402, T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),  # deliberate: billing
        (403, T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
        (404, T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        (408, T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        (409, T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE, True),
        (413, T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        (422, T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        (425, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, True),
        (429, T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        (500, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (502, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (503, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (504, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (599, T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (100, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),
        (302, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),
        (405, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),
        (418, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),
        (451, T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),
    ],
)
def test_status_table_row(
    status: int, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    assert classify_status(status) == Classification(ftype, reason, retryable)


@pytest.mark.parametrize("status", [301, 302, 304, 307, 405, 406, 410, 411, 415, 418, 421, 451])
def test_an_unnamed_status_is_not_retried(status: int) -> None:
    # The same request gets the same answer: retrying a permanent client error only pays again.
    assert classify_status(status).retryable is False
    assert error_from_status(status, message="m").retryable is False


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504, 599])
def test_only_transient_statuses_are_retried(status: int) -> None:
    assert classify_status(status).retryable is True


def test_x_should_retry_true_still_revives_an_unnamed_status() -> None:
    assert error_from_status(410, message="m", headers={"x-should-retry": "true"}).retryable


# --- parse_retry_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"RETRY-AFTER": " 3 "}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "0"}, 0.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": "Wed, 01 Jan 2025 12:02:00 GMT"}, 120.0),
    ],
)
def test_parse_retry_after_forms(headers: dict[str, str], seconds: float) -> None:
    assert parse_retry_after(headers, now=NOW) == pytest.approx(seconds)


def test_retry_after_ms_takes_precedence_over_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "10", "retry-after-ms": "1500"}, now=NOW) == 1.5


@pytest.mark.parametrize("bad_ms", ["-100", "soon", ""])
def test_unusable_retry_after_ms_falls_back_to_retry_after(bad_ms: str) -> None:
    assert parse_retry_after({"retry-after-ms": bad_ms, "Retry-After": "4"}, now=NOW) == 4.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": ""},
        {"Retry-After": "-5"},
        {"Retry-After": "soon"},
        {"Retry-After": "nan"},
        {"retry-after-ms": "-1"},
        {"retry-after-ms": "garbage"},
        {"X-Other": "5"},
    ],
)
def test_missing_negative_or_garbage_retry_after_is_none(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, now=NOW) is None


@pytest.mark.parametrize("headers", [{"Retry-After": "inf"}, {"retry-after-ms": "Infinity"}])
def test_infinite_retry_after_is_treated_as_garbage(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, now=NOW) is None


def test_http_date_in_the_past_means_no_wait() -> None:
    past = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=NOW) == 0.0


def test_http_date_uses_the_injected_clock() -> None:
    header = {"Retry-After": "Wed, 01 Jan 2025 12:01:00 GMT"}
    assert parse_retry_after(header, now=NOW) == 60.0
    assert parse_retry_after(header, now=NOW + timedelta(seconds=45)) == 15.0


# --- x-should-retry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "verdict"),
    [("true", True), ("false", False), ("TRUE", True), (" False ", False), ("maybe", None)],
)
def test_should_retry_header_values(value: str, verdict: bool | None) -> None:
    assert should_retry_header({"X-Should-Retry": value}) is verdict


def test_no_should_retry_header_means_no_verdict() -> None:
    assert should_retry_header({}) is None


def test_x_should_retry_false_makes_a_5xx_permanent() -> None:
    error = error_from_status(503, message="m", headers={"x-should-retry": "false"})
    assert error.failure_type is T.SERVICE_ERROR
    assert error.retryable is False


def test_x_should_retry_true_makes_a_4xx_retryable() -> None:
    error = error_from_status(400, message="m", headers={"x-should-retry": "true"})
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is True


# --- error_from_status --------------------------------------------------------------------------


def test_error_from_status_carries_status_wait_service_and_context() -> None:
    error = error_from_status(
        429,
        message="HTTP 429 from openai: slow down",
        headers={"Retry-After": "20"},
        service="openai",
        context={"request": {"method": "POST"}},
        now=NOW,
    )
    assert isinstance(error, ConnectorError)
    assert (error.failure_type, error.failure_reason) == (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE)
    assert error.retryable is True
    assert error.retry_after == 20.0
    assert error.status_code == 429
    assert error.service == "openai"
    assert error.context == {"request": {"method": "POST"}}
    assert str(error) == "HTTP 429 from openai: slow down"


def test_error_from_status_402_is_permanent_insufficient_credits() -> None:
    error = error_from_status(402, message="payment required")
    assert (error.failure_type, error.failure_reason) == (T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS)
    assert error.retryable is False
    assert error.retry_after is None


def test_error_from_status_without_headers_has_no_wait() -> None:
    assert error_from_status(500, message="boom").retry_after is None


# --- error_from_exception -----------------------------------------------------------------------


class SoftTimeLimitExceeded(Exception):
    """Stands in for celery.exceptions.SoftTimeLimitExceeded without importing Celery."""


DNS_MESSAGE = (
    "HTTPSConnectionPool(host='api.nowhere.invalid', port=443): Max retries exceeded with url: / "
    '(Caused by NameResolutionError("<urllib3.connection.HTTPSConnection object>: Failed to '
    "resolve 'api.nowhere.invalid' ([Errno -2] Name or service not known)\"))"
)
REFUSED_MESSAGE = (
    "HTTPConnectionPool(host='localhost', port=1): Max retries exceeded with url: / (Caused by "
    "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))"
)


@pytest.mark.parametrize(
    ("exc", "ftype", "reason", "retryable"),
    [
        (requests.ConnectionError(REFUSED_MESSAGE), T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        (requests.ConnectionError(DNS_MESSAGE), T.NETWORK_ERROR, R.DNS_RESOLUTION, True),
        (requests.ConnectTimeout("connect timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        (requests.ReadTimeout("read timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        (requests.Timeout("timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        (
            requests.exceptions.SSLError("certificate verify failed"),
            T.NETWORK_ERROR,
            R.SSL_CERTIFICATE,
            True,
        ),
        (requests.exceptions.ProxyError("proxy said no"), T.NETWORK_ERROR, R.PROXY_ERROR, True),
        (
            requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
            T.NETWORK_ERROR,
            R.CONNECTION_FAILED,
            True,
        ),
        (
            json.JSONDecodeError("Expecting value", "<html>", 0),
            T.RESPONSE_ERROR,
            R.INVALID_RESPONSE_FORMAT,
            False,
        ),
        (
            requests.exceptions.JSONDecodeError("Expecting value", "", 0),
            T.RESPONSE_ERROR,
            R.INVALID_RESPONSE_FORMAT,
            False,
        ),
        (CelerySoftTimeLimit(), T.TIMEOUT, R.JOB_TIMEOUT, False),
        (ConnectionResetError("peer reset"), T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        (TimeoutError("timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        # our own bugs: not the provider's verdict, and the same payload would hit them again
        (ValueError("invalid literal for int()"), T.SYSTEM_ERROR, R.INTERNAL_ERROR, False),
        (KeyError("images"), T.SYSTEM_ERROR, R.INTERNAL_ERROR, False),
        (RuntimeError("boom"), T.SYSTEM_ERROR, R.UNKNOWN_ERROR, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_error_from_exception_table(
    exc: BaseException, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    error = error_from_exception(exc, "svc")
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        ftype,
        reason,
        retryable,
    )
    assert error.service == "svc"
    assert str(error).startswith(type(exc).__name__)
    assert error.context["exception_type"].endswith(type(exc).__qualname__)


def test_soft_time_limit_is_matched_by_class_name_without_celery() -> None:
    error = error_from_exception(SoftTimeLimitExceeded())
    assert (error.failure_type, error.retryable) == (T.TIMEOUT, False)
    assert "SoftTimeLimitExceeded" in str(error)


@pytest.mark.parametrize("exc", [CelerySoftTimeLimit("soft"), CeleryTimeLimit(62.0)])
def test_a_celery_time_limit_is_a_timeout_that_is_not_retried(exc: BaseException) -> None:
    # The job used up its own time limit: a re-run would take as long and be paid again.
    error = error_from_exception(exc, "glif")
    assert (error.failure_type, error.failure_reason) == (T.TIMEOUT, R.JOB_TIMEOUT)
    assert error.retryable is False


def test_arbitrary_exception_falls_back_to_its_message() -> None:
    error = error_from_exception(RuntimeError("CUDA out of memory"))
    assert (error.failure_type, error.failure_reason) == (T.RESOURCE_LIMIT, R.GPU_MEMORY_FULL)


def test_connector_error_passes_through_and_gets_the_service() -> None:
    original = ConnectorError("x", failure_reason=R.JOB_FAILED)
    named = error_from_exception(original, "glif")
    assert named.service == "glif"
    assert named.to_dict() == {**original.to_dict(), "service": "glif"}
    assert original.service is None  # a copy: the error is not rewritten on its way up
    assert error_from_exception(named, "other") is named  # one that names a service is kept
