"""BaseConnector: the one place every job passes through, and why failures always raise.

`process_job` is final. It runs the mode's `process_job_impl`, times it, and makes sure the only
two outcomes are a successful `JobResult` or a raised `ConnectorError` - the bug the hierarchy
record was written for (failures returned as `success=False` and shown as green completions)
cannot be expressed. One connector serves every thread of a worker, so `process_job` writes
nothing on it: whatever one job knows stays in that job's call.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, final

from pydantic import BaseModel, ConfigDict, ValidationError

from connectors.classify import error_from_exception
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    validation_error,
)
from connectors.health import HealthCheckCapabilities, HealthCheckClass, HealthReport, missing
from connectors.models import JobData, JobResult, ProgressCallback, no_progress
from connectors.rules import classify_message

__all__ = ["AnyPayload", "BaseConnector", "P", "payload_error"]

log = logging.getLogger(__name__)

# The payload model a connector (and its mode) is generic in.
P = TypeVar("P", bound=BaseModel)
# Final methods and the hook a subclass implements instead.
_FINAL = {
    "process_job": "process_job_impl",
    "check_health": "health_probe",
    "health": "health_probe",
}


def payload_error(exc: ValidationError, *, service: str | None) -> ConnectorError:
    """A validation_error naming the first bad field of a pydantic ValidationError."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "payload"
    problem = "field required" if first["type"] == "missing" else first["msg"]
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
    ]
    return validation_error(field, problem, service=service, context={"errors": errors})


class AnyPayload(BaseModel):
    """The payload of a connector that declares no schema: any JSON object, kept as given."""

    model_config = ConfigDict(extra="allow")


class BaseConnector(abc.ABC, Generic[P]):
    """Base of every connector, generic in its payload model: final `process_job`, health."""

    service_type: ClassVar[str] = "base"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.STANDARD
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities()
    # The pydantic model a payload must satisfy; checked at submit and again in the worker.
    # Not a ClassVar only because a ClassVar cannot name the type variable.
    payload_model: type[P] = AnyPayload  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, hook in _FINAL.items():
            # getattr, not cls.__dict__: a mixin earlier in the MRO must not slip one in either.
            if getattr(cls, name) is not getattr(BaseConnector, name, None):
                raise TypeError(
                    f"{cls.__name__} overrides {name}(), which is final in BaseConnector: "
                    f"implement {hook}() instead"
                )

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    @classmethod
    def validate_payload(cls, payload: object) -> P:
        """Check a payload without calling anyone; raise a validation_error naming the field."""
        if not isinstance(payload, Mapping):
            raise validation_error("payload", "must be a JSON object", service=cls.service_type)
        try:
            return cls.payload_model.model_validate(dict(payload))
        except ValidationError as exc:
            raise payload_error(exc, service=cls.service_type) from None

    def job_payload(self, job: JobData) -> P:
        """The job's validated payload: the one the worker attached, else `job.payload` checked."""
        given = job.validated
        if isinstance(given, self.payload_model):
            return given
        return self.validate_payload(job.payload)

    @final
    def process_job(self, job: JobData, progress: ProgressCallback | None = None) -> JobResult:
        """Run a job: a successful JobResult, or a raised ConnectorError. Never a failed result."""
        started = self._clock()
        try:
            payload = self.job_payload(job)  # a library user may pass a raw dict: checked here
            result = self.process_job_impl(job, payload, progress or no_progress)
            self._check_result(result)
        except ConnectorError as exc:
            if exc.service:
                raise
            # Raised by a mode or hook that did not name the service: a copy that does.
            raise exc.with_context(service=self.service_type) from exc.__cause__
        except Exception as exc:
            raise error_from_exception(exc, self.service_type) from exc
        elapsed = round((self._clock() - started) * 1000)
        return result.model_copy(update={"processing_time_ms": elapsed})

    def _check_result(self, result: object) -> None:
        if not isinstance(result, JobResult):
            bug = Classification(FailureType.SYSTEM_ERROR, FailureReason.INTERNAL_ERROR, False)
            raise bug.error(
                f"{type(self).__name__}.process_job_impl returned {type(result).__name__}, "
                "not a JobResult"
            )
        if not result.success:
            text = result.error or "no error message"
            raise classify_message(text).error(
                f"{type(self).__name__} must raise, not return success=False: {text}",
                context={"returned_error": text},
            )

    @abc.abstractmethod
    def process_job_impl(self, job: JobData, payload: P, progress: ProgressCallback) -> JobResult:
        """Do the work with the validated payload. Raise ConnectorError; return only successes."""

    @final
    def health(self) -> HealthReport:
        """Probe the provider and report the outcome; never raises."""
        try:
            answered = self.health_probe()
        except Exception as exc:  # a health check reports, it does not fail the worker
            return HealthReport.from_error(error_from_exception(exc, self.service_type))
        if not answered:
            return HealthReport(False, f"{self.service_type} health probe reported unhealthy")
        return HealthReport.ok()

    @final
    def check_health(self) -> bool:
        """True when the service answers; never raises."""
        report = self.health()
        if not report.healthy:
            log.warning("%s health check failed: %s", self.service_type, report.detail)
        return report.healthy

    def health_probe(self) -> bool:
        """Probe the service: raise a ConnectorError (or return False) when unhealthy."""
        return True

    def periodic_health_check_allowed(self) -> bool:
        """Whether a worker may repeat `health_probe` on a timer (False when it costs money)."""
        return True

    def service_support(self) -> dict[str, Any]:
        """Whether this connector's capabilities satisfy its health-check class."""
        if self.health_check_class is HealthCheckClass.CUSTOM:
            raise NotImplementedError("CUSTOM health-check class needs its own requirements")
        lacking = missing(self.health_check_class, self.capabilities)
        return {
            "isSupported": not lacking,
            "supportLevel": "full" if not lacking else "unsupported",
            "missingCapabilities": lacking,
            "recommendedAction": "proceed" if not lacking else "fail",
        }
