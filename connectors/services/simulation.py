"""SimulationConnector: the original's offline simulation, for load and chaos tests.

A job sleeps `duration_ms` in `steps` equal steps and sends `steps + 1` progress reports
(`round(step / steps * 100)`, "Processing step i/N", as the original did). It can fail - with a
probability (`failure_rate`), or on each of its first `fail_attempts` attempts, up front or after
`fail_after_steps` steps - as one classified ConnectorError of the `failure_type` /
`failure_reason` asked for, retryable as the taxonomy says (the original returned
`success: false` instead, which retried everything).

"Missed final update" (`missed_final_update`, or with probability `missed_final_update_rate`;
the original skipped it 4 % of the time) is a worker that finishes the job without sending its
last, 100 % progress report. The job still completes - SUCCESS, `complete_job` - because
completion is the job's outcome, never its last progress value; the progress simply stops short
of 100 and the result says `final_update_sent: false`. (A worker never relays a 100 % report as
`update_job_progress` - `complete_job` carries progress 100 - so behind a worker the miss shows
in the result alone.)

With a `seed`, every random draw comes from an RNG keyed by (seed, job id, attempt): a load or
chaos run replays exactly, and a retried attempt draws afresh. Without one, each attempt draws
from the OS's entropy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from connectors.base import BaseConnector
from connectors.errors import (
    REASON_TYPES,
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
)
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobProgress, JobResult, ProgressCallback

__all__ = [
    "DEFAULT_REASONS",
    "MAX_DURATION_MS",
    "SimulationConnector",
    "SimulationPayload",
    "SimulationPlan",
    "plan_attempt",
    "progress_points",
    "simulation_rng",
]

R = FailureReason
T = FailureType
# Bounded so a simulated job stays within the service's timeout (300 s in the mapping): under
# the threads pool Celery enforces no time limit, so the payload itself must not ask for more.
MAX_DURATION_MS = 300_000
# The reason a simulated failure carries when the payload names only its type.
DEFAULT_REASONS: dict[FailureType, FailureReason] = {
    T.GENERATION_REFUSAL: R.POLICY_VIOLATION,
    T.SERVICE_ERROR: R.SERVICE_UNAVAILABLE,
    T.TIMEOUT: R.PROCESSING_TIMEOUT,
    T.VALIDATION_ERROR: R.INVALID_PAYLOAD,
    T.RESOURCE_LIMIT: R.GPU_MEMORY_FULL,
    T.AUTH_ERROR: R.INVALID_API_KEY,
    T.RATE_LIMIT: R.REQUESTS_PER_MINUTE,
    T.NETWORK_ERROR: R.CONNECTION_FAILED,
    T.RESPONSE_ERROR: R.INVALID_RESPONSE_FORMAT,
    T.SYSTEM_ERROR: R.INTERNAL_ERROR,
}


class SimulationPayload(BaseModel):
    """A simulated job: how long, how many steps, whether and how it fails, the final update."""

    model_config = ConfigDict(extra="forbid")

    duration_ms: int = Field(default=5000, ge=0, le=MAX_DURATION_MS)
    steps: int = Field(default=10, ge=1, le=1000)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    fail_attempts: int = Field(default=0, ge=0, le=100)  # the first N attempts fail
    failure_type: FailureType = T.SERVICE_ERROR
    failure_reason: FailureReason | None = None  # default: DEFAULT_REASONS[failure_type]
    fail_after_steps: int = Field(default=0, ge=0)  # 0: up front, before any progress
    retry_after_seconds: float | None = Field(default=None, ge=0, le=3600)
    missed_final_update: StrictBool = False
    missed_final_update_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int | str | None = None

    @field_validator("failure_reason")
    @classmethod
    def _reason_belongs_to_type(
        cls, value: FailureReason | None, info: ValidationInfo
    ) -> FailureReason | None:
        ftype = info.data.get("failure_type")
        if value is not None and ftype is not None and REASON_TYPES[value] is not ftype:
            raise ValueError(
                f"'{value.value}' is a {REASON_TYPES[value].value} reason, not {ftype.value}"
            )
        return value

    @field_validator("fail_after_steps")
    @classmethod
    def _fails_before_the_last_step(cls, value: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if steps is not None and value >= steps:
            raise ValueError(f"must be less than steps ({steps}): a job cannot fail after 100 %")
        return value

    @property
    def classification(self) -> Classification:
        """The failure this job raises when it fails (retryable as the taxonomy says)."""
        reason = self.failure_reason or DEFAULT_REASONS[self.failure_type]
        return Classification(self.failure_type, reason, retry_after=self.retry_after_seconds)


@dataclass(frozen=True)
class SimulationPlan:
    """What one attempt of a simulated job does, decided before it starts."""

    fails: bool
    misses_final_update: bool
    final_value: float


def simulation_rng(seed: int | str | None, job_id: str, attempt: int) -> random.Random:
    """The attempt's RNG: keyed by (seed, job id, attempt) when seeded, else OS entropy."""
    if seed is None:
        return random.Random()
    # A str seed is hashed with SHA-512 by `random`: the same in every process and run.
    return random.Random(f"{seed}:{job_id}:{attempt}")


def plan_attempt(payload: SimulationPayload, rng: random.Random, attempt: int) -> SimulationPlan:
    """Decide an attempt's fate (pure given the RNG)."""
    # Always three draws in this order, so a seed gives the same numbers whatever the rates.
    fail_draw, miss_draw, value = rng.random(), rng.random(), rng.random()
    fails = attempt <= payload.fail_attempts or fail_draw < payload.failure_rate
    misses = payload.missed_final_update or miss_draw < payload.missed_final_update_rate
    return SimulationPlan(fails, misses and not fails, round(value, 6))


def progress_points(steps: int, misses_final_update: bool) -> list[int]:
    """The percentages an attempt reports: 0 .. 100, without the 100 when it misses it."""
    points = [round(step / steps * 100) for step in range(steps + 1)]
    return points[:-1] if misses_final_update else points


def _attempt(job: JobData) -> int:
    attempt = job.metadata.get("attempt")  # set by the worker: Celery retries + 1
    return attempt if isinstance(attempt, int) and attempt >= 1 else 1


class SimulationConnector(BaseConnector[SimulationPayload]):
    """Simulates a provider offline: stepped progress, seeded failures, a missed final update."""

    service_type: ClassVar[str] = "simulation"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities()
    payload_model = SimulationPayload

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sleep = sleep

    def process_job_impl(
        self, job: JobData, payload: SimulationPayload, progress: ProgressCallback
    ) -> JobResult:
        attempt = _attempt(job)
        plan = plan_attempt(payload, simulation_rng(payload.seed, job.id, attempt), attempt)
        if plan.fails and payload.fail_after_steps == 0:
            raise self._failure(job, payload, attempt, step=0)
        interval = payload.duration_ms / 1000 / payload.steps
        points = progress_points(payload.steps, plan.misses_final_update)
        for step in range(payload.steps + 1):
            if step:
                self._sleep(interval)
            if step < len(points):
                progress(self._report(job, payload, step, points[step], interval))
            if plan.fails and step == payload.fail_after_steps:
                raise self._failure(job, payload, attempt, step=step)
        return self._result(job, payload, plan, attempt, last=points[-1])

    def _report(
        self, job: JobData, payload: SimulationPayload, step: int, percent: int, interval: float
    ) -> JobProgress:
        return JobProgress(
            job_id=job.id,
            progress=percent,
            message=f"Processing step {step}/{payload.steps}",
            current_step=str(step),
            total_steps=payload.steps,
            estimated_completion_ms=round((payload.steps - step) * interval * 1000),
        )

    def _failure(
        self, job: JobData, payload: SimulationPayload, attempt: int, *, step: int
    ) -> ConnectorError:
        found = payload.classification
        return found.error(
            f"Simulated failure for job {job.id} (attempt {attempt}): "
            f"{found.failure_type.value}/{found.failure_reason.value}",
            service=self.service_type,
            context={"simulated": True, "attempt": attempt, "step": step, "seed": payload.seed},
        )

    def _result(
        self,
        job: JobData,
        payload: SimulationPayload,
        plan: SimulationPlan,
        attempt: int,
        *,
        last: int,
    ) -> JobResult:
        message = "Simulation completed"
        if plan.misses_final_update:
            message += f" without its final progress update (last report {last} %)"
        return JobResult(
            success=True,
            data={
                "message": message,
                "steps_completed": payload.steps,
                "final_update_sent": not plan.misses_final_update,
                "last_progress": last,
                "processing_time_ms": payload.duration_ms,
                "simulation_id": f"sim_{job.id}_{attempt}",
                "results": {
                    "iterations": payload.steps,
                    "final_value": plan.final_value,
                    "convergence": plan.final_value >= 0.5,
                },
            },
            metadata={"service": "simulation", "connector": "simulation", "attempt": attempt},
        )
