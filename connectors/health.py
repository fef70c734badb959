"""Health-check classes and capabilities, as the original system declared them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

__all__ = ["REQUIRED_CAPABILITIES", "HealthCheckCapabilities", "HealthCheckClass", "missing"]


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
