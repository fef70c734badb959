"""PollingHTTPConnector: submit a job, then poll the provider until it finishes or time runs out.

The design record's AsyncHTTPConnector. The service supplies the requests and reads the replies;
how often and how long to poll is a `PollPolicy` passed in, whose clock and sleep tests replace. A
failure the provider reports is final (`job_failed`, not retryable); a poll that fails in transit
is tolerated until the deadline, because the provider job still runs and the next poll may reach
it; a deadline passed is a retryable `service_timeout`, after a best-effort cancel.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal

import requests

from connectors.base import BaseConnector, P
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.journal import PROVIDER_JOB
from connectors.models import (
    JobData,
    JobResult,
    ProgressCallback,
    ServiceMetadata,
    report_progress,
)
from connectors.protocol.client import HttpClient, HttpRequest

__all__ = [
    "POLL_PROGRESS_END",
    "POLL_PROGRESS_START",
    "PollLimit",
    "PollPolicy",
    "PollState",
    "PollStatus",
    "PollingHTTPConnector",
    "clamp_progress",
    "estimate_progress",
    "limit_reached",
    "next_wait",
    "poll_progress",
]

log = logging.getLogger(__name__)

PollState = Literal["pending", "completed", "failed"]
PollLimit = Literal["deadline", "max_polls"]
# Progress while polling stays inside this band: below it is submission, above it the result.
POLL_PROGRESS_START = 25.0
POLL_PROGRESS_END = 95.0


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll and for how long; clock and sleep are injectable so tests never wait."""

    interval: float = 5.0  # seconds between polls (the original's polling_interval_ms 5000)
    deadline: float = 300.0  # seconds from the start of the job (polling_timeout_seconds 300)
    max_polls: int | None = None  # None: only the deadline limits the number of polls
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        bad_polls = self.max_polls is not None and self.max_polls < 1
        if min(self.interval, self.deadline) <= 0 or bad_polls:
            raise ValueError(f"PollPolicy needs interval, deadline > 0 and max_polls >= 1: {self}")


@dataclass(frozen=True)
class PollStatus:
    """What one poll said: still pending (with optional progress), completed, or failed."""

    state: PollState
    progress: float | None = None  # the provider's own percentage (0-100), if it gives one
    message: str | None = None  # the provider's status text or failure message
    result: Any = None  # whatever `build_result` needs from a completed job
    raw: Any = None  # the provider's status body, kept for forensic context on failure
    error: ConnectorError | None = None  # a classified error for a failed job, if the hook has one


def clamp_progress(value: float) -> float:
    """`value` held inside the polling band, 25-95."""
    return max(POLL_PROGRESS_START, min(POLL_PROGRESS_END, value))


def estimate_progress(elapsed: float, deadline: float) -> float:
    """Progress for a provider that reports none: the share of the deadline used, in 25-95."""
    if deadline <= 0:
        return POLL_PROGRESS_END
    share = max(0.0, elapsed) / deadline
    return clamp_progress(POLL_PROGRESS_START + (POLL_PROGRESS_END - POLL_PROGRESS_START) * share)


def poll_progress(
    reported: float | None, elapsed: float, deadline: float, shown: float = POLL_PROGRESS_START
) -> float:
    """The progress to show after a pending poll: the provider's, else estimated; never lower."""
    if reported is None:
        return max(shown, estimate_progress(elapsed, deadline))
    return max(shown, clamp_progress(reported))  # a provider may go backwards; the bar does not


def limit_reached(policy: PollPolicy, elapsed: float, polls: int) -> PollLimit | None:
    """Which limit, if any, forbids another poll after `polls` polls and `elapsed` seconds."""
    if policy.max_polls is not None and polls >= policy.max_polls:
        return "max_polls"
    if elapsed >= policy.deadline:
        return "deadline"
    return None


def next_wait(
    policy: PollPolicy, elapsed: float, polls: int, hint: float | None = None
) -> float | None:
    """Seconds to sleep before the next poll, or None when no poll is left.

    A provider's wait hint (a 429's Retry-After) stretches the interval, and the wait is cut so
    the last poll lands on the deadline rather than after it: the provider gets the whole budget.
    """
    if limit_reached(policy, elapsed, polls) is not None:
        return None
    return min(max(policy.interval, hint or 0.0), policy.deadline - elapsed)


@dataclass
class _Run:
    """The mutable state of one job's polling loop (kept for the timeout's context)."""

    service_job_id: str
    started: float
    polls: int = 0
    poll_errors: int = 0
    last_status: str = "submitted"
    last_message: str | None = None
    last_error: ConnectorError | None = None
    shown: float = POLL_PROGRESS_START

    def context(self, elapsed: float) -> dict[str, Any]:
        return {
            "service_job_id": self.service_job_id,
            "polls": self.polls,
            "elapsed": round(elapsed, 3),
            "last_status": self.last_status,
            "last_message": self.last_message,
            "poll_errors": self.poll_errors,
            "last_poll_error": self.last_error.to_dict() if self.last_error else None,
        }


class PollingHTTPConnector(BaseConnector[P], Generic[P]):
    """Submit-then-poll over HTTP: the provider runs the job, this connector waits for it."""

    def __init__(
        self, *, client: HttpClient, poll_policy: PollPolicy | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.poll_policy = poll_policy or PollPolicy()

    @abc.abstractmethod
    def build_request(self, job: JobData, payload: P) -> HttpRequest:
        """The submit request for this job."""

    @abc.abstractmethod
    def extract_job_id(self, response: requests.Response, job: JobData) -> str:
        """The provider's id for the job, from the 2xx submit response."""

    @abc.abstractmethod
    def build_poll_request(self, service_job_id: str, job: JobData) -> HttpRequest:
        """The status request for the provider's job."""

    @abc.abstractmethod
    def check_status(self, response: requests.Response, job: JobData) -> PollStatus:
        """Read a 2xx status response; a raised retryable ConnectorError counts as a failed poll."""

    @abc.abstractmethod
    def build_result(self, status: PollStatus, job: JobData, payload: P) -> JobResult:
        """Turn the completed status into the job's result."""

    def build_cancel_request(self, service_job_id: str, job: JobData) -> HttpRequest | None:
        """The request that cancels the provider's job; None when the API cannot cancel."""
        return None

    def health_probe(self) -> bool:
        """The client's probe (its `ApiProfile`), through `send_probe`; healthy without one."""
        return self.client.probe()

    def process_job_impl(self, job: JobData, payload: P, progress: ProgressCallback) -> JobResult:
        # The deadline covers submission too: it bounds the whole job, not just the waiting.
        started = self.poll_policy.clock()
        service_job_id = self._submitted(job, payload, progress)
        run = _Run(service_job_id=service_job_id, started=started)
        meta = {"service_job_id": service_job_id}
        report_progress(progress, job, POLL_PROGRESS_START, "polling", "Waiting for provider", meta)
        try:
            status = self._poll(run, job, progress)
        except ConnectorError as exc:
            if not exc.retryable:  # the provider job failed or is gone: a replay submits anew
                job.journal.drop(PROVIDER_JOB)
            raise
        except Exception:
            # Interrupted mid-wait (e.g. Celery's soft time limit): the provider job would
            # otherwise keep running, and billing, with nobody left to collect it.
            self._cancel(run, job)
            raise
        result = self.build_result(status, job, payload)
        report_progress(progress, job, 100, "completed", "Completed", meta)
        return _with_job_id(result, self.service_type, run)

    def _submitted(self, job: JobData, payload: P, progress: ProgressCallback) -> str:
        """The provider's job id: the one an earlier delivery submitted, else a new job's."""
        saved = job.journal.load(PROVIDER_JOB) or {}
        if isinstance(saved.get("id"), str) and saved["id"]:
            report_progress(progress, job, 15, "resuming", "Polling the job already submitted")
            return str(saved["id"])
        report_progress(progress, job, 5, "initializing", "Preparing request")
        request = self.build_request(job, payload)
        report_progress(progress, job, 15, "submitting", "Submitting job")
        submitted = self.client.send(request, journal=job.journal)
        service_job_id = self.extract_job_id(submitted, job)
        if not isinstance(service_job_id, str) or not service_job_id:
            no_id = Classification(FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA)
            raise no_id.error(
                f"{self.service_type} accepted the job but returned no job id",
                context={"request": request.summary(), "job_id": repr(service_job_id)},
            )
        # Before anything else can fail: a redelivery polls this job instead of paying again.
        job.journal.save(PROVIDER_JOB, {"id": service_job_id})
        return service_job_id

    def _poll(self, run: _Run, job: JobData, progress: ProgressCallback) -> PollStatus:
        policy = self.poll_policy
        hint: float | None = None
        while True:
            elapsed = policy.clock() - run.started
            wait = next_wait(policy, elapsed, run.polls, hint)
            if wait is None:
                raise self._timed_out(run, job, limit_reached(policy, elapsed, run.polls))
            policy.sleep(wait)
            run.polls += 1
            try:
                response = self.client.send(self.build_poll_request(run.service_job_id, job))
                status = self.check_status(response, job)
            except ConnectorError as exc:
                where = {"service_job_id": run.service_job_id, "polls": run.polls}
                error = exc.with_context(where)
                if not error.retryable:
                    raise error from exc.__cause__  # 401, 404, ...: no later poll can succeed
                run.poll_errors += 1
                run.last_error = error
                hint = error.retry_after
                log.warning("%s poll %d failed, polling on: %r", self.service_type, run.polls, exc)
                continue
            hint = None
            run.last_status, run.last_message = status.state, status.message
            if status.state == "completed":
                return status
            if status.state == "failed":
                job.journal.drop(PROVIDER_JOB)  # over at the provider: a retry submits anew
                raise self._job_failed(run, status)
            elapsed = policy.clock() - run.started
            run.shown = poll_progress(status.progress, elapsed, policy.deadline, run.shown)
            meta = {"service_job_id": run.service_job_id, "polls": run.polls}
            message = status.message or "Waiting for provider"
            report_progress(progress, job, run.shown, "polling", message, meta)

    def _job_failed(self, run: _Run, status: PollStatus) -> ConnectorError:
        elapsed = self.poll_policy.clock() - run.started
        if status.error is not None:
            return status.error.with_context(run.context(elapsed))
        # The provider ran the job and said no; the same input fails again: not retryable.
        failed = Classification(FailureType.SERVICE_ERROR, FailureReason.JOB_FAILED, False)
        return failed.error(
            f"{self.service_type} job {run.service_job_id} failed: "
            f"{status.message or 'no reason given'}",
            context={**run.context(elapsed), "provider_status": status.raw},
        )

    def _timed_out(self, run: _Run, job: JobData, limit: PollLimit | None) -> ConnectorError:
        elapsed = self.poll_policy.clock() - run.started
        cancel = self._cancel(run, job)
        what = f"{run.polls} polls" if limit == "max_polls" else f"{elapsed:.0f}s"
        return Classification(FailureType.TIMEOUT, FailureReason.SERVICE_TIMEOUT, True).error(
            f"{self.service_type} job {run.service_job_id} still {run.last_status} "
            f"after {what} ({run.polls} polls, {run.poll_errors} failed)",
            context={**run.context(elapsed), "limit": limit, **cancel},
        )

    def _cancel(self, run: _Run, job: JobData) -> dict[str, bool]:
        """Best-effort cancel of the provider job. Never raises: the caller already has an error."""
        job.journal.drop(PROVIDER_JOB)  # cancelled or abandoned: a retry submits a new job
        request = None
        try:
            request = self.build_cancel_request(run.service_job_id, job)
            if request is not None:
                self.client.send(request)
                return {"cancel_attempted": True, "cancel_succeeded": True}
        except Exception as exc:
            log.warning("%s cancel of %s failed: %r", self.service_type, run.service_job_id, exc)
        return {"cancel_attempted": request is not None, "cancel_succeeded": False}


def _with_job_id(result: JobResult, service_type: str, run: _Run) -> JobResult:
    meta = result.service_metadata or ServiceMetadata(service_type=service_type)
    stats = {"polls": run.polls, "poll_errors": run.poll_errors, **(meta.processing_stats or {})}
    job_id = meta.service_job_id or run.service_job_id
    meta = meta.model_copy(update={"service_job_id": job_id, "processing_stats": stats})
    return result.model_copy(update={"service_metadata": meta})
