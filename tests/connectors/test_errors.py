"""The failure taxonomy and ConnectorError: values, defaults, round trips and redaction."""

from __future__ import annotations

import ast
import importlib.util
import json
import pickle
from pathlib import Path

import pytest

from connectors import taxonomy
from connectors.errors import (
    DEFAULT_RETRYABLE,
    REASON_TYPES,
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    configuration_error,
    validation_error,
)
from connectors.redact import REDACTED, register_secret

# The original system's taxonomy (reference/original-system.md §1.1-§1.2), grouped by type.
ORIGINAL_REASONS: dict[str, tuple[str, ...]] = {
    "generation_refusal": (
        "violence_detected",
        "copyright_blocker",
        "nsfw_content",
        "hate_speech",
        "personal_info",
        "safety_filter",
        "policy_violation",
    ),
    "service_error": (
        "service_down",
        "service_unavailable",
        "maintenance_mode",
        "degraded_performance",
    ),
    "timeout": ("job_timeout", "network_timeout", "processing_timeout", "queue_timeout"),
    "validation_error": (
        "invalid_payload",
        "missing_required_field",
        "invalid_format",
        "unsupported_operation",
        "model_not_found",
        "component_error",
    ),
    "resource_limit": ("out_of_memory", "disk_space_full", "gpu_memory_full", "concurrent_limit"),
    "auth_error": (
        "invalid_api_key",
        "expired_token",
        "insufficient_permissions",
        "account_suspended",
    ),
    "rate_limit": (
        "requests_per_minute",
        "tokens_per_minute",
        "daily_quota_exceeded",
        "concurrent_requests",
    ),
    "network_error": ("connection_failed", "dns_resolution", "ssl_certificate", "proxy_error"),
    "response_error": (
        "invalid_response_format",
        "unexpected_content_type",
        "corrupted_data",
        "missing_expected_data",
    ),
    "system_error": (
        "internal_error",
        "config_error",
        "dependency_error",
        "gpu_error",
        "unknown_error",
    ),
}
ADDED_REASONS = {
    "worker_lost": "system_error",
    "invalid_request": "validation_error",
    "job_failed": "service_error",
    "service_timeout": "timeout",
    "insufficient_credits": "resource_limit",
    "budget_exceeded": "resource_limit",
}


# --- enums -------------------------------------------------------------------------------------


def test_failure_type_has_the_originals_ten_values() -> None:
    assert len(FailureType) == 10
    assert {t.value for t in FailureType} == set(ORIGINAL_REASONS)


def test_failure_type_is_a_str_enum() -> None:
    assert str(FailureType.RATE_LIMIT) == "rate_limit"
    assert isinstance(FailureType.RATE_LIMIT, str)
    assert json.dumps(FailureType.TIMEOUT) == '"timeout"'


def test_failure_reason_has_46_originals_plus_the_added_ones() -> None:
    originals = {r for reasons in ORIGINAL_REASONS.values() for r in reasons}
    assert len(originals) == 46
    values = {r.value for r in FailureReason}
    assert len(FailureReason) == 46 + len(ADDED_REASONS)
    assert originals <= values
    assert values - originals == set(ADDED_REASONS)


def test_every_reason_maps_to_a_type() -> None:
    assert set(REASON_TYPES) == set(FailureReason)
    assert all(isinstance(t, FailureType) for t in REASON_TYPES.values())


@pytest.mark.parametrize(
    ("reason", "ftype"),
    [(r, t) for t, reasons in ORIGINAL_REASONS.items() for r in reasons]
    + list(ADDED_REASONS.items()),
)
def test_reason_belongs_to_its_documented_type(reason: str, ftype: str) -> None:
    assert REASON_TYPES[FailureReason(reason)] == FailureType(ftype)


def test_every_type_has_a_default_retryability() -> None:
    assert set(DEFAULT_RETRYABLE) == set(FailureType)


# --- retryability -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ftype", "reason", "retryable"),
    [
        (FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE, True),
        (FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True),
        (FailureType.NETWORK_ERROR, FailureReason.CONNECTION_FAILED, True),
        (FailureType.TIMEOUT, FailureReason.JOB_TIMEOUT, True),
        (FailureType.SYSTEM_ERROR, FailureReason.UNKNOWN_ERROR, True),
        (FailureType.SYSTEM_ERROR, FailureReason.INTERNAL_ERROR, True),
        (FailureType.AUTH_ERROR, FailureReason.INVALID_API_KEY, False),
        (FailureType.VALIDATION_ERROR, FailureReason.INVALID_PAYLOAD, False),
        (FailureType.GENERATION_REFUSAL, FailureReason.POLICY_VIOLATION, False),
        (FailureType.RESPONSE_ERROR, FailureReason.INVALID_RESPONSE_FORMAT, False),
        (FailureType.RESOURCE_LIMIT, FailureReason.INSUFFICIENT_CREDITS, False),
        (FailureType.RESOURCE_LIMIT, FailureReason.OUT_OF_MEMORY, False),
        # A missing configuration cannot fix itself: not retryable although system_error is.
        (FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, False),
    ],
)
def test_retryable_none_means_the_default_for_the_type(
    ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    error = ConnectorError("x", failure_type=ftype, failure_reason=reason)
    assert error.retryable is retryable


def test_reason_alone_implies_its_type() -> None:
    error = ConnectorError("x", failure_reason=FailureReason.INSUFFICIENT_CREDITS)
    assert error.failure_type is FailureType.RESOURCE_LIMIT
    assert error.retryable is False


def test_bare_error_is_a_retryable_unknown_system_error() -> None:
    error = ConnectorError("something odd")
    assert error.failure_type is FailureType.SYSTEM_ERROR
    assert error.failure_reason is FailureReason.UNKNOWN_ERROR
    assert error.retryable is True


def test_type_and_reason_accept_plain_strings() -> None:
    error = ConnectorError("x", failure_type="rate_limit", failure_reason="tokens_per_minute")
    assert error.failure_type is FailureType.RATE_LIMIT
    assert error.failure_reason is FailureReason.TOKENS_PER_MINUTE


def test_unknown_reason_string_is_rejected() -> None:
    with pytest.raises(ValueError):
        ConnectorError("x", failure_reason="not_a_reason")


@pytest.mark.parametrize(
    ("ftype", "reason", "override"),
    [
        (FailureType.RATE_LIMIT, FailureReason.DAILY_QUOTA_EXCEEDED, False),
        (FailureType.AUTH_ERROR, FailureReason.EXPIRED_TOKEN, True),
        (FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, True),
    ],
)
def test_explicit_retryable_overrides_the_default(
    ftype: FailureType, reason: FailureReason, override: bool
) -> None:
    error = ConnectorError("x", failure_type=ftype, failure_reason=reason, retryable=override)
    assert error.retryable is override


@pytest.mark.parametrize(
    ("given", "stored"),
    [(None, None), (5, 5.0), (2.5, 2.5), (0, 0.0), (-3, 0.0), (-0.5, 0.0)],
)
def test_retry_after_is_a_non_negative_float(given: float | None, stored: float | None) -> None:
    error = ConnectorError("x", failure_reason=FailureReason.REQUESTS_PER_MINUTE, retry_after=given)
    assert error.retry_after == stored
    if stored is not None:
        assert isinstance(error.retry_after, float)


# --- serialisation ------------------------------------------------------------------------------


def _sample() -> ConnectorError:
    return ConnectorError(
        "HTTP 429 from glif: slow down",
        failure_type=FailureType.RATE_LIMIT,
        failure_reason=FailureReason.REQUESTS_PER_MINUTE,
        retryable=True,
        retry_after=12,
        status_code=429,
        service="glif",
        context={"workflow_id": "wf-1", "inputs": ["a cat"], "nested": {"n": 1}},
    )


def _same(a: ConnectorError, b: ConnectorError) -> None:
    assert type(b) is ConnectorError
    assert b.to_dict() == a.to_dict()
    assert b.failure_type is a.failure_type
    assert b.failure_reason is a.failure_reason
    assert b.retryable is a.retryable
    assert b.retry_after == a.retry_after
    assert b.status_code == a.status_code
    assert b.service == a.service
    assert b.context == a.context
    assert b.timestamp == a.timestamp
    assert str(b) == str(a)


def test_to_dict_is_json_and_round_trips() -> None:
    error = _sample()
    data = json.loads(json.dumps(error.to_dict()))
    assert data == {
        "message": "HTTP 429 from glif: slow down",
        "failure_type": "rate_limit",
        "failure_reason": "requests_per_minute",
        "retryable": True,
        "retry_after": 12.0,
        "status_code": 429,
        "service": "glif",
        "context": {"workflow_id": "wf-1", "inputs": ["a cat"], "nested": {"n": 1}},
        "timestamp": error.timestamp,
    }
    _same(error, ConnectorError.from_dict(data))


def test_pickle_round_trip_keeps_every_field() -> None:
    error = _sample()
    _same(error, pickle.loads(pickle.dumps(error)))


def test_celery_json_backend_rebuild_from_args_keeps_every_field() -> None:
    # Celery's JSON result backend stores exc.args and rebuilds the exception as cls(*args).
    error = _sample()
    _same(error, ConnectorError(*json.loads(json.dumps(error.args))))


def test_celery_json_rebuild_keeps_a_context_with_a_long_list() -> None:
    error = ConnectorError("x", context={"nodes": list(range(120))})
    rebuilt = ConnectorError(*json.loads(json.dumps(error.args)))
    assert rebuilt.context == error.context


def test_round_trip_keeps_a_non_default_retryable() -> None:
    error = ConnectorError("x", failure_type=FailureType.AUTH_ERROR, retryable=True)
    assert ConnectorError(*json.loads(json.dumps(error.args))).retryable is True
    assert pickle.loads(pickle.dumps(error)).retryable is True


def test_attached_service_survives_round_trips() -> None:
    error = ConnectorError("x", failure_reason=FailureReason.JOB_FAILED)
    error = error.with_context(service="openai")
    assert ConnectorError(*json.loads(json.dumps(error.args))).service == "openai"
    assert pickle.loads(pickle.dumps(error)).service == "openai"


def test_with_context_builds_a_new_error_and_keeps_the_original() -> None:
    original = ConnectorError(
        "slow",
        failure_reason=FailureReason.REQUESTS_PER_MINUTE,
        retry_after=3,
        status_code=429,
        context={"a": 1},
    )
    built = original.with_context({"b": 2}, note="not retried: spent", service="glif")
    assert built is not original
    assert (original.message, original.context, original.service) == ("slow", {"a": 1}, None)
    assert built.message == "slow (not retried: spent)"
    assert built.context == {"a": 1, "b": 2}
    assert (built.service, built.retry_after, built.status_code) == ("glif", 3, 429)
    assert built.classification == original.classification
    assert built.timestamp == original.timestamp
    for rebuilt in (
        ConnectorError(*json.loads(json.dumps(built.args))),
        pickle.loads(pickle.dumps(built)),
    ):
        assert rebuilt.to_dict() == built.to_dict()


def test_with_context_redacts_what_it_adds() -> None:
    built = ConnectorError("x").with_context({"api_key": "sk-live-abcdef123456"})
    assert "sk-live-abcdef123456" not in json.dumps(built.to_dict())


def test_str_is_the_message_and_repr_names_the_classification() -> None:
    error = _sample()
    assert str(error) == "HTTP 429 from glif: slow down"
    assert "rate_limit" in repr(error)
    assert "requests_per_minute" in repr(error)
    assert "retryable=True" in repr(error)


def test_very_long_message_is_truncated() -> None:
    error = ConnectorError("x" * 10_000)
    assert len(error.message) <= 4000
    assert "truncated" in error.message


# --- secrets ------------------------------------------------------------------------------------

SECRET = "sk-unit-test-secret-7f3a9c"


def test_registered_secret_is_scrubbed_from_message_and_context() -> None:
    register_secret(SECRET)
    error = ConnectorError(
        f"Incorrect API key provided: {SECRET}",
        failure_reason=FailureReason.INVALID_API_KEY,
        context={
            "api_key": SECRET,
            "note": f"sent with {SECRET} attached",
            "headers": {"Authorization": f"Bearer {SECRET}"},
            "usage": {"prompt_tokens": 12},
        },
    )
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in json.dumps(error.to_dict())
    assert SECRET not in json.dumps(error.args)
    assert REDACTED in error.message
    assert error.context["api_key"] == REDACTED
    assert error.context["headers"]["Authorization"] == REDACTED
    assert error.context["note"] == f"sent with {REDACTED} attached"
    assert error.context["usage"] == {"prompt_tokens": 12}


def test_unregistered_bearer_credential_is_scrubbed_from_message() -> None:
    error = ConnectorError("sent Authorization: Bearer abcdef0123456789xyz")
    assert "abcdef0123456789xyz" not in str(error)


def test_secret_stays_out_after_pickle() -> None:
    register_secret(SECRET)
    error = ConnectorError(f"token {SECRET} rejected", context={"password": "hunter22"})
    assert SECRET not in repr(pickle.loads(pickle.dumps(error)).to_dict())
    assert "hunter22" not in json.dumps(error.to_dict())


# --- constructors -------------------------------------------------------------------------------


def test_validation_error_names_the_field_and_is_permanent() -> None:
    error = validation_error("workflow_id", "field required", service="glif")
    assert error.failure_type is FailureType.VALIDATION_ERROR
    assert error.failure_reason is FailureReason.MISSING_REQUIRED_FIELD
    assert error.retryable is False
    assert "workflow_id" in str(error)
    assert error.context["field"] == "workflow_id"
    assert error.service == "glif"


def test_validation_error_for_a_bad_value_is_invalid_payload() -> None:
    error = validation_error("inputs", "must be a list of strings")
    assert error.failure_reason is FailureReason.INVALID_PAYLOAD


def test_configuration_error_names_the_variable_and_is_permanent() -> None:
    error = configuration_error("GLIF_API_TOKEN is required", variables=["GLIF_API_TOKEN"])
    assert error.failure_type is FailureType.SYSTEM_ERROR
    assert error.failure_reason is FailureReason.CONFIG_ERROR
    assert error.retryable is False
    assert error.context["variables"] == ["GLIF_API_TOKEN"]


# --- Classification: the one builder and the one reclassification -------------------------------

T = FailureType
R = FailureReason


def _imports(module: str) -> set[str]:
    """The `connectors.*` modules a module imports, anywhere in its source (lazy ones too)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {name for name in found if name.startswith("connectors.")}


def test_the_error_type_does_not_depend_on_the_classifier() -> None:
    seen, todo = set(), ["connectors.errors"]
    while todo:
        module = todo.pop()
        seen.add(module)
        todo.extend(_imports(module) - seen)
    assert seen == {"connectors.errors", "connectors.redact", "connectors.taxonomy"}


def test_the_taxonomy_is_re_exported_from_errors() -> None:
    assert FailureType is taxonomy.FailureType
    assert FailureReason is taxonomy.FailureReason
    assert REASON_TYPES is taxonomy.REASON_TYPES
    assert DEFAULT_RETRYABLE is taxonomy.DEFAULT_RETRYABLE


@pytest.mark.parametrize(
    ("ftype", "reason", "retryable"),
    [
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
        (T.AUTH_ERROR, R.INVALID_API_KEY, False),
        (T.SYSTEM_ERROR, R.CONFIG_ERROR, False),  # the reason's own default
        (T.SYSTEM_ERROR, R.UNKNOWN_ERROR, True),
    ],
)
def test_a_classification_defaults_retryable_like_an_error(
    ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    found = Classification(ftype, reason)
    assert found.retryable is retryable
    assert ConnectorError("x", failure_type=ftype, failure_reason=reason).retryable is retryable


def test_a_classification_accepts_the_string_values() -> None:
    assert Classification("timeout", "job_timeout") == Classification(T.TIMEOUT, R.JOB_TIMEOUT)
    assert Classification(T.TIMEOUT, R.JOB_TIMEOUT, False).retryable is False


def test_error_builds_a_connector_error_with_every_field() -> None:
    found = Classification(T.RATE_LIMIT, R.TOKENS_PER_MINUTE, retry_after=3.0)
    error = found.error("slow", status_code=429, service="openai", context={"k": "v"})
    assert error.classification == found
    assert (error.message, error.status_code, error.service) == ("slow", 429, "openai")
    assert error.context == {"k": "v"}
    assert found.error("slow", retry_after=9.0).retry_after == 9.0  # given here: it wins


def test_an_error_built_from_a_classification_round_trips() -> None:
    error = Classification(T.AUTH_ERROR, R.EXPIRED_TOKEN).error("expired", service="gemini")
    assert ConnectorError.from_dict(json.loads(json.dumps(error.to_dict()))).to_dict() == (
        error.to_dict()
    )
    assert pickle.loads(pickle.dumps(error)).to_dict() == error.to_dict()
    assert pickle.loads(pickle.dumps(error.classification)) == error.classification


def test_reclassified_keeps_status_service_and_context() -> None:
    original = _sample()
    found = Classification(T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False)
    error = original.reclassified(found, "out of credits")
    assert error is not original
    assert error.classification == found  # not retryable: the old wait is dropped
    assert (error.status_code, error.service, error.context) == (
        original.status_code,
        original.service,
        original.context,
    )
    assert error.message == "out of credits"
    assert original.failure_reason is R.REQUESTS_PER_MINUTE  # the original is untouched


def test_reclassified_keeps_the_message_and_prefers_the_new_wait() -> None:
    original = _sample()
    assert original.reclassified(Classification(T.RATE_LIMIT, R.TOKENS_PER_MINUTE)).retry_after == (
        original.retry_after
    )
    hinted = original.reclassified(Classification(T.RATE_LIMIT, R.TOKENS_PER_MINUTE, True, 34.0))
    assert (hinted.message, hinted.retry_after) == (original.message, 34.0)
