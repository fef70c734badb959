"""The ComfyUI emulator over loopback: HTTP routes, the `/ws` socket, and every fault kind."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from emp_tasks.sandbox.comfyui import COMFYUI_FAULT_KINDS, ComfyUIEmulator
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import read_png_size
from emp_tasks.sandbox.wsframes import OP_CLOSE, OP_TEXT, accept_key, encode_frame, read_frame
from tests.connectors.services.comfyui_support import WORKFLOW, workflow


@pytest.fixture(scope="module")
def emulator() -> Iterator[ComfyUIEmulator]:
    with ComfyUIEmulator(step_delay=0.005) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(emulator: ComfyUIEmulator) -> None:
    emulator.reset()


def ws_url(emulator: ComfyUIEmulator, client_id: str) -> str:
    return f"ws://127.0.0.1:{emulator.port}/ws?clientId={client_id}"


def queue(
    emulator: ComfyUIEmulator, client_id: str, prompt: Any = None, **extra: Any
) -> requests.Response:
    body = {"prompt": WORKFLOW if prompt is None else prompt, "client_id": client_id, **extra}
    return requests.post(f"{emulator.url}/prompt", json=body, timeout=5)


def follow(ws: websocket.WebSocket, prompt_id: str) -> list[Any]:
    """Every frame until `executing` with node null for prompt_id (text parsed, binary kept)."""
    seen: list[Any] = []
    while True:
        out = ws.recv()
        if isinstance(out, bytes):
            seen.append(out)
            continue
        message = json.loads(out)
        seen.append(message)
        data = message["data"]
        if (
            message["type"] == "executing"
            and data["node"] is None
            and data["prompt_id"] == prompt_id
        ):
            return seen


def run_with(
    emulator: ComfyUIEmulator, client_id: str, fault: Fault | None = None
) -> tuple[str, list[Any]]:
    if fault is not None:
        emulator.queue_faults([fault], match={"client_id": client_id})
    ws = websocket.create_connection(ws_url(emulator, client_id), timeout=5)
    try:
        prompt_id = queue(emulator, client_id).json()["prompt_id"]
        return prompt_id, follow(ws, prompt_id)
    finally:
        ws.close()


def types(seen: list[Any]) -> list[str]:
    return [m["type"] if isinstance(m, dict) else "binary" for m in seen]


def history(emulator: ComfyUIEmulator, prompt_id: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{emulator.url}/history/{prompt_id}", timeout=5).json()
    return body[prompt_id]


def test_a_prompt_runs_sends_its_events_in_comfyuis_order_and_writes_history(
    emulator: ComfyUIEmulator,
) -> None:
    prompt_id, seen = run_with(emulator, "c-ok")
    kinds = types(seen)
    assert kinds[0] == "status"
    order = [
        "execution_start",
        "execution_cached",
        "executing",
        "progress",
        "executed",
        "execution_success",
    ]
    firsts = [kinds.index(k) for k in order]
    assert firsts == sorted(firsts)
    assert types(seen[-1:]) == ["executing"]  # node null, after execution_success
    assert "binary" in kinds
    entry = history(emulator, prompt_id)
    assert entry["status"]["status_str"] == "success"
    image = entry["outputs"]["9"]["images"][0]
    png = requests.get(f"{emulator.url}/view", params=image, timeout=5)
    assert png.headers["content-type"] == "image/png"
    assert read_png_size(png.content) == (64, 64)


def test_a_client_chosen_prompt_id_is_kept(emulator: ComfyUIEmulator) -> None:
    reply = queue(emulator, "c-id", prompt_id="my-own-id")
    assert reply.json()["prompt_id"] == "my-own-id"


def test_every_route_is_served_under_api_too(emulator: ComfyUIEmulator) -> None:
    for path in ("/system_stats", "/api/system_stats", "/api/queue", "/api/prompt"):
        assert requests.get(f"{emulator.url}{path}", timeout=5).status_code == 200
    assert requests.get(f"{emulator.url}/api/history/unknown", timeout=5).json() == {}


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ({}, "no_prompt"),
        ({"1": {"inputs": {}}}, "invalid_prompt"),
        ({"1": {"class_type": "FancyCustomNode", "inputs": {}}}, "invalid_prompt"),
        ({"4": WORKFLOW["4"]}, "prompt_no_outputs"),
        (
            workflow(
                **{"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope"}}}
            ),
            "prompt_outputs_failed_validation",
        ),
    ],
)
def test_comfyuis_refusals_are_answered_400(
    emulator: ComfyUIEmulator, prompt: Any, kind: str
) -> None:
    reply = queue(emulator, "c-bad", prompt)
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == kind


@pytest.mark.parametrize("kind", ["validation_error", "invalid_prompt", "prompt_no_outputs"])
def test_a_refusal_fault_answers_400_with_comfyuis_body(
    emulator: ComfyUIEmulator, kind: str
) -> None:
    emulator.queue_faults([Fault(kind)], match={"filename_prefix": "fox"})
    reply = queue(emulator, "c-f")
    body = reply.json()
    assert reply.status_code == 400
    assert body["error"]["type"] in {kind, "prompt_outputs_failed_validation"}
    if kind == "validation_error":
        assert body["node_errors"]["3"]["errors"][0]["extra_info"] == {"input_name": "model"}


def test_a_transport_fault_can_be_sent_per_request(emulator: ComfyUIEmulator) -> None:
    body = {"prompt": WORKFLOW, "client_id": "c-h"}
    reply = requests.post(
        f"{emulator.url}/prompt",
        json=body,
        headers={"X-Sandbox-Fault": "server_error;status=502"},
        timeout=5,
    )
    assert reply.status_code == 502
    assert emulator.calls("/prompt")[-1].extra["fault"] == "server_error"


@pytest.mark.parametrize(
    ("kind", "exception_type"),
    [("oom", "torch.OutOfMemoryError"), ("execution_error", "ValueError")],
)
def test_an_execution_error_fault_fails_the_run_at_the_sampler(
    emulator: ComfyUIEmulator, kind: str, exception_type: str
) -> None:
    prompt_id, seen = run_with(emulator, f"c-{kind}", Fault(kind))
    errors = [m for m in seen if isinstance(m, dict) and m["type"] == "execution_error"]
    assert [e["data"]["exception_type"] for e in errors] == [exception_type]
    assert errors[0]["data"]["node_id"] == "3"
    assert "execution_success" not in types(seen)
    assert history(emulator, prompt_id)["status"]["messages"][-1][0] == "execution_error"


def test_an_interrupted_fault_ends_the_run_interrupted(emulator: ComfyUIEmulator) -> None:
    prompt_id, seen = run_with(emulator, "c-int", Fault("interrupted"))
    assert "execution_interrupted" in types(seen)
    assert history(emulator, prompt_id)["status"]["status_str"] == "error"


def test_a_dropped_socket_leaves_the_run_going_to_success(emulator: ComfyUIEmulator) -> None:
    emulator.queue_faults([Fault("drop_socket")], match={"client_id": "c-drop"})
    ws = websocket.create_connection(ws_url(emulator, "c-drop"), timeout=5)
    prompt_id = queue(emulator, "c-drop").json()["prompt_id"]
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        follow(ws, prompt_id)
    deadline = time.monotonic() + 5
    while not requests.get(f"{emulator.url}/history/{prompt_id}", timeout=5).json():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert history(emulator, prompt_id)["status"]["status_str"] == "success"


def test_a_malformed_frame_fault_sends_text_that_is_not_json(emulator: ComfyUIEmulator) -> None:
    emulator.queue_faults([Fault("malformed_frame")], match={"client_id": "c-mal"})
    ws = websocket.create_connection(ws_url(emulator, "c-mal"), timeout=5)
    queue(emulator, "c-mal")
    try:
        frames = [ws.recv() for _ in range(12)]
    finally:
        ws.close()
    bad = [f for f in frames if isinstance(f, str) and not f.endswith("}")]
    assert len(bad) == 1
    with pytest.raises(ValueError):
        json.loads(bad[0])


def test_a_slow_run_shows_in_the_queue_and_can_be_interrupted(emulator: ComfyUIEmulator) -> None:
    emulator.queue_faults([Fault("slow_run", delay=0.3)], match={"client_id": "c-slow"})
    ws = websocket.create_connection(ws_url(emulator, "c-slow"), timeout=5)
    prompt_id = queue(emulator, "c-slow").json()["prompt_id"]
    time.sleep(0.1)
    running = requests.get(f"{emulator.url}/queue", timeout=5).json()["queue_running"]
    assert [item[1] for item in running] == [prompt_id]
    assert (
        requests.post(
            f"{emulator.url}/interrupt", json={"prompt_id": prompt_id}, timeout=5
        ).status_code
        == 200
    )
    seen = follow(ws, prompt_id)
    ws.close()
    assert "execution_interrupted" in types(seen)


def test_the_newest_socket_of_a_client_id_gets_the_events(emulator: ComfyUIEmulator) -> None:
    old = websocket.create_connection(ws_url(emulator, "c-twice"), timeout=5)
    new = websocket.create_connection(ws_url(emulator, "c-twice"), timeout=5)
    try:
        prompt_id = queue(emulator, "c-twice").json()["prompt_id"]
        assert "executed" in types(follow(new, prompt_id))
    finally:
        old.close()
        new.close()


def test_view_refuses_bad_names_and_unknown_files(emulator: ComfyUIEmulator) -> None:
    view = f"{emulator.url}/view"
    assert requests.get(view, params={"filename": "../x.png"}, timeout=5).status_code == 400
    assert (
        requests.get(view, params={"filename": "x.png", "type": "secret"}, timeout=5).status_code
        == 400
    )
    assert requests.get(view, params={"filename": "missing.png"}, timeout=5).status_code == 404


def test_a_plain_get_of_ws_is_refused(emulator: ComfyUIEmulator) -> None:
    assert requests.get(f"{emulator.url}/ws", timeout=5).status_code == 400


def test_every_fault_kind_is_tested_here() -> None:
    tested = {
        "oom",
        "execution_error",
        "interrupted",
        "drop_socket",
        "malformed_frame",
        "slow_run",
        "validation_error",
        "invalid_prompt",
        "prompt_no_outputs",
        "server_error",
    }
    assert tested | {"slow", "reset", "empty_error", "non_json"} == set(COMFYUI_FAULT_KINDS)


def test_frames_round_trip_through_the_codec() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    big = b"x" * 70000
    for payload in (b"hi", b"y" * 300, big):
        opcode, data = read_frame(io.BytesIO(encode_frame(OP_TEXT, payload)))
        assert (opcode, data) == (OP_TEXT, payload)
    masked = bytes([0x88, 0x82]) + b"\x01\x02\x03\x04" + bytes([0x03 ^ 0x01, 0xE8 ^ 0x02])
    assert read_frame(io.BytesIO(masked)) == (OP_CLOSE, b"\x03\xe8")
    with pytest.raises(EOFError):
        read_frame(io.BytesIO(b"\x81"))
