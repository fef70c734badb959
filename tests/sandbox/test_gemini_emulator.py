"""The Gemini emulator over real loopback HTTP: routes, auth, bodies, streaming, faults."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.gemini import GEMINI_FAULT_KINDS, GeminiEmulator
from emp_tasks.sandbox.gemini_replies import MODELS, image_size, stream_chunks
from emp_tasks.sandbox.png import make_png, read_png_size

KEY = "gemini-emulator-key"
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


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["x-goog-api-key"] = KEY
        yield session


def generate(
    http: requests.Session,
    gemini: GeminiEmulator,
    body: dict[str, Any] | None = None,
    model: str = TEXT,
    verb: str = "generateContent",
    **kwargs: Any,
) -> requests.Response:
    url = f"{gemini.url}/v1beta/models/{model}:{verb}"
    payload = body if body is not None else {"contents": [{"parts": [{"text": "hello"}]}]}
    return http.post(url, json=payload, timeout=5, **kwargs)


def image_body(prompt: str = "a fox", **config: Any) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], **config},
    }


def sse_events(text: str) -> list[dict[str, Any]]:
    frames = [f for f in text.replace("\r\n", "\n").split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f[len("data: ") :]) for f in frames]


def parts_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = body["candidates"][0]["content"]["parts"]
    return parts


# -- auth -------------------------------------------------------------------------------------


def test_key_in_header_or_query_is_accepted_and_never_logged(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    assert generate(http, gemini).status_code == 200
    anonymous = requests.get(f"{gemini.url}/v1beta/models", params={"key": KEY}, timeout=5)
    assert anonymous.status_code == 200
    logged = json.dumps([c.to_dict() for c in gemini.calls()])
    assert KEY not in logged
    assert all(c.auth_valid for c in gemini.calls())


def test_wrong_key_is_400_invalid_argument_with_reason_api_key_invalid(
    gemini: GeminiEmulator,
) -> None:
    response = requests.get(f"{gemini.url}/v1beta/models", params={"key": "nope"}, timeout=5)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith("API key not valid")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_missing_key_is_403_permission_denied(gemini: GeminiEmulator) -> None:
    response = requests.get(f"{gemini.url}/v1beta/models", timeout=5)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


# -- generateContent ---------------------------------------------------------------------------


def test_text_reply_is_camel_case_and_deterministic_in_the_prompt(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    first = generate(http, gemini).json()
    again = generate(http, gemini).json()
    other = generate(http, gemini, {"contents": [{"parts": [{"text": "bye"}]}]}).json()
    assert first == again
    assert parts_of(first)[0]["text"] != parts_of(other)[0]["text"]
    assert "'hello'" in parts_of(first)[0]["text"]
    candidate = first["candidates"][0]
    assert (candidate["finishReason"], candidate["index"]) == ("STOP", 0)
    usage = first["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert first["modelVersion"] == TEXT
    assert first["responseId"]


def test_image_modality_returns_a_real_png_shaped_by_the_aspect_ratio(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    body = generate(http, gemini, image_body(imageConfig={"aspectRatio": "16:9"}), IMAGE).json()
    text, image = parts_of(body)
    assert "text" in text
    assert image["inlineData"]["mimeType"] == "image/png"
    png = base64.b64decode(image["inlineData"]["data"])
    assert read_png_size(png) == image_size("16:9") == (256, 144)


def test_snake_case_request_keys_are_accepted(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    body = {
        "contents": [{"parts": [{"text": "a fox"}]}],
        "generation_config": {
            "response_modalities": ["IMAGE"],
            "image_config": {"aspect_ratio": "3:4"},
        },
    }
    parts = parts_of(generate(http, gemini, body, IMAGE).json())
    assert len(parts) == 1  # only the modality asked for
    assert read_png_size(base64.b64decode(parts[0]["inlineData"]["data"])) == (192, 256)


@pytest.mark.parametrize(
    ("key", "encode"),
    [
        ("inlineData", base64.b64encode),
        ("inline_data", base64.b64encode),
        ("inlineData", base64.urlsafe_b64encode),  # what the google-genai SDK sends
    ],
    ids=["camel", "snake", "urlsafe"],
)
def test_input_images_are_accepted_and_echoed_by_size(
    gemini: GeminiEmulator, http: requests.Session, key: str, encode: Any
) -> None:
    png = make_png("input", 16, 16)
    blob = {"mimeType": "image/png", "data": encode(png).decode()}
    body = image_body("make it blue")
    body["contents"][0]["parts"].append({key: blob})
    reply = generate(http, gemini, body, IMAGE).json()
    assert f"received 1 input image(s), {len(png)} bytes" in parts_of(reply)[0]["text"]
    assert gemini.calls()[-1].extra["prompt"] == "make it blue"


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("no_contents", {}, "contents is not specified"),
    ("empty_parts", {"contents": [{"parts": []}]}, "parts"),
    ("unknown_field", {"contents": [{"parts": [{"text": "x"}]}], "prompt": "x"}, "Unknown name"),
    (
        "bad_base64",
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]},
        "Base64 decoding failed",
    ),
    (
        "bad_modality",
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"responseModalities": ["image"]},
        },
        "response_modalities",
    ),
    ("image_from_text_model", image_body(), "modalities"),
]


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_malformed_requests_are_400_invalid_argument(
    gemini: GeminiEmulator, http: requests.Session, body: Any, message: str
) -> None:
    response = generate(http, gemini, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]


def test_unknown_model_is_404_not_found(gemini: GeminiEmulator, http: requests.Session) -> None:
    response = generate(http, gemini, model="gemini-0-nope")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert "models/gemini-0-nope" in response.json()["error"]["message"]


def test_unknown_route_is_404(gemini: GeminiEmulator, http: requests.Session) -> None:
    assert http.get(f"{gemini.url}/v1/models", timeout=5).status_code == 404
    assert (
        http.get(f"{gemini.url}/v1beta/models/{TEXT}:generateContent", timeout=5).status_code == 404
    )


# -- streaming ---------------------------------------------------------------------------------


def test_sse_stream_splits_the_text_and_ends_with_finish_reason_and_usage(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    whole = generate(http, gemini).json()
    response = generate(http, gemini, verb="streamGenerateContent", params={"alt": "sse"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert len(events) > 1
    assert "".join(parts_of(e)[0]["text"] for e in events) == parts_of(whole)[0]["text"]
    assert [e["candidates"][0].get("finishReason") for e in events][-1] == "STOP"
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["usageMetadata"] == whole["usageMetadata"]


def test_stream_without_alt_sse_is_a_json_array(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    response = generate(http, gemini, verb="streamGenerateContent")
    chunks = response.json()
    assert isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_image_stream_carries_the_image_in_the_last_event(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    response = generate(
        http, gemini, image_body(), IMAGE, verb="streamGenerateContent", params={"alt": "sse"}
    )
    events = sse_events(response.text)
    assert "inlineData" in parts_of(events[-1])[-1]


def test_stream_chunks_leave_blocks_whole() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
    assert stream_chunks(blocked) == [blocked]


# -- models ------------------------------------------------------------------------------------


def test_models_list_pages_through_the_catalog(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    names: list[str] = []
    token = None
    while True:
        params = {"pageSize": "2", **({"pageToken": token} if token else {})}
        page = http.get(f"{gemini.url}/v1beta/models", params=params, timeout=5).json()
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert names == [f"models/{m}" for m in MODELS]


def test_models_get_returns_one_resource_or_404(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    model = http.get(f"{gemini.url}/v1beta/models/{IMAGE}", timeout=5).json()
    assert model["name"] == f"models/{IMAGE}"
    assert "generateContent" in model["supportedGenerationMethods"]
    assert http.get(f"{gemini.url}/v1beta/models/nope", timeout=5).status_code == 404


# -- faults ------------------------------------------------------------------------------------

ERROR_FAULTS: list[tuple[dict[str, Any], int, str]] = [
    ({"kind": "rate_limit"}, 429, "RESOURCE_EXHAUSTED"),
    ({"kind": "daily_quota"}, 429, "RESOURCE_EXHAUSTED"),
    ({"kind": "invalid_key"}, 400, "INVALID_ARGUMENT"),
    ({"kind": "permission_denied"}, 403, "PERMISSION_DENIED"),
    ({"kind": "not_found"}, 404, "NOT_FOUND"),
    ({"kind": "overloaded"}, 503, "UNAVAILABLE"),
    ({"kind": "server_error"}, 500, "INTERNAL"),
    ({"kind": "server_error", "status": 504}, 504, "DEADLINE_EXCEEDED"),
]


@pytest.mark.parametrize(
    ("fault", "status", "rpc"), ERROR_FAULTS, ids=[f"{f['kind']}-{s}" for f, s, _ in ERROR_FAULTS]
)
def test_error_faults_answer_with_a_google_rpc_status(
    gemini: GeminiEmulator, http: requests.Session, fault: dict[str, Any], status: int, rpc: str
) -> None:
    gemini.queue_faults([fault], match={"model": TEXT})
    response = generate(http, gemini)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, rpc)
    assert generate(http, gemini).status_code == 200  # one-shot
    assert gemini.calls()[0].extra["fault"] == fault["kind"]


def details(response: requests.Response, type_name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        d for d in response.json()["error"]["details"] if d["@type"].endswith(type_name)
    )
    return found


@pytest.mark.parametrize(
    ("retry_after", "delay"), [(None, "2s"), (1.5, "1.5s"), (3, "3s"), ("34s", "34s")]
)
def test_rate_limit_carries_retry_info_and_a_per_minute_quota(
    gemini: GeminiEmulator, http: requests.Session, retry_after: Any, delay: str
) -> None:
    gemini.queue_faults([{"kind": "rate_limit", "retry_after": retry_after}])
    response = generate(http, gemini)
    assert details(response, "RetryInfo")["retryDelay"] == delay
    assert "PerMinute" in details(response, "QuotaFailure")["violations"][0]["quotaId"]
    assert "retry-after" not in response.headers  # Gemini sends no Retry-After header


def test_daily_quota_names_a_per_day_quota(gemini: GeminiEmulator, http: requests.Session) -> None:
    gemini.queue_faults([{"kind": "daily_quota"}])
    response = generate(http, gemini)
    assert "PerDay" in details(response, "QuotaFailure")["violations"][0]["quotaId"]


def test_prompt_blocked_is_200_without_candidates(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    gemini.queue_faults([{"kind": "prompt_blocked"}], match={"prompt": "hello"})
    body = generate(http, gemini).json()
    assert "candidates" not in body
    assert body["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}


def test_safety_finish_is_200_with_a_contentless_candidate(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    gemini.queue_faults([{"kind": "safety_finish"}])
    candidate = generate(http, gemini).json()["candidates"][0]
    assert candidate["finishReason"] == "SAFETY"
    assert "content" not in candidate


@pytest.mark.parametrize(("kind", "finish"), [("no_image", "NO_IMAGE"), ("text_only", "STOP")])
def test_imageless_faults_drop_the_image_part(
    gemini: GeminiEmulator, http: requests.Session, kind: str, finish: str
) -> None:
    gemini.queue_faults([{"kind": kind}], match={"model": IMAGE})
    body = generate(http, gemini, image_body(), IMAGE).json()
    assert body["candidates"][0]["finishReason"] == finish
    assert all("inlineData" not in p for p in parts_of(body))


def test_content_faults_stream_as_one_event(gemini: GeminiEmulator, http: requests.Session) -> None:
    gemini.queue_faults([{"kind": "prompt_blocked"}], match={"method": "streamGenerateContent"})
    response = generate(http, gemini, verb="streamGenerateContent", params={"alt": "sse"})
    assert [e.get("promptFeedback") for e in sse_events(response.text)] == [
        {"blockReason": "PROHIBITED_CONTENT"}
    ]


def test_queued_faults_match_on_the_prompt(gemini: GeminiEmulator, http: requests.Session) -> None:
    gemini.queue_faults([{"kind": "overloaded"}], match={"prompt": "bye"})
    assert generate(http, gemini).status_code == 200
    assert generate(http, gemini, {"contents": [{"parts": [{"text": "bye"}]}]}).status_code == 503


def test_header_fault_wins_and_leaves_the_queue_alone(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    gemini.queue_faults([{"kind": "overloaded"}])
    response = generate(http, gemini, headers={"X-Sandbox-Fault": "rate_limit;retry_after=7"})
    assert details(response, "RetryInfo")["retryDelay"] == "7s"
    assert len(gemini.faults) == 1


def test_fault_message_and_body_override_the_defaults(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    gemini.queue_faults(
        [{"kind": "overloaded", "message": "try later"}, {"kind": "not_found", "body": {"x": 1}}]
    )
    assert generate(http, gemini).json()["error"]["message"] == "try later"
    assert generate(http, gemini).json() == {"x": 1}


def test_faults_apply_to_model_listing_too(gemini: GeminiEmulator, http: requests.Session) -> None:
    gemini.queue_faults([{"kind": "invalid_key"}], match={"method": "models.list"})
    assert http.get(f"{gemini.url}/v1beta/models", timeout=5).status_code == 400


def test_slow_delays_then_answers_and_reset_drops_the_connection(
    gemini: GeminiEmulator, http: requests.Session
) -> None:
    gemini.queue_faults([{"kind": "slow", "delay": 0.3}, {"kind": "reset"}])
    response = generate(http, gemini)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3
    with pytest.raises(requests.ConnectionError):
        generate(http, gemini)


def test_unknown_fault_kinds_are_refused() -> None:
    assert {"rate_limit", "daily_quota", "prompt_blocked", "no_image"} <= GEMINI_FAULT_KINDS
    with GeminiEmulator() as emulator, pytest.raises(ValueError, match="unknown fault kind"):
        emulator.queue_faults([{"kind": "insufficient_credits"}])
