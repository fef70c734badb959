"""validate_ctx: a job's storage context is checked before any provider call."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.context import validate_ctx
from connectors.errors import ConnectorError


@pytest.mark.parametrize(
    "ctx",
    [
        None,
        {},
        {"prefix": "tenant-7/"},
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
    ],
)
def test_bad_contexts_are_refused_naming_the_field(ctx: Any, field: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        validate_ctx(ctx, service="glif")
    assert caught.value.failure_type.value == "validation_error"
    assert caught.value.retryable is False
    assert field in caught.value.message
