"""HTTPConnector: the one-shot mode. One request, one response, every failure classified.

The connector holds an `HttpClient` (session, auth, timeouts, error mapping, call observer) and
the service supplies two hooks, `build_request(job, payload)` and `parse_response(response, job,
payload)`. Nothing here retries: a failed request raises a ConnectorError and Celery decides
what happens next. The client, auth and request types are re-exported for the services.
"""

from __future__ import annotations

import abc
from typing import Any, Generic

import requests

from connectors.assets.base import SERVICE as STORAGE
from connectors.base import BaseConnector, P
from connectors.errors import ConnectorError
from connectors.journal import ANSWER
from connectors.models import JobData, JobResult, ProgressCallback, report_progress
from connectors.protocol.answers import restore_answer, snapshot_answer
from connectors.protocol.auth import ApiKeyHeaderAuth, BearerAuth
from connectors.protocol.client import (
    PROBE_READ_TIMEOUT,
    ApiProfile,
    CallObserver,
    HttpClient,
    HttpRequest,
    Probe,
    Timeouts,
    new_session,
)

__all__ = [
    "PROBE_READ_TIMEOUT",
    "ApiKeyHeaderAuth",
    "ApiProfile",
    "BearerAuth",
    "CallObserver",
    "HTTPConnector",
    "HttpClient",
    "HttpRequest",
    "Probe",
    "Timeouts",
    "new_session",
]


class HTTPConnector(BaseConnector[P], Generic[P]):
    """A connector that sends one request per job through its `HttpClient`."""

    def __init__(self, *, client: HttpClient, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    @abc.abstractmethod
    def build_request(self, job: JobData, payload: P) -> HttpRequest:
        """The request for this job."""

    @abc.abstractmethod
    def parse_response(self, response: requests.Response, job: JobData, payload: P) -> JobResult:
        """Turn the 2xx response into a result, or raise a ConnectorError."""

    def call(
        self, request: HttpRequest, job: JobData, progress: ProgressCallback
    ) -> requests.Response:
        """Hook: send the paid request, counted once admitted (A1111 polls its progress)."""
        return self.client.send(request, journal=job.journal)

    def process_job_impl(self, job: JobData, payload: P, progress: ProgressCallback) -> JobResult:
        request = self.build_request(job, payload)
        response = self._answer(job, request, progress)
        report_progress(progress, job, 90, "parsing", "Processing response")
        try:
            result = self.parse_response(response, job, payload)
        except Exception as exc:
            # A failure to store the outputs keeps the answer for the retry; a failure in the
            # answer itself (a workflow error in a 200) must be asked again, not replayed.
            if not (isinstance(exc, ConnectorError) and exc.service == STORAGE):
                job.journal.drop(ANSWER)
            raise
        report_progress(progress, job, 100, "completed", "Completed")
        return result

    def _answer(
        self, job: JobData, request: HttpRequest, progress: ProgressCallback
    ) -> requests.Response:
        """The provider's answer: the one an earlier attempt paid for, else a new call's."""
        saved = job.journal.load(ANSWER)
        answer = restore_answer(saved) if saved is not None else None
        if answer is not None:
            report_progress(progress, job, 10, "resuming", "Using the answer already paid for")
            return answer
        report_progress(progress, job, 10, "submitting", "Submitting request")
        response = self.call(request, job, progress)
        if not request.stream:  # a streamed body is read by the hook, once
            job.journal.save(ANSWER, snapshot_answer(response))
        return response

    def health_probe(self) -> bool:
        """The client's probe (its `ApiProfile`), through `send_probe`; healthy without one."""
        return self.client.probe()
