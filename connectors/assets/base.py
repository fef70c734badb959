"""What every asset saver shares: the saved-asset record, the sources, the interface, key naming.

Keys are `{prefix}/{job_id}_{sha256[:12]}.{ext}`: the same job saving the same bytes always
writes the same key, so a retried job overwrites its own object instead of leaving duplicates.
Everything that comes from the job (its id, type and `ctx`) is sanitised before it reaches a key
or a path, because `ctx` is client-supplied.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from connectors.assets.mime import output_kind
from connectors.errors import validation_error
from connectors.models import JobData, OutputFile

__all__ = [
    "SERVICE",
    "AssetSaver",
    "AssetSource",
    "Base64Data",
    "ExpectedKind",
    "RemoteUrl",
    "SavedAsset",
    "StorageOverrides",
    "asset_key",
    "default_prefix",
    "sanitize_prefix",
    "sanitize_segment",
    "storage_overrides",
]

# The `service` named on every ConnectorError raised while saving an asset.
SERVICE = "storage"

# Runs of unsafe characters and of dots ("..") become one "_".
_UNSAFE = re.compile(r"(?:\.{2,}|[^A-Za-z0-9._-])+")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
_MAX_SEGMENT = 128


class SavedAsset(BaseModel):
    """Where a saved output lives and what it is: URL, key, bucket, MIME type, size and digest."""

    url: str
    key: str
    bucket: str | None = None
    mime_type: str
    size_bytes: int = Field(ge=0)
    sha256: str

    def output_file(self) -> OutputFile:
        """The `OutputFile` a job result lists for this asset."""
        return OutputFile(
            filename=posixpath.basename(self.key),
            path=self.key,
            type=output_kind(self.mime_type),
            size_bytes=self.size_bytes,
            mime_type=self.mime_type,
            metadata={"url": self.url, "sha256": self.sha256, "bucket": self.bucket},
        )


@dataclass(frozen=True)
class Base64Data:
    """Output given as base64 text: raw base64 or a `data:` URL."""

    data: str


@dataclass(frozen=True)
class RemoteUrl:
    """Output given as a URL the saver downloads (http or https only, SSRF-checked)."""

    url: str


AssetSource = bytes | Base64Data | RemoteUrl

# The major type a caller requires of an output (`expect=`): "image" admits image/* only.
ExpectedKind = Literal["image", "audio", "video"]


@runtime_checkable
class AssetSaver(Protocol):
    """Saves one job output and returns where it went; raises ConnectorError on any failure.

    `mime_type` is the caller's claim about the content (a hint, checked against the bytes).
    `expect` is the major type the resolved MIME type must have, e.g. "image" for an image
    generator's output. Whatever `expect` is, active content (HTML, SVG, XML, JavaScript) is
    refused: it would run script on the storage or CDN domain. Both refusals are raised before
    anything is written or uploaded.
    """

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset: ...


@dataclass(frozen=True)
class StorageOverrides:
    """Per-job storage settings taken from `ctx` (the original's names); None means not given."""

    bucket: str | None = None
    prefix: str | None = None
    cdn_url: str | None = None


def sanitize_segment(value: str, fallback: str = "job") -> str:
    """One safe path segment: no '/', no '..', only [A-Za-z0-9._-], at most 128 characters."""
    cleaned = _UNSAFE.sub("_", value).strip(".")[:_MAX_SEGMENT]
    return cleaned or fallback


def sanitize_prefix(prefix: str) -> str:
    """A prefix made of safe segments; '.', '..' and empty segments are dropped, not resolved."""
    parts = [p for p in prefix.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(sanitize_segment(p, fallback="_") for p in parts)


def default_prefix(job: JobData, configured: str | None) -> str:
    """The prefix when `ctx` gives none: CLOUD_STORAGE_PREFIX, else `emp-tasks/<job type>`."""
    return configured if configured else f"emp-tasks/{job.type}"


def asset_key(prefix: str, job_id: str, sha256: str, ext: str) -> str:
    """The deterministic key `{prefix}/{job_id}_{sha256[:12]}.{ext}`, every part sanitised.

    Two job ids that sanitise alike only share a key for identical bytes (the digest is in the
    key), so the worst a collision can do is rewrite the same content.
    """
    name = f"{sanitize_segment(job_id)}_{sha256[:12]}.{sanitize_segment(ext, 'bin')}"
    clean = sanitize_prefix(prefix)
    return f"{clean}/{name}" if clean else name


def _ctx_string(source: dict[str, Any], name: str, field: str) -> str | None:
    value = source.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise validation_error(field, "must be a string", service=SERVICE)
    return value.strip() or None


def storage_overrides(job: JobData) -> StorageOverrides:
    """Read bucket, prefix and CDN URL overrides from `ctx` / `ctx.storage`, validated."""
    ctx = job.ctx or {}
    storage = ctx.get("storage") or {}
    if not isinstance(storage, dict):
        raise validation_error("ctx.storage", "must be an object", service=SERVICE)
    bucket = _ctx_string(storage, "bucket", "ctx.storage.bucket") or _ctx_string(
        ctx, "bucket", "ctx.bucket"
    )
    if bucket is not None and not _BUCKET.match(bucket):
        raise validation_error("ctx.bucket", f"{bucket!r} is not a bucket name", service=SERVICE)
    return StorageOverrides(
        bucket=bucket,
        prefix=_ctx_string(ctx, "prefix", "ctx.prefix")
        or _ctx_string(storage, "prefix", "ctx.storage.prefix"),
        cdn_url=_ctx_string(storage, "cdnUrl", "ctx.storage.cdnUrl")
        or _ctx_string(ctx, "cdnUrl", "ctx.cdnUrl"),
    )
