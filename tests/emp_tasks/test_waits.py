"""Waits: a deferred call re-queues the job as a wait, which is not an attempt or a retry."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
from celery.exceptions import Retry

from connectors.models import JobData, JobResult, ProgressCallback
from connectors.protocol.gate import deferred_error
from emp_tasks import waits
from emp_tasks.config import ServiceSpec
from emp_tasks.runner import run_job
from tests.emp_tasks.fakes import FakeTask, ScriptedConnector, ScriptedPayload


class DeferringConnector(ScriptedConnector):
    """Deferred by its gate until the job has waited twice; `prompt` "hold" is always held."""

    service_type: ClassVar[str] = "deferring"

    def process_job_impl(
        self, job: JobData, payload: ScriptedPayload, progress: ProgressCallback
    ) -> JobResult:
        if payload.prompt == "hold":
            raise deferred_error(self.service_type, "hold", 2.0)
        if job.metadata.get(waits.WAITS, 0) < 2:
            raise deferred_error(self.service_type, "rate_limit", 1.5, slot_at=123.0)
        return super().process_job_impl(job, payload, progress)


class WaitTask(FakeTask):
    """A FakeTask that also records the arguments a re-queue carries."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request.delivery_info = {}
        self.requeued: list[tuple[Any, Any]] = []

    def retry(  # type: ignore[override]  # Celery's own signature: args, kwargs first
        self, args: Any = None, kwargs: Any = None, **options: Any
    ) -> Retry:
        self.requeued.append((args, kwargs))
        return super().retry(**options)


SPEC = ServiceSpec(
    name="deferring",
    connector=f"{__name__}:DeferringConnector",
    queue="deferring",
    retry_attempts=2,
    retry_delay_seconds=1.0,
)


@pytest.fixture(autouse=True)
def _log_outcomes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="emp_tasks.jobs")


def test_a_deferred_call_requeues_the_job_as_a_wait_with_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = WaitTask()
    with pytest.raises(Retry):
        run_job(task, SPEC, {"prompt": "x"}, {"tenant": "t1"}, {"mine": 1})
    [call] = task.retries
    assert call.countdown == 1.5  # the reserved slot's time, exactly
    assert task.requeued == [
        (
            [{"prompt": "x"}],
            {"ctx": {"tenant": "t1"}, "metadata": {"mine": 1, "emp_waits": 1, "emp_slot": 123.0}},
        )
    ]
    assert task.event_names == ["wait_job"]
    assert task.event("wait_job") == {
        "job_id": "job-1",
        "service": "deferring",
        "reason": "rate_limit",
        "waits": 1,
        "attempt": 1,
        "countdown": 1.5,
    }
    logged = [getattr(r, "outcome", None) for r in caplog.records if r.name == "emp_tasks.jobs"]
    assert logged == ["waited"]


def test_waits_do_not_count_as_attempts() -> None:
    # Celery's counter says 2 re-deliveries; both were waits: this is still the first attempt.
    task = WaitTask(retries=2)
    result = run_job(task, SPEC, {"prompt": "x"}, None, {"emp_waits": 2})
    assert result["metadata"]["attempts"] == 1
    assert result["data"]["job_metadata"]["attempt"] == 1
    assert task.event("complete_job")["attempts"] == 1


def test_a_retry_after_waits_is_the_next_attempt_within_retry_attempts() -> None:
    task = WaitTask(retries=5)  # 1 retry + 4 waits
    payload = {"prompt": "x", "fail": "service_error"}
    with pytest.raises(Retry):
        run_job(task, SPEC, payload, None, {"emp_waits": 4})
    assert task.event("retry_job")["attempt"] == 2  # not 6: retry_attempts=2 still allows it


def test_a_hold_spreads_its_waiters() -> None:
    task = WaitTask()
    with pytest.raises(Retry):
        run_job(task, SPEC, {"prompt": "hold"})
    [call] = task.retries
    assert call.countdown is not None
    assert 2.0 <= call.countdown <= 2.4
    assert waits.SLOT not in task.requeued[0][1]["metadata"]


def test_past_max_waits_a_deferral_is_handled_as_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMP_MAX_WAITS", "3")
    task = WaitTask(retries=3)
    with pytest.raises(Retry):
        run_job(task, SPEC, {"prompt": "hold"}, None, {"emp_waits": 3})
    assert task.event_names == ["retry_job"]


@pytest.mark.parametrize(
    ("retries", "metadata", "attempt"),
    [
        (0, None, 0),
        (3, None, 3),
        (3, {"emp_waits": 2}, 1),
        (3, {"emp_waits": 5}, 0),  # never below 0
        (3, {"emp_waits": "2"}, 3),  # not a count: ignored
        (3, {"emp_waits": True}, 3),
        (None, {}, 0),
    ],
)
def test_attempt_is_retries_less_waits(retries: int | None, metadata: Any, attempt: int) -> None:
    assert waits.attempt_of(retries, metadata) == attempt


@pytest.mark.parametrize(
    ("wait", "slot_at", "seconds"),
    [(1.5, 99.0, 1.5), (0.8, 99.0, 1.0), (0.0, None, 1.0), (10.0, 99.0, 10.0)],
)
def test_a_countdown_is_the_wait_and_never_under_a_second(
    wait: float, slot_at: float | None, seconds: float
) -> None:
    # Under 1 s, RabbitMQ's native delayed delivery refuses the message (Celery routes by
    # whole seconds); a hold's waiters also spread over 20% more (here: rand() = 0).
    error = deferred_error("glif", "rate_limit", wait, slot_at=slot_at)
    assert waits.countdown(error, rand=lambda: 0.0) == seconds


@pytest.mark.parametrize(
    ("env", "limit"), [({}, 1000), ({"EMP_MAX_WAITS": "5"}, 5), ({"EMP_MAX_WAITS": "x"}, 1000)]
)
def test_max_waits(env: dict[str, str], limit: int) -> None:
    assert waits.max_waits(env) == limit


@pytest.mark.parametrize(
    ("args", "kwargs", "attempt"),
    [
        ((), {"metadata": {waits.WAITS: 2}}, 2),  # retries 3, two of them waits
        (({"p": 1}, None, {waits.WAITS: 3}), {}, 1),  # metadata passed by position
        (({"p": 1},), {}, 4),  # no waits: every retry was an attempt
        (None, None, 4),
    ],
)
def test_the_stored_request_shows_attempts_without_the_waits(
    args: Any, kwargs: Any, attempt: int
) -> None:
    assert waits.attempt_of(3, waits.metadata_in(args, kwargs)) + 1 == attempt
