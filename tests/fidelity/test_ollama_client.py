"""The official ollama client against the Ollama emulator: where they differ, the emulator errs.

`ollama.Client(host=...)` must parse every reply into its own types (GenerateResponse,
ChatResponse, ListResponse, ShowResponse), stream chunk by chunk, and raise its own
`ResponseError` (with the status code) on the emulator's error replies and mid-stream errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import ollama
import pytest

from emp_tasks.sandbox.ollama import OllamaEmulator

MODEL = "llama3.2"


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaEmulator]:
    with OllamaEmulator(line_pause=0.0) as emulator:
        yield emulator


@pytest.fixture
def emu(server: OllamaEmulator) -> OllamaEmulator:
    server.reset()
    return server


@pytest.fixture
def client(emu: OllamaEmulator) -> ollama.Client:
    return ollama.Client(host=emu.url, timeout=10)


def test_generate_parses_into_generate_response(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="hello fox")
    assert isinstance(reply, ollama.GenerateResponse)
    assert reply.response == "Sandbox reply to: hello fox"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert reply.eval_count
    assert reply.total_duration
    assert reply.total_duration > 1_000_000  # nanoseconds


def test_chat_parses_into_chat_response(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert isinstance(reply, ollama.ChatResponse)
    assert reply.message.role == "assistant"
    assert reply.message.content == "Sandbox reply to: hi"


def test_streaming_yields_each_chunk_then_the_final_stats(client: ollama.Client) -> None:
    parts = list(client.generate(model=MODEL, prompt="one two three", stream=True))
    assert len(parts) > 2
    assert "".join(p.response or "" for p in parts) == "Sandbox reply to: one two three"
    assert [p.done for p in parts][-1] is True
    assert parts[-1].prompt_eval_count
    chat = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(p.message.content or "" for p in chat) == "Sandbox reply to: x"


def test_format_json_gives_a_json_answer(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="q", format="json")
    assert json.loads(reply.response or "") == {"reply": "Sandbox reply to: q"}


def test_list_show_and_version_parse(client: ollama.Client) -> None:
    assert "llama3.2:latest" in [m.model for m in client.list().models]
    assert client.show(MODEL).details is not None


def test_model_not_found_raises_response_error_with_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model="llama9", prompt="x")
    assert info.value.status_code == 404
    assert info.value.error == "model 'llama9' not found"


@pytest.mark.parametrize(("fault", "status"), [("server_error", 500), ("rate_limit", 429)])
def test_error_faults_raise_response_error(
    emu: OllamaEmulator, client: ollama.Client, fault: str, status: int
) -> None:
    emu.queue_faults([{"kind": fault}])
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status


def test_a_mid_stream_error_line_raises_response_error(
    emu: OllamaEmulator, client: ollama.Client
) -> None:
    emu.queue_faults([{"kind": "mid_stream_error", "message": "boom"}])
    with pytest.raises(ollama.ResponseError) as info:
        list(client.generate(model=MODEL, prompt="a b c d", stream=True))
    assert "boom" in info.value.error
