"""A job's `ctx` (its storage context): validated before anything is paid for, parsed once.

`ctx` travels with the job (task kwargs, result records, task-sent events Flower shows), so it
must never carry credentials: those belong in the worker's environment. Its storage overrides
(bucket, prefix, CDN URL) are checked here too, so a bad one refuses the job at submit instead of
failing it after the provider was paid.

Each override may be given flat (`ctx.bucket`) or under `ctx.storage` (`ctx.storage.bucket`).
One rule for every field: the more specific `ctx.storage.*` wins. (The original took `prefix`
the other way round from `bucket` and `cdnUrl`; one rule is easier to predict.) `JobData` parses
its `ctx` once, into `StorageOverrides`, and the asset saver reads that typed value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.errors import validation_error
from connectors.redact import is_secret_key

__all__ = ["TENANT_PATTERN", "StorageOverrides", "storage_overrides", "tenant_of", "validate_ctx"]

# The `service` named on a bad storage override (the one the asset savers name as well).
_SERVICE = "storage"
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
# `ctx.tenant`, the account a job's cost is charged to: short, and safe in a Redis key or a URL.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)


@dataclass(frozen=True)
class StorageOverrides:
    """Per-job storage settings taken from `ctx` (the original's names); None means not given."""

    bucket: str | None = None
    prefix: str | None = None
    cdn_url: str | None = None


def _string(source: Mapping[str, Any], name: str, field: str) -> str | None:
    value = source.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise validation_error(field, "must be a string", service=_SERVICE)
    return value.strip() or None


def _field(ctx: Mapping[str, Any], storage: Mapping[str, Any], name: str) -> tuple[str | None, str]:
    """The value of `name` and the path it came from; both places are checked, storage wins."""
    inner = _string(storage, name, f"ctx.storage.{name}")
    outer = _string(ctx, name, f"ctx.{name}")
    if inner is not None:
        return inner, f"ctx.storage.{name}"
    return outer, f"ctx.{name}"


def storage_overrides(ctx: Mapping[str, Any] | None) -> StorageOverrides:
    """Parse bucket, prefix and CDN URL from `ctx` / `ctx.storage`; raise a validation_error."""
    ctx = ctx or {}
    storage = ctx.get("storage") or {}
    if not isinstance(storage, Mapping):
        raise validation_error("ctx.storage", "must be an object", service=_SERVICE)
    bucket, where = _field(ctx, storage, "bucket")
    if bucket is not None and not _BUCKET.match(bucket):
        raise validation_error(where, f"{bucket!r} is not a bucket name", service=_SERVICE)
    prefix, _ = _field(ctx, storage, "prefix")
    cdn_url, _ = _field(ctx, storage, "cdnUrl")
    return StorageOverrides(bucket=bucket, prefix=prefix, cdn_url=cdn_url)


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
    storage_overrides(ctx)
    tenant_of(ctx, service=service)


def tenant_of(ctx: Mapping[str, Any] | None, *, service: str | None = None) -> str | None:
    """`ctx.tenant`, checked (a validation_error when it is not a short identifier); None."""
    tenant = (ctx or {}).get("tenant")
    if tenant is None:
        return None
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise validation_error(
            "ctx.tenant",
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            service=service,
        )
    return tenant
