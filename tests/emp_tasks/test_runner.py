"""run_job and _fail_or_retry: each outcome of an attempt, with a fake task and no broker."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery.exceptions import Retry

from connectors.errors import ConnectorError
from connectors.models import JobProgress
from emp_tasks.config import ServiceSpec
from emp_tasks.retry import RetryDecision
from emp_tasks.runner import JobEvents, _fail_or_retry, final_error, get_connector, run_job
from tests.emp_tasks.fakes import BrokenConnector, FakeTask, FakeTimers, ScriptedConnector

PROMPT = {"prompt": "a happy horse"}


def scripted_spec(
    connector: type[ScriptedConnector] = ScriptedConnector, retries: int = 2
) -> ServiceSpec:
    """A mapping entry for a fake connector, named by its service type as real services are."""
    return ServiceSpec(
        name=connector.service_type,
        connector=f"{connector.__module__}:{connector.__name__}",
        queue="scripted",
        retry_attempts=retries,
        retry_delay_seconds=1.0,
        timeout_seconds=5.0,
    )


def calls(spec: ServiceSpec) -> int:
    """Provider calls so far by the worker's one connector for `spec` (kept across tests)."""
    built = get_connector(spec)
    assert isinstance(built, ScriptedConnector)
    return built.calls


def outcomes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The outcome of every attempt, as emp_tasks.outcomes logged it."""
    return [r.outcome for r in caplog.records if r.name == "emp_tasks.jobs"]


def failure(task: FakeTask, spec: ServiceSpec, payload: Any, **kwargs: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as raised:
        run_job(task, spec, payload, **kwargs)  # type: ignore[arg-type]
    return raised.value


@pytest.fixture(autouse=True)
def _log_outcomes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="emp_tasks.jobs")


@pytest.mark.parametrize("retries", [0, 2])
def test_success_returns_the_result_with_attempts_and_sends_complete_job(
    retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    spec, task = scripted_spec(), FakeTask(retries=retries)
    result = run_job(task, spec, PROMPT, metadata={"source": "test"})  # type: ignore[arg-type]
    assert result["success"] is True
    assert result["data"]["echo"] == "a happy horse"
    assert result["metadata"]["attempts"] == retries + 1
    # The connector saw which attempt it was running.
    assert result["data"]["job_metadata"] == {"source": "test", "attempt": retries + 1}
    assert task.event_names == ["complete_job"]
    assert task.event("complete_job") == {
        "job_id": "job-1",
        "service": spec.name,
        "status": "completed",
        "progress": 100,
        "attempts": retries + 1,
        "processing_time_ms": result["processing_time_ms"],
    }
    assert task.retries == []
    assert outcomes(caplog) == ["completed"]


@pytest.mark.parametrize("retry_raises", [True, False], ids=["retry-raises", "retry-returns"])
def test_a_retryable_error_within_budget_is_retried_after_the_decided_countdown(
    retry_raises: bool, caplog: pytest.LogCaptureFixture
) -> None:
    spec, task = scripted_spec(), FakeTask(retries=1, retry_raises=retry_raises)
    payload = {**PROMPT, "fail": "service_error", "retry_after": 30}
    with pytest.raises(Retry):
        run_job(task, spec, payload)  # type: ignore[arg-type]
    # The provider's hint (30 s) beats the backoff (1 s x 2 x jitter): retry_decision's countdown.
    [call] = task.retries
    assert call.countdown == 30.0
    assert call.max_retries is None  # retry_decision bounds attempts, not Celery's counter
    assert isinstance(call.exc, ConnectorError)
    assert call.exc.service == spec.name
    assert task.event_names == ["retry_job"]
    assert task.event("retry_job")["countdown"] == 30.0
    assert task.event("retry_job")["attempt"] == 2
    assert outcomes(caplog) == ["retried"]


def test_the_backoff_countdown_is_what_the_retry_job_event_announces() -> None:
    spec, task = scripted_spec(), FakeTask(retries=1)
    with pytest.raises(Retry):
        run_job(task, spec, {**PROMPT, "fail": "service_error"})  # type: ignore[arg-type]
    [call] = task.retries
    assert call.countdown is not None
    assert 2.0 <= call.countdown <= 2.5  # retry 2: 1 s x 2, plus up to 25 % jitter
    assert task.event("retry_job")["countdown"] == call.countdown


@pytest.mark.parametrize(
    ("retries", "retry_after", "why"),
    [
        (2, None, "not retried: gave up after 3 attempts (2 retries)"),
        (0, 301, "not retried: provider asked to wait 301s, beyond the 300s retry cap"),
    ],
    ids=["budget-spent", "wait-beyond-cap"],
)
def test_a_retryable_error_that_is_not_retried_fails_and_says_why(
    retries: int, retry_after: float | None, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec, task = scripted_spec(retries=2), FakeTask(retries=retries)
    payload = {**PROMPT, "fail": "service_error", "retry_after": retry_after}
    error = failure(task, spec, payload)
    assert error.retryable
    assert why in error.message
    assert error.context["attempts"] == retries + 1
    assert task.retries == []
    assert task.event_names == ["fail_job"]
    fail_job = task.event("fail_job")
    assert fail_job["message"] == error.message
    assert fail_job["attempts"] == retries + 1
    assert why.removeprefix("not retried: ") in fail_job["reason"]
    assert outcomes(caplog) == ["failed"]


def test_a_non_retryable_error_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    spec, task = scripted_spec(retries=3), FakeTask(retries=0)
    error = failure(task, spec, {**PROMPT, "fail": "auth_error"})
    assert (error.failure_type.value, error.retryable) == ("auth_error", False)
    assert "not retried" not in error.message  # nothing to explain: it was never retryable
    assert task.retries == []
    assert task.event("fail_job")["reason"] == "not retryable (auth_error/invalid_api_key)"
    assert task.event("fail_job")["attempts"] == 1
    assert outcomes(caplog) == ["failed"]


@pytest.mark.parametrize(
    ("connector", "payload", "exception_name"),
    [
        (BrokenConnector, PROMPT, "AttributeError"),  # setup: the connector cannot be built
        (ScriptedConnector, {**PROMPT, "fail": "bug"}, "KeyError"),  # inside the connector
    ],
    ids=["setup-failure", "connector-bug"],
)
def test_any_other_exception_is_converted_to_a_connector_error(
    connector: type[ScriptedConnector], payload: dict[str, Any], exception_name: str
) -> None:
    spec, task = scripted_spec(connector), FakeTask()
    error = failure(task, spec, payload)
    assert error.message.startswith(exception_name)
    assert error.service == spec.name
    # A bug of ours would hit again on a retry: it fails at once, classified.
    assert (error.failure_type.value, error.retryable) == ("system_error", False)
    assert task.retries == []
    assert task.event("fail_job")["failure_reason"] == error.failure_reason.value


@pytest.mark.parametrize(
    ("payload", "ctx", "field"),
    [
        ({"fail": "auth_error"}, None, "prompt"),
        ({**PROMPT, "colour": "red"}, None, "colour"),
        (["a happy horse"], None, "payload"),
        (PROMPT, {"storage": {"accountKey": "k"}}, "ctx.storage.accountKey"),
        (PROMPT, "tenant-7", "ctx"),
    ],
    ids=["missing-field", "unknown-field", "not-an-object", "secret-in-ctx", "ctx-not-an-object"],
)
def test_bad_input_fails_before_any_provider_call(payload: Any, ctx: Any, field: str) -> None:
    spec, task = scripted_spec(retries=3), FakeTask()
    before = calls(spec)
    error = failure(task, spec, payload, ctx=ctx)
    assert (error.failure_type.value, error.retryable) == ("validation_error", False)
    assert error.context["field"] == field
    assert calls(spec) == before
    assert task.retries == []
    assert task.event_names == ["fail_job"]


def test_a_connector_is_called_once_per_attempt() -> None:
    spec = scripted_spec()
    before = calls(spec)
    run_job(FakeTask(), spec, PROMPT)  # type: ignore[arg-type]
    run_job(FakeTask(retries=1), spec, PROMPT)  # type: ignore[arg-type]
    assert calls(spec) == before + 2  # and the same connector both times


@pytest.mark.parametrize(
    ("fail", "raised", "outcome_event"),
    [("service_error", Retry, "retry_job"), ("auth_error", ConnectorError, "fail_job")],
)
def test_no_progress_follows_the_outcome_event(
    fail: str, raised: type[Exception], outcome_event: str
) -> None:
    spec, task, timers = scripted_spec(), FakeTask(), FakeTimers()
    events = JobEvents(task, spec.name, "job-1", 0, timer=timers)  # type: ignore[arg-type]
    events.progress(JobProgress(job_id="job-1", progress=10))  # deferred: the job is young
    error = ConnectorError(f"scripted {fail}", failure_type=fail)
    with pytest.raises(raised):
        _fail_or_retry(task, spec, error, events, began=0.0)  # type: ignore[arg-type]
    [timer] = timers.started
    assert timer.cancelled
    timer.fire_late()  # even a timer thread already past its wait sends nothing now
    assert task.event_names == [outcome_event]
    assert task.states == []


def test_final_error_is_built_once_and_leaves_the_raised_error_alone() -> None:
    raised = ConnectorError("busy", failure_type="service_error", context={"k": "v"})
    gave_up = RetryDecision(None, "gave up after 3 attempts (2 retries)")
    final = final_error(raised, "scripted", 3, gave_up)
    assert final is not raised
    assert final.message == "busy (not retried: gave up after 3 attempts (2 retries))"
    assert final.context == {"k": "v", "attempts": 3, "gave_up": gave_up.reason}
    assert final.service == "scripted"
    assert (raised.message, raised.context, raised.service) == ("busy", {"k": "v"}, None)


def test_final_error_of_a_retry_only_names_the_service() -> None:
    raised = ConnectorError("busy", failure_type="service_error")
    retry = RetryDecision(2.0, "retrying in 2s")
    assert final_error(raised, "scripted", 1, retry).to_dict() == {
        **raised.to_dict(),
        "service": "scripted",
    }
    named = ConnectorError("busy", failure_type="service_error", service="glif")
    assert final_error(named, "scripted", 1, retry) is named
