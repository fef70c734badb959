"""S3Store: outputs saved to S3-compatible storage (AWS S3, Cloudflare R2, MinIO).

Uploads are streamed with boto3's managed transfer: multipart above 8 MiB with a bounded number
of parts in memory, so a 200 MB output costs the worker tens of MB, not 200. The returned URL is
`CLOUD_CDN_URL/<key>` when a CDN is configured, otherwise a presigned GET URL.
"""

from __future__ import annotations

from typing import IO, Any, Literal, Protocol, cast
from urllib.parse import quote, urlsplit

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from connectors.assets.netguard import DownloadPolicy
from connectors.assets.pipeline import PreparedAsset, Saver, Stored
from connectors.assets.storage_errors import storage_error

__all__ = ["S3AssetSaver", "S3Client", "S3Store", "build_s3_client", "transfer_config"]

_MIB = 1024 * 1024
AddressingStyle = Literal["auto", "path", "virtual"]


class S3Client(Protocol):
    """The part of a boto3 S3 client the saver uses (parameter names are boto3's own)."""

    def upload_fileobj(
        self,
        Fileobj: IO[bytes],
        Bucket: str,
        Key: str,
        ExtraArgs: dict[str, Any] | None = ...,
        Callback: Any = ...,
        Config: TransferConfig | None = ...,
    ) -> None: ...

    def generate_presigned_url(
        self,
        ClientMethod: str,
        Params: dict[str, Any] | None = ...,
        ExpiresIn: int = ...,
        HttpMethod: str | None = ...,
    ) -> str: ...


def transfer_config() -> TransferConfig:
    """8 MiB parts, 4 in flight, at most 4 read into memory: peak upload memory ~32 MiB."""
    config = TransferConfig(
        multipart_threshold=8 * _MIB,
        multipart_chunksize=8 * _MIB,
        max_concurrency=4,
        use_threads=True,
        preferred_transfer_client="classic",  # the CRT client has its own buffering rules
    )
    # Not a TransferConfig argument; s3transfer reads it to cap parts held in memory (default 10).
    config.max_in_memory_upload_chunks = 4
    return config


def build_s3_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    addressing_style: AddressingStyle | None = None,
) -> S3Client:
    """A boto3 S3 client for AWS, R2 or MinIO; credentials come from boto3's standard chain."""
    custom: dict[str, Any] = {}
    if endpoint_url:
        # Third-party S3 servers lag behind AWS's default CRC checksums; send them only if required.
        custom = {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
    config = Config(
        signature_version="s3v4",
        # One retry owner: Celery retries the job; botocore makes a single attempt.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
        **custom,
    )
    # A private boto3 Session: the default one is not safe to share between threads.
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
    )
    return cast(S3Client, client)


class S3Store:
    """A Store in an S3-compatible bucket; the URL is the CDN's or a presigned GET."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        cdn_url: str | None = None,
        url_ttl_seconds: int = 3600,
        endpoint_url: str | None = None,
        transfer: TransferConfig | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.cdn_url = cdn_url
        self.url_ttl_seconds = url_ttl_seconds
        self.endpoint = _safe_endpoint(endpoint_url)  # for error context only
        self.transfer = transfer or transfer_config()

    def put(self, asset: PreparedAsset) -> Stored:
        """Upload to the `ctx` bucket or the configured one; a retry overwrites the same key."""
        bucket = asset.overrides.bucket or self.bucket
        self._upload(asset, bucket)
        return Stored(self._url(asset, bucket), bucket)

    def _context(self, bucket: str, key: str) -> dict[str, Any]:
        return {"bucket": bucket, "key": key, "endpoint": self.endpoint}

    def _upload(self, asset: PreparedAsset, bucket: str) -> None:
        try:
            self.client.upload_fileobj(
                asset.content.file,
                bucket,
                asset.key,
                ExtraArgs={"ContentType": asset.mime_type},
                Config=self.transfer,
            )
        except Exception as exc:
            raise storage_error(exc, context=self._context(bucket, asset.key)) from exc

    def _url(self, asset: PreparedAsset, bucket: str) -> str:
        cdn = asset.overrides.cdn_url or self.cdn_url
        if cdn:
            base = cdn if "://" in cdn else f"https://{cdn}"  # the original's ctx omits the scheme
            return f"{base.rstrip('/')}/{quote(asset.key)}"
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": asset.key},
                ExpiresIn=self.url_ttl_seconds,
            )
        except Exception as exc:
            raise storage_error(exc, context=self._context(bucket, asset.key)) from exc


# Named like a class because it was one; callers still construct savers by this name.
def S3AssetSaver(
    *,
    bucket: str,
    client: S3Client | None = None,
    session: requests.Session | None = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    addressing_style: AddressingStyle | None = None,
    prefix: str | None = None,
    cdn_url: str | None = None,
    url_ttl_seconds: int = 3600,
    policy: DownloadPolicy | None = None,
    transfer: TransferConfig | None = None,
) -> Saver:
    """The Saver that uploads to an S3Store, building the boto3 client unless one is given."""
    client = client or build_s3_client(
        endpoint_url=endpoint_url, region_name=region_name, addressing_style=addressing_style
    )
    store = S3Store(
        client,
        bucket,
        cdn_url=cdn_url,
        url_ttl_seconds=url_ttl_seconds,
        endpoint_url=endpoint_url,
        transfer=transfer,
    )
    return Saver(store, prefix=prefix, policy=policy, session=session)


def _safe_endpoint(endpoint_url: str | None) -> str | None:
    # Recorded in error context; never with user:password in it.
    if not endpoint_url:
        return None
    parts = urlsplit(endpoint_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"
