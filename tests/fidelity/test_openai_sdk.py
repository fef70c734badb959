"""The official openai SDK against the OpenAI emulator: where they disagree, the emulator is wrong.

The client is pointed at `<emulator>/v1` with `max_retries=0` (one retry owner: not the SDK), so
each call of each kind must parse into the SDK's own types, and each fault must surface as the
SDK's own typed error, with the status, code and request id the SDK reads from the reply.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.png import read_png_size

KEY = "sk-fidelity-key-0b7e4a91"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(tokens=(KEY,), polls_to_complete=2) as emulator:
        yield emulator


@pytest.fixture
def emu(server: OpenAIEmulator) -> OpenAIEmulator:
    server.reset()
    return server


@pytest.fixture
def client(emu: OpenAIEmulator) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{emu.url}/v1", api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


def chat(client: OpenAI) -> ChatCompletion:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


# --- every call kind parses -----------------------------------------------------------------


def test_chat_completion_parses(client: OpenAI) -> None:
    completion = chat(client)
    assert completion.choices[0].message.content == "Sandbox reply to: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5


def test_chat_stream_parses_to_the_same_text_and_usage(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sandbox reply to: hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_background_response_create_retrieve_and_image(client: OpenAI) -> None:
    created = client.responses.create(
        model="gpt-4.1",
        input="draw a fox",
        background=True,
        tools=[{"type": "image_generation", "size": "1024x1024"}],
    )
    assert (created.status, created.background) == ("queued", True)
    seen = [client.responses.retrieve(created.id).status for _ in range(2)]
    assert seen == ["in_progress", "completed"]
    done = client.responses.retrieve(created.id)
    assert done.output_text == "Here is your image."
    image = done.output[0]
    assert image.type == "image_generation_call"
    assert image.result is not None
    assert read_png_size(base64.b64decode(image.result)) == (1024, 1024)
    assert done.usage is not None
    assert done.usage.total_tokens > 0


def test_background_response_cancel(client: OpenAI) -> None:
    created = client.responses.create(model="gpt-4.1", input="a long essay", background=True)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"


@pytest.mark.parametrize(
    ("fault", "status", "attribute", "value"),
    [
        (Fault("response_failed", message="server_error"), "failed", "error.code", "server_error"),
        (
            Fault("response_incomplete"),
            "incomplete",
            "incomplete_details.reason",
            "max_output_tokens",
        ),
    ],
    ids=["failed", "incomplete"],
)
def test_terminal_response_states_parse(
    client: OpenAI, emu: OpenAIEmulator, fault: Fault, status: str, attribute: str, value: str
) -> None:
    emu.queue_faults([fault], match={"endpoint": "responses.retrieve"})
    created = client.responses.create(model="gpt-4.1", input="x", background=True)
    final = client.responses.retrieve(created.id)
    assert final.status == status
    holder, field = attribute.split(".")
    assert getattr(getattr(final, holder), field) == value


def test_images_generate_parses(client: OpenAI) -> None:
    reply = client.images.generate(model="gpt-image-1", prompt="a fox", n=2, size="1024x1024")
    assert reply.data is not None
    assert len(reply.data) == 2
    b64 = reply.data[0].b64_json
    assert b64 is not None
    assert read_png_size(base64.b64decode(b64)) == (1024, 1024)
    assert reply.usage is not None
    assert reply.usage.output_tokens == 544


def test_models_list_parses(client: OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "gpt-image-1" in ids
    assert client.models.retrieve("gpt-4o").owned_by == "openai"


# --- every fault is the SDK's own typed error -----------------------------------------------

ERRORS: dict[str, tuple[type[openai.APIStatusError], int, str | None]] = {
    "rate_limit": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "insufficient_quota": (openai.RateLimitError, 429, "insufficient_quota"),
    "invalid_api_key": (openai.AuthenticationError, 401, "invalid_api_key"),
    "moderation_blocked": (openai.BadRequestError, 400, "moderation_blocked"),
    "content_policy_violation": (openai.BadRequestError, 400, "content_policy_violation"),
    "model_not_found": (openai.NotFoundError, 404, "model_not_found"),
    "server_error": (openai.InternalServerError, 500, None),
    "overloaded": (openai.InternalServerError, 503, None),
    "should_retry_false": (openai.InternalServerError, 500, None),
}


@pytest.mark.parametrize(("kind", "expected"), ERRORS.items(), ids=ERRORS.keys())
def test_http_faults_raise_the_sdk_typed_error(
    client: OpenAI, emu: OpenAIEmulator, kind: str, expected: tuple[type[Exception], int, str]
) -> None:
    error_type, status, code = expected
    emu.queue_faults([Fault(kind)])
    with pytest.raises(error_type) as info:
        chat(client)
    error = info.value
    assert isinstance(error, openai.APIStatusError)
    assert (error.status_code, error.code) == (status, code)
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


def test_wrong_key_is_an_authentication_error(emu: OpenAIEmulator) -> None:
    wrong = OpenAI(base_url=f"{emu.url}/v1", api_key="sk-wrong-000000", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as info:
        wrong.models.list()
    assert info.value.code == "invalid_api_key"


def test_sdk_reads_the_emulator_wait_hints(client: OpenAI, emu: OpenAIEmulator) -> None:
    emu.queue_faults([Fault("rate_limit", retry_after=0.5)])
    with pytest.raises(openai.RateLimitError) as info:
        chat(client)
    headers = info.value.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("500", "0.5")


def test_sdk_honours_x_should_retry_false(emu: OpenAIEmulator) -> None:
    # With retries on, the SDK would retry a 500 - unless the emulator says not to.
    emu.queue_faults([Fault("should_retry_false")])
    retrying = OpenAI(base_url=f"{emu.url}/v1", api_key=KEY, max_retries=2)
    with retrying, pytest.raises(openai.InternalServerError):
        chat(retrying)
    assert len(emu.calls("/v1/chat")) == 1


def test_mid_stream_error_is_an_api_error(client: OpenAI, emu: OpenAIEmulator) -> None:
    emu.queue_faults([Fault("mid_stream_error", message="The server had an error")])
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
    )
    with pytest.raises(openai.APIError, match="The server had an error"):
        list(stream)


def test_stream_cut_ends_without_a_finish_reason(client: OpenAI, emu: OpenAIEmulator) -> None:
    emu.queue_faults([Fault("stream_cut")])
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
    )
    assert all(c.choices[0].finish_reason is None for c in stream)


def test_image_refusal_is_a_bad_request(client: OpenAI, emu: OpenAIEmulator) -> None:
    emu.queue_faults([Fault("refusal")], match={"endpoint": "images.generate"})
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-1", prompt="x")
    assert info.value.code == "moderation_blocked"
    assert "wfr_" in info.value.message
