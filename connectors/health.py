"""Health-check classes and capabilities, as the original system declared them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from connectors.errors import ConnectorError
from connectors.redact import scrub, truncate

__all__ = [
    "REQUIRED_CAPABILITIES",
    "HealthCheckCapabilities",
    "HealthCheckClass",
    "HealthReport",
    "missing",
]

# A detail is one readable line in a terminal, a log or a gauge's neighbour; not a body dump.
_DETAIL_CHARS = 500


class HealthCheckClass(StrEnum):
    """How much health introspection a service must support."""

    MINIMAL = "minimal"
    STANDARD = "standard"
    ADVANCED = "advanced"
    CUSTOM = "custom"


class HealthCheckCapabilities(BaseModel):
    """What health introspection a connector's service supports (the original's fields)."""

    supportsBasicHealthCheck: bool = True  # the original camelCase field names
    basicHealthCheckEndpoint: str | None = None
    supportsJobStatusQuery: bool = False
    jobStatusQueryEndpoint: str | None = None
    jobStatusQueryMethod: str | None = None
    supportsJobCancellation: bool = False
    jobCancellationEndpoint: str | None = None
    jobCancellationMethod: str | None = None
    supportsServiceRestart: bool = False
    serviceRestartEndpoint: str | None = None
    supportsQueueIntrospection: bool = False
    queueIntrospectionEndpoint: str | None = None
    customHealthCheckRequirements: list[str] | None = None
    minimumApiVersion: str | None = None


_BASIC = ("supportsBasicHealthCheck",)
REQUIRED_CAPABILITIES: dict[HealthCheckClass, tuple[str, ...]] = {
    HealthCheckClass.MINIMAL: _BASIC,
    HealthCheckClass.STANDARD: (*_BASIC, "supportsJobStatusQuery"),
    HealthCheckClass.ADVANCED: (
        *_BASIC,
        "supportsJobStatusQuery",
        "supportsJobCancellation",
        "supportsServiceRestart",
        "supportsQueueIntrospection",
    ),
    HealthCheckClass.CUSTOM: (),
}


def missing(klass: HealthCheckClass, capabilities: HealthCheckCapabilities) -> list[str]:
    """The capabilities `klass` requires that `capabilities` lacks."""
    return [name for name in REQUIRED_CAPABILITIES[klass] if not getattr(capabilities, name)]


@dataclass(frozen=True)
class HealthReport:
    """One health check's outcome: healthy or not, and why (redacted, never a token)."""

    healthy: bool
    detail: str = ""
    failure_type: str | None = None
    failure_reason: str | None = None

    @classmethod
    def ok(cls, detail: str = "ok") -> HealthReport:
        """A healthy outcome."""
        return cls(True, detail)

    @classmethod
    def from_error(cls, error: ConnectorError) -> HealthReport:
        """An unhealthy outcome described as `failure_type/failure_reason: message`."""
        kind, reason = error.failure_type.value, error.failure_reason.value
        detail = truncate(scrub(f"{kind}/{reason}: {error.message}"), _DETAIL_CHARS)
        return cls(False, detail, kind, reason)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record of the outcome."""
        return {
            "healthy": self.healthy,
            "detail": self.detail,
            "failure_type": self.failure_type,
            "failure_reason": self.failure_reason,
        }
