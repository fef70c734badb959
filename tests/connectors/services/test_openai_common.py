"""OpenAI connectors alike: settings, payload validation, shared helpers, health."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver
from connectors.errors import ConnectorError
from connectors.services.openai_common import (
    BASE64_REMOVED,
    OpenAISettings,
    image_mime,
    is_refusal,
    strip_base64,
)
from connectors.services.openai_image import OpenAIImageConnector
from connectors.services.openai_responses import OpenAIResponsesConnector
from connectors.services.openai_text import OpenAITextConnector
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply
from tests.connectors.services.openai_support import (
    BASE,
    IMAGES,
    KEY,
    PNG_B64,
    Connector,
    R,
    StubSaver,
    T,
    err,
    fails,
    job,
    kind,
    make,
    settings,
)

pytestmark = pytest.mark.usefixtures("clean_openai_env")


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [OpenAITextConnector, OpenAIResponsesConnector, OpenAIImageConnector]
)
@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_api_key_is_a_configuration_error_naming_the_variable(
    cls: type[Connector], key: str | None
) -> None:
    with pytest.raises(ConnectorError) as info:
        cls(OpenAISettings(api_key=key))
    error = info.value
    assert kind(error) == (T.SYSTEM_ERROR, R.CONFIG_ERROR, False)
    assert "OPENAI_API_KEY" in error.message
    assert error.context["variables"] == ["OPENAI_API_KEY"]


def test_settings_come_from_openai_env_and_empty_values_count_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.setenv("OPENAI_TEXT_MODEL", "gpt-test")
    loaded = OpenAISettings()
    assert loaded.api_key is not None
    assert loaded.api_key.get_secret_value() == KEY
    assert loaded.base_url == "https://api.openai.com/v1"
    assert loaded.text_model == "gpt-test"
    monkeypatch.setenv("OPENAI_ORG_ID", "org-sdk-name")
    assert OpenAISettings().organization == "org-sdk-name"
    assert KEY not in repr(loaded)


def test_constructing_a_connector_never_touches_asset_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_PROVIDER", "no-such-storage")
    connector = OpenAIResponsesConnector(settings())
    assert isinstance(connector.assets, LazyAssetSaver)
    assert isinstance(connector.assets, AssetSaver)
    with pytest.raises(ConnectorError, match="CLOUD_STORAGE_PROVIDER"):
        connector.assets.save(Base64Data(PNG_B64), job=job("openai_responses"))


def test_bearer_organization_and_project_headers_are_sent() -> None:
    transport = ScriptedTransport().add(
        "POST", IMAGES, json_reply({"data": [{"b64_json": PNG_B64}]})
    )
    connector = make(
        OpenAIImageConnector,
        transport,
        assets=StubSaver(),
        settings={"organization": "org-1", "project": "proj-1"},
    )
    connector.process_job(job("openai_image", prompt="a fox"))
    headers = transport.sent[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert (headers["OpenAI-Organization"], headers["OpenAI-Project"]) == ("org-1", "proj-1")


# --- payload validation ---------------------------------------------------------------------

BAD_PAYLOADS: list[tuple[type[Connector], dict[str, Any], str]] = [
    (OpenAITextConnector, {}, "give exactly one"),
    (
        OpenAITextConnector,
        {"prompt": "x", "messages": [{"role": "user", "content": "x"}]},
        "exactly one",
    ),
    (OpenAITextConnector, {"prompt": ""}, "prompt"),
    (OpenAITextConnector, {"messages": []}, "messages"),
    (OpenAITextConnector, {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    (OpenAITextConnector, {"prompt": "x", "temperature": 3}, "temperature"),
    (OpenAITextConnector, {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    (OpenAITextConnector, {"prompt": "x", "bogus": 1}, "bogus"),
    (OpenAIResponsesConnector, {}, "input"),
    (OpenAIResponsesConnector, {"input": "  "}, "input"),
    (OpenAIResponsesConnector, {"dynamic_json": {}}, "dynamic_json"),
    (OpenAIResponsesConnector, {"input": "x", "save_assets": "no"}, "save_assets"),
    (OpenAIImageConnector, {}, "prompt"),
    (OpenAIImageConnector, {"prompt": "x", "n": 11}, "n"),
    (OpenAIImageConnector, {"prompt": "x", "output_format": "gif"}, "output_format"),
    (OpenAIImageConnector, {"prompt": "x", "quantity": 2}, "quantity"),
]


@pytest.mark.parametrize(("cls", "payload", "named"), BAD_PAYLOADS)
def test_bad_payload_fails_validation_before_any_request(
    cls: type[Connector], payload: dict[str, Any], named: str
) -> None:
    transport = ScriptedTransport()
    error = fails(make(cls, transport), job(cls.service_type, **payload))
    assert kind(error) == (T.VALIDATION_ERROR, error.failure_reason, False)
    assert named in error.message
    assert transport.sent == []


# --- helpers shared by the connectors -------------------------------------------------------

REFUSALS = [
    ("I'm sorry, but I can't assist with that request.", True),
    ("I\u2019m sorry, but I cannot help with that.", True),
    ("I can't create images of real people.", True),
    ("That request goes against our content policy.", True),
    ("Here is a fox in the snow.", False),
    ("An essay on moderation. " * 30 + "It is against the content policy to ...", False),
]


@pytest.mark.parametrize(("text", "refused"), REFUSALS)
def test_refusal_detector_matches_apologies_at_the_head_only(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_strip_base64_replaces_long_runs_anywhere_in_a_structure() -> None:
    value = {"a": [PNG_B64, "short"], "b": f"data:image/png;base64,{PNG_B64}", "n": 3}
    assert strip_base64(value) == {
        "a": [BASE64_REMOVED, "short"],
        "b": f"data:image/png;base64,{BASE64_REMOVED}",
        "n": 3,
    }


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (PNG_B64, "jpeg", "image/png"),
        (f"data:image/png;base64,{PNG_B64}", None, "image/png"),
        ("AAAA", "webp", "image/webp"),
        ("!!", None, "image/png"),
    ],
)
def test_image_mime_trusts_the_bytes_then_the_format(data: str, fmt: str | None, mime: str) -> None:
    assert image_mime(data, fmt) == mime


# --- health ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [OpenAITextConnector, OpenAIResponsesConnector, OpenAIImageConnector]
)
@pytest.mark.parametrize(
    ("reply", "healthy", "detail"),
    [
        (json_reply({"data": []}), True, "ok"),
        (
            err(401, "invalid_api_key", "invalid_request_error", f"Incorrect API key: {KEY}"),
            False,
            "auth_error/invalid_api_key: HTTP 401",
        ),
        (err(500, None, "server_error", "boom"), False, "service_error/"),
        (requests.ConnectionError("refused"), False, "network_error/connection_failed"),
    ],
    ids=["ok", "401", "500", "refused"],
)
def test_health_is_get_models(
    cls: type[Connector], reply: Reply | BaseException, healthy: bool, detail: str
) -> None:
    transport = ScriptedTransport().add("GET", f"{BASE}/models", reply)
    connector = make(cls, transport)
    report = connector.health()
    assert report.healthy is healthy
    assert report.detail.startswith(detail), report.detail
    assert KEY not in report.detail  # the provider echoed the key; the report must not
    assert connector.check_health() is healthy
    assert connector.health_check_class.value == "minimal"
    assert connector.service_support()["isSupported"] is True


def test_health_probe_does_not_follow_a_redirect() -> None:
    elsewhere = "https://elsewhere.example/v1/models"
    transport = (
        ScriptedTransport()
        .add("GET", f"{BASE}/models", Reply(302, headers={"Location": elsewhere}))
        .add("GET", elsewhere, json_reply({"data": []}))
    )
    report = make(OpenAITextConnector, transport).health()
    assert not report.healthy
    assert "HTTP 302" in report.detail
    assert transport.calls("GET", elsewhere) == []
