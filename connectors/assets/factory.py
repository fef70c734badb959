"""Build the asset saver the worker's environment asks for (CLOUD_STORAGE_PROVIDER)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from connectors.assets.base import SERVICE, AssetSaver, AssetSource, ExpectedKind, SavedAsset
from connectors.assets.local import LocalStore
from connectors.assets.netguard import DownloadPolicy
from connectors.assets.pipeline import Saver, Store
from connectors.assets.s3 import S3Store, build_s3_client
from connectors.assets.settings import AssetSettings, load_settings
from connectors.errors import configuration_error
from connectors.models import JobData

__all__ = [
    "PROVIDERS",
    "LazyAssetSaver",
    "download_policy",
    "saver_from_env",
    "store_from_settings",
]

PROVIDERS = ("local", "s3")


def download_policy(settings: AssetSettings) -> DownloadPolicy:
    """The download policy ASSET_DOWNLOAD_ALLOW_HOSTS, ASSET_MAX_BYTES and the timeout set."""
    return DownloadPolicy(
        allow_hosts=settings.allow_hosts(),
        max_bytes=settings.asset_max_bytes,
        timeout_seconds=settings.asset_download_timeout_seconds,
        connect_timeout_seconds=min(10.0, settings.asset_download_timeout_seconds),
    )


def _s3(settings: AssetSettings) -> S3Store:
    if not settings.cloud_storage_bucket:
        raise configuration_error(
            "CLOUD_STORAGE_BUCKET is required when CLOUD_STORAGE_PROVIDER=s3",
            variables=["CLOUD_STORAGE_BUCKET"],
            service=SERVICE,
        )
    endpoint = settings.cloud_storage_endpoint_url
    client = build_s3_client(
        endpoint_url=endpoint,
        region_name=settings.cloud_storage_region,
        addressing_style=settings.cloud_storage_addressing_style,
    )
    return S3Store(
        client,
        settings.cloud_storage_bucket,
        cdn_url=settings.cloud_cdn_url,
        url_ttl_seconds=settings.cloud_storage_url_ttl_seconds,
        endpoint_url=endpoint,
    )


def store_from_settings(settings: AssetSettings) -> Store:
    """The store CLOUD_STORAGE_PROVIDER names: `local` (default) or `s3` (S3, R2, MinIO)."""
    provider = settings.cloud_storage_provider.strip().lower()
    if provider == "s3":
        return _s3(settings)
    if provider == "local":
        return LocalStore(settings.cloud_storage_local_dir, settings.cloud_storage_public_url)
    raise configuration_error(
        f"CLOUD_STORAGE_PROVIDER={provider!r} is not supported (use one of {', '.join(PROVIDERS)})",
        variables=["CLOUD_STORAGE_PROVIDER"],
        service=SERVICE,
    )


def saver_from_env(env: Mapping[str, str] | None = None) -> AssetSaver:
    """The Saver for the worker's environment: its store, prefix and download policy."""
    settings = load_settings(env)
    return Saver(
        store_from_settings(settings),
        prefix=settings.cloud_storage_prefix,
        policy=download_policy(settings),
    )


class LazyAssetSaver:
    """An AssetSaver that builds `saver_from_env()` on first save, so constructing never does."""

    def __init__(self) -> None:
        self._saver: AssetSaver | None = None
        self._lock = threading.Lock()

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        """Save through the environment's saver, building it on first use."""
        with self._lock:
            if self._saver is None:
                self._saver = saver_from_env()
        return self._saver.save(source, job=job, mime_type=mime_type, expect=expect)
