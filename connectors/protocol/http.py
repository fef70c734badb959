"""HTTPConnector: one request, one response, every failure classified.

The session, auth, and timeouts are passed in; the service connector supplies two hooks,
`build_request(job)` and `parse_response(response, job)`. Nothing here retries: a failed request
raises a ConnectorError and Celery decides what happens next.
"""

from __future__ import annotations

import abc
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from connectors.base import BaseConnector
from connectors.classify import error_from_exception, error_from_status
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult, ProgressCallback
from connectors.redact import register_secret, truncate

__all__ = [
    "PROBE_READ_TIMEOUT",
    "ApiKeyHeaderAuth",
    "BearerAuth",
    "CallObserver",
    "HTTPConnector",
    "HttpRequest",
    "Timeouts",
    "new_session",
]

log = logging.getLogger(__name__)
# Told of every call sent: the HTTP status (or the failure type when no reply came) and seconds.
CallObserver = Callable[[str, float], None]
# A health probe answers in well under a second; a slow one is itself the answer.
PROBE_READ_TIMEOUT = 10.0
# A body that is not JSON is usually a proxy's error page: the next attempt may reach the API.
_NOT_JSON = Classification(FailureType.RESPONSE_ERROR, FailureReason.INVALID_RESPONSE_FORMAT, True)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`; the token never shows in repr or logs."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=[REDACTED])"


class ApiKeyHeaderAuth(AuthBase):
    """An API key sent raw in a named header (e.g. `x-goog-api-key`)."""

    def __init__(self, header: str, key: str) -> None:
        register_secret(key)
        self._header = header
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._header] = self._key
        return request

    def __repr__(self) -> str:
        return f"ApiKeyHeaderAuth(header={self._header!r}, key=[REDACTED])"


@dataclass(frozen=True)
class Timeouts:
    """Separate connect and read timeouts, in seconds."""

    connect: float = 10.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request a connector wants sent."""

    method: str
    url: str
    json: Any = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    read_timeout: float | None = None  # overrides the connector's read timeout (probes)

    def summary(self) -> dict[str, Any]:
        """What the request was, for forensic context (secrets are redacted downstream)."""
        parts = urlsplit(self.url)
        return {
            "method": self.method,
            "url": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "body": self.json,
        }


def new_session(pool_size: int = 10) -> requests.Session:
    """A keep-alive session with a connection pool and no retries of its own."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def error_text(response: requests.Response, body: Any) -> str:
    """The most useful one-line description of an error response."""
    if isinstance(body, Mapping):
        err = body.get("error", body.get("message", body.get("detail")))
        if isinstance(err, Mapping):
            err = err.get("message") or err.get("code") or json.dumps(err)[:300]
        if err:
            return str(err)
    text = _SPACE.sub(" ", _TAGS.sub(" ", response.text or "")).strip()
    return truncate(text, 300) if text else (response.reason or "no response body")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class HTTPConnector(BaseConnector):
    """A connector that talks to its provider over HTTP with an injected session."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: AuthBase | None = None,
        timeouts: Timeouts | None = None,
        session: requests.Session | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeouts = timeouts or Timeouts()
        self.session = session or new_session()
        self._on_call = on_call

    def url(self, path: str = "") -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    @abc.abstractmethod
    def build_request(self, job: JobData) -> HttpRequest:
        """The request for this job (payload already validated)."""

    def parse_response(self, response: requests.Response, job: JobData) -> JobResult:
        """Turn a 2xx response into a result, or raise a ConnectorError (one-shot mode only).

        The polling and streaming modes build their results from later responses or chunks,
        so they do not implement this.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement parse_response()")

    def process_job_impl(self, job: JobData, progress: ProgressCallback) -> JobResult:
        request = self.build_request(job)
        progress(
            JobProgress(
                job_id=job.id, progress=10, message="Submitting request", current_step="submitting"
            )
        )
        response = self.send(request)
        progress(
            JobProgress(
                job_id=job.id, progress=90, message="Processing response", current_step="parsing"
            )
        )
        result = self.parse_response(response, job)
        progress(
            JobProgress(job_id=job.id, progress=100, message="Completed", current_step="completed")
        )
        return result

    def send(self, request: HttpRequest) -> requests.Response:
        """Send once; a network failure or an error status raises a classified error."""
        started = time.monotonic()
        try:
            response = self.session.request(
                request.method,
                request.url,
                json=request.json,
                params=request.params,
                headers=dict(request.headers),
                auth=self.auth,
                timeout=self._timeout(request),
                stream=request.stream,
                # requests drops only `Authorization` when a redirect changes host; an API key in
                # its own header (x-goog-api-key) would follow. An API call is never redirected.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            error = error_from_exception(exc, self.service_type)
            self._observe(error.failure_type.value, started)
            error.annotate(request=request.summary())
            raise error from exc
        self._observe(str(response.status_code), started)
        if response.status_code >= 300:
            try:
                raise self.error_for_response(response, request)
            finally:
                response.close()  # a streamed error body must not hold its pooled connection
        return response

    def _observe(self, status: str, started: float) -> None:
        if self._on_call is not None:
            try:
                self._on_call(status, time.monotonic() - started)
            except Exception:  # a metric lost must not change the job's outcome
                log.exception("call observer failed")

    def _timeout(self, request: HttpRequest) -> tuple[float, float]:
        if request.read_timeout is None:
            return self.timeouts.as_tuple()
        return (self.timeouts.connect, request.read_timeout)

    def send_probe(self, request: HttpRequest) -> requests.Response:
        """Send a health probe the normal way (`send`: no redirects), with a short read timeout."""
        if request.read_timeout is None:
            request = replace(request, read_timeout=PROBE_READ_TIMEOUT)
        try:
            return self.send(request)
        except ConnectorError as exc:
            if exc.status_code is not None and 300 <= exc.status_code < 400:
                # A redirect names some other host; its answer says nothing about this provider.
                exc.explain("a probe does not follow redirects")
            raise

    def error_for_response(
        self, response: requests.Response, request: HttpRequest
    ) -> ConnectorError:
        """Classify an error status; services refine it with `refine_error`."""
        body = _json_or_none(response)
        error = error_from_status(
            response.status_code,
            message=f"HTTP {response.status_code} from {self.service_type}: "
            f"{error_text(response, body)}",
            headers=response.headers,
            service=self.service_type,
            context={
                "request": request.summary(),
                "response": {
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type"),
                    "body": body if body is not None else response.text,
                },
            },
        )
        return self.refine_error(error, response, body)

    def refine_error(
        self, error: ConnectorError, response: requests.Response, body: Any
    ) -> ConnectorError:
        """Hook: adjust a status-based classification with the provider's error body."""
        return error

    def json_body(self, response: requests.Response) -> Any:
        """The response's JSON, or a response_error when the body is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise _NOT_JSON.error(
                f"{self.service_type} returned a body that is not JSON "
                f"(HTTP {response.status_code}, {response.headers.get('content-type')})",
                status_code=response.status_code,
                service=self.service_type,
                context={"response": {"status": response.status_code, "body": response.text}},
            ) from None
