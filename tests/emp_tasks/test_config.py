"""The service mapping and its one substitution semantics (bash `${VAR:-default}`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.errors import ConnectorError
from connectors.services.glif import GlifSettings
from emp_tasks.config import (
    load_services,
    missing_env,
    resolve_service,
    substitute,
    unconfigured,
)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),  # unset -> default
        ("${A:-x}", {"A": ""}, "x"),  # empty counts as unset (bash :-)
        ("${A:-x}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),  # an empty default is allowed
        ("http://${HOST:-localhost}:${PORT:-80}/", {"PORT": "8080"}, "http://localhost:8080/"),
        ("no variables", {}, "no variables"),
        ("${A}", {"A": "v"}, "v"),
    ],
)
def test_substitution_follows_bash_colon_dash(
    text: str, env: dict[str, str], expected: str
) -> None:
    assert substitute(text, env) == expected


@pytest.mark.parametrize("env", [{}, {"TOKEN": ""}])
def test_bare_variable_is_required_and_named_when_unset_or_empty(env: dict[str, str]) -> None:
    with pytest.raises(ConnectorError, match="TOKEN") as caught:
        substitute("Bearer ${TOKEN} and ${OTHER}", env)
    assert caught.value.context["variables"] == ["TOKEN", "OTHER"]
    assert caught.value.retryable is False


def test_glif_service_has_the_record_settings() -> None:
    spec = load_services(env={})["glif"]
    assert (spec.queue, spec.pool, spec.concurrency) == ("glif", "threads", 5)
    assert (spec.retry_attempts, spec.retry_delay_seconds, spec.timeout_seconds) == (3, 2.0, 60.0)
    assert spec.required_env == ["GLIF_API_TOKEN"]
    assert spec.task_name == "emp.glif"


def test_mapping_values_follow_the_environment() -> None:
    spec = load_services(env={"GLIF_RETRY_ATTEMPTS": "5", "GLIF_MAX_CONCURRENT_JOBS": ""})["glif"]
    assert spec.retry_attempts == 5
    assert spec.concurrency == 5  # empty -> default


def test_mapping_with_a_bare_variable_refuses_to_load_without_it(tmp_path: Path) -> None:
    mapping = {"services": {"x": {"connector": "m:C", "queue": "${QUEUE_NAME}"}}}
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(ConnectorError, match="QUEUE_NAME"):
        load_services(path, env={})
    assert load_services(path, env={"QUEUE_NAME": "q"})["x"].queue == "q"


def test_glif_connector_settings_default_to_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # The connector's own settings hold these defaults; the service mapping holds the rest.
    for name in ("GLIF_BASE_URL", "GLIF_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = GlifSettings()
    assert (settings.base_url, settings.timeout_seconds) == ("https://simple-api.glif.app", 60.0)


def test_missing_env_names_unset_and_empty_required_variables() -> None:
    spec = load_services(env={})["glif"]
    assert missing_env(spec, {}) == ["GLIF_API_TOKEN"]
    assert missing_env(spec, {"GLIF_API_TOKEN": ""}) == ["GLIF_API_TOKEN"]
    assert missing_env(spec, {"GLIF_API_TOKEN": "t"}) == []


@pytest.mark.parametrize("service", ["comfyui", "a1111", "ollama"])
def test_a_self_hosted_service_counts_as_set_up_only_when_its_url_is_set(service: str) -> None:
    spec = load_services(env={})[service]
    variable = f"{service.upper()}_BASE_URL"
    assert missing_env(spec, {}) == []  # its workers run on the default local URL
    assert unconfigured(spec, {}) == [variable]
    assert unconfigured(spec, {variable: "http://gpu-1:8188"}) == []
    assert unconfigured(load_services(env={})["glif"], {}) == []


def test_unknown_service_is_a_validation_error_listing_known_ones() -> None:
    with pytest.raises(ConnectorError, match=r"Known services: .*glif") as caught:
        resolve_service("nope")
    assert caught.value.failure_type.value == "validation_error"
