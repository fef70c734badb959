"""outcomes.ended: one log line and the matching counters for every attempt."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from connectors.errors import ConnectorError, FailureReason, FailureType
from emp_tasks import metrics, outcomes


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("service", "metadata", "cost"),
    [
        ("glif", {"price": 0.25}, (0.25, "glif_credits")),
        ("glif", {"price": 3}, (3.0, "glif_credits")),
        ("glif", {"price": "0.25"}, None),  # a string is not a price we trust
        ("glif", {"price": -1}, None),
        ("glif", {"price": float("nan")}, None),
        ("glif", {"price": True}, None),
        ("openai_text", {"price": 1.0}, None),  # only Glif's price means credits
        ("openai_text", {"cost": {"amount": 0.002, "currency": "USD"}}, (0.002, "USD")),
        ("gemini_text", {"cost": {"amount": None}}, None),
        ("mock", {}, None),
    ],
)
def test_job_cost_reads_only_what_the_provider_priced(
    service: str, metadata: dict[str, Any], cost: tuple[float, str] | None
) -> None:
    assert outcomes.job_cost(service, metadata) == cost


def test_a_completed_attempt_counts_its_outcome_and_cost() -> None:
    before = (
        sample("emp_jobs_total", service="t1", outcome="completed"),
        sample("emp_job_cost_total", service="t1", currency="credits"),
    )
    outcomes.started("t1")
    assert sample("emp_jobs_in_progress", service="t1") == 1
    outcomes.ended(
        "t1",
        "completed",
        job_id="j",
        attempt=1,
        duration_ms=5,
        metadata={"cost": {"amount": 2, "currency": "credits"}},
    )
    assert sample("emp_jobs_in_progress", service="t1") == 0
    assert sample("emp_jobs_total", service="t1", outcome="completed") == before[0] + 1
    assert sample("emp_job_cost_total", service="t1", currency="credits") == before[1] + 2


def test_a_failed_attempt_counts_its_classification_and_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ConnectorError(
        "nope", failure_type=FailureType.AUTH_ERROR, failure_reason=FailureReason.INVALID_API_KEY
    )
    labels = {"service": "t2", "failure_type": "auth_error", "failure_reason": "invalid_api_key"}
    outcomes.started("t2")
    with caplog.at_level(logging.INFO, logger="emp_tasks.jobs"):
        outcomes.ended("t2", "failed", job_id="j2", attempt=3, duration_ms=9, error=error)
    assert sample("emp_job_failures_total", **labels) == 1
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING
    assert (rec.job_id, rec.outcome, rec.failure_type, rec.attempt) == (  # type: ignore[attr-defined]
        "j2", "failed", "auth_error", 3
    )  # fmt: skip


def test_a_retried_attempt_is_not_a_failure_and_says_when_it_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ConnectorError("busy", failure_type=FailureType.RATE_LIMIT)
    outcomes.started("t3")
    with caplog.at_level(logging.INFO, logger="emp_tasks.jobs"):
        outcomes.ended(
            "t3", "retried", job_id="j3", attempt=1, duration_ms=1, error=error, again_in=2.5
        )
    (rec,) = caplog.records
    assert rec.getMessage().endswith("(rate_limit/unknown_error), again in 2.5 s: busy")
    assert sample("emp_jobs_total", service="t3", outcome="retried") == 1
    assert sample("emp_job_failures_total", service="t3", failure_type="rate_limit",
                  failure_reason=error.failure_reason.value) == 0  # fmt: skip


def test_observe_call_counts_status_and_time() -> None:
    metrics.observe_call("t4", "429", 0.3)
    metrics.observe_call("t4", "network_error", 1.0)
    assert sample("emp_provider_calls_total", service="t4", status="429") == 1
    assert sample("emp_provider_call_seconds_count", service="t4") == 2
    assert sample("emp_provider_call_seconds_sum", service="t4") == pytest.approx(1.3)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"EMP_METRICS_PORT": " "}, None),
        ({"EMP_METRICS_PORT": "9808"}, ("0.0.0.0", 9808)),
        ({"EMP_METRICS_PORT": "9808", "EMP_METRICS_ADDRESS": "127.0.0.1"}, ("127.0.0.1", 9808)),
    ],
)
def test_metrics_are_off_unless_a_port_is_set(
    env: dict[str, str], expected: tuple[str, int] | None
) -> None:
    assert metrics.metrics_address(env) == expected


@pytest.mark.parametrize("port", ["0", "65536", "metrics", "-1", "98.08"])
def test_a_bad_metrics_port_names_the_setting(port: str) -> None:
    with pytest.raises(ConnectorError, match="EMP_METRICS_PORT must be a TCP port"):
        metrics.metrics_address({"EMP_METRICS_PORT": port})
