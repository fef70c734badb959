"""MockConnector: the original's offline mock (delay_ms, should_fail, test_data), made honest.

The original returned `{success: false}` for a requested failure; here a failure raises a
classified ConnectorError, so it shows as a failure. `fail_kind` picks the classification, which
lets demos and tests exercise retryable and non-retryable paths without any network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from connectors.base import BaseConnector
from connectors.errors import Classification, FailureReason, FailureType, validation_error
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobProgress, JobResult, ProgressCallback

__all__ = ["MockConnector", "MockPayload"]

_FAILURES: dict[str, Classification] = {
    "service_error": Classification(FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE),
    "validation_error": Classification(FailureType.VALIDATION_ERROR, FailureReason.INVALID_PAYLOAD),
    "rate_limit": Classification(FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE),
    "timeout": Classification(FailureType.TIMEOUT, FailureReason.PROCESSING_TIMEOUT),
}


class MockPayload(BaseModel):
    """A mock job: how long to take, whether to fail, and what to return."""

    model_config = ConfigDict(extra="forbid")

    delay_ms: int = Field(default=100, ge=0, le=600_000)
    should_fail: StrictBool = False
    fail_kind: Literal["service_error", "validation_error", "rate_limit", "timeout"] = (
        "service_error"
    )
    retry_after: float | None = Field(default=None, ge=0)
    steps: int = Field(default=2, ge=1, le=100)
    test_data: Any = "Mock test successful"
    # Test-only: the worker process exits at once, as on a segfault or the OOM killer. Honoured
    # only by a worker whose environment sets EMP_MOCK_ALLOW_CRASH=1; refused everywhere else.
    crash_worker: StrictBool = False


def _crash() -> None:
    if os.environ.get("EMP_MOCK_ALLOW_CRASH") != "1":
        raise validation_error(
            "crash_worker", "is a test-only option (the worker needs EMP_MOCK_ALLOW_CRASH=1)"
        )
    os._exit(70)  # no cleanup, no ack: what a segfault or a SIGKILL leaves behind


class MockConnector(BaseConnector[MockPayload]):
    """Simulates a provider: sleeps, reports stepped progress, succeeds or raises."""

    service_type: ClassVar[str] = "mock"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities()
    payload_model = MockPayload

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sleep = sleep

    def process_job_impl(
        self, job: JobData, payload: MockPayload, progress: ProgressCallback
    ) -> JobResult:
        if payload.crash_worker:
            _crash()
        progress(
            JobProgress(job_id=job.id, progress=10, message="Starting", total_steps=payload.steps)
        )
        for step in range(1, payload.steps + 1):
            self._sleep(payload.delay_ms / 1000 / payload.steps)
            done = 10 + 70 * step / payload.steps
            progress(
                JobProgress(
                    job_id=job.id,
                    progress=done,
                    message=f"Step {step}/{payload.steps}",
                    current_step=str(step),
                    total_steps=payload.steps,
                )
            )
        if payload.should_fail:
            raise _FAILURES[payload.fail_kind].error(
                f"Mock failure requested ({payload.fail_kind})",
                retry_after=payload.retry_after,
                service=self.service_type,
            )
        progress(JobProgress(job_id=job.id, progress=100, message="Completed"))
        return JobResult(
            success=True,
            data={
                "test_data": payload.test_data,
                "mock_url": f"https://via.placeholder.com/512x512.png?text=Mock+Test+{job.id}",
                "processing_time_ms": payload.delay_ms,
            },
            metadata={"service": "mock", "connector": "mock"},
        )
