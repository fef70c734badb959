"""The one saver: stage the source, settle its MIME type, screen it, name its key, store it.

What varies is only where the staged file goes: `Saver` is given a `Store` (`LocalStore`, a
folder; `S3Store`, a bucket) that writes it and returns its URL. Screening (`screening.screen`)
refuses active content and, when the caller passes `expect`, any other major type; it runs on
the staged copy, so a refused output is never written or uploaded. Any failure on the way
leaves as a ConnectorError: a job whose output cannot be saved fails, it never completes with
the asset missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import requests

from connectors.assets.base import (
    SERVICE,
    AssetSource,
    Base64Data,
    ExpectedKind,
    RemoteUrl,
    SavedAsset,
    asset_key,
    default_prefix,
)
from connectors.assets.download import download
from connectors.assets.mime import extension_for, resolve_mime
from connectors.assets.netguard import DownloadPolicy, guarded_session
from connectors.assets.screening import screen
from connectors.assets.staging import StagedContent, stage_base64, stage_bytes
from connectors.classify import error_from_exception
from connectors.context import StorageOverrides
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    validation_error,
)
from connectors.models import JobData

__all__ = [
    "PreparedAsset",
    "Saver",
    "Store",
    "Stored",
    "as_connector_errors",
    "prepare",
]

_EMPTY = Classification(
    FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA, retryable=False
)


@dataclass
class PreparedAsset:
    """A staged output with its final MIME type, its key and the job's `ctx` overrides."""

    content: StagedContent
    mime_type: str
    key: str
    overrides: StorageOverrides


def _stage(source: AssetSource, session: requests.Session, policy: DownloadPolicy) -> StagedContent:
    if isinstance(source, bytes | bytearray | memoryview):
        return stage_bytes(bytes(source), policy.max_bytes)
    if isinstance(source, Base64Data):
        return stage_base64(source.data, policy.max_bytes)
    if isinstance(source, RemoteUrl):
        return download(source.url, session=session, policy=policy)
    raise validation_error(
        "source", f"unsupported asset source {type(source).__name__}", service=SERVICE
    )


def _empty_error() -> ConnectorError:
    return _EMPTY.error("The provider output is empty (0 bytes); nothing to save", service=SERVICE)


@contextmanager
def prepare(
    source: AssetSource,
    *,
    job: JobData,
    mime_type: str | None,
    expect: ExpectedKind | None,
    session: requests.Session,
    policy: DownloadPolicy,
    prefix: str | None,
) -> Iterator[PreparedAsset]:
    """Stage, type, screen and name `source`; the staged file is closed when the block ends."""
    overrides = job.storage  # parsed (and validated) once, when the job was built
    with _stage(source, session, policy) as content:
        if content.size == 0:
            raise _empty_error()
        mime = resolve_mime(mime_type or content.declared_mime, content.head, content.name_hint)
        screen(mime, head=content.head, expect=expect, origin=content.name_hint)
        key = asset_key(
            overrides.prefix or default_prefix(job, prefix),
            job.id,
            content.sha256,
            extension_for(mime),
        )
        yield PreparedAsset(content, mime, key, overrides)


@contextmanager
def as_connector_errors() -> Iterator[None]:
    """Let ConnectorError through; classify anything else as one (service `storage`)."""
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        raise error_from_exception(exc, SERVICE) from exc


class Stored(NamedTuple):
    """Where a store put an output: its URL, and its bucket (None for a local folder)."""

    url: str
    bucket: str | None


class Store(Protocol):
    """Where a `Saver` writes prepared outputs: a local folder, an S3-compatible bucket."""

    def put(self, asset: PreparedAsset) -> Stored:
        """Write the staged file at `asset.key`, replacing what is there; say where it went."""
        ...


class Saver:
    """The AssetSaver: stages, types, screens and names each output, then has `store` write it."""

    def __init__(
        self,
        store: Store,
        *,
        prefix: str | None = None,
        policy: DownloadPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.policy = policy or DownloadPolicy()
        # An injected session gets the per-hop URL checks only; build it with guarded_session()
        # to keep the connect-time address pin as well.
        self.session = session or guarded_session(self.policy)

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        """Save one output; raises ConnectorError if it cannot be saved (nothing is kept then)."""
        with (
            as_connector_errors(),
            prepare(
                source,
                job=job,
                mime_type=mime_type,
                expect=expect,
                session=self.session,
                policy=self.policy,
                prefix=self.prefix,
            ) as asset,
        ):
            url, bucket = self.store.put(asset)
            return SavedAsset(
                url=url,
                key=asset.key,
                bucket=bucket,
                mime_type=asset.mime_type,
                size_bytes=asset.content.size,
                sha256=asset.content.sha256,
            )
