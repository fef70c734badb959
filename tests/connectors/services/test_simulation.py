"""SimulationConnector: stepped progress, seeded failures by the taxonomy, a missed final update."""

from __future__ import annotations

import random
from typing import Any

import pytest

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.services.simulation import (
    DEFAULT_REASONS,
    SimulationConnector,
    SimulationPayload,
    plan_attempt,
    progress_points,
    simulation_rng,
)


class Run:
    """One simulated job run: its progress reports, its sleeps, and its result or error."""

    def __init__(self, payload: dict[str, Any], *, job_id: str = "job-1", attempt: int = 1):
        self.reports: list[JobProgress] = []
        self.sleeps: list[float] = []
        connector = SimulationConnector(sleep=self.sleeps.append)
        job = JobData(id=job_id, type="simulation", payload=payload, metadata={"attempt": attempt})
        self.result: JobResult | None = None
        self.error: ConnectorError | None = None
        try:
            self.result = connector.process_job(job, self.reports.append)
        except ConnectorError as exc:
            self.error = exc

    @property
    def percents(self) -> list[float]:
        return [report.progress for report in self.reports]

    @property
    def data(self) -> dict[str, Any]:
        """The successful result's data (the run must have succeeded)."""
        assert self.error is None, self.error
        assert self.result is not None
        assert self.result.success is True
        assert self.result.data is not None
        return self.result.data

    @property
    def failure(self) -> ConnectorError:
        """The error the run raised (it must have failed)."""
        assert self.error is not None, "the run did not fail"
        return self.error


def test_success_reports_steps_plus_one_updates_ending_at_100_and_sleeps_the_duration() -> None:
    run = Run({"duration_ms": 1000, "steps": 4})
    assert run.percents == [0, 25, 50, 75, 100]
    assert [r.message for r in run.reports][1] == "Processing step 1/4"
    assert {r.total_steps for r in run.reports} == {4}
    assert [r.estimated_completion_ms for r in run.reports] == [1000, 750, 500, 250, 0]
    assert sum(run.sleeps) == pytest.approx(1.0)
    assert run.data["final_update_sent"] is True
    assert run.data["steps_completed"] == 4


def test_missed_final_update_stops_progress_short_of_100_and_still_completes() -> None:
    run = Run({"duration_ms": 400, "steps": 4, "missed_final_update": True})
    assert run.percents == [0, 25, 50, 75]
    assert sum(run.sleeps) == pytest.approx(0.4)  # the work still takes its whole duration
    assert run.data["final_update_sent"] is False
    assert run.data["last_progress"] == 75
    assert "without its final progress update" in run.data["message"]


# (failure_type, failure_reason given, reason raised, retryable per the taxonomy)
FAILURES = [
    ("service_error", None, "service_unavailable", True),
    ("rate_limit", "tokens_per_minute", "tokens_per_minute", True),
    ("network_error", None, "connection_failed", True),
    ("timeout", "job_timeout", "job_timeout", True),
    ("system_error", None, "internal_error", True),
    ("system_error", "config_error", "config_error", False),  # the reason overrides its type
    ("validation_error", None, "invalid_payload", False),
    ("auth_error", "expired_token", "expired_token", False),
    ("generation_refusal", "nsfw_content", "nsfw_content", False),
    ("resource_limit", None, "gpu_memory_full", False),
    ("response_error", None, "invalid_response_format", False),
]


@pytest.mark.parametrize(("ftype", "given", "reason", "retryable"), FAILURES)
def test_requested_failure_raises_the_classified_error_the_taxonomy_decides(
    ftype: str, given: str | None, reason: str, retryable: bool
) -> None:
    payload: dict[str, Any] = {"duration_ms": 0, "failure_rate": 1.0, "failure_type": ftype}
    if given:
        payload["failure_reason"] = given
    run = Run(payload)
    assert (run.failure.failure_type, run.failure.failure_reason) == (ftype, reason)
    assert run.failure.retryable is retryable
    assert run.failure.service == "simulation"
    assert run.failure.context["simulated"] is True
    assert run.reports == []  # up front, as the original failed


def test_every_failure_type_has_a_default_reason_of_its_own_type() -> None:
    assert set(DEFAULT_REASONS) == set(FailureType)
    for ftype, reason in DEFAULT_REASONS.items():
        assert SimulationPayload(failure_type=ftype).classification.failure_reason is reason


def test_failure_after_steps_reports_progress_first() -> None:
    run = Run({"duration_ms": 0, "steps": 4, "fail_attempts": 1, "fail_after_steps": 2})
    assert run.percents == [0, 25, 50]
    assert run.failure.context["step"] == 2


def test_rate_limit_failure_carries_its_retry_after() -> None:
    payload = {"failure_rate": 1, "failure_type": "rate_limit", "retry_after_seconds": 2.5}
    run = Run({"duration_ms": 0, **payload})
    assert run.failure.retry_after == 2.5


@pytest.mark.parametrize(("attempt", "fails"), [(1, True), (2, True), (3, False)])
def test_fail_attempts_fails_the_first_attempts_only(attempt: int, fails: bool) -> None:
    run = Run({"duration_ms": 0, "fail_attempts": 2}, attempt=attempt)
    assert (run.error is not None) is fails


def test_seeded_failures_replay_exactly_per_job_and_attempt() -> None:
    payload = {"duration_ms": 0, "steps": 1, "failure_rate": 0.5, "seed": 7}

    def outcomes() -> list[bool]:
        return [
            Run(payload, job_id=f"j{i}", attempt=a).error is None for i in range(40) for a in (1, 2)
        ]

    first = outcomes()
    assert first == outcomes()
    assert 20 < first.count(True) < 60  # about half, and keyed by job and attempt, not constant


def test_seeded_rng_is_keyed_by_seed_job_and_attempt() -> None:
    draw = [simulation_rng(1, "a", 1).random() for _ in range(2)]
    assert draw[0] == draw[1]
    others = {simulation_rng(2, "a", 1).random(), simulation_rng(1, "b", 1).random()}
    others.add(simulation_rng(1, "a", 2).random())
    assert len(others | {draw[0]}) == 4


@pytest.mark.parametrize(
    ("rate", "attempts", "miss", "miss_rate", "expected"),
    [
        (0.0, 0, False, 0.0, (False, False)),
        (1.0, 0, False, 0.0, (True, False)),
        (0.0, 1, False, 0.0, (True, False)),
        (0.0, 0, True, 0.0, (False, True)),
        (0.0, 0, False, 1.0, (False, True)),
        (1.0, 0, True, 1.0, (True, False)),  # a failed attempt sends no final update anyway
    ],
)
def test_plan_decides_failure_and_missed_update_from_the_knobs(
    rate: float, attempts: int, miss: bool, miss_rate: float, expected: tuple[bool, bool]
) -> None:
    payload = SimulationPayload(
        failure_rate=rate,
        fail_attempts=attempts,
        missed_final_update=miss,
        missed_final_update_rate=miss_rate,
    )
    plan = plan_attempt(payload, random.Random(0), attempt=1)
    assert (plan.fails, plan.misses_final_update) == expected


@pytest.mark.parametrize(
    ("steps", "miss", "expected"),
    [(1, False, [0, 100]), (1, True, [0]), (3, False, [0, 33, 67, 100]), (3, True, [0, 33, 67])],
)
def test_progress_points_round_like_the_original(
    steps: int, miss: bool, expected: list[int]
) -> None:
    assert progress_points(steps, miss) == expected


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"duration_ms": -1}, "duration_ms"),
        ({"duration_ms": 300_001}, "duration_ms"),
        ({"steps": 0}, "steps"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_type": "explosion"}, "failure_type"),
        ({"failure_reason": "nope"}, "failure_reason"),
        ({"failure_type": "rate_limit", "failure_reason": "nsfw_content"}, "failure_reason"),
        ({"steps": 3, "fail_after_steps": 3}, "fail_after_steps"),
        ({"missed_final_update": "yes"}, "missed_final_update"),
        ({"retry_after_seconds": -1}, "retry_after_seconds"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_payload_is_a_validation_error_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        SimulationConnector.validate_payload(payload)
    assert caught.value.failure_type is FailureType.VALIDATION_ERROR
    assert caught.value.context["field"] == field
    assert caught.value.retryable is False


def test_reason_that_belongs_to_another_type_says_which() -> None:
    with pytest.raises(ConnectorError, match="is a generation_refusal reason, not rate_limit"):
        SimulationConnector.validate_payload(
            {"failure_type": "rate_limit", "failure_reason": FailureReason.NSFW_CONTENT.value}
        )
