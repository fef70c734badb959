"""Validate a job's `ctx` (its storage context) before anything is called or paid for.

`ctx` travels with the job (task kwargs, result records, task-sent events Flower shows), so it
must never carry credentials: those belong in the worker's environment. Its storage overrides
(bucket, prefix, CDN URL) are checked here too, so a bad one refuses the job at submit instead of
failing it after the provider was paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.assets.base import storage_overrides
from connectors.errors import validation_error
from connectors.models import JobData
from connectors.redact import is_secret_key

__all__ = ["validate_ctx"]


def _secret_path(value: Any, path: str) -> str | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}"
            if is_secret_key(str(key)):
                return here
            found = _secret_path(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _secret_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def validate_ctx(ctx: object, *, service: str | None = None) -> None:
    """Refuse a `ctx` that is not an object, carries credentials, or has bad storage overrides."""
    if ctx is None:
        return
    if not isinstance(ctx, Mapping):
        raise validation_error("ctx", "must be a JSON object", service=service)
    secret = _secret_path(ctx, "ctx")
    if secret:
        raise validation_error(
            secret,
            "credentials do not belong in a job (they would be stored with it and shown in "
            "events); set them in the worker's environment",
            service=service,
        )
    storage_overrides(JobData(id="ctx-check", type=service or "ctx", ctx=dict(ctx)))
