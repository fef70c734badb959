"""HTTPConnector on a real requests.Session with a scripted transport (no sockets)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
import requests

from connectors.base import AnyPayload
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol.http import (
    ApiKeyHeaderAuth,
    BearerAuth,
    HttpClient,
    HTTPConnector,
    HttpRequest,
    Timeouts,
    new_session,
)
from connectors.redact import MAX_CONTEXT_CHARS
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    body_json,
    empty_reply,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)

R = FailureReason
T = FailureType
TOKEN = "http-unit-test-token-9a8b7c"
JOB = JobData(id="job-7", type="echo", payload={"prompt": "a cat"})


class EchoHTTP(HTTPConnector[AnyPayload]):
    """POSTs the payload to /generate?key=... and returns the JSON body as data."""

    service_type: ClassVar[str] = "echo_http"

    def build_request(self, job: JobData, payload: AnyPayload) -> HttpRequest:
        return HttpRequest(
            "POST",
            self.client.url("/generate"),
            json=job.payload,
            params={"key": "query-secret"},
            headers={"X-Trace": job.id},
        )

    def parse_response(
        self, response: requests.Response, job: JobData, payload: AnyPayload
    ) -> JobResult:
        return JobResult(data={"body": self.client.json_body(response)})


def make(*script: Reply | BaseException, **kwargs: Any) -> tuple[EchoHTTP, FakeAdapter]:
    session, adapter = fake_session(*script)
    kwargs.setdefault("auth", BearerAuth(TOKEN))
    client = HttpClient("echo_http", "https://api.example.test/v1/", session=session, **kwargs)
    return EchoHTTP(client=client), adapter


def failure(connector: HTTPConnector, job: JobData = JOB) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        connector.process_job(job)
    return info.value


# --- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_passes_to_parse_response(status: int) -> None:
    body = {} if status == 204 else {"ok": True}
    connector, _ = make(json_reply(body, status))
    assert connector.process_job(JOB).data == {"body": body}


def test_request_is_sent_as_built_with_auth_and_timeouts() -> None:
    connector, adapter = make(json_reply({"ok": True}), timeouts=Timeouts(connect=3, read=42))
    connector.process_job(JOB)
    assert len(adapter.requests) == 1
    sent = adapter.last
    assert sent.method == "POST"
    assert sent.url == "https://api.example.test/v1/generate?key=query-secret"
    assert body_json(sent) == {"prompt": "a cat"}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["X-Trace"] == "job-7"
    assert sent.headers["Content-Type"] == "application/json"
    assert adapter.timeouts == [(3, 42)]


def test_progress_is_reported_through_the_request() -> None:
    seen: list[JobProgress] = []
    connector, _ = make(json_reply({"ok": True}))
    connector.process_job(JOB, seen.append)
    assert [p.progress for p in seen] == [10, 90, 100]
    assert [p.current_step for p in seen] == ["submitting", "parsing", "completed"]


def test_url_joins_base_and_path_without_double_slashes() -> None:
    connector, _ = make()
    assert connector.client.url() == "https://api.example.test/v1"
    assert connector.client.url("/x") == "https://api.example.test/v1/x"
    assert connector.client.url("x") == "https://api.example.test/v1/x"


# --- error statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "ftype", "reason", "retryable"),
    [
        (json_reply({"error": "bad field"}, 400), T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        (json_reply({"error": "bad key"}, 401), T.AUTH_ERROR, R.INVALID_API_KEY, False),
        (json_reply({"error": "pay"}, 402), T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
        (json_reply({"error": "no"}, 403), T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
        (json_reply({"detail": "gone"}, 404), T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        (empty_reply(408), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
        (json_reply({"message": "busy"}, 409), T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE, True),
        (empty_reply(413), T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        (json_reply({"detail": []}, 422), T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        (json_reply({"error": "slow"}, 429), T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        (json_reply({"error": "oops"}, 500), T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (html_reply("<h1>Bad Gateway</h1>", 502), T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (empty_reply(503), T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        (text_reply("teapot", 418), T.SYSTEM_ERROR, R.UNKNOWN_ERROR, False),  # unnamed 4xx
    ],
    ids=lambda v: str(v.status) if isinstance(v, Reply) else None,
)
def test_error_status_raises_a_classified_error(
    reply: Reply, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    connector, adapter = make(reply)
    error = failure(connector)
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        ftype,
        reason,
        retryable,
    )
    assert error.status_code == reply.status
    assert error.service == "echo_http"
    assert str(error).startswith(f"HTTP {reply.status} from echo_http")
    assert len(adapter.requests) == 1  # no retries inside the connector


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (json_reply({"error": "model overloaded"}, 500), "model overloaded"),
        (json_reply({"error": {"message": "nested message", "code": "x"}}, 400), "nested message"),
        (json_reply({"error": {"code": "only_code"}}, 400), "only_code"),
        (json_reply({"message": "top-level message"}, 400), "top-level message"),
        (json_reply({"detail": "fastapi detail"}, 422), "fastapi detail"),
        (html_reply("<html><body><h1>502 Bad Gateway</h1></body></html>", 502), "502 Bad Gateway"),
        (empty_reply(503), "Service Unavailable"),
    ],
)
def test_error_message_carries_the_most_useful_text(reply: Reply, text: str) -> None:
    connector, _ = make(reply)
    assert text in str(failure(connector))


def test_html_tags_are_stripped_from_the_message() -> None:
    connector, _ = make(html_reply("<html><b>Bad</b>   <i>Gateway</i></html>", 502))
    message = str(failure(connector))
    assert "<" not in message
    assert message.endswith("Bad Gateway")


def test_error_context_has_the_request_summary_without_credentials() -> None:
    connector, _ = make(json_reply({"error": "nope"}, 400))
    error = failure(connector)
    request = error.context["request"]
    assert request == {
        "method": "POST",
        "url": "https://api.example.test/v1/generate",  # query (may hold keys) dropped
        "body": {"prompt": "a cat"},
    }
    dumped = json.dumps(error.to_dict())
    assert TOKEN not in dumped
    assert "Authorization" not in dumped
    assert "query-secret" not in dumped


def test_error_context_has_the_response_status_type_and_body() -> None:
    connector, _ = make(json_reply({"error": "nope", "id": 3}, 400))
    response = failure(connector).context["response"]
    assert response == {
        "status": 400,
        "content_type": "application/json",
        "body": {"error": "nope", "id": 3},
    }


def test_large_error_body_is_truncated_in_context() -> None:
    connector, _ = make(html_reply("<p>" + "x" * 50_000 + "</p>", 502))
    error = failure(connector)
    body = error.context["response"]["body"]
    assert isinstance(body, str)
    assert len(body) <= MAX_CONTEXT_CHARS
    assert "truncated" in body
    assert len(str(error)) < 1000


def test_token_echoed_in_an_error_body_is_scrubbed() -> None:
    connector, _ = make(json_reply({"error": f"Incorrect API key provided: {TOKEN}"}, 401))
    error = failure(connector)
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert TOKEN not in json.dumps(error.to_dict())


def test_retry_after_header_reaches_the_error() -> None:
    connector, _ = make(json_reply({"error": "slow"}, 429, {"Retry-After": "17"}))
    assert failure(connector).retry_after == 17.0


def test_retry_after_ms_header_wins() -> None:
    reply = json_reply({"error": "slow"}, 429, {"Retry-After": "17", "retry-after-ms": "500"})
    connector, _ = make(reply)
    assert failure(connector).retry_after == 0.5


@pytest.mark.parametrize(
    ("status", "header", "retryable"),
    [(503, "false", False), (500, "false", False), (400, "true", True), (409, "false", False)],
)
def test_x_should_retry_header_overrides_retryability(
    status: int, header: str, retryable: bool
) -> None:
    connector, _ = make(json_reply({"error": "e"}, status, {"x-should-retry": header}))
    assert failure(connector).retryable is retryable


# --- network failures ---------------------------------------------------------------------------

DNS = (
    "HTTPSConnectionPool(host='api.example.test', port=443): Max retries exceeded (Caused by "
    "NameResolutionError(\"Failed to resolve 'api.example.test' ([Errno -2] Name or service "
    'not known)"))'
)


@pytest.mark.parametrize(
    ("exc", "ftype", "reason"),
    [
        (
            requests.ConnectionError("[Errno 111] Connection refused"),
            T.NETWORK_ERROR,
            R.CONNECTION_FAILED,
        ),
        (
            requests.ConnectionError("Connection aborted: ConnectionResetError(104)"),
            T.NETWORK_ERROR,
            R.CONNECTION_FAILED,
        ),
        (requests.ConnectionError(DNS), T.NETWORK_ERROR, R.DNS_RESOLUTION),
        (
            requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"),
            T.NETWORK_ERROR,
            R.SSL_CERTIFICATE,
        ),
        (requests.exceptions.ProxyError("407"), T.NETWORK_ERROR, R.PROXY_ERROR),
        (requests.ConnectTimeout("connect timeout=10"), T.TIMEOUT, R.NETWORK_TIMEOUT),
        (requests.ReadTimeout("read timeout=60"), T.TIMEOUT, R.NETWORK_TIMEOUT),
        (
            requests.exceptions.ChunkedEncodingError("IncompleteRead(0 bytes read)"),
            T.NETWORK_ERROR,
            R.CONNECTION_FAILED,
        ),
    ],
    ids=["refused", "reset", "dns", "tls", "proxy", "connect_timeout", "read_timeout", "chunked"],
)
def test_network_failure_raises_a_classified_retryable_error(
    exc: BaseException, ftype: FailureType, reason: FailureReason
) -> None:
    connector, adapter = make(exc)
    error = failure(connector)
    assert (error.failure_type, error.failure_reason) == (ftype, reason)
    assert error.retryable is True
    assert error.service == "echo_http"
    assert error.__cause__ is exc
    assert error.context["request"]["url"] == "https://api.example.test/v1/generate"
    assert len(adapter.requests) == 1


def test_network_failure_context_has_no_credentials() -> None:
    connector, _ = make(requests.ConnectionError("refused"))
    dumped = json.dumps(failure(connector).to_dict())
    assert TOKEN not in dumped
    assert "query-secret" not in dumped


def test_network_failure_request_context_is_redacted_and_truncated() -> None:
    session, _ = fake_session(requests.ConnectionError("refused"))
    connector = EchoHTTP(
        client=HttpClient("echo_http", "https://api.example.test", session=session)
    )
    job = JobData(id="j", type="echo", payload={"api_key": "sk-in-body-123456", "p": "x" * 9000})
    error = failure(connector, job)
    body = error.context["request"]["body"]
    assert body["api_key"] != "sk-in-body-123456"
    assert len(body["p"]) <= MAX_CONTEXT_CHARS


# --- bodies that are not JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        html_reply("<html>maintenance</html>", 200),
        text_reply("not json at all", 200),
        empty_reply(200),
        Reply(200, b"\xff\xfe\x00garbage", {"Content-Type": "application/json"}),
    ],
    ids=["html", "text", "empty", "binary"],
)
def test_non_json_success_body_is_a_response_error(reply: Reply) -> None:
    connector, _ = make(reply)
    error = failure(connector)
    assert (error.failure_type, error.failure_reason) == (
        T.RESPONSE_ERROR,
        R.INVALID_RESPONSE_FORMAT,
    )
    assert error.status_code == 200
    assert "not JSON" in str(error)
    assert error.context["response"]["status"] == 200


# --- auth helpers and session -------------------------------------------------------------------


def test_bearer_auth_sets_the_authorization_header_and_hides_the_token() -> None:
    auth = BearerAuth("bearer-secret-abcdef")
    prepared = requests.Request("GET", "https://x.test", auth=auth).prepare()
    assert prepared.headers["Authorization"] == "Bearer bearer-secret-abcdef"
    assert "bearer-secret-abcdef" not in repr(auth)
    assert "REDACTED" in repr(auth)


def test_api_key_header_auth_sets_its_header_and_hides_the_key() -> None:
    auth = ApiKeyHeaderAuth("x-goog-api-key", "goog-secret-abcdef")
    prepared = requests.Request("GET", "https://x.test", auth=auth).prepare()
    assert prepared.headers["x-goog-api-key"] == "goog-secret-abcdef"
    assert "Authorization" not in prepared.headers
    assert "goog-secret-abcdef" not in repr(auth)
    assert "x-goog-api-key" in repr(auth)


def test_api_key_header_auth_reaches_the_wire() -> None:
    connector, adapter = make(
        json_reply({"ok": True}), auth=ApiKeyHeaderAuth("x-api-key", "hdr-secret-123456")
    )
    connector.process_job(JOB)
    assert adapter.last.headers["x-api-key"] == "hdr-secret-123456"


def test_auth_secrets_are_registered_for_scrubbing() -> None:
    BearerAuth("registered-bearer-secret")
    ApiKeyHeaderAuth("x-k", "registered-header-secret")
    error = ConnectorError("echo registered-bearer-secret and registered-header-secret")
    assert "registered-" not in str(error)


def test_new_session_never_retries_by_itself() -> None:
    session = new_session()
    for url in ("http://x.test", "https://x.test"):
        adapter = session.get_adapter(url)
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.max_retries.total == 0
        assert adapter.max_retries.connect in (0, None)


def test_new_session_pool_size_is_configurable() -> None:
    adapter = new_session(pool_size=3).get_adapter("https://x.test")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter._pool_maxsize == 3  # type: ignore[attr-defined]


def test_default_session_and_timeouts() -> None:
    client = HttpClient("echo_http", "https://api.example.test")
    assert isinstance(client.session, requests.Session)
    assert client.timeouts.as_tuple() == (10.0, 60.0)


def test_request_summary_drops_query_and_keeps_method_and_body() -> None:
    request = HttpRequest("PUT", "https://h.test/p/a?key=secret#frag", json={"a": 1})
    assert request.summary() == {"method": "PUT", "url": "https://h.test/p/a", "body": {"a": 1}}


def test_a_redirect_is_not_followed_so_an_api_key_header_cannot_leave_the_host() -> None:
    connector, adapter = make(
        Reply(307, b"", {"Location": "https://elsewhere.example/steal"}),
        json_reply({"ok": True}),
        auth=ApiKeyHeaderAuth("x-goog-api-key", "AIzaSECRET123456"),
    )
    error = failure(connector)
    assert error.status_code == 307
    assert len(adapter.requests) == 1
