"""The Ollama emulator over real loopback HTTP: routes, NDJSON streaming, errors, faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.ollama import OLLAMA_FAULT_KINDS, OllamaEmulator

MODEL = "llama3.2"


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaEmulator]:
    with OllamaEmulator(line_pause=0.0) as emulator:
        yield emulator


@pytest.fixture
def ollama(server: OllamaEmulator) -> OllamaEmulator:
    server.reset()
    return server


def post(emu: OllamaEmulator, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(f"{emu.url}/api/{path}", json=body, timeout=10, **kw)


def lines(reply: requests.Response) -> list[Any]:
    return [json.loads(line) for line in reply.iter_lines() if line]


def test_generate_streams_ndjson_chunked_with_stats_in_nanoseconds(ollama: OllamaEmulator) -> None:
    reply = post(ollama, "generate", {"model": MODEL, "prompt": "hi there"}, stream=True)
    assert reply.headers["Content-Type"] == "application/x-ndjson"
    assert reply.headers["Transfer-Encoding"] == "chunked"
    got = lines(reply)
    assert "".join(c["response"] for c in got) == "Sandbox reply to: hi there"
    assert [c["done"] for c in got] == [False] * (len(got) - 1) + [True]
    final = got[-1]
    assert final["done_reason"] == "stop"
    assert final["total_duration"] > final["eval_duration"] > 1_000_000


def test_chat_and_non_streamed_replies(ollama: OllamaEmulator) -> None:
    messages = [{"role": "user", "content": "hello"}]
    got = lines(post(ollama, "chat", {"model": MODEL, "messages": messages}, stream=True))
    assert "".join(c["message"]["content"] for c in got) == "Sandbox reply to: hello"
    whole = post(ollama, "chat", {"model": MODEL, "messages": messages, "stream": False}).json()
    assert whole["message"]["content"] == "Sandbox reply to: hello"
    assert whole["done"] is True
    formatted = post(
        ollama, "generate", {"model": MODEL, "prompt": "x", "format": "json", "stream": False}
    )
    assert json.loads(formatted.json()["response"]) == {"reply": "Sandbox reply to: x"}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "llama9", "prompt": "x"}, 404, "model 'llama9' not found"),
        ({"prompt": "x"}, 400, "model is required"),
    ],
)
def test_error_replies_are_ollamas_error_objects(
    ollama: OllamaEmulator, body: dict[str, Any], status: int, error: str
) -> None:
    reply = post(ollama, "generate", body)
    assert (reply.status_code, reply.json()) == (status, {"error": error})


def test_health_routes(ollama: OllamaEmulator) -> None:
    assert requests.get(ollama.url, timeout=5).text == "Ollama is running"
    assert requests.get(f"{ollama.url}/api/version", timeout=5).json()["version"]
    names = [m["name"] for m in requests.get(f"{ollama.url}/api/tags", timeout=5).json()["models"]]
    assert "llama3.2:latest" in names
    assert requests.get(f"{ollama.url}/api/nope", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("server_error", 500),
        ("oom", 500),
        ("rate_limit", 429),
        ("bad_gateway", 502),
        ("model_not_found", 404),
        ("bad_request", 400),
    ],
)
def test_http_error_faults(ollama: OllamaEmulator, fault: str, status: int) -> None:
    ollama.queue_faults([{"kind": fault}], match={"endpoint": "generate"})
    reply = post(ollama, "generate", {"model": MODEL, "prompt": "x"})
    assert reply.status_code == status
    assert isinstance(reply.json()["error"], str)


def test_rate_limit_sends_retry_after(ollama: OllamaEmulator) -> None:
    ollama.queue_faults([{"kind": "rate_limit", "retry_after": 3}])
    assert post(ollama, "generate", {"model": MODEL, "prompt": "x"}).headers["Retry-After"] == "3"


def test_mid_stream_error_comes_under_http_200(ollama: OllamaEmulator) -> None:
    ollama.queue_faults([{"kind": "mid_stream_error", "message": "boom"}])
    reply = post(ollama, "generate", {"model": MODEL, "prompt": "a b c d"}, stream=True)
    got = lines(reply)
    assert reply.status_code == 200
    assert len(got) == 3
    assert got[-1] == {"error": "an error was encountered while running the model: boom"}


def test_malformed_cut_and_reset_streams(ollama: OllamaEmulator) -> None:
    ollama.queue_faults([{"kind": "malformed"}, {"kind": "stream_cut"}, {"kind": "reset"}])
    body = {"model": MODEL, "prompt": "a b c d"}
    raw = [line for line in post(ollama, "generate", body, stream=True).iter_lines() if line]
    with pytest.raises(ValueError):
        json.loads(raw[-1])
    cut = lines(post(ollama, "generate", body, stream=True))
    assert len(cut) == 2
    assert not any(c["done"] for c in cut)
    with pytest.raises(requests.RequestException):
        lines(post(ollama, "generate", body, stream=True))


def test_every_documented_fault_kind_is_known() -> None:
    assert {
        "slow",
        "reset",
        "malformed",
        "mid_stream_error",
        "oom",
        "server_error",
    } <= OLLAMA_FAULT_KINDS
