"""The one Saver with a Store passed in: what it hands the store, and what never reaches it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.assets import (
    AssetSaver,
    Base64Data,
    LocalAssetSaver,
    LocalStore,
    S3AssetSaver,
    S3Store,
    Saver,
    Store,
    Stored,
)
from connectors.assets.pipeline import PreparedAsset
from connectors.assets.s3 import S3Client
from connectors.errors import ConnectorError
from connectors.models import JobData
from tests.connectors.assets.conftest import PNG


@dataclass
class MemoryStore:
    """A Store that keeps what it is given in a dict, or fails with a scripted exception."""

    objects: dict[str, tuple[bytes, str, str | None]] = field(default_factory=dict)
    error: Exception | None = None

    def put(self, asset: PreparedAsset) -> Stored:
        if self.error is not None:
            raise self.error
        bucket = asset.overrides.bucket
        self.objects[asset.key] = (asset.content.file.read(), asset.mime_type, bucket)
        return Stored(f"mem://{asset.key}", bucket)


def test_a_saver_with_any_store_is_an_asset_saver() -> None:
    store: Store = MemoryStore()
    assert isinstance(Saver(store), AssetSaver)


def test_the_store_gets_the_staged_bytes_under_the_deterministic_key(job: JobData) -> None:
    store = MemoryStore()
    saved = Saver(store, prefix="renders").save(
        Base64Data("data:image/png;base64,iVBORw0KGgo="), job=job
    )
    digest = hashlib.sha256(b"\x89PNG\r\n\x1a\n").hexdigest()
    assert saved.key == f"renders/job-123_{digest[:12]}.png"
    assert store.objects == {saved.key: (b"\x89PNG\r\n\x1a\n", "image/png", None)}
    assert (saved.url, saved.bucket, saved.size_bytes) == (f"mem://{saved.key}", None, 8)


def test_the_store_sees_the_jobs_storage_overrides() -> None:
    store = MemoryStore()
    job = JobData(id="j-1", type="glif", ctx={"storage": {"bucket": "b-1", "prefix": "p"}})
    saved = Saver(store).save(PNG, job=job)
    assert saved.key.startswith("p/j-1_")
    assert saved.bucket == "b-1"


def test_refused_content_never_reaches_the_store(job: JobData) -> None:
    store = MemoryStore()
    with pytest.raises(ConnectorError, match=r"not the image/\* this job expects"):
        Saver(store).save(b"plain text", job=job, expect="image")
    assert store.objects == {}


def test_an_unclassified_store_failure_leaves_as_a_connector_error(job: JobData) -> None:
    store = MemoryStore(error=OSError("disk went away"))
    with pytest.raises(ConnectorError) as caught:
        Saver(store).save(PNG, job=job)
    assert caught.value.service == "storage"
    assert isinstance(caught.value.__cause__, OSError)


def test_the_named_savers_are_the_one_saver_with_their_store(
    tmp_path: Path, s3_client: S3Client
) -> None:
    local = LocalAssetSaver(tmp_path, public_url="http://h/a/", prefix="x")
    s3 = S3AssetSaver(bucket="b", client=s3_client, cdn_url="cdn.example.com", prefix="y")
    assert isinstance(local, Saver)
    assert isinstance(local.store, LocalStore)
    assert (local.store.root, local.store.public_url, local.prefix) == (
        tmp_path.resolve(),
        "http://h/a",
        "x",
    )
    assert isinstance(s3, Saver)
    assert isinstance(s3.store, S3Store)
    assert (s3.store.bucket, s3.store.cdn_url, s3.prefix) == ("b", "cdn.example.com", "y")
