"""Classify S3-compatible storage failures (AWS S3, R2, MinIO) into the connector taxonomy.

Transient failures (5xx, throttling, timeouts, lost connections) are retryable: the key is
idempotent, so a retried job rewrites its own object. Permanent ones (bad credentials, missing
bucket, access denied) are not: retrying them only delays the failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from botocore import exceptions as boto
from botocore.exceptions import ClientError

from connectors.assets.base import SERVICE
from connectors.classify import classify_status, error_from_exception
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = ["classify_storage_code", "storage_error"]

R = FailureReason
T = FailureType

_CONFIG = Classification(T.SYSTEM_ERROR, R.CONFIG_ERROR, False)
_BAD_KEY = Classification(T.AUTH_ERROR, R.INVALID_API_KEY, False)
_THROTTLED = Classification(T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True)
_UNAVAILABLE = Classification(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True)

# S3 error codes, as AWS, R2 and MinIO spell them.
_CODES: dict[str, Classification] = {
    "NoSuchBucket": _CONFIG,
    "InvalidBucketName": _CONFIG,
    "PermanentRedirect": _CONFIG,  # the bucket lives in another region or endpoint
    "AuthorizationHeaderMalformed": _CONFIG,  # usually the wrong region
    "RequestTimeTooSkewed": _CONFIG,  # the worker's clock is wrong
    "AccessDenied": Classification(T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
    "AllAccessDisabled": Classification(T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
    "AccountProblem": Classification(T.AUTH_ERROR, R.ACCOUNT_SUSPENDED, False),
    "InvalidAccessKeyId": _BAD_KEY,
    "SignatureDoesNotMatch": _BAD_KEY,
    "InvalidToken": _BAD_KEY,
    "ExpiredToken": Classification(T.AUTH_ERROR, R.EXPIRED_TOKEN, False),
    "EntityTooLarge": Classification(T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    "SlowDown": _THROTTLED,
    "Throttling": _THROTTLED,
    "ThrottlingException": _THROTTLED,
    "RequestLimitExceeded": _THROTTLED,
    "TooManyRequests": _THROTTLED,
    "RequestTimeout": Classification(T.TIMEOUT, R.NETWORK_TIMEOUT, True),
    "InternalError": _UNAVAILABLE,
    "ServiceUnavailable": _UNAVAILABLE,
    "XMinioServerNotInitialized": _UNAVAILABLE,
}

# Checked in order: botocore's timeout classes are also ConnectionError subclasses.
_EXCEPTIONS: tuple[tuple[type[Exception], Classification], ...] = (
    (boto.NoCredentialsError, _CONFIG),
    (boto.PartialCredentialsError, _CONFIG),
    (boto.NoRegionError, _CONFIG),
    (boto.ParamValidationError, Classification(T.VALIDATION_ERROR, R.INVALID_REQUEST, False)),
    (boto.CredentialRetrievalError, Classification(T.AUTH_ERROR, R.EXPIRED_TOKEN, True)),
    (boto.ConnectTimeoutError, Classification(T.TIMEOUT, R.NETWORK_TIMEOUT, True)),
    (boto.ReadTimeoutError, Classification(T.TIMEOUT, R.NETWORK_TIMEOUT, True)),
    (boto.SSLError, Classification(T.NETWORK_ERROR, R.SSL_CERTIFICATE, True)),
    (boto.ProxyConnectionError, Classification(T.NETWORK_ERROR, R.PROXY_ERROR, True)),
    (boto.ConnectionError, Classification(T.NETWORK_ERROR, R.CONNECTION_FAILED, True)),
    (boto.HTTPClientError, Classification(T.NETWORK_ERROR, R.CONNECTION_FAILED, True)),
)
_WRAPPED_CODE = re.compile(r"An error occurred \((\w+)\)")
_USERINFO = re.compile(r"(\w+://)[^/\s@\"']+@")


def _clean(text: str) -> str:
    # botocore quotes the endpoint URL in its messages, user:password included if configured.
    return _USERINFO.sub(r"\1", text)


def classify_storage_code(code: str, status: int | None) -> Classification:
    """Classify an S3 error by its code, falling back to its HTTP status."""
    if code in _CODES:
        return _CODES[code]
    if status == 404:  # on a write, only the bucket (or the endpoint) can be missing
        return _CONFIG
    if status is not None:
        return classify_status(status)
    return Classification(T.SYSTEM_ERROR, R.UNKNOWN_ERROR, True)


def _client_error(exc: ClientError, context: dict[str, Any]) -> ConnectorError:
    error: Mapping[str, Any] = exc.response.get("Error", {})
    meta: Mapping[str, Any] = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code") or "Unknown")
    status = meta.get("HTTPStatusCode")
    found = classify_storage_code(code, status)
    detail = error.get("Message") or ""
    where = f" to bucket '{context['bucket']}'" if context.get("bucket") else ""
    message = f"Storage {exc.operation_name}{where} failed: {code} (HTTP {status}): {detail}"
    return found.error(
        _clean(message),
        status_code=status,
        service=SERVICE,
        context={**context, "code": code, "operation": exc.operation_name},
    )


def _unwrap(exc: BaseException) -> BaseException:
    # boto3's S3UploadFailedError wraps the ClientError it caught; classify the original.
    inner = exc.__cause__ or exc.__context__
    return inner if isinstance(inner, ClientError) else exc


def _classify_exception(exc: BaseException) -> Classification:
    found = next((c for cls, c in _EXCEPTIONS if isinstance(exc, cls)), None)
    if found is not None:
        return found
    wrapped = _WRAPPED_CODE.search(str(exc))
    if wrapped:
        return classify_storage_code(wrapped.group(1), None)
    return error_from_exception(exc, SERVICE).classification


def storage_error(exc: BaseException, *, context: Mapping[str, Any]) -> ConnectorError:
    """The ConnectorError for a boto3/botocore failure while writing or signing an object."""
    exc = _unwrap(exc)
    if isinstance(exc, ClientError):
        return _client_error(exc, dict(context))
    return _classify_exception(exc).error(
        f"Storage failed: {type(exc).__name__}: {_clean(str(exc))}",
        service=SERVICE,
        context={**context, "exception_type": type(exc).__name__},
    )
