"""Gemini connectors: settings, payload validation and the requests they send."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from connectors.assets import (
    AssetSaver,
    DownloadPolicy,
)
from connectors.errors import ConnectorError, FailureReason
from connectors.services.gemini import (
    GeminiConnector,
    GeminiImageConnector,
    GeminiImageEditConnector,
    GeminiSettings,
    GeminiTextConnector,
)
from connectors.services.gemini_input import InputImageFetcher
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    body_json,
    fake_session,
    html_reply,
    json_reply,
)
from tests.connectors.services.gemini_support import (
    BASE,
    IMAGE_HOST,
    KEY,
    PNG,
    PNG_B64,
    Connector,
    R,
    StubSaver,
    T,
    clean_env,
    image_part,
    job,
    make,
    reply_body,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def test_stub_saver_satisfies_the_asset_saver_protocol() -> None:
    assert isinstance(StubSaver(), AssetSaver)


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("GEMINI_API_KEY", value)
    with pytest.raises(ConnectorError) as info:
        GeminiTextConnector()
    error = info.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.SYSTEM_ERROR,
        R.CONFIG_ERROR,
        False,
    )
    assert "GEMINI_API_KEY" in error.message
    assert error.context["variables"] == ["GEMINI_API_KEY"]


def test_settings_come_from_the_environment_with_documented_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    defaults = GeminiSettings()
    assert defaults.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert (defaults.timeout, defaults.text_model, defaults.image_model) == (
        45.0,
        "gemini-2.5-flash",
        "gemini-2.5-flash-image",
    )
    monkeypatch.setenv("GEMINI_TIMEOUT", "12.5")
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9/v1beta")
    connector = GeminiImageConnector()
    assert connector.client.timeouts.read == 12.5
    assert connector.client.url("models") == "http://127.0.0.1:9/v1beta/models"


def test_an_invalid_setting_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_TIMEOUT", "soon")
    with pytest.raises(ConnectorError) as info:
        GeminiTextConnector()
    assert info.value.failure_reason is R.CONFIG_ERROR
    assert info.value.context["variables"] == ["GEMINI_TIMEOUT"]


# --- payload validation, before any request ------------------------------------------------------

BAD_PAYLOADS: list[tuple[str, Connector, dict[str, Any], str]] = [
    ("no_prompt", GeminiTextConnector, {}, "prompt"),
    ("blank_prompt", GeminiTextConnector, {"prompt": "  "}, "prompt"),
    ("prompt_not_text", GeminiTextConnector, {"prompt": 7}, "prompt"),
    (
        "prompt_and_contents",
        GeminiTextConnector,
        {"prompt": "x", "contents": [{"parts": [{"text": "y"}]}]},
        "prompt",
    ),
    ("empty_contents", GeminiTextConnector, {"contents": []}, "contents"),
    ("contents_without_parts", GeminiTextConnector, {"contents": [{"role": "user"}]}, "contents"),
    ("model_path_injection", GeminiTextConnector, {"prompt": "x", "model": "../files"}, "model"),
    ("model_with_query", GeminiTextConnector, {"prompt": "x", "model": "m?key=1"}, "model"),
    ("temperature_too_high", GeminiTextConnector, {"prompt": "x", "temperature": 3}, "temperature"),
    ("unknown_field", GeminiTextConnector, {"prompt": "x", "bogus": 1}, "bogus"),
    ("aspect_on_text", GeminiTextConnector, {"prompt": "x", "aspect_ratio": "1:1"}, "aspect_ratio"),
    ("bad_aspect", GeminiImageConnector, {"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio"),
    (
        "image_on_generate",
        GeminiImageConnector,
        {"prompt": "x", "image_url": "https://a/b"},
        "image",
    ),
    ("edit_without_image", GeminiImageEditConnector, {"prompt": "x"}, "image_base64"),
    (
        "edit_with_both_images",
        GeminiImageEditConnector,
        {"prompt": "x", "image_url": "https://a.test/i.png", "image_base64": PNG_B64},
        "image_base64",
    ),
    (
        "edit_url_not_http",
        GeminiImageEditConnector,
        {"prompt": "x", "image_url": "file:///etc/passwd"},
        "image_url",
    ),
    (
        "edit_base64_invalid",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": "not base64 at all!"},
        "image_base64",
    ),
    (
        "edit_data_url_not_base64",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": "data:image/png,abc"},
        "image_base64",
    ),
    (
        "edit_mime_not_image",
        GeminiImageEditConnector,
        {"prompt": "x", "image_base64": PNG_B64, "mime_type": "text/html"},
        "mime_type",
    ),
    ("edit_without_prompt", GeminiImageEditConnector, {"image_base64": PNG_B64}, "prompt"),
]


@pytest.mark.parametrize(
    ("cls", "payload", "field"),
    [case[1:] for case in BAD_PAYLOADS],
    ids=[case[0] for case in BAD_PAYLOADS],
)
def test_bad_payload_is_refused_naming_the_field_before_any_request(
    cls: Connector, payload: dict[str, Any], field: str
) -> None:
    connector, adapter = make(cls)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(job(cls.service_type, **payload))
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert field in error.message
    assert adapter.requests == []
    with pytest.raises(ConnectorError):
        cls.validate_payload(payload)  # the same check runs at submit time


def test_an_edit_payload_accepts_exactly_one_image() -> None:
    assert GeminiImageEditConnector.validate_payload({"prompt": "x", "image_base64": PNG_B64})
    assert GeminiImageEditConnector.validate_payload(
        {"prompt": "x", "image_url": "https://images.example/cat.png"}
    )


# --- the request ------------------------------------------------------------------------------


def test_text_request_posts_generate_content_with_the_key_header() -> None:
    connector, adapter = make(GeminiTextConnector, json_reply(reply_body({"text": "hi"})))
    connector.process_job(job(prompt="hello", temperature=0.3))
    sent = adapter.last
    assert sent.method == "POST"
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert "key=" not in adapter.last_url  # never in the URL, where logs would keep it
    assert body_json(sent) == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "generationConfig": {"temperature": 0.3},
    }


def test_payload_model_overrides_the_default_and_loses_its_models_prefix() -> None:
    connector, adapter = make(GeminiTextConnector, json_reply(reply_body({"text": "hi"})))
    connector.process_job(job(prompt="x", model="models/gemini-2.5-pro"))
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-pro:generateContent"


def test_image_request_asks_for_image_output_and_the_aspect_ratio() -> None:
    connector, adapter = make(GeminiImageConnector, json_reply(reply_body(image_part())))
    connector.process_job(job("gemini_image", prompt="a fox", aspect_ratio="16:9"))
    assert adapter.last_url == f"{BASE}/models/gemini-2.5-flash-image:generateContent"
    assert body_json(adapter.last)["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
    }


JPEG = b"\xff\xd8\xff\xe0jpeg"


@pytest.mark.parametrize(
    ("image_base64", "mime_type", "sent_mime", "sent_bytes"),
    [
        (PNG_B64, None, "image/png", PNG),
        (f"data:image/png;base64,{PNG_B64}", None, "image/png", PNG),
        (PNG_B64.rstrip("="), None, "image/png", PNG),
        (base64.urlsafe_b64encode(PNG).decode(), None, "image/png", PNG),
        (base64.b64encode(JPEG).decode(), None, "image/jpeg", JPEG),
        (PNG_B64, "image/webp", "image/webp", PNG),
    ],
    ids=["raw", "data_url", "unpadded", "urlsafe", "jpeg_sniffed", "declared_mime_wins"],
)
def test_edit_sends_the_base64_image_as_inline_data_after_the_prompt(
    image_base64: str, mime_type: str | None, sent_mime: str, sent_bytes: bytes
) -> None:
    connector, adapter = make(GeminiImageEditConnector, json_reply(reply_body(image_part())))
    payload: dict[str, Any] = {"prompt": "make it blue", "image_base64": image_base64}
    if mime_type:
        payload["mime_type"] = mime_type
    connector.process_job(job("gemini_image_edit", **payload))
    parts = body_json(adapter.last)["contents"][0]["parts"]
    assert parts[0] == {"text": "make it blue"}
    blob = parts[1]["inlineData"]
    assert blob["mimeType"] == sent_mime
    assert blob["data"] == base64.b64encode(sent_bytes).decode()


def test_edit_with_contents_appends_the_image_without_touching_the_payload() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "a"}]},
        {"role": "user", "parts": [{"text": "b"}]},
    ]
    payload = {"contents": contents, "image_base64": PNG_B64}
    connector, adapter = make(GeminiImageEditConnector, json_reply(reply_body(image_part())))
    data = job("gemini_image_edit", **payload)
    connector.process_job(data)
    sent = body_json(adapter.last)["contents"]
    assert sent[0] == contents[0]
    assert sent[1]["parts"][1]["inlineData"]["data"] == PNG_B64
    assert data.payload["contents"][1]["parts"] == [{"text": "b"}]


def edit_connector(*image_host: Reply, **kwargs: Any) -> tuple[GeminiConnector, FakeAdapter]:
    dl_session, _ = fake_session(*image_host)
    policy = DownloadPolicy(allow_hosts=frozenset({IMAGE_HOST}), max_bytes=1024 * 1024)
    fetcher = InputImageFetcher(dl_session, policy)
    connector, adapter = make(
        GeminiImageEditConnector, *kwargs.pop("gemini", ()), image_fetcher=fetcher
    )
    return connector, adapter


def test_edit_by_url_downloads_the_image_and_sends_it_inline() -> None:
    image = Reply(200, PNG, {"Content-Type": "image/png"})
    connector, adapter = edit_connector(image, gemini=[json_reply(reply_body(image_part()))])
    connector.process_job(
        job("gemini_image_edit", prompt="x", image_url=f"https://{IMAGE_HOST}/cat.png")
    )
    blob = body_json(adapter.last)["contents"][0]["parts"][1]["inlineData"]
    assert blob == {"mimeType": "image/png", "data": PNG_B64}


@pytest.mark.parametrize(
    ("image_host", "reason"),
    [
        (json_reply({"error": "gone"}, 404), R.INVALID_REQUEST),
        (html_reply("<html>login</html>", 200), R.INVALID_PAYLOAD),
        (Reply(200, b"x" * (2 * 1024 * 1024), {"Content-Type": "image/png"}), R.INVALID_PAYLOAD),
    ],
    ids=["not_found", "not_an_image", "too_large"],
)
def test_edit_url_that_cannot_be_fetched_fails_before_gemini_is_called(
    image_host: Reply, reason: FailureReason
) -> None:
    connector, adapter = edit_connector(image_host)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(
            job("gemini_image_edit", prompt="x", image_url=f"https://{IMAGE_HOST}/cat.png")
        )
    assert (info.value.failure_type, info.value.failure_reason) == (T.VALIDATION_ERROR, reason)
    assert info.value.retryable is False
    assert info.value.service == "gemini_image_edit"
    assert adapter.requests == []


def test_edit_url_pointing_inside_the_network_is_refused_without_any_request() -> None:
    dl_session, dl_adapter = fake_session()
    fetcher = InputImageFetcher(dl_session, DownloadPolicy())  # nothing allow-listed
    connector, adapter = make(GeminiImageEditConnector, image_fetcher=fetcher)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(
            job("gemini_image_edit", prompt="x", image_url="http://169.254.169.254/latest/")
        )
    assert info.value.failure_type is T.VALIDATION_ERROR
    assert info.value.context["field"] == "image_url"
    assert dl_adapter.requests == []
    assert adapter.requests == []
