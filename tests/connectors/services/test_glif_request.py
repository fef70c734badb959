"""GlifConnector: payload validation, configuration and the request it sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.errors import ConnectorError
from connectors.services.glif import (
    GlifConnector,
    GlifPayload,
    GlifSettings,
)
from tests.connectors.fakes import (
    body_json,
    json_reply,
)
from tests.connectors.services.glif_support import (
    TOKEN,
    WORKFLOW,
    R,
    T,
    clean_env,
    image_body,
    job,
    make,
    ok_job,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


# --- payload validation -------------------------------------------------------------------------

BAD_PAYLOADS: list[tuple[str, dict[str, Any], str]] = [
    ("no_workflow_id", {"inputs": ["x"]}, "workflow_id"),
    ("empty_workflow_id", {"workflow_id": "", "inputs": ["x"]}, "workflow_id"),
    ("blank_workflow_id", {"workflow_id": "   ", "inputs": ["x"]}, "workflow_id"),
    ("numeric_workflow_id", {"workflow_id": 123, "inputs": ["x"]}, "workflow_id"),
    ("null_workflow_id", {"workflow_id": None, "inputs": ["x"]}, "workflow_id"),
    ("no_inputs", {"workflow_id": WORKFLOW}, "inputs"),
    ("inputs_string", {"workflow_id": WORKFLOW, "inputs": "a cat"}, "inputs"),
    ("inputs_null", {"workflow_id": WORKFLOW, "inputs": None}, "inputs"),
    ("inputs_number_item", {"workflow_id": WORKFLOW, "inputs": ["ok", 2]}, "inputs"),
    ("inputs_nested_list", {"workflow_id": WORKFLOW, "inputs": [["a"]]}, "inputs"),
    ("inputs_number_value", {"workflow_id": WORKFLOW, "inputs": {"prompt": 1}}, "inputs"),
    ("inputs_null_value", {"workflow_id": WORKFLOW, "inputs": {"prompt": None}}, "inputs"),
    ("inputs_empty_key", {"workflow_id": WORKFLOW, "inputs": {"": "x"}}, "inputs"),
    (
        "visibility_lowercase",
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "public"},
        "visibility",
    ),
    (
        "visibility_unknown",
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "UNLISTED"},
        "visibility",
    ),
    ("strict_string", {"workflow_id": WORKFLOW, "inputs": [], "strict": "yes"}, "strict"),
    ("strict_int", {"workflow_id": WORKFLOW, "inputs": [], "strict": 1}, "strict"),
]
BAD_IDS = [row[0] for row in BAD_PAYLOADS]


@pytest.mark.parametrize(("name", "payload", "field"), BAD_PAYLOADS, ids=BAD_IDS)
def test_validate_payload_rejects_and_names_the_field(
    name: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload(payload)
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert error.context["field"] == field
    assert field in str(error)
    assert error.service == "glif"


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        *BAD_PAYLOADS,
        pytest.param(
            "unknown_field",
            {"workflow_id": WORKFLOW, "inputs": [], "bogus": 1},
            "bogus",
        ),
    ],
    ids=[*BAD_IDS, "unknown_field"],
)
def test_process_job_rejects_a_bad_payload_before_any_request(
    name: str, payload: dict[str, Any], field: str
) -> None:
    connector, adapter = make()
    with pytest.raises(ConnectorError) as info:
        connector.process_job(job(**payload))
    error = info.value
    assert error.failure_type is T.VALIDATION_ERROR
    assert error.retryable is False
    assert field in str(error)
    assert error.service == "glif"
    assert adapter.requests == []


def test_validate_payload_names_an_unknown_field() -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload({"workflow_id": WORKFLOW, "inputs": [], "bogus": 1})
    assert info.value.context["field"] == "bogus"


def test_missing_workflow_id_is_a_missing_required_field() -> None:
    with pytest.raises(ConnectorError) as info:
        GlifConnector.validate_payload({"inputs": []})
    assert info.value.failure_reason is R.MISSING_REQUIRED_FIELD


@pytest.mark.parametrize(
    "payload",
    [
        {"workflow_id": WORKFLOW, "inputs": []},
        {"workflow_id": WORKFLOW, "inputs": ["a", "b"]},
        {"workflow_id": WORKFLOW, "inputs": {"prompt": "a", "style": "b"}},
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "PUBLIC", "strict": True},
        {"workflow_id": WORKFLOW, "inputs": [], "visibility": "PRIVATE", "strict": False},
        {"workflow_id": WORKFLOW, "inputs": [], "save_assets": False},
    ],
)
def test_valid_payloads_pass(payload: dict[str, Any]) -> None:
    assert isinstance(GlifConnector.validate_payload(payload), GlifPayload)


# --- configuration ------------------------------------------------------------------------------


def _config_error(build: Callable[[], object]) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        build()
    error = info.value
    assert (error.failure_type, error.failure_reason) == (T.SYSTEM_ERROR, R.CONFIG_ERROR)
    assert error.retryable is False
    assert "GLIF_API_TOKEN" in str(error)
    assert error.context["variables"] == ["GLIF_API_TOKEN"]
    return error


def test_missing_token_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GLIF_API_TOKEN", raising=False)
    _config_error(lambda: GlifConnector(GlifSettings()))


def test_missing_token_without_explicit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIF_API_TOKEN", raising=False)
    _config_error(GlifConnector)


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_token_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GLIF_API_TOKEN", value)
    _config_error(lambda: GlifConnector(GlifSettings()))


def test_token_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIF_API_TOKEN", "env-glif-token-123456")
    monkeypatch.setenv("GLIF_BASE_URL", "https://glif.sandbox.test/")
    monkeypatch.setenv("GLIF_TIMEOUT_SECONDS", "12.5")
    connector, adapter = make(json_reply(image_body()), settings=GlifSettings())
    connector.process_job(ok_job())
    assert adapter.last.headers["Authorization"] == "Bearer env-glif-token-123456"
    assert urlsplit(adapter.last_url).netloc == "glif.sandbox.test"
    assert adapter.timeouts == [(10.0, 12.5)]


def test_settings_repr_hides_the_token() -> None:
    assert TOKEN not in repr(GlifSettings(api_token=TOKEN))


def test_retry_and_concurrency_variables_are_the_service_mappings_not_the_connectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery retries and the pool sets concurrency (config/service-mapping.json reads these);
    # the connector neither keeps nor second-guesses them.
    monkeypatch.setenv("GLIF_RETRY_ATTEMPTS", "-1")
    monkeypatch.setenv("GLIF_MAX_CONCURRENT_JOBS", "0")
    settings = GlifSettings(api_token=TOKEN)
    assert {"retry_attempts", "max_concurrent_jobs"}.isdisjoint(type(settings).model_fields)


# --- request shape ------------------------------------------------------------------------------


def test_request_posts_id_and_list_inputs_with_bearer_token() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job())
    assert len(adapter.requests) == 1
    sent = adapter.last
    assert sent.method == "POST"
    parts = urlsplit(adapter.last_url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "https",
        "simple-api.glif.app",
        "/",
        "",
    )
    assert body_json(sent) == {"id": WORKFLOW, "inputs": ["a cat in a hat"]}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"


def test_request_sends_named_inputs_as_an_object() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(job(workflow_id=WORKFLOW, inputs={"prompt": "cat", "style": "ink"}))
    assert body_json(adapter.last)["inputs"] == {"prompt": "cat", "style": "ink"}


def test_request_carries_visibility_and_strict_query() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job(visibility="PUBLIC", strict=True))
    assert body_json(adapter.last) == {
        "id": WORKFLOW,
        "inputs": ["a cat in a hat"],
        "visibility": "PUBLIC",
    }
    assert parse_qs(urlsplit(adapter.last_url).query) == {"strict": ["1"]}


def test_strict_false_sends_no_query_and_save_assets_is_not_sent() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(ok_job(strict=False, save_assets=False))
    assert urlsplit(adapter.last_url).query == ""
    assert body_json(adapter.last) == {"id": WORKFLOW, "inputs": ["a cat in a hat"]}


def test_workflow_id_is_stripped() -> None:
    connector, adapter = make(json_reply(image_body()))
    connector.process_job(job(workflow_id=f"  {WORKFLOW} ", inputs=[]))
    assert body_json(adapter.last)["id"] == WORKFLOW


def test_one_request_per_job_even_on_failure() -> None:
    connector, adapter = make(json_reply({"error": "Rate limit exceeded"}))
    with pytest.raises(ConnectorError):
        connector.process_job(ok_job())
    assert len(adapter.requests) == 1
