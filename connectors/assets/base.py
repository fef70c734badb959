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
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from connectors.assets.mime import output_kind
from connectors.models import JobData, OutputFile

__all__ = [
    "SERVICE",
    "AssetSaver",
    "AssetSource",
    "Base64Data",
    "ExpectedKind",
    "RemoteUrl",
    "SavedAsset",
    "asset_key",
    "default_prefix",
    "sanitize_prefix",
    "sanitize_segment",
]

# The `service` named on every ConnectorError raised while saving an asset.
SERVICE = "storage"

# Runs of unsafe characters and of dots ("..") become one "_".
_UNSAFE = re.compile(r"(?:\.{2,}|[^A-Za-z0-9._-])+")
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
