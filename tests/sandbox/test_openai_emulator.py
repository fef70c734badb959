"""The OpenAI emulator over real loopback HTTP: routes, SSE framing, Responses states, faults."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.openai import OPENAI_FAULT_KINDS, OpenAIEmulator, endpoint_of
from emp_tasks.sandbox.openai_routes import HTTP_FAULTS, REFUSAL_TEXT, mask_key
from emp_tasks.sandbox.png import read_png_size

TOKEN = "sandbox-openai-token-5c2d"
REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(tokens=(TOKEN,), polls_to_complete=2) as emulator:
        yield emulator


@pytest.fixture
def emu(server: OpenAIEmulator) -> OpenAIEmulator:
    server.reset()
    return server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


def post(http: requests.Session, emu: OpenAIEmulator, path: str, body: Any, **kw: Any) -> Any:
    return http.post(f"{emu.url}/v1/{path}", json=body, timeout=5, **kw)


def get(http: requests.Session, emu: OpenAIEmulator, path: str) -> Any:
    return http.get(f"{emu.url}/v1/{path}", timeout=5)


def sse_data(response: requests.Response) -> list[str]:
    return [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]


# --- routing, auth, headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/chat/completions", "chat.completions"),
        ("GET", "/v1/responses/resp_1", "responses.retrieve"),
        ("POST", "/v1/responses/resp_1/cancel", "responses.cancel"),
        ("GET", "/v1/models/gpt-4o", "models"),
        ("GET", "/v1/chat/completions", None),
        ("POST", "/v2/responses", None),
    ],
)
def test_routes_map_to_endpoint_names(method: str, path: str, endpoint: str | None) -> None:
    assert endpoint_of(method, path) == endpoint


def test_every_reply_carries_request_id_and_rate_limit_headers(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    for response in (post(http, emu, "chat/completions", CHAT), get(http, emu, "nope")):
        assert response.headers["x-request-id"].startswith("req_")
        assert response.headers["x-ratelimit-remaining-requests"] == "9999"
        assert "openai-processing-ms" in response.headers


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Bearer sk-wrong-key-123456"}, "invalid_api_key")],
)
def test_bad_or_missing_key_is_401_with_a_masked_key(
    emu: OpenAIEmulator, headers: dict[str, str], code: str | None
) -> None:
    response = requests.get(f"{emu.url}/v1/models", headers=headers, timeout=5)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["type"]) == (
        401,
        code,
        "invalid_request_error",
    )
    assert "sk-wrong-key-123456" not in error["message"]
    assert emu.calls()[0].auth_valid is False


def test_mask_key_keeps_only_the_ends() -> None:
    assert mask_key("sk-abcdefghijklmnop") == "sk-************mnop"


def test_unknown_route_and_missing_params_answer_the_error_envelope(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    missing = post(http, emu, "chat/completions", {"model": "gpt-4o-mini"})
    assert missing.status_code == 400
    assert missing.json() == {
        "error": {
            "message": "Missing required parameter: 'messages'.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "missing_required_parameter",
        }
    }
    assert get(http, emu, "engines").json()["error"]["message"] == "Invalid URL (GET /v1/engines)"


# --- chat -----------------------------------------------------------------------------------


def test_chat_completion_has_the_sdk_shape(emu: OpenAIEmulator, http: requests.Session) -> None:
    body = post(http, emu, "chat/completions", CHAT).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Sandbox reply to: hello there",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 5


def test_chat_stream_is_sse_with_usage_chunk_then_done(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = post(http, emu, "chat/completions", body)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    frames = sse_data(response)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Sandbox reply to: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_chat_stream_without_include_usage_has_no_usage_chunk(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    frames = sse_data(post(http, emu, "chat/completions", {**CHAT, "stream": True}))
    assert all("usage" not in json.loads(f) for f in frames[:-1])


def test_stream_faults_break_the_stream_their_way(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    emu.queue_faults([Fault("mid_stream_error", message="boom"), Fault("stream_cut")])
    broken = sse_data(post(http, emu, "chat/completions", {**CHAT, "stream": True}))
    assert json.loads(broken[-1])["error"]["message"] == "boom"
    assert "[DONE]" not in broken
    cut = sse_data(post(http, emu, "chat/completions", {**CHAT, "stream": True}))
    assert "[DONE]" not in cut
    assert all(json.loads(f)["choices"][0]["finish_reason"] is None for f in cut)


def test_a_stream_fault_on_a_plain_request_is_dropped_and_noted(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    emu.queue_faults([Fault("stream_cut")])
    assert post(http, emu, "chat/completions", CHAT).status_code == 200
    assert emu.calls()[0].extra["fault_ignored"] == "stream_cut"
    assert len(emu.faults) == 0


def test_chat_refusal_ends_with_content_filter(emu: OpenAIEmulator, http: requests.Session) -> None:
    emu.queue_faults([Fault("refusal")])
    choice = post(http, emu, "chat/completions", CHAT).json()["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", "")


# --- responses ------------------------------------------------------------------------------


def create(http: requests.Session, emu: OpenAIEmulator, **extra: Any) -> dict[str, Any]:
    body = {"model": "gpt-4.1", "input": "draw a fox", "background": True, **extra}
    response = post(http, emu, "responses", body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_background_response_goes_queued_in_progress_completed(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    created = create(http, emu)
    assert (created["status"], created["object"], created["background"]) == (
        "queued",
        "response",
        True,
    )
    statuses = [get(http, emu, f"responses/{created['id']}").json() for _ in range(3)]
    assert [s["status"] for s in statuses] == ["in_progress", "completed", "completed"]
    done = statuses[-1]
    assert done["output"][0]["content"][0]["text"] == "Sandbox reply to: draw a fox"
    assert done["usage"]["total_tokens"] > 0


def test_image_generation_tool_adds_a_real_png(emu: OpenAIEmulator, http: requests.Session) -> None:
    tool = {"type": "image_generation", "size": "256x256"}
    created = create(http, emu, tools=[tool])
    for _ in range(2):
        done = get(http, emu, f"responses/{created['id']}").json()
    call = done["output"][0]
    assert (call["type"], call["status"]) == ("image_generation_call", "completed")
    assert read_png_size(base64.b64decode(call["result"])) == (256, 256)


def test_cancel_is_idempotent_and_only_for_background(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    created = create(http, emu)
    cancel = f"responses/{created['id']}/cancel"
    assert post(http, emu, cancel, None).json()["status"] == "cancelled"
    assert post(http, emu, cancel, None).json()["status"] == "cancelled"
    assert get(http, emu, f"responses/{created['id']}").json()["status"] == "cancelled"
    plain = create(http, emu, background=False)
    assert plain["status"] == "completed"
    assert post(http, emu, f"responses/{plain['id']}/cancel", None).status_code == 400


def test_unknown_response_is_404_and_delete_forgets(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    assert get(http, emu, "responses/resp_nope").status_code == 404
    created = create(http, emu)
    deleted = http.delete(f"{emu.url}/v1/responses/{created['id']}", timeout=5).json()
    assert deleted == {"id": created["id"], "object": "response.deleted", "deleted": True}
    assert get(http, emu, f"responses/{created['id']}").status_code == 404


OUTCOMES: dict[str, tuple[Fault, dict[str, Any]]] = {
    "failed_default": (Fault("response_failed"), {"status": "failed", "code": "server_error"}),
    "failed_code": (
        Fault("response_failed", message="invalid_image_url"),
        {"status": "failed", "code": "invalid_image_url"},
    ),
    "incomplete": (
        Fault("response_incomplete"),
        {"status": "incomplete", "reason": "max_output_tokens"},
    ),
    "incomplete_filter": (
        Fault("response_incomplete", message="content_filter"),
        {"status": "incomplete", "reason": "content_filter"},
    ),
    "cancelled": (Fault("response_cancelled"), {"status": "cancelled"}),
    "refusal": (Fault("refusal"), {"status": "completed", "text": REFUSAL_TEXT}),
}


def _summary(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": body["status"]}
    if body.get("error"):
        out["code"] = body["error"]["code"]
    if body.get("incomplete_details"):
        out["reason"] = body["incomplete_details"]["reason"]
    if body["status"] == "completed":
        out["text"] = body["output"][-1]["content"][0]["text"]
    return out


@pytest.mark.parametrize("at", ["create", "poll"])
@pytest.mark.parametrize(("fault", "expected"), OUTCOMES.values(), ids=OUTCOMES.keys())
def test_response_faults_set_the_terminal_state_at_create_or_at_a_poll(
    emu: OpenAIEmulator, http: requests.Session, fault: Fault, expected: dict[str, Any], at: str
) -> None:
    endpoint = "responses.create" if at == "create" else "responses.retrieve"
    emu.queue_faults([fault], match={"endpoint": endpoint, "prompt": "draw a fox"})
    created = create(http, emu)
    first = get(http, emu, f"responses/{created['id']}").json()
    final = first if at == "poll" else get(http, emu, f"responses/{created['id']}").json()
    assert _summary(final) == expected


# --- images and models ----------------------------------------------------------------------


def test_images_are_real_base64_pngs_with_usage(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    body = {"model": "gpt-image-1", "prompt": "a fox", "n": 2, "size": "64x64"}
    reply = post(http, emu, "images/generations", body).json()
    sizes = [read_png_size(base64.b64decode(item["b64_json"])) for item in reply["data"]]
    assert sizes == [(64, 64), (64, 64)]
    assert reply["data"][0]["b64_json"] != reply["data"][1]["b64_json"]
    assert (reply["output_format"], reply["usage"]["output_tokens"]) == ("png", 544)


def test_image_refusal_is_moderation_blocked(emu: OpenAIEmulator, http: requests.Session) -> None:
    emu.queue_faults([Fault("refusal")], match={"endpoint": "images.generate"})
    response = post(http, emu, "images/generations", {"prompt": "x"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "moderation_blocked")


def test_models_list_and_lookup(emu: OpenAIEmulator, http: requests.Session) -> None:
    assert "gpt-image-1" in [m["id"] for m in get(http, emu, "models").json()["data"]]
    assert get(http, emu, "models/gpt-4o").json()["owned_by"] == "openai"
    assert get(http, emu, "models/gpt-9").json()["error"]["code"] == "model_not_found"


# --- HTTP faults ----------------------------------------------------------------------------

FAULT_REPLIES: dict[str, tuple[int, str | None, dict[str, str]]] = {
    "rate_limit": (429, "rate_limit_exceeded", {"retry-after": "1", "retry-after-ms": "1000"}),
    "insufficient_quota": (429, "insufficient_quota", {}),
    "invalid_api_key": (401, "invalid_api_key", {}),
    "moderation_blocked": (400, "moderation_blocked", {}),
    "content_policy_violation": (400, "content_policy_violation", {}),
    "model_not_found": (404, "model_not_found", {}),
    "server_error": (500, None, {}),
    "overloaded": (503, None, {"retry-after": "1"}),
    "should_retry_false": (500, None, {"x-should-retry": "false"}),
}


def test_every_http_fault_kind_is_in_the_table() -> None:
    assert set(FAULT_REPLIES) == set(HTTP_FAULTS)
    assert set(HTTP_FAULTS) < OPENAI_FAULT_KINDS


@pytest.mark.parametrize(("kind", "expected"), FAULT_REPLIES.items(), ids=FAULT_REPLIES.keys())
def test_http_faults_answer_status_code_and_headers(
    emu: OpenAIEmulator,
    http: requests.Session,
    kind: str,
    expected: tuple[int, Any, dict[str, str]],
) -> None:
    status, code, headers = expected
    emu.queue_faults([Fault(kind)], match={"endpoint": "chat.completions"})
    response = post(http, emu, "chat/completions", CHAT)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (status, code)
    assert set(error) == {"message", "type", "param", "code"}
    assert {k: response.headers.get(k) for k in headers} == headers
    assert response.headers["x-request-id"].startswith("req_")
    assert post(http, emu, "chat/completions", CHAT).status_code == 200  # one-shot


def test_fault_knobs_override_status_message_and_wait(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    emu.queue_faults([Fault("rate_limit", message="slow down", retry_after=0.25)])
    response = post(http, emu, "chat/completions", CHAT)
    assert response.json()["error"]["message"] == "slow down"
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("0.25", "250")


def test_header_fault_wins_and_leaves_the_queue(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    emu.queue_faults([Fault("server_error")])
    headers = {"X-Sandbox-Fault": "insufficient_quota"}
    response = post(http, emu, "images/generations", {"prompt": "x"}, headers=headers)
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert len(emu.faults) == 1


def test_match_keys_keep_a_fault_for_its_request(
    emu: OpenAIEmulator, http: requests.Session
) -> None:
    emu.queue_faults([Fault("server_error")], match={"model": "gpt-image-1"})
    assert post(http, emu, "chat/completions", CHAT).status_code == 200
    image = post(http, emu, "images/generations", {"model": "gpt-image-1", "prompt": "x"})
    assert image.status_code == 500


def test_reset_drops_the_connection(emu: OpenAIEmulator, http: requests.Session) -> None:
    emu.queue_faults([Fault("reset")])
    with pytest.raises(requests.ConnectionError):
        post(http, emu, "chat/completions", CHAT)


def test_unknown_fault_kind_is_refused(emu: OpenAIEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.queue_faults([Fault("workflow_error")])


def test_cli_serves_the_openai_emulator() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "emp_tasks.sandbox", "openai", "--port", "0", "--token", "t0k"]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        models = requests.get(
            f"{url}/v1/models", headers={"Authorization": "Bearer t0k"}, timeout=5
        )
        assert models.json()["object"] == "list"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
