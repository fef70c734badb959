"""The google-genai SDK against the Gemini emulator: where they disagree, the emulator is wrong.

The SDK is pointed at the emulator with `HttpOptions(base_url=..., api_version="v1beta")` and
its retries are off (`HttpRetryOptions(attempts=1)`), so every fault reaches the test as the SDK's
own typed error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors, types

from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.gemini_replies import MODELS
from emp_tasks.sandbox.png import make_png, read_png_size

KEY = "gemini-fidelity-key-81d2"
TEXT = "gemini-2.5-flash"
IMAGE = "gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def server() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(tokens=(KEY,)) as emulator:
        yield emulator


@pytest.fixture
def gemini(server: GeminiEmulator) -> GeminiEmulator:
    server.reset()
    return server


def sdk(emulator: GeminiEmulator, key: str = KEY) -> genai.Client:
    options = types.HttpOptions(
        base_url=emulator.url,
        api_version="v1beta",
        timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1),  # one retry owner: not the SDK
    )
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture
def client(gemini: GeminiEmulator) -> Iterator[genai.Client]:
    with sdk(gemini) as c:
        yield c


def image_parts(response: types.GenerateContentResponse) -> list[types.Blob]:
    assert response.candidates
    content = response.candidates[0].content
    assert content is not None
    assert content.parts is not None
    return [p.inline_data for p in content.parts if p.inline_data is not None]


# -- calls of each kind --------------------------------------------------------------------------


def test_generate_content_text_parses_text_usage_and_ids(
    gemini: GeminiEmulator, client: genai.Client
) -> None:
    response = client.models.generate_content(
        model=TEXT,
        contents="hello there",
        config=types.GenerateContentConfig(temperature=0.4, system_instruction="be brief"),
    )
    assert response.text is not None
    assert "'hello there'" in response.text
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.total_token_count == (usage.prompt_token_count or 0) + (
        usage.candidates_token_count or 0
    )
    assert response.model_version == TEXT
    assert response.response_id
    sent = gemini.calls()[-1]
    assert sent.path == f"/v1beta/models/{TEXT}:generateContent"
    assert sent.auth_valid


def test_generate_content_with_image_modality_returns_png_bytes(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=IMAGE,
        contents="a red fox",
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="4:3"),
        ),
    )
    (blob,) = image_parts(response)
    assert blob.mime_type == "image/png"
    assert blob.data is not None
    assert read_png_size(blob.data) == (256, 192)


def test_an_edit_sends_the_input_image_as_inline_data(client: genai.Client) -> None:
    source = make_png("sdk-input", 12, 12)
    response = client.models.generate_content(
        model=IMAGE,
        contents=["make it blue", types.Part.from_bytes(data=source, mime_type="image/png")],
        config=types.GenerateContentConfig(response_modalities=["IMAGE", "TEXT"]),
    )
    assert response.text is not None
    assert f"{len(source)} bytes" in response.text
    assert len(image_parts(response)) == 1


def test_generate_content_stream_yields_the_text_in_chunks(client: genai.Client) -> None:
    whole = client.models.generate_content(model=TEXT, contents="stream me").text
    chunks = list(client.models.generate_content_stream(model=TEXT, contents="stream me"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == whole
    last = chunks[-1].candidates
    assert last is not None
    assert last[0].finish_reason == types.FinishReason.STOP


def test_models_list_and_get(client: genai.Client) -> None:
    listed = [m.name for m in client.models.list(config={"page_size": 2})]
    assert listed == [f"models/{m}" for m in MODELS]
    model = client.models.get(model=IMAGE)
    assert model.name == f"models/{IMAGE}"
    assert model.display_name == MODELS[IMAGE].display_name
    assert model.input_token_limit == MODELS[IMAGE].input_limit


# -- the SDK's typed errors ------------------------------------------------------------------------

ERRORS: list[tuple[str, type[errors.APIError], int, str]] = [
    ("invalid_key", errors.ClientError, 400, "INVALID_ARGUMENT"),
    ("permission_denied", errors.ClientError, 403, "PERMISSION_DENIED"),
    ("not_found", errors.ClientError, 404, "NOT_FOUND"),
    ("rate_limit", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    ("daily_quota", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
    ("server_error", errors.ServerError, 500, "INTERNAL"),
]


@pytest.mark.parametrize(
    ("kind", "error_type", "code", "status"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_error_faults_raise_the_sdks_typed_errors(
    gemini: GeminiEmulator,
    client: genai.Client,
    kind: str,
    error_type: type[errors.APIError],
    code: int,
    status: str,
) -> None:
    gemini.queue_faults([{"kind": kind}], match={"prompt": f"fault {kind}"})
    with pytest.raises(error_type) as info:
        client.models.generate_content(model=TEXT, contents=f"fault {kind}")
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.message
    assert len(gemini.calls()) == 1  # retries are off: the fault was not retried away


def test_rate_limit_details_reach_the_sdk_error(
    gemini: GeminiEmulator, client: genai.Client
) -> None:
    gemini.queue_faults([{"kind": "rate_limit", "retry_after": 1.5}])
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=TEXT, contents="x")
    details = info.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"} in details


def test_a_wrong_key_is_a_client_error_on_every_route(gemini: GeminiEmulator) -> None:
    with sdk(gemini, key="not-the-key") as bad:
        with pytest.raises(errors.ClientError) as info:
            bad.models.get(model=TEXT)
        assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
        with pytest.raises(errors.ClientError):
            bad.models.generate_content(model=TEXT, contents="x")


def test_a_stream_fault_raises_before_any_chunk(
    gemini: GeminiEmulator, client: genai.Client
) -> None:
    gemini.queue_faults([{"kind": "overloaded"}], match={"method": "streamGenerateContent"})
    with pytest.raises(errors.ServerError) as info:
        list(client.models.generate_content_stream(model=TEXT, contents="x"))
    assert info.value.code == 503


# -- 200 replies that are not answers ------------------------------------------------------------


def test_prompt_block_parses_as_prompt_feedback_without_candidates(
    gemini: GeminiEmulator, client: genai.Client
) -> None:
    gemini.queue_faults([{"kind": "prompt_blocked"}])
    response = client.models.generate_content(model=TEXT, contents="x")
    assert response.candidates is None
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert response.text is None


def test_prompt_block_in_a_stream_is_one_chunk(
    gemini: GeminiEmulator, client: genai.Client
) -> None:
    gemini.queue_faults([{"kind": "prompt_blocked"}])
    chunks = list(client.models.generate_content_stream(model=TEXT, contents="x"))
    assert len(chunks) == 1
    feedback = chunks[0].prompt_feedback
    assert feedback is not None
    assert feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


@pytest.mark.parametrize(
    ("kind", "finish"),
    [("safety_finish", types.FinishReason.SAFETY), ("no_image", types.FinishReason.NO_IMAGE)],
)
def test_finish_reason_faults_parse_as_sdk_enums(
    gemini: GeminiEmulator, client: genai.Client, kind: str, finish: types.FinishReason
) -> None:
    gemini.queue_faults([{"kind": kind}])
    response = client.models.generate_content(
        model=IMAGE,
        contents="x",
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
    )
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == finish
    assert not response.candidates[0].content or not image_parts(response)
