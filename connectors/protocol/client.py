"""HttpClient: the one object that sends a connector's HTTP requests and classifies failures.

Every HTTP mode (one-shot, polling, streaming) holds one, as httpx's client holds a transport:
the session, auth, timeouts, the call observer, the status-to-error mapping and the provider's
refinement of it (an `ApiProfile`) live here, not in a base class. Nothing here retries and
nothing follows a redirect: a failed request raises a ConnectorError and Celery decides.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

from connectors.classify import error_from_exception, error_from_status
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.journal import JobJournal, count_paid_call
from connectors.protocol.gate import CallGate
from connectors.protocol.sessions import new_session, size_pool
from connectors.redact import truncate

__all__ = [
    "PROBE_READ_TIMEOUT",
    "ApiProfile",
    "CallObserver",
    "ErrorRefiner",
    "HttpClient",
    "HttpRequest",
    "Probe",
    "Timeouts",
    "error_text",
    "keep_error",
    "new_session",  # re-exported from connectors.protocol.sessions
    "size_pool",
]

log = logging.getLogger(__name__)
# Told of every call sent: the HTTP status (or the failure type when no reply came) and seconds.
CallObserver = Callable[[str, float], None]
# Turns the status-based error into the provider's verdict, given the response and its JSON body.
ErrorRefiner = Callable[[ConnectorError, requests.Response, Any], ConnectorError]
# A health probe answers in well under a second; a slow one is itself the answer.
PROBE_READ_TIMEOUT = 10.0
# A body that is not JSON is usually a proxy's error page: the next attempt may reach the API.
_NOT_JSON = Classification(FailureType.RESPONSE_ERROR, FailureReason.INVALID_RESPONSE_FORMAT, True)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Timeouts:
    """Separate connect and read timeouts, in seconds."""

    connect: float = 10.0
    read: float = 60.0

    def as_tuple(self) -> tuple[float, float]:
        """`(connect, read)`, as requests takes them."""
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
    read_timeout: float | None = None  # overrides the client's read timeout (probes)
    # Whether the call gate (rate limit, holds, breaker) admits it first; None: every POST
    # (the call that starts paid work), not the GETs that poll, probe or download.
    gated: bool | None = None

    def summary(self) -> dict[str, Any]:
        """What the request was, for forensic context (secrets are redacted downstream)."""
        parts = urlsplit(self.url)
        return {
            "method": self.method,
            "url": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "body": self.json,
        }


def keep_error(error: ConnectorError, response: requests.Response, body: Any) -> ConnectorError:
    """The refiner of a provider whose error bodies add nothing to the status: `error` as is."""
    return error


@dataclass(frozen=True)
class Probe:
    """A cheap, free request that needs a valid key: the provider's health probe."""

    path: str
    method: str = "GET"
    params: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ApiProfile:
    """What one provider's API adds to plain HTTP: its error-body refinement and its probe."""

    refine: ErrorRefiner = keep_error
    probe: Probe | None = None


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


class HttpClient:
    """Sends one service's requests: session, auth, timeouts, error mapping, call observer."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        auth: AuthBase | None = None,
        timeouts: Timeouts | None = None,
        session: requests.Session | None = None,
        on_call: CallObserver | None = None,
        api: ApiProfile | None = None,
        gate: CallGate | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeouts = timeouts or Timeouts()
        self.session = session or new_session()
        self.on_call = on_call
        self.api = api or ApiProfile()
        self.gate = gate
        # The limiter tells a worker's API keys apart by this hash, never by the key.
        self.key_id: str | None = getattr(auth, "key_id", None)

    def with_gate(self, gate: CallGate | None) -> HttpClient:
        """A copy of this client whose paid calls go through `gate` (this one unchanged)."""
        copy = object.__new__(HttpClient)
        copy.__dict__.update(self.__dict__, gate=gate)
        return copy

    def url(self, path: str = "") -> str:
        """`path` under the base URL (the base URL itself when empty)."""
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def send(self, request: HttpRequest, journal: JobJournal | None = None) -> requests.Response:
        """Send once; a network failure or an error status raises a classified error.

        A gated request is admitted by the gate first (which may raise a deferral) and its
        outcome reported back, so limits, holds and the breaker see every paid call. A call
        with the job's `journal` is a paid call, counted there once it may go (by the gate
        itself when it can), so a deferral is no paid call.
        """
        gate = self.gate if self._gated(request) else None
        if gate is None:
            count_paid_call(journal)
            return self._send(request)
        if not gate.admit(self.service, self.key_id, journal):
            count_paid_call(journal)  # an admitted call is always settled below
        try:
            response = self._send(request)
        except ConnectorError as exc:
            gate.settle(self.service, self.key_id, exc)
            raise
        gate.settle(self.service, self.key_id, None)
        return response

    def _gated(self, request: HttpRequest) -> bool:
        return request.method.upper() == "POST" if request.gated is None else request.gated

    def _send(self, request: HttpRequest) -> requests.Response:
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
            error = error_from_exception(exc, self.service, context={"request": request.summary()})
            self._observe(error.failure_type.value, started)
            raise error from exc
        self._observe(str(response.status_code), started)
        if response.status_code >= 300:
            try:
                raise self.error_for_response(response, request)
            finally:
                response.close()  # a streamed error body must not hold its pooled connection
        return response

    def _observe(self, status: str, started: float) -> None:
        if self.on_call is not None:
            try:
                self.on_call(status, time.monotonic() - started)
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
        # A probe is free and says whether the provider is up: no limiter, hold or breaker.
        request = replace(request, gated=False)
        try:
            return self.send(request)
        except ConnectorError as exc:
            if exc.status_code is not None and 300 <= exc.status_code < 400:
                # A redirect names some other host; its answer says nothing about this provider.
                raise exc.with_context(note="a probe does not follow redirects") from None
            raise

    def probe(self) -> bool:
        """Send the profile's probe (True when it answers 2xx, else raises); True without one."""
        probe = self.api.probe
        if probe is not None:
            self.send_probe(HttpRequest(probe.method, self.url(probe.path), params=probe.params))
        return True

    def error_for_response(
        self, response: requests.Response, request: HttpRequest
    ) -> ConnectorError:
        """Classify an error status, then let the provider's profile refine it from the body."""
        body = _json_or_none(response)
        error = error_from_status(
            response.status_code,
            message=f"HTTP {response.status_code} from {self.service}: "
            f"{error_text(response, body)}",
            headers=response.headers,
            service=self.service,
            context={
                "request": request.summary(),
                "response": {
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type"),
                    "body": body if body is not None else response.text,
                },
            },
        )
        return self.api.refine(error, response, body)

    def json_body(self, response: requests.Response) -> Any:
        """The response's JSON, or a response_error when the body is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise _NOT_JSON.error(
                f"{self.service} returned a body that is not JSON "
                f"(HTTP {response.status_code}, {response.headers.get('content-type')})",
                status_code=response.status_code,
                service=self.service,
                context={"response": {"status": response.status_code, "body": response.text}},
            ) from None
