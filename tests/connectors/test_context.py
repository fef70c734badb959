"""A job's ctx: checked before any provider call, parsed once with one precedence rule."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.context import StorageOverrides, storage_overrides, validate_ctx
from connectors.errors import ConnectorError, FailureType
from connectors.models import JobData


@pytest.mark.parametrize(
    "ctx",
    [
        None,
        {},
        {"prefix": "tenant-7/"},
        {"tenant": "tenant-a"},
        {"tenant": "A" + "b.c_d-9" * 9},  # 64 characters
        {"bucket": "my-bucket", "storage": {"cdnUrl": "https://c"}},
        {
            "storage": {"provider": "s3", "bucket": "b-1", "prefix": "p"},
            "workflow_context": {"retry_attempt": 1},
        },
    ],
)
def test_good_contexts_pass(ctx: Any) -> None:
    validate_ctx(ctx, service="glif")


@pytest.mark.parametrize(
    ("ctx", "field"),
    [
        ("tenant-7", "ctx"),
        (["x"], "ctx"),
        ({"bucket": "x"}, "ctx.bucket"),
        ({"storage": "azure"}, "ctx.storage"),
        ({"storage": {"accountKey": "abc"}}, "ctx.storage.accountKey"),
        ({"storage": {"accountName": "a", "account_key": "k"}}, "ctx.storage.account_key"),
        ({"api_key": "sk-1"}, "ctx.api_key"),
        ({"hooks": [{"token": "t"}]}, "ctx.hooks[0].token"),
        ({"tenant": "tenant a"}, "ctx.tenant"),
        ({"tenant": "a:b"}, "ctx.tenant"),  # it is part of a Redis key
        ({"tenant": "-a"}, "ctx.tenant"),
        ({"tenant": ""}, "ctx.tenant"),
        ({"tenant": 7}, "ctx.tenant"),
        ({"tenant": "a" * 65}, "ctx.tenant"),
    ],
)
def test_bad_contexts_are_refused_naming_the_field(ctx: Any, field: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        validate_ctx(ctx, service="glif")
    assert caught.value.failure_type.value == "validation_error"
    assert caught.value.retryable is False
    assert field in caught.value.message


# --- storage overrides: one rule, ctx.storage.* wins over ctx.* ----------------------------------

# (ctx field name, StorageOverrides attribute, a valid value)
FIELDS = [
    ("bucket", "bucket", "{}-bucket"),
    ("prefix", "prefix", "{}/"),
    ("cdnUrl", "cdn_url", "cdn.{}"),
]


@pytest.mark.parametrize(("name", "attr", "value"), FIELDS, ids=[f[0] for f in FIELDS])
@pytest.mark.parametrize(
    ("flat", "nested", "winner"),
    [
        (None, None, None),
        ("flat", None, "flat"),
        (None, "nested", "nested"),
        ("flat", "nested", "nested"),
        ("", "nested", "nested"),
        ("flat", "", "flat"),
        ("flat", "   ", "flat"),
    ],
    ids=[
        "neither",
        "flat_only",
        "nested_only",
        "both",
        "flat_empty",
        "nested_empty",
        "nested_blank",
    ],
)
def test_ctx_storage_field_wins_over_the_flat_field_for_every_override(
    name: str, attr: str, value: str, flat: str | None, nested: str | None, winner: str | None
) -> None:
    def given(which: str | None) -> str | None:
        return value.format(which) if which and which.strip() else which

    ctx: dict[str, Any] = {"storage": {}}
    if flat is not None:
        ctx[name] = given(flat)
    if nested is not None:
        ctx["storage"][name] = given(nested)
    assert getattr(storage_overrides(ctx), attr) == given(winner)


@pytest.mark.parametrize(
    ("ctx", "field"),
    [
        ({"bucket": 42}, "ctx.bucket"),
        ({"storage": {"prefix": ["x"]}}, "ctx.storage.prefix"),
        # A bad flat value is refused even when ctx.storage gives a good one.
        ({"cdnUrl": 7, "storage": {"cdnUrl": "cdn.ok"}}, "ctx.cdnUrl"),
        ({"storage": "s3"}, "ctx.storage"),
        ({"bucket": "a"}, "ctx.bucket"),
        ({"storage": {"bucket": "has/slash"}}, "ctx.storage.bucket"),
    ],
)
def test_bad_storage_overrides_are_validation_errors_naming_their_field(
    ctx: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        storage_overrides(ctx)
    assert (caught.value.failure_type, caught.value.retryable) == (
        FailureType.VALIDATION_ERROR,
        False,
    )
    assert field in caught.value.message


def test_a_job_parses_its_ctx_once_into_typed_storage_overrides() -> None:
    ctx = {"prefix": "flat", "storage": {"prefix": "nested", "bucket": "b-1"}}
    job = JobData(id="j", type="glif", ctx=ctx)
    assert job.storage == StorageOverrides(bucket="b-1", prefix="nested")
    assert JobData(id="j", type="glif").storage == StorageOverrides()


def test_a_job_with_a_bad_storage_override_cannot_be_built() -> None:
    with pytest.raises(ConnectorError) as caught:
        JobData(id="j", type="glif", ctx={"storage": {"bucket": "x"}})
    assert "ctx.storage.bucket" in caught.value.message


def test_a_copied_job_parses_the_ctx_it_was_given() -> None:
    job = JobData(id="j", type="glif", ctx={"prefix": "old"})
    copied = job.model_copy(update={"ctx": {"storage": {"prefix": "new"}}})
    assert (job.storage.prefix, copied.storage.prefix) == ("old", "new")
    with pytest.raises(ConnectorError, match=r"ctx\.bucket"):
        job.model_copy(update={"ctx": {"bucket": "x"}})
