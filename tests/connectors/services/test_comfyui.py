"""ComfyUIConnector with a scripted transport and a scripted socket: submit, resume, results."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobProgress, JobResult
from connectors.services.comfyui import ComfyUIConnector, ComfyUISettings
from connectors.services.comfyui_messages import client_id_for, prompt_id_for
from connectors.testing import Reply
from tests.connectors.fakes import FakeAdapter, StubSaver, body_json, fake_session, json_reply
from tests.connectors.protocol.ws_fakes import FakeConnect, FakeSocket
from tests.connectors.services.comfyui_support import frame, job

R, T = FailureReason, FailureType
PID = prompt_id_for("job-1")
IMAGE = {"filename": "fox_00001_.png", "subfolder": "", "type": "output"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
EMPTY_QUEUE = json_reply({"queue_running": [], "queue_pending": []})


def history(status: str = "success", *messages: list[Any], outputs: Any = None) -> Reply:
    entry = {
        "outputs": {"9": {"images": [IMAGE]}} if outputs is None else outputs,
        "status": {
            "status_str": status,
            "completed": status == "success",
            "messages": list(messages),
        },
    }
    return json_reply({PID: entry})


def run_frames(*extra: str) -> list[str | bytes | BaseException]:
    return [
        frame("status", status={"exec_info": {"queue_remaining": 0}}, sid="x"),
        frame("execution_start", prompt_id=PID),
        frame("executing", node="3", prompt_id=PID),
        frame("progress", value=2, max=4, node="3", prompt_id=PID),
        b"\x00\x00\x00\x01\x00\x00\x00\x02preview",
        frame("progress", value=4, max=4, node="3", prompt_id="someone-else"),
        *extra,
        frame("executed", node="9", output={"images": [IMAGE]}, prompt_id=PID),
        frame("execution_success", prompt_id=PID),
        frame("executing", node=None, prompt_id=PID),
    ]


def connector(
    *replies: Reply | BaseException, frames: list[Any] | None = None, saver: StubSaver | None = None
) -> tuple[ComfyUIConnector, FakeAdapter, FakeConnect, StubSaver]:
    session, adapter = fake_session(*replies)
    connect = FakeConnect(FakeSocket(*(frames or [])))
    saver = saver or StubSaver()
    settings = ComfyUISettings(base_url="http://gpu-1:8188", timeout_seconds=30)
    made = ComfyUIConnector(settings, assets=saver, session=session, connect=connect)
    return made, adapter, connect, saver


def paths(adapter: FakeAdapter) -> list[str]:
    return [f"{r.method} {urlsplit(r.url or '').path}" for r in adapter.requests]


def process(made: ComfyUIConnector, **payload: Any) -> tuple[JobResult, list[JobProgress]]:
    seen: list[JobProgress] = []
    return made.process_job(job(**payload), seen.append), seen


def test_a_new_job_is_queued_followed_and_its_image_saved() -> None:
    made, adapter, connect, saver = connector(
        EMPTY_QUEUE,
        json_reply({}),
        json_reply({"prompt_id": PID, "number": 7, "node_errors": {}}),
        history(),
        Reply(200, PNG, {"Content-Type": "image/png"}),
        frames=run_frames(),
    )
    result, seen = process(made)
    assert paths(adapter) == [
        "GET /queue",
        f"GET /history/{PID}",
        "POST /prompt",
        f"GET /history/{PID}",
        "GET /view",
    ]
    sent = body_json(adapter.requests[2])
    assert (sent["prompt_id"], sent["client_id"]) == (PID, client_id_for("job-1"))
    assert sent["prompt"]["3"]["class_type"] == "KSampler"
    assert connect.calls[0][0] == f"ws://gpu-1:8188/ws?clientId={client_id_for('job-1')}"
    assert parse_qs(urlsplit(adapter.requests[4].url or "").query) == {
        "filename": ["fox_00001_.png"],
        "type": ["output"],
    }
    assert saver.saved == [(PNG, "job-1", None)]
    assert saver.expects == ["image"]
    assert result.data is not None
    assert result.data["image_url"] == result.output_files[0].metadata["url"]  # type: ignore[index]
    assert result.data["prompt_id"] == PID
    assert result.service_metadata is not None
    assert result.service_metadata.service_job_id == PID
    values = [p.progress for p in seen]
    assert values == sorted(values)
    assert values[-1] == 100
    assert any("step 2 of 4" in (p.message or "") for p in seen)
    assert not any("someone-else" in str(p.metadata) for p in seen)


def test_a_client_id_in_the_payload_names_the_socket_and_the_prompt() -> None:
    made, adapter, connect, _ = connector(
        EMPTY_QUEUE,
        json_reply({}),
        json_reply({"prompt_id": PID, "number": 1, "node_errors": {}}),
        history(outputs={}),
        frames=run_frames(),
    )
    process(made, client_id="ui-42")
    assert connect.calls[0][0].endswith("?clientId=ui-42")
    assert body_json(adapter.requests[2])["client_id"] == "ui-42"


def test_a_retry_whose_prompt_is_still_queued_follows_it_without_submitting() -> None:
    running = json_reply({"queue_running": [[3, PID, {}, {}, ["9"]]], "queue_pending": []})
    made, adapter, _, saver = connector(running, history(), Reply(200, PNG), frames=run_frames())
    result, _ = process(made)
    assert "POST /prompt" not in paths(adapter)
    assert len(saver.saved) == 1
    assert result.metadata["resumed"] == "queue"


def test_a_retry_whose_prompt_already_finished_reads_the_history_only() -> None:
    made, adapter, connect, saver = connector(
        EMPTY_QUEUE, history(), history(), Reply(200, PNG), frames=[]
    )
    result, _ = process(made)
    assert paths(adapter) == [
        "GET /queue",
        f"GET /history/{PID}",
        f"GET /history/{PID}",
        "GET /view",
    ]
    assert connect.sockets == []  # the socket was opened (and closed) but never read
    assert result.metadata["resumed"] == "history"
    assert len(saver.saved) == 1


def test_a_retry_after_out_of_memory_runs_the_prompt_again() -> None:
    oom = [
        "execution_error",
        {"node_id": "3", "node_type": "KSampler", "exception_type": "torch.OutOfMemoryError"},
    ]
    made, adapter, _, _ = connector(
        EMPTY_QUEUE,
        history("error", oom),
        json_reply({"prompt_id": PID, "number": 2, "node_errors": {}}),
        history(),
        Reply(200, PNG),
        frames=run_frames(),
    )
    process(made)
    assert paths(adapter).count("POST /prompt") == 1


@pytest.mark.parametrize(
    "message",
    [
        [
            "execution_error",
            {"node_id": "3", "node_type": "KSampler", "exception_type": "ValueError"},
        ],
        ["execution_interrupted", {"node_id": "3", "node_type": "KSampler"}],
    ],
)
def test_a_redelivered_job_that_failed_for_good_fails_again_without_running(
    message: list[Any],
) -> None:
    made, adapter, _, _ = connector(EMPTY_QUEUE, history("error", message), frames=[])
    with pytest.raises(ConnectorError) as caught:
        process(made)
    assert not caught.value.retryable
    assert "POST /prompt" not in paths(adapter)


EXECUTION_FAILURES = [
    (
        {"exception_type": "torch.OutOfMemoryError", "exception_message": "out of memory"},
        "execution_error",
        T.RESOURCE_LIMIT,
        R.GPU_MEMORY_FULL,
        True,
    ),
    (
        {"exception_type": "ValueError", "exception_message": "bad shape"},
        "execution_error",
        T.SERVICE_ERROR,
        R.JOB_FAILED,
        False,
    ),
    ({}, "execution_interrupted", T.SERVICE_ERROR, R.JOB_FAILED, False),
]


@pytest.mark.parametrize(("data", "kind", "ftype", "reason", "retryable"), EXECUTION_FAILURES)
def test_a_failure_event_fails_the_job_classified(
    data: dict[str, Any], kind: str, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    failure = frame(kind, prompt_id=PID, node_id="3", node_type="KSampler", **data)
    made, adapter, _, saver = connector(
        EMPTY_QUEUE,
        json_reply({}),
        json_reply({"prompt_id": PID, "number": 1, "node_errors": {}}),
        frames=run_frames(failure),
    )
    with pytest.raises(ConnectorError) as caught:
        process(made)
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (ftype, reason, retryable)
    assert (error.service, error.context["node_id"]) == ("comfyui", "3")
    assert error.context["websocket"]["job_key"] == PID
    assert saver.saved == []
    assert paths(adapter)[-1] == "POST /prompt"  # nothing read or saved after the failure


def test_a_refused_prompt_is_a_validation_error_naming_the_node() -> None:
    item = {
        "type": "required_input_missing",
        "message": "Required input is missing",
        "details": "model",
        "extra_info": {"input_name": "model"},
    }
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            "3": {"errors": [item], "dependent_outputs": ["9"], "class_type": "KSampler"}
        },
    }
    made, _, _, _ = connector(EMPTY_QUEUE, json_reply({}), json_reply(body, status=400), frames=[])
    with pytest.raises(ConnectorError) as caught:
        process(made)
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.VALIDATION_ERROR,
        R.MISSING_REQUIRED_FIELD,
        False,
    )
    assert (error.status_code, error.context["field"]) == (400, "workflow.3.inputs.model")
    assert "node 3 (KSampler)" in error.message


def test_a_server_that_picks_its_own_prompt_id_is_followed_by_that_id() -> None:
    theirs = "server-chosen"
    made, adapter, _, _ = connector(
        EMPTY_QUEUE,
        json_reply({}),
        json_reply({"prompt_id": theirs, "number": 1, "node_errors": {}}),
        json_reply({}),
        frames=[
            frame("executing", node=None, prompt_id=PID),
            frame("executing", node=None, prompt_id=theirs),
        ],
    )
    result, _ = process(made)
    assert result.data is not None
    assert result.data["prompt_id"] == theirs
    assert paths(adapter)[-1] == f"GET /history/{theirs}"


def test_an_accepted_prompt_without_an_id_is_a_response_error() -> None:
    made, _, _, _ = connector(EMPTY_QUEUE, json_reply({}), json_reply({"number": 1}), frames=[])
    with pytest.raises(ConnectorError) as caught:
        process(made)
    assert caught.value.failure_reason is R.MISSING_EXPECTED_DATA


def test_https_servers_get_a_wss_socket() -> None:
    settings = ComfyUISettings(base_url="https://comfy.example.test/")
    made = ComfyUIConnector(settings, assets=StubSaver())
    url = made.websocket_url(job(), made.validate_payload(job().payload))
    assert url.startswith("wss://comfy.example.test/ws?clientId=")


def test_the_deadline_is_the_services_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_TIMEOUT_SECONDS", "42")
    monkeypatch.setenv("COMFYUI_BASE_URL", "http://10.0.0.5:8188")
    made = ComfyUIConnector(assets=StubSaver())
    assert made.deadline == 42.0
    assert made.client.url("prompt") == "http://10.0.0.5:8188/prompt"


def test_the_health_probe_reads_system_stats() -> None:
    made, adapter, _, _ = connector(json_reply({"system": {}, "devices": []}))
    assert made.health().healthy
    assert paths(adapter) == ["GET /system_stats"]
