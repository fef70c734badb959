"""The steps both savers share: stage the source, settle its MIME type, screen it, name its key.

A saver then only writes the staged file somewhere and builds the URL. Screening
(`screening.screen`) refuses active content and, when the caller passes `expect`, any other
major type; it runs on the staged copy, so a refused output is never written or uploaded. Any
failure on the way leaves as a ConnectorError: a job whose output cannot be saved fails, it
never completes with the asset missing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
from connectors.assets.netguard import DownloadPolicy
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
    "StagingSaver",
    "Store",
    "as_connector_errors",
    "prepare",
    "save_with",
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


# What differs between savers: write the prepared file somewhere, return (url, bucket).
Store = Callable[[PreparedAsset], tuple[str, str | None]]


def save_with(
    store: Store,
    source: AssetSource,
    *,
    job: JobData,
    mime_type: str | None,
    expect: ExpectedKind | None,
    session: requests.Session,
    policy: DownloadPolicy,
    prefix: str | None,
) -> SavedAsset:
    """Prepare `source`, hand it to `store`, and describe what was saved."""
    with (
        as_connector_errors(),
        prepare(
            source,
            job=job,
            mime_type=mime_type,
            expect=expect,
            session=session,
            policy=policy,
            prefix=prefix,
        ) as asset,
    ):
        url, bucket = store(asset)
        return SavedAsset(
            url=url,
            key=asset.key,
            bucket=bucket,
            mime_type=asset.mime_type,
            size_bytes=asset.content.size,
            sha256=asset.content.sha256,
        )


class StagingSaver(abc.ABC):
    """Base of the savers: `save` stages, types, screens and names; `_store` writes the file."""

    session: requests.Session
    policy: DownloadPolicy
    prefix: str | None

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        """Save one output; raises ConnectorError if it cannot be saved (nothing is kept then)."""
        return save_with(
            self._store,
            source,
            job=job,
            mime_type=mime_type,
            expect=expect,
            session=self.session,
            policy=self.policy,
            prefix=self.prefix,
        )

    @abc.abstractmethod
    def _store(self, asset: PreparedAsset) -> tuple[str, str | None]:
        """Write the prepared file; return its URL and bucket (None for a local folder)."""
