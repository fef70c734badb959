"""The error every connector raises, and the classification it is built from.

`Classification` is a decided failure (type, reason, retryability, wait); `Classification.error`
is the one way to turn it into a `ConnectorError`, and `ConnectorError.reclassified` the one way
to decide an existing error again. The taxonomy itself lives in `connectors.taxonomy` and is
re-exported here. This module imports no classifier: `connectors.classify` builds on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import SecretStr

from connectors.redact import redact, scrub, truncate
from connectors.taxonomy import (
    DEFAULT_RETRYABLE,
    REASON_TYPES,
    FailureReason,
    FailureType,
    default_retryable,
)

__all__ = [
    "DEFAULT_RETRYABLE",
    "REASON_TYPES",
    "Classification",
    "ConnectorError",
    "FailureReason",
    "FailureType",
    "configuration_error",
    "default_retryable",
    "require_secret",
    "validation_error",
]

R = FailureReason
T = FailureType


class _Verdict(NamedTuple):
    failure_type: FailureType
    failure_reason: FailureReason
    retryable: bool
    retry_after: float | None = None


class Classification(_Verdict):
    """A decided failure: type, reason, retryability (the default unless given) and a wait hint."""

    __slots__ = ()

    def __new__(
        cls,
        failure_type: FailureType | str,
        failure_reason: FailureReason | str,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> Classification:
        ftype, reason = FailureType(failure_type), FailureReason(failure_reason)
        if retryable is None:
            retryable = default_retryable(ftype, reason)
        return super().__new__(cls, ftype, reason, retryable, retry_after)

    def error(
        self,
        message: str,
        *,
        status_code: int | None = None,
        service: str | None = None,
        context: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> ConnectorError:
        """The ConnectorError for this classification (a `retry_after` given here wins)."""
        return ConnectorError(
            message,
            failure_type=self.failure_type,
            failure_reason=self.failure_reason,
            retryable=self.retryable,
            retry_after=self.retry_after if retry_after is None else retry_after,
            status_code=status_code,
            service=service,
            context=context,
        )


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
            retryable = default_retryable(ftype, reason)
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

    def with_context(
        self,
        context: Mapping[str, Any] | None = None,
        /,
        *,
        note: str | None = None,
        service: str | None = None,
    ) -> ConnectorError:
        """A new error: `context` merged in, `note` appended to the message, `service` set.

        Errors are not rewritten on their way up; a layer that knows more builds a new one
        (same classification, timestamp, cause and traceback) and raises that instead.
        """
        fields = self._fields()
        fields["context"] = {**self.context, **(context or {})}
        if service is not None:
            fields["service"] = service
        message = self.message if note is None else f"{self.message} ({note})"
        built = type(self)(message, fields)
        built.__cause__ = self.__cause__
        built.__suppress_context__ = self.__suppress_context__
        return built.with_traceback(self.__traceback__)

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

    @property
    def classification(self) -> Classification:
        """This error's type, reason, retryability and wait as a Classification."""
        return Classification(
            self.failure_type, self.failure_reason, self.retryable, self.retry_after
        )

    def reclassified(
        self,
        found: Classification,
        message: str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> ConnectorError:
        """The same failure decided again: new classification, same status, service, context.

        `context` adds what the new verdict was read from (merged into this error's context).

        A non-retryable verdict carries no wait; otherwise the classification's own wait (a
        provider's body hint) wins over the one this error had (a Retry-After header).
        """
        wait = self.retry_after if found.retry_after is None else found.retry_after
        return found.error(
            self.message if message is None else message,
            status_code=self.status_code,
            service=self.service,
            context={**self.context, **(context or {})},
            retry_after=wait if found.retryable else None,
        )


def validation_error(
    field: str,
    problem: str,
    *,
    service: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> ConnectorError:
    """A non-retryable error for a payload field that can never succeed."""
    reason = R.MISSING_REQUIRED_FIELD if "required" in problem.lower() else R.INVALID_PAYLOAD
    return Classification(T.VALIDATION_ERROR, reason, retryable=False).error(
        f"Invalid payload field '{field}': {problem}",
        service=service,
        context={"field": field, **(context or {})},
    )


def configuration_error(
    message: str, *, variables: list[str] | None = None, service: str | None = None
) -> ConnectorError:
    """A non-retryable error for a worker that is missing configuration (e.g. an API token)."""
    return Classification(T.SYSTEM_ERROR, R.CONFIG_ERROR, retryable=False).error(
        message, service=service, context={"variables": variables or []}
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
