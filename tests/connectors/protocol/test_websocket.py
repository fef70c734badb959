"""The WebSocket mode with scripted frames: routing, progress, completion, deadline, errors."""

from __future__ import annotations

from typing import Any

import pytest
import websocket

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol.client import HttpClient
from connectors.protocol.websocket import (
    Message,
    Step,
    Submission,
    WebSocketConnector,
    decode_frame,
    socket_error,
)
from tests.connectors.fakes import fake_session
from tests.connectors.protocol.ws_fakes import FakeClock, FakeConnect, FakeSocket, frame

R, T = FailureReason, FailureType
JOB = JobData(id="job-1", type="demo", payload={})


class DemoConnector(WebSocketConnector[Any]):
    """A minimal service: key "P", progress from `value`, done on `end`, failure on `boom`."""

    service_type = "demo"

    def __init__(self, connect: FakeConnect, *, finished: bool = False, **kwargs: Any) -> None:
        session, self.adapter = fake_session()
        client = HttpClient("demo", "http://127.0.0.1:1", session=session)
        kwargs.setdefault("deadline", 30.0)
        super().__init__(client=client, connect=connect, **kwargs)
        self.finished = finished
        self.submitted = 0
        self.built: list[Any] = []

    def websocket_url(self, job: JobData, payload: Any) -> str:
        return "ws://127.0.0.1:1/ws?clientId=c1"

    def submit(self, job: JobData, payload: Any) -> Submission:
        self.submitted += 1
        return Submission("P", finished=self.finished)

    def read_message(self, message: Message, submission: Submission) -> Step:
        kind, data = message["type"], message.get("data") or {}
        if kind == "tick":
            return Step("progress", data.get("value"), f"tick {data.get('value')}")
        if kind == "out":
            return Step("progress", output=data["item"])
        if kind == "end":
            return Step("done")
        if kind == "boom":
            error = ConnectorError("node failed", failure_reason="job_failed", retryable=False)
            return Step("failed", error=error)
        return Step()

    def build_result(
        self, submission: Submission, outputs: list[Any], job: JobData, payload: Any
    ) -> JobResult:
        self.built = outputs
        return JobResult(data={"key": submission.key, "outputs": outputs})


def run(connector: DemoConnector) -> tuple[JobResult, list[JobProgress]]:
    seen: list[JobProgress] = []
    return connector.process_job(JOB, seen.append), seen


def test_a_job_follows_its_own_messages_to_the_end() -> None:
    ws = FakeSocket(
        frame("status", sid="c1"),
        frame("tick", prompt_id="OTHER", value=90),  # another job's: skipped
        b"\x00\x00\x00\x01preview",  # binary preview: skipped
        frame("tick", prompt_id="P", value=50),
        frame("out", prompt_id="P", item="img-1"),
        frame("tick", prompt_id="P", value=20),  # lower: the bar does not go back
        frame("end", prompt_id="P"),
    )
    connector = DemoConnector(FakeConnect(ws))
    result, seen = run(connector)
    assert result.data == {"key": "P", "outputs": ["img-1"]}
    values = [p.progress for p in seen]
    assert values == sorted(values)
    assert values[-1] == 100
    assert [p.message for p in seen if p.message and p.message.startswith("tick")] == [
        "tick 50",
        "tick 20",
    ]
    assert 90 not in values  # the foreign job's progress never shows
    assert ws.closed
    assert not ws.script


def test_the_socket_opens_before_the_submission_so_no_event_is_missed() -> None:
    order: list[str] = []
    ws = FakeSocket(frame("end", prompt_id="P"))

    class Recording(FakeConnect):
        def __call__(self, url: str, timeout: float) -> FakeSocket:
            order.append("connect")
            return super().__call__(url, timeout)

    connector = DemoConnector(Recording(ws))
    original = connector.submit
    connector.submit = lambda job, payload: (order.append("submit"), original(job, payload))[1]  # type: ignore[method-assign]
    run(connector)
    assert order == ["connect", "submit"]


def test_a_job_found_finished_reads_no_frame() -> None:
    ws = FakeSocket()
    result, _ = run(DemoConnector(FakeConnect(ws), finished=True))
    assert result.data == {"key": "P", "outputs": []}
    assert ws.closed


def test_a_failure_message_raises_its_error_with_the_socket_context() -> None:
    ws = FakeSocket(frame("tick", prompt_id="P", value=10), frame("boom", prompt_id="P"))
    with pytest.raises(ConnectorError) as caught:
        run(DemoConnector(FakeConnect(ws)))
    error = caught.value
    assert (error.failure_reason, error.retryable, error.service) == (R.JOB_FAILED, False, "demo")
    assert error.context["websocket"]["frames"] == 2
    assert error.context["websocket"]["last_message_type"] == "boom"
    assert ws.closed


CONNECT_FAILURES = [
    (ConnectionRefusedError(111, "Connection refused"), T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
    (
        websocket.WebSocketBadStatusException("Handshake status %d", 403),
        T.AUTH_ERROR,
        R.INSUFFICIENT_PERMISSIONS,
        False,
    ),
    (
        websocket.WebSocketBadStatusException("Handshake status %d", 404),
        T.VALIDATION_ERROR,
        R.INVALID_REQUEST,
        False,
    ),
    (
        websocket.WebSocketBadStatusException("Handshake status %d", 502),
        T.SERVICE_ERROR,
        R.SERVICE_UNAVAILABLE,
        True,
    ),
    (websocket.WebSocketAddressException("no such host"), T.NETWORK_ERROR, R.DNS_RESOLUTION, True),
    (TimeoutError("timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
    (websocket.WebSocketTimeoutException("timed out"), T.TIMEOUT, R.NETWORK_TIMEOUT, True),
]


@pytest.mark.parametrize(("exc", "ftype", "reason", "retryable"), CONNECT_FAILURES)
def test_a_failed_connection_is_classified_and_nothing_is_submitted(
    exc: BaseException, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    connect = FakeConnect(error=exc)
    connector = DemoConnector(connect)
    with pytest.raises(ConnectorError) as caught:
        run(connector)
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (ftype, reason, retryable)
    assert connector.submitted == 0
    assert len(connect.calls) == 1  # no reconnect loop: Celery owns retries


MID_JOB_FAILURES = [
    (
        websocket.WebSocketConnectionClosedException("Connection to remote host was lost."),
        T.NETWORK_ERROR,
        R.CONNECTION_FAILED,
        True,
    ),
    ("", T.NETWORK_ERROR, R.CONNECTION_FAILED, True),  # websocket-client's reading of a close frame
    (
        ConnectionResetError(104, "Connection reset by peer"),
        T.NETWORK_ERROR,
        R.CONNECTION_FAILED,
        True,
    ),
    (
        websocket.WebSocketProtocolException("rsv is not implemented, yet"),
        T.RESPONSE_ERROR,
        R.INVALID_RESPONSE_FORMAT,
        True,
    ),
    ('{"type": "tick", "data": {"val', T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, True),
    ("[1, 2]", T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, True),
    (websocket.WebSocketTimeoutException("read timed out"), T.TIMEOUT, R.SERVICE_TIMEOUT, True),
]


@pytest.mark.parametrize(("item", "ftype", "reason", "retryable"), MID_JOB_FAILURES)
def test_a_socket_failing_mid_job_is_a_classified_error_and_not_reconnected(
    item: str | BaseException, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    ws = FakeSocket(frame("tick", prompt_id="P", value=10), item)
    connect = FakeConnect(ws)
    with pytest.raises(ConnectorError) as caught:
        run(DemoConnector(connect))
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (ftype, reason, retryable)
    assert error.service == "demo"
    assert error.context["websocket"]["job_key"] == "P"
    assert "clientId" not in error.context["websocket"]["url"]
    assert ws.closed
    assert len(connect.calls) == 1


def test_the_deadline_bounds_a_job_whose_socket_keeps_talking() -> None:
    clock = FakeClock()
    ws = FakeSocket(*[frame("status") for _ in range(20)], clock=clock)
    connector = DemoConnector(FakeConnect(ws), deadline=5.0, clock=clock)
    with pytest.raises(ConnectorError) as caught:
        run(connector)
    assert (caught.value.failure_reason, caught.value.retryable) == (R.SERVICE_TIMEOUT, True)
    assert len(ws.script) == 15  # five frames in five seconds, then the deadline
    assert all(t is not None and 0 < t <= 5.0 for t in ws.timeouts)
    assert ws.timeouts == sorted(ws.timeouts, reverse=True)  # each read waits only what is left


def test_the_connect_timeout_is_the_clients_and_never_past_the_deadline() -> None:
    connect = FakeConnect(FakeSocket(frame("end", prompt_id="P")))
    run(DemoConnector(connect, deadline=3.0, clock=FakeClock()))
    assert connect.calls == [("ws://127.0.0.1:1/ws?clientId=c1", 3.0)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"\x00\x01", b"\x00\x01"), (bytearray(b"ab"), b"ab"), ('{"type": "x"}', {"type": "x"})],
)
def test_decode_frame_keeps_binary_and_parses_text(data: str | bytes, expected: Any) -> None:
    assert decode_frame(data) == expected


@pytest.mark.parametrize("text", ["not json", "[]", '"text"', "{"])
def test_decode_frame_refuses_text_that_is_not_a_json_object(text: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        decode_frame(text)
    assert caught.value.failure_reason is R.INVALID_RESPONSE_FORMAT


def test_socket_error_keeps_the_handshake_status() -> None:
    exc = websocket.WebSocketBadStatusException("Handshake status %d", 503)
    error = socket_error(exc, "while connecting", {})
    assert (error.status_code, error.retryable) == (503, True)
