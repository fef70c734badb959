"""A1111Connector: txt2img / img2img over a scripted transport, progress polled alongside."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress
from connectors.services.a1111 import A1111Connector, A1111Settings
from emp_tasks.sandbox.a1111_replies import (
    Generation,
    generation_reply,
    http_error,
    oom_error,
    progress_reply,
)
from emp_tasks.sandbox.png import make_png
from tests.connectors.fakes import StubSaver
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply

R = FailureReason
T = FailureType
BASE = "http://a1111.test:7860"
TXT2IMG = f"{BASE}/sdapi/v1/txt2img"
IMG2IMG = f"{BASE}/sdapi/v1/img2img"
PROGRESS = f"{BASE}/sdapi/v1/progress"
OPTIONS = f"{BASE}/sdapi/v1/options"
SECRET = "artist:hunter2-a1111-secret"
RUN = Generation("txt2img", {"prompt": "a fox"}, "a fox", 20, 64, 64, 1234, 1)
REPLY = generation_reply(RUN)
INPUT = base64.b64encode(make_png("input", 8, 8)).decode()


class GatedTransport(ScriptedTransport):
    """Answers only once `gate` is set: a blocking call that lasts until the polls were seen."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kw: Any) -> Any:  # type: ignore[override]
        assert self.gate.wait(5), "the progress poller never polled"
        return super().send(request, stream=stream, **kw)


class CountingTransport(ScriptedTransport):
    """Sets `seen` after `wanted` requests."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted, self.seen = wanted, threading.Event()

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kw: Any) -> Any:  # type: ignore[override]
        try:
            return super().send(request, stream=stream, **kw)
        finally:
            if len(self.sent) >= self.wanted:
                self.seen.set()


def make(
    transport: ScriptedTransport,
    polls: ScriptedTransport | None = None,
    saver: StubSaver | None = None,
    **settings: Any,
) -> A1111Connector:
    polls = polls or ScriptedTransport().add(
        "GET", PROGRESS, json_reply(progress_reply(None, 0, 0))
    )
    config = A1111Settings(base_url=BASE, progress_interval_seconds=0.01, **settings)
    return A1111Connector(
        config,
        assets=saver or StubSaver(),
        session=transport.session(),
        progress_session=polls.session,
    )


def job(**payload: Any) -> JobData:
    return JobData(id="job-a1111", type="a1111", payload=payload or {"prompt": "a fox"})


def fails(connector: A1111Connector, data: JobData | None = None) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data or job())
    assert SECRET.split(":")[1] not in json.dumps(info.value.to_dict()) + str(info.value)
    return info.value


def kind(error: ConnectorError) -> tuple[FailureType, FailureReason, bool]:
    return error.failure_type, error.failure_reason, error.retryable


def test_txt2img_saves_every_image_and_reads_seed_and_model_from_info() -> None:
    saver = StubSaver()
    transport = ScriptedTransport().add("POST", TXT2IMG, json_reply(REPLY))
    result = make(transport, saver=saver).process_job(job(prompt="a fox", steps=20, seed=1234))
    assert result.data is not None
    assert result.data["content_type"] == "image"
    assert result.data["seed"] == 1234
    assert result.data["model_used"] == "v1-5-pruned-emaonly"
    assert result.data["image_url"].startswith("https://cdn.example.test/")
    assert len(result.output_files) == 1
    assert saver.expects == ["image"]
    assert transport.sent[0].json == {
        "prompt": "a fox",
        "steps": 20,
        "seed": 1234,
        "send_images": True,
        "save_images": False,
    }


def test_init_images_send_the_job_to_img2img() -> None:
    transport = ScriptedTransport().add("POST", IMG2IMG, json_reply(REPLY))
    result = make(transport).process_job(job(prompt="bluer", init_images=[INPUT]))
    assert result.data is not None
    assert result.data["mode"] == "img2img"
    assert transport.sent[0].json["init_images"] == [INPUT]


def test_progress_is_polled_on_a_second_connection_while_the_call_blocks() -> None:
    polls = CountingTransport(wanted=3)
    running = [progress_reply(RUN, step, 1.0) for step in (5, 10, 15)]
    polls.add("GET", PROGRESS, *(json_reply(body) for body in running))
    transport = GatedTransport(polls.seen).add("POST", TXT2IMG, json_reply(REPLY))
    reports: list[JobProgress] = []
    make(transport, polls).process_job(job(), reports.append)
    generating = [r.progress for r in reports if r.current_step == "generating"]
    assert generating[0] == 10
    assert generating[1:] == sorted(generating[1:])
    assert max(generating) > 10
    assert all(10 <= p <= 90 for p in generating)
    assert polls.sent[0].url.endswith("/sdapi/v1/progress?skip_current_image=true")
    assert reports[-1].progress == 100
    # The poller stopped with the call: no thread left, no report after the job.
    assert not [t for t in threading.enumerate() if t.name == "a1111-progress"]
    assert reports[-1].current_step == "completed"


def test_failing_progress_polls_never_fail_the_job() -> None:
    polls = CountingTransport(wanted=2)
    polls.add("GET", PROGRESS, requests.ConnectionError("refused"), Reply(500, [b"oops"]))
    transport = GatedTransport(polls.seen).add("POST", TXT2IMG, json_reply(REPLY))
    assert (make(transport, polls).process_job(job()).data or {})["seed"] == 1234


def fastapi_422(field: str) -> dict[str, Any]:
    return {"detail": [{"loc": ["body", field], "msg": "value is not a valid integer"}]}


ERRORS = [
    # (reply or exception, (type, reason, retryable), words in the message)
    (json_reply({"detail": "Not Found"}, 404), (T.SYSTEM_ERROR, R.CONFIG_ERROR, False), "--api"),
    (
        json_reply(http_error(401, "Incorrect username or password"), 401),
        (T.AUTH_ERROR, R.INVALID_API_KEY, False),
        "A1111_AUTH",
    ),
    (
        json_reply(fastapi_422("steps"), 422),
        (T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        "'steps'",
    ),
    (
        json_reply(oom_error(), 500),
        (T.RESOURCE_LIMIT, R.GPU_MEMORY_FULL, True),
        "CUDA out of memory",
    ),
    (
        json_reply({"error": "RuntimeError", "detail": "", "body": "", "errors": "boom"}, 500),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        "RuntimeError: boom",
    ),
    (
        json_reply(http_error(404, "Sampler not found"), 404),
        (T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
        "Sampler not found",
    ),
    (
        json_reply(http_error(500, "Invalid encoded image"), 500),
        (T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
        "Invalid encoded image",
    ),
    (
        Reply(503, [b"<h1>busy</h1>"], {"content-type": "text/html"}),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
        "503",
    ),
    (
        requests.ConnectionError("Connection refused"),
        (T.NETWORK_ERROR, R.CONNECTION_FAILED, True),
        "refused",
    ),
    (requests.ReadTimeout("read timed out"), (T.TIMEOUT, R.NETWORK_TIMEOUT, True), "timed out"),
    (json_reply({"images": []}), (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False), "no `images`"),
]


@pytest.mark.parametrize(("reply", "expected", "words"), ERRORS)
def test_each_failure_is_classified(reply: Any, expected: tuple[Any, ...], words: str) -> None:
    transport = ScriptedTransport().add("POST", TXT2IMG, reply)
    error = fails(make(transport))
    assert kind(error) == expected
    assert words in error.message


def test_a_422_names_the_field_in_the_error_context() -> None:
    transport = ScriptedTransport().add("POST", TXT2IMG, json_reply(fastapi_422("width"), 422))
    assert fails(make(transport)).context["field"] == "width"


def test_basic_auth_goes_on_both_connections_and_never_into_errors() -> None:
    polls = CountingTransport(wanted=1)
    polls.add("GET", PROGRESS, json_reply(progress_reply(RUN, 3, 1)))
    transport = GatedTransport(polls.seen).add("POST", TXT2IMG, json_reply(oom_error(), 500))
    error = fails(make(transport, polls, auth=SecretStr(SECRET)))
    expected = "Basic " + base64.b64encode(SECRET.encode()).decode()
    assert transport.sent[0].headers["Authorization"] == expected
    assert polls.sent[0].headers["Authorization"] == expected
    assert "hunter2" not in repr(error.to_dict())


def test_auth_without_a_colon_is_a_configuration_error() -> None:
    with pytest.raises(ConnectorError) as info:
        make(ScriptedTransport(), auth=SecretStr("no-colon"))
    assert info.value.failure_reason is R.CONFIG_ERROR
    assert "no-colon" not in info.value.message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "width": 100}, "width"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"prompt": "x", "init_images": []}, "init_images"),
        ({"prompt": "x", "tiling": True}, "tiling"),
    ],
)
def test_bad_payloads_fail_before_any_call(payload: dict[str, Any], field: str) -> None:
    transport = ScriptedTransport()
    error = fails(make(transport), JobData(id="j", type="a1111", payload=payload))
    assert kind(error)[0] is T.VALIDATION_ERROR
    assert field in error.message
    assert transport.sent == []


def test_health_probe_reads_options_and_says_to_start_with_api() -> None:
    ok = ScriptedTransport().add("GET", OPTIONS, json_reply({"samples_format": "png"}))
    assert make(ok).health().healthy
    off = ScriptedTransport().add("GET", OPTIONS, json_reply({"detail": "Not Found"}, 404))
    report = make(off).health()
    assert not report.healthy
    assert "--api" in report.detail


def test_the_poller_stops_when_the_call_fails_and_reports_nothing_after() -> None:
    polls = CountingTransport(wanted=2)
    polls.add("GET", PROGRESS, json_reply(progress_reply(RUN, 10, 1.0)))
    transport = GatedTransport(polls.seen).add("POST", TXT2IMG, json_reply(oom_error(), 500))
    reports: list[JobProgress] = []
    with pytest.raises(ConnectorError) as info:
        make(transport, polls).process_job(job(), reports.append)
    assert info.value.failure_reason is R.GPU_MEMORY_FULL
    assert any(r.current_step == "generating" and r.progress > 10 for r in reports)
    assert not [t for t in threading.enumerate() if t.name == "a1111-progress"]
    count, sent = len(reports), len(polls.sent)
    threading.Event().wait(0.05)  # 5 poll intervals: a live poller would poll and report again
    assert (len(reports), len(polls.sent)) == (count, sent)
