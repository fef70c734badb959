"""PollingHTTPConnector: submit, poll on an injected clock, and the ways polling ends."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import AnyPayload
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol.client import HttpClient
from connectors.protocol.http import HttpRequest
from connectors.protocol.polling import (
    PollingHTTPConnector,
    PollPolicy,
    PollStatus,
    clamp_progress,
    estimate_progress,
    limit_reached,
    next_wait,
)
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply

BASE = "https://jobs.test/v1"
SUBMIT = f"{BASE}/jobs"
POLL = f"{BASE}/jobs/job-1"
CANCEL = f"{BASE}/jobs/job-1/cancel"
R = FailureReason
T = FailureType


class FakeClock:
    """A clock that moves only when the connector sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class JobsConnector(PollingHTTPConnector[AnyPayload]):
    """A provider with POST /jobs, GET /jobs/{id} and no cancel."""

    service_type = "fakejobs"

    def build_request(self, job: JobData, payload: AnyPayload) -> HttpRequest:
        return HttpRequest("POST", self.client.url("jobs"), json=job.payload)

    def extract_job_id(self, response: requests.Response, job: JobData) -> str:
        return str(self.client.json_body(response).get("id") or "")

    def build_poll_request(self, service_job_id: str, job: JobData) -> HttpRequest:
        return HttpRequest("GET", self.client.url(f"jobs/{service_job_id}"))

    def check_status(self, response: requests.Response, job: JobData) -> PollStatus:
        body: dict[str, Any] = self.client.json_body(response)
        state = body["status"]
        if state == "succeeded":
            return PollStatus("completed", result=body["output"], raw=body)
        if state == "failed":
            error = None
            if body.get("code") == "content_policy":
                error = ConnectorError(
                    body["error"],
                    failure_type=T.GENERATION_REFUSAL,
                    failure_reason=R.POLICY_VIOLATION,
                )
            return PollStatus("failed", message=body.get("error"), raw=body, error=error)
        return PollStatus("pending", progress=body.get("progress"), message=state, raw=body)

    def build_result(self, status: PollStatus, job: JobData, payload: AnyPayload) -> JobResult:
        return JobResult(data={"output": status.result})


class CancellableJobsConnector(JobsConnector):
    """The same provider, whose API can cancel a job."""

    def build_cancel_request(self, service_job_id: str, job: JobData) -> HttpRequest | None:
        return HttpRequest("POST", self.client.url(f"jobs/{service_job_id}/cancel"))


JOB = JobData(id="j-1", type="fakejobs", payload={"prompt": "a fox"})
ACCEPTED = json_reply({"id": "job-1", "status": "queued"})
PENDING = json_reply({"status": "running"})
DONE = json_reply({"status": "succeeded", "output": "fox.png"})


def pending(progress: float) -> Reply:
    return json_reply({"status": "running", "progress": progress})


def make_connector(
    *poll_replies: Reply | BaseException,
    cls: type[JobsConnector] = JobsConnector,
    submit: Reply | BaseException = ACCEPTED,
    **policy: Any,
) -> tuple[JobsConnector, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = ScriptedTransport().add("POST", SUBMIT, submit).add("GET", POLL, *poll_replies)
    policy = {"interval": 5.0, "deadline": 60.0, **policy}
    connector = cls(
        client=HttpClient("fakejobs", BASE, session=transport.session()),
        poll_policy=PollPolicy(clock=clock, sleep=clock.sleep, **policy),
        clock=clock,
    )
    return connector, transport, clock


def run_failing(connector: JobsConnector) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        connector.process_job(JOB)
    return info.value


def test_pending_then_completed_returns_result_with_provider_job_id() -> None:
    connector, transport, clock = make_connector(PENDING, PENDING, DONE)
    result = connector.process_job(JOB)
    assert result.data == {"output": "fox.png"}
    assert result.service_metadata is not None
    assert result.service_metadata.service_job_id == "job-1"
    assert result.service_metadata.processing_stats == {"polls": 3, "poll_errors": 0}
    assert clock.sleeps == [5.0, 5.0, 5.0]
    assert transport.calls("POST", SUBMIT)[0].json == {"prompt": "a fox"}
    assert len(transport.calls("GET", POLL)) == 3


def test_progress_is_monotonic_inside_the_poll_band_then_100() -> None:
    connector, _, _ = make_connector(pending(10), pending(60), pending(40), pending(99), DONE)
    reports: list[JobProgress] = []
    connector.process_job(JOB, reports.append)
    values = [r.progress for r in reports]
    assert values[:3] == [5, 15, 25]
    assert values[3:-1] == [25, 60, 60, 95]  # clamped up, held when the provider goes back, capped
    assert values[-1] == 100
    assert reports[2].metadata == {"service_job_id": "job-1"}


def test_progress_is_estimated_from_elapsed_time_when_provider_reports_none() -> None:
    connector, _, _ = make_connector(PENDING, PENDING, DONE, interval=10.0, deadline=100.0)
    reports: list[JobProgress] = []
    connector.process_job(JOB, reports.append)
    assert [r.progress for r in reports if r.current_step == "polling"][1:] == [32.0, 39.0]


def test_provider_reported_failure_is_non_retryable_job_failed() -> None:
    connector, _, _ = make_connector(
        PENDING, json_reply({"status": "failed", "error": "GPU fell over"})
    )
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason) == (T.SERVICE_ERROR, R.JOB_FAILED)
    assert error.retryable is False
    assert "GPU fell over" in error.message
    assert error.context["service_job_id"] == "job-1"
    assert error.context["provider_status"]["status"] == "failed"
    assert error.service == "fakejobs"


def test_hook_classified_failure_is_raised_with_the_provider_job_id() -> None:
    failed = json_reply({"status": "failed", "error": "unsafe prompt", "code": "content_policy"})
    connector, _, _ = make_connector(failed)
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason) == (T.GENERATION_REFUSAL, R.POLICY_VIOLATION)
    assert error.context["service_job_id"] == "job-1"


TRANSIENT = {
    "503": json_reply({"error": "overloaded"}, 503),
    "429": json_reply({"error": "slow down"}, 429),
    "connection_reset": requests.ConnectionError("Connection reset by peer"),
    "read_timeout": requests.ReadTimeout("Read timed out"),
    "html_error_page": Reply(200, [b"<html>bad gateway</html>"], {"content-type": "text/html"}),
}


@pytest.mark.parametrize("failure", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_poll_errors_are_tolerated_until_success(failure: Reply | Exception) -> None:
    connector, _, _ = make_connector(failure, failure, DONE)
    result = connector.process_job(JOB)
    assert result.service_metadata is not None
    assert result.service_metadata.processing_stats == {"polls": 3, "poll_errors": 2}


def test_retry_after_on_a_poll_stretches_the_next_wait() -> None:
    limited = json_reply({"error": "slow down"}, 429, {"Retry-After": "30"})
    connector, _, clock = make_connector(limited, DONE)
    connector.process_job(JOB)
    assert clock.sleeps == [5.0, 30.0]


def test_transient_errors_until_the_deadline_are_a_retryable_service_timeout() -> None:
    connector, transport, clock = make_connector(json_reply({"error": "down"}, 502), deadline=20.0)
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason) == (T.TIMEOUT, R.SERVICE_TIMEOUT)
    assert error.retryable is True
    assert len(transport.calls("GET", POLL)) == 4  # at 5, 10, 15 and 20 seconds
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0]
    ctx = error.context
    assert (ctx["service_job_id"], ctx["polls"], ctx["poll_errors"]) == ("job-1", 4, 4)
    assert (ctx["elapsed"], ctx["last_status"], ctx["limit"]) == (20.0, "submitted", "deadline")
    assert ctx["last_poll_error"]["failure_reason"] == "service_unavailable"


def test_last_poll_lands_on_the_deadline_not_after_it() -> None:
    connector, _, clock = make_connector(PENDING, interval=8.0, deadline=20.0)
    run_failing(connector)
    assert clock.sleeps == [8.0, 8.0, 4.0]


CANCEL_CASES = {
    "api_cannot_cancel": (JobsConnector, None, False, False),
    "cancel_accepted": (CancellableJobsConnector, json_reply({"status": "cancelled"}), True, True),
    "cancel_rejected": (CancellableJobsConnector, json_reply({"error": "no"}, 500), True, False),
    "cancel_unreachable": (CancellableJobsConnector, requests.ConnectionError("down"), True, False),
}


@pytest.mark.parametrize(
    ("cls", "cancel_reply", "attempted", "succeeded"),
    CANCEL_CASES.values(),
    ids=CANCEL_CASES.keys(),
)
def test_deadline_cancels_the_provider_job_where_the_api_allows(
    cls: type[JobsConnector],
    cancel_reply: Reply | Exception | None,
    attempted: bool,
    succeeded: bool,
) -> None:
    connector, transport, _ = make_connector(PENDING, cls=cls, deadline=15.0)
    if cancel_reply is not None:
        transport.add("POST", CANCEL, cancel_reply)
    error = run_failing(connector)
    assert error.failure_reason is R.SERVICE_TIMEOUT
    assert error.context["last_status"] == "pending"
    assert (error.context["cancel_attempted"], error.context["cancel_succeeded"]) == (
        attempted,
        succeeded,
    )
    assert len(transport.calls("POST", CANCEL)) == int(attempted)


def test_max_polls_ends_polling_before_the_deadline() -> None:
    connector, transport, _ = make_connector(PENDING, max_polls=3, deadline=3600.0)
    error = run_failing(connector)
    assert error.failure_reason is R.SERVICE_TIMEOUT
    assert (error.context["limit"], error.context["polls"]) == ("max_polls", 3)
    assert len(transport.calls("GET", POLL)) == 3


NON_RETRYABLE = {
    "401_bad_key": (401, T.AUTH_ERROR, R.INVALID_API_KEY),
    "403_forbidden": (403, T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS),
    "404_unknown_job": (404, T.VALIDATION_ERROR, R.INVALID_REQUEST),
}


@pytest.mark.parametrize(
    ("status", "ftype", "reason"), NON_RETRYABLE.values(), ids=NON_RETRYABLE.keys()
)
def test_non_retryable_poll_error_raises_at_once(
    status: int, ftype: FailureType, reason: FailureReason
) -> None:
    connector, transport, _ = make_connector(PENDING, json_reply({"error": "nope"}, status), DONE)
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason, error.retryable) == (ftype, reason, False)
    assert (error.status_code, error.context["polls"]) == (status, 2)
    assert error.context["service_job_id"] == "job-1"
    assert len(transport.calls("GET", POLL)) == 2


SUBMIT_FAILURES = {
    "429_retry_after": (
        json_reply({"error": "rate limited"}, 429, {"Retry-After": "7"}),
        T.RATE_LIMIT,
        True,
        7.0,
    ),
    "401": (json_reply({"error": "bad key"}, 401), T.AUTH_ERROR, False, None),
    "500": (json_reply({"error": "boom"}, 500), T.SERVICE_ERROR, True, None),
    "connection_error": (requests.ConnectionError("refused"), T.NETWORK_ERROR, True, None),
}


@pytest.mark.parametrize(
    ("reply", "ftype", "retryable", "retry_after"),
    SUBMIT_FAILURES.values(),
    ids=SUBMIT_FAILURES.keys(),
)
def test_submit_errors_keep_the_http_mapping_and_never_poll(
    reply: Reply | Exception, ftype: FailureType, retryable: bool, retry_after: float | None
) -> None:
    connector, transport, _ = make_connector(DONE, submit=reply)
    error = run_failing(connector)
    assert (error.failure_type, error.retryable, error.retry_after) == (
        ftype,
        retryable,
        retry_after,
    )
    assert transport.calls("GET", POLL) == []


def test_submit_response_without_job_id_is_a_response_error() -> None:
    connector, _, _ = make_connector(DONE, submit=json_reply({"status": "queued"}))
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason) == (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA)


def test_interrupted_wait_cancels_the_provider_job() -> None:
    connector, transport, clock = make_connector(PENDING, cls=CancellableJobsConnector)
    transport.add("POST", CANCEL, json_reply({"status": "cancelled"}))

    class SoftTimeLimitExceeded(Exception):
        pass

    def sleep(seconds: float) -> None:
        if clock.sleeps:
            raise SoftTimeLimitExceeded("soft time limit")
        clock.sleep(seconds)

    connector.poll_policy = PollPolicy(clock=clock, sleep=sleep)
    error = run_failing(connector)
    assert (error.failure_type, error.failure_reason) == (T.TIMEOUT, R.JOB_TIMEOUT)
    assert len(transport.calls("POST", CANCEL)) == 1


@pytest.mark.parametrize(
    "bad",
    [{"interval": 0}, {"deadline": -1}, {"max_polls": 0}],
    ids=["interval", "deadline", "max"],
)
def test_poll_policy_rejects_impossible_limits(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PollPolicy(**bad)  # type: ignore[arg-type]


WAITS = {
    "first_poll": ({}, 0.0, 0, None, 5.0),
    "hint_stretches_wait": ({}, 10.0, 2, 12.0, 12.0),
    "cut_to_deadline": ({}, 57.0, 5, None, 3.0),
    "deadline_spent": ({}, 60.0, 5, None, None),
    "max_polls_spent": ({"max_polls": 2}, 10.0, 2, None, None),
}


@pytest.mark.parametrize(
    ("extra", "elapsed", "polls", "hint", "expected"), WAITS.values(), ids=WAITS.keys()
)
def test_next_wait_table(
    extra: dict[str, int], elapsed: float, polls: int, hint: float | None, expected: float | None
) -> None:
    policy = PollPolicy(interval=5.0, deadline=60.0, **extra)  # type: ignore[arg-type]
    assert next_wait(policy, elapsed, polls, hint) == expected


def test_limit_reached_names_the_limit() -> None:
    policy = PollPolicy(interval=1.0, deadline=10.0, max_polls=3)
    assert limit_reached(policy, 1.0, 1) is None
    assert limit_reached(policy, 10.0, 1) == "deadline"
    assert limit_reached(policy, 10.0, 3) == "max_polls"


@pytest.mark.parametrize(
    ("value", "expected"), [(-5, 25), (0, 25), (25, 25), (50, 50), (95, 95), (100, 95)]
)
def test_clamp_progress_holds_the_poll_band(value: float, expected: float) -> None:
    assert clamp_progress(value) == expected


@pytest.mark.parametrize(
    ("elapsed", "expected"), [(-1, 25), (0, 25), (50, 60), (100, 95), (500, 95)]
)
def test_estimate_progress_is_the_share_of_the_deadline(elapsed: float, expected: float) -> None:
    assert estimate_progress(elapsed, 100.0) == expected
