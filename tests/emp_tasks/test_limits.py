"""emp_tasks.limits: the time-limit, retry-cap and visibility-timeout arithmetic, and its users."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from emp_tasks import limits, tasks, visibility
from emp_tasks.config import services
from emp_tasks.retry import RetryPolicy


@dataclass(frozen=True)
class Spec:
    timeout_seconds: float


@pytest.mark.parametrize(
    ("timeout", "soft", "hard"),
    [
        (60.0, 150.0, 180.0),
        (30.0, 90.0, 120.0),
        (0.5, 31.0, 61.0),
        (600.0, 1230.0, 1260.0),
    ],
)
def test_time_limits_are_twice_the_timeout_plus_a_margin(
    timeout: float, soft: float, hard: float
) -> None:
    assert limits.soft_time_limit(Spec(timeout)) == soft
    assert limits.time_limit(Spec(timeout)) == hard


@pytest.mark.parametrize("timeout", [0.1, 1.0, 60.0, 3600.0])
def test_the_soft_limit_comes_first_so_a_job_can_fail_classified(timeout: float) -> None:
    assert limits.soft_time_limit(Spec(timeout)) < limits.time_limit(Spec(timeout))


def test_every_task_takes_its_time_limits_from_limits() -> None:
    for name, spec in services().items():
        task = tasks.task_for(name)
        assert (task.soft_time_limit, task.time_limit) == (
            limits.soft_time_limit(spec),
            limits.time_limit(spec),
        )


def test_celeryconfig_takes_its_visibility_timeout_from_the_visibility_module() -> None:
    import celeryconfig

    assert celeryconfig.visibility_timeout == visibility.visibility_timeout()
    assert celeryconfig.broker_transport_options == visibility.transport_options(
        celeryconfig.visibility_timeout
    )


def test_retries_wait_at_most_the_retry_cap() -> None:
    assert RetryPolicy().max_delay == limits.RETRY_CAP_SECONDS


def test_the_default_timeout_is_the_mapping_s_default() -> None:
    from emp_tasks.config import ServiceSpec

    spec = ServiceSpec(name="x", connector="m:C", queue="x")
    assert spec.timeout_seconds == limits.DEFAULT_TIMEOUT_SECONDS


@pytest.mark.parametrize("timeout", [30.0, 60.0])
def test_the_openai_text_stream_deadline_is_the_soft_time_limit(timeout: float) -> None:
    # connectors/ cannot import the runtime, so openai_text repeats the arithmetic; this keeps
    # the two from drifting apart until the deadline is passed in.
    from connectors.services.openai_common import OpenAISettings
    from connectors.services.openai_text import OpenAITextConnector

    settings = OpenAISettings(api_key="sk-test", timeout_seconds=timeout)
    assert OpenAITextConnector(settings).deadline == limits.soft_time_limit(settings)
