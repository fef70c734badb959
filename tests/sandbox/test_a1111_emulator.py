"""The AUTOMATIC1111 emulator over real loopback HTTP: routes, auth, progress, faults."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.a1111 import A1111_FAULT_KINDS, A1111Emulator
from emp_tasks.sandbox.png import make_png, read_png_size

AUTH = ("artist", "s3cret-a1111")


@pytest.fixture(scope="module")
def server() -> Iterator[A1111Emulator]:
    with A1111Emulator(step_seconds=0.01) as emulator:
        yield emulator


@pytest.fixture
def a1111(server: A1111Emulator) -> A1111Emulator:
    server.reset()
    return server


def post(emu: A1111Emulator, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(f"{emu.url}/sdapi/v1/{path}", json=body, timeout=10, **kw)


def test_txt2img_returns_real_pngs_the_request_and_info_as_a_json_string(
    a1111: A1111Emulator,
) -> None:
    reply = post(a1111, "txt2img", {"prompt": "fox", "width": 64, "height": 96, "batch_size": 2})
    assert reply.status_code == 200
    body = reply.json()
    assert [read_png_size(base64.b64decode(i)) for i in body["images"]] == [(64, 96), (64, 96)]
    info = json.loads(body["info"])
    assert info["all_seeds"] == [info["seed"], info["seed"] + 1]
    assert info["sd_model_name"] == "v1-5-pruned-emaonly"
    assert body["parameters"]["prompt"] == "fox"


def test_img2img_checks_its_init_images(a1111: A1111Emulator) -> None:
    image = base64.b64encode(make_png("in", 8, 8)).decode()
    ok = post(a1111, "img2img", {"prompt": "x", "init_images": [f"data:image/png;base64,{image}"]})
    assert ok.status_code == 200
    assert ok.json()["parameters"]["init_images"] is None
    bad = post(a1111, "img2img", {"prompt": "x", "init_images": ["bm90IGFuIGltYWdl"]})
    assert (bad.status_code, bad.json()["detail"]) == (500, "Invalid encoded image")
    none = post(a1111, "img2img", {"prompt": "x"})
    assert (none.status_code, none.json()["detail"]) == (404, "Init image not found")


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"prompt": "x", "steps": "many"}, 422, [{"loc": ["body", "steps"]}]),
        ({"prompt": "x", "cfg_scale": "high"}, 422, [{"loc": ["body", "cfg_scale"]}]),
        ({"prompt": "x", "sampler_name": "Nope"}, 404, "Sampler not found"),
        ([1, 2], 422, [{"loc": ["body"]}]),
    ],
)
def test_bad_requests_get_the_web_uis_answers(
    a1111: A1111Emulator, body: Any, status: int, detail: Any
) -> None:
    reply = post(a1111, "txt2img", body)
    assert reply.status_code == status
    got = reply.json()["detail"]
    if isinstance(detail, list):
        assert got[0]["loc"] == detail[0]["loc"]
    else:
        assert got == detail


def test_progress_moves_while_a_generation_blocks(a1111: A1111Emulator) -> None:
    idle = requests.get(f"{a1111.url}/sdapi/v1/progress", timeout=5).json()
    assert (idle["progress"], idle["state"]["job_count"]) == (0, 0)
    worker = threading.Thread(target=post, args=(a1111, "txt2img", {"prompt": "p", "steps": 40}))
    worker.start()
    seen = []
    while worker.is_alive():
        seen.append(requests.get(f"{a1111.url}/sdapi/v1/progress", timeout=5).json())
        time.sleep(0.03)
    worker.join()
    running = [p for p in seen if p["state"]["job_count"] == 1]
    assert len(running) >= 2
    steps = [p["state"]["sampling_step"] for p in running]
    assert steps == sorted(steps)
    assert running[-1]["state"]["sampling_steps"] == 40
    assert 0 < running[0]["progress"] < running[-1]["progress"] <= 1


def test_without_api_every_sdapi_route_is_fastapis_404() -> None:
    with A1111Emulator(api=False) as emu:
        reply = post(emu, "txt2img", {"prompt": "x"})
        assert (reply.status_code, reply.json()) == (404, {"detail": "Not Found"})


def test_a_user_pass_token_turns_on_basic_auth() -> None:
    with A1111Emulator(tokens=[":".join(AUTH)]) as emu:
        refused = post(emu, "txt2img", {"prompt": "x", "steps": 1})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "Incorrect username or password"
        wrong = post(emu, "txt2img", {"prompt": "x", "steps": 1}, auth=("artist", "nope"))
        assert wrong.status_code == 401
        assert post(emu, "txt2img", {"prompt": "x", "steps": 1}, auth=AUTH).status_code == 200
        assert all(AUTH[1] not in json.dumps(c.to_dict()) for c in emu.calls())


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ("oom", 500, "OutOfMemoryError"),
        ("server_error", 500, "RuntimeError"),
        ("unauthorized", 401, "HTTPException"),
    ],
)
def test_error_faults_answer_the_middlewares_body(
    a1111: A1111Emulator, fault: str, status: int, error: str
) -> None:
    a1111.queue_faults([{"kind": fault}], match={"endpoint": "txt2img"})
    reply = post(a1111, "txt2img", {"prompt": "x", "steps": 4})
    assert reply.status_code == status
    assert set(reply.json()) == {"error", "detail", "body", "errors"}
    assert reply.json()["error"] == error


def test_no_api_and_validation_faults(a1111: A1111Emulator) -> None:
    a1111.queue_faults([{"kind": "no_api"}, {"kind": "validation", "message": "width"}])
    assert post(a1111, "txt2img", {"prompt": "x"}).json() == {"detail": "Not Found"}
    detail = post(a1111, "txt2img", {"prompt": "x"}).json()["detail"]
    assert detail[0]["loc"] == ["body", "width"]


def test_reset_drops_the_socket_mid_job_after_progress_started(a1111: A1111Emulator) -> None:
    a1111.queue_faults([{"kind": "reset"}])
    with pytest.raises(requests.ConnectionError):
        post(a1111, "txt2img", {"prompt": "x", "steps": 10})
    assert a1111.calls("/sdapi/v1/txt2img")[0].status is None


def test_progress_polls_never_take_a_queued_fault(a1111: A1111Emulator) -> None:
    a1111.queue_faults([{"kind": "server_error"}])
    assert requests.get(f"{a1111.url}/sdapi/v1/progress", timeout=5).status_code == 200
    assert post(a1111, "txt2img", {"prompt": "x", "steps": 1}).status_code == 500


def test_header_fault_and_health_routes(a1111: A1111Emulator) -> None:
    headers = {"X-Sandbox-Fault": "slow;delay=0.2"}
    started = time.monotonic()
    assert requests.get(f"{a1111.url}/sdapi/v1/options", headers=headers, timeout=5).ok
    assert time.monotonic() - started >= 0.2
    assert requests.get(f"{a1111.url}/sdapi/v1/sd-models", timeout=5).json()[0]["model_name"]
    assert requests.get(f"{a1111.url}/sdapi/v1/nope", timeout=5).status_code == 404
    assert "oom" in A1111_FAULT_KINDS
