"""S3AssetSaver against a moto S3 server over real HTTP (AWS-, R2- and MinIO-style endpoints).

Storage failures moto cannot produce (throttling, 5xx, bad credentials) come from a local HTTP
server that answers with S3's own XML errors, so botocore parses them off the wire as it would
from AWS or R2.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config

from connectors.assets import (
    AssetSaver,
    Base64Data,
    DownloadPolicy,
    RemoteUrl,
    S3AssetSaver,
    build_s3_client,
    saver_from_env,
)
from connectors.assets.s3 import S3Client
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from tests.connectors.assets.conftest import PNG, SECRET_KEY, LocalHttp, Reply

MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
MIB = 1024 * 1024


def _object(s3_admin: Any, bucket: str, key: str) -> tuple[bytes, str]:
    found = s3_admin.get_object(Bucket=bucket, Key=key)
    return found["Body"].read(), found["ContentType"]


def _keys(s3_admin: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_admin.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_s3_saver_implements_the_protocol(s3_client: S3Client) -> None:
    assert isinstance(S3AssetSaver(bucket="x-bucket", client=s3_client), AssetSaver)


def test_bytes_are_uploaded_with_their_content_type(
    s3_client: S3Client, s3_admin: Any, bucket: str, job: JobData
) -> None:
    saved = S3AssetSaver(bucket=bucket, client=s3_client).save(PNG, job=job)
    assert saved.key.startswith("emp-tasks/glif/job-123_")
    assert saved.key.endswith(".png")
    assert (saved.bucket, saved.mime_type, saved.size_bytes) == (bucket, "image/png", len(PNG))
    assert _object(s3_admin, bucket, saved.key) == (PNG, "image/png")


def test_presigned_url_serves_the_object_for_the_configured_lifetime(
    s3_client: S3Client, bucket: str, job: JobData
) -> None:
    saved = S3AssetSaver(bucket=bucket, client=s3_client, url_ttl_seconds=900).save(PNG, job=job)
    query = parse_qs(urlsplit(saved.url).query)
    assert query["X-Amz-Expires"] == ["900"]
    assert "X-Amz-Signature" in query
    response = requests.get(saved.url, timeout=5)
    assert (response.status_code, response.content) == (200, PNG)


def test_cdn_url_replaces_the_presigned_url(s3_client: S3Client, bucket: str, job: JobData) -> None:
    saver = S3AssetSaver(bucket=bucket, client=s3_client, cdn_url="https://cdn.example.com/")
    saved = saver.save(PNG, job=job)
    assert saved.url == f"https://cdn.example.com/{saved.key}"


def test_ctx_overrides_bucket_prefix_and_cdn(
    s3_client: S3Client, s3_admin: Any, bucket: str, job: JobData
) -> None:
    other = f"{bucket}-ctx"
    s3_admin.create_bucket(Bucket=other)
    job = job.model_copy(
        update={"ctx": {"prefix": "client-a/", "storage": {"bucket": other, "cdnUrl": "cdn.a.io"}}}
    )
    saved = S3AssetSaver(bucket=bucket, client=s3_client, cdn_url="https://cdn.default").save(
        PNG, job=job
    )
    assert (saved.bucket, saved.key.split("/")[0]) == (other, "client-a")
    assert saved.url == f"https://cdn.a.io/{saved.key}"
    assert _keys(s3_admin, other) == [saved.key]
    assert _keys(s3_admin, bucket) == []


def test_a_retried_save_overwrites_its_own_object(
    s3_client: S3Client, s3_admin: Any, bucket: str, job: JobData
) -> None:
    saver = S3AssetSaver(bucket=bucket, client=s3_client)
    first = saver.save(PNG, job=job)
    again = saver.save(
        Base64Data("data:image/png;base64," + base64.b64encode(PNG).decode()), job=job
    )
    assert first.key == again.key
    assert _keys(s3_admin, bucket) == [first.key]


def _mp4_stream(size: int) -> Iterator[bytes]:
    yield MP4_HEAD
    sent = len(MP4_HEAD)
    block = bytes(range(256)) * 4096  # 1 MiB
    while sent < size:
        piece = block[: size - sent]
        sent += len(piece)
        yield piece


def test_large_download_is_streamed_through_a_multipart_upload(
    s3_client: S3Client, s3_admin: Any, bucket: str, job: JobData, http: LocalHttp
) -> None:
    size = 20 * MIB
    url = http.route("/video", Reply(chunks=lambda: _mp4_stream(size)))  # no length, no type
    policy = DownloadPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    saved = S3AssetSaver(bucket=bucket, client=s3_client, policy=policy).save(
        RemoteUrl(url), job=job
    )
    head = s3_admin.head_object(Bucket=bucket, Key=saved.key)
    assert (saved.size_bytes, head["ContentLength"]) == (size, size)
    assert (saved.mime_type, head["ContentType"], saved.key[-4:]) == (
        "video/mp4",
        "video/mp4",
        ".mp4",
    )
    assert head["ETag"].strip('"').endswith("-3")  # 3 parts of 8 MiB: multipart


def test_r2_style_endpoint_with_region_auto_and_path_addressing(
    moto_endpoint: str, s3_admin: Any, bucket: str, job: JobData
) -> None:
    # R2 is reached through an account hostname with region "auto"; "localhost" stands in.
    endpoint = moto_endpoint.replace("127.0.0.1", "localhost")
    saver = S3AssetSaver(
        bucket=bucket, endpoint_url=endpoint, region_name="auto", addressing_style="path"
    )
    saved = saver.save(PNG, job=job)
    parts = urlsplit(saved.url)
    assert (parts.netloc, parts.path) == (urlsplit(endpoint).netloc, f"/{bucket}/{saved.key}")
    assert "/auto/s3/aws4_request" in parse_qs(parts.query)["X-Amz-Credential"][0]
    assert requests.get(saved.url, timeout=5).content == PNG
    assert _object(s3_admin, bucket, saved.key)[0] == PNG


def test_saver_from_env_targets_an_s3_compatible_endpoint(
    moto_endpoint: str, s3_admin: Any, bucket: str, job: JobData
) -> None:
    env = {
        "CLOUD_STORAGE_PROVIDER": "s3",
        "CLOUD_STORAGE_BUCKET": bucket,
        "CLOUD_STORAGE_ENDPOINT_URL": moto_endpoint,
        "CLOUD_STORAGE_REGION": "auto",
        "CLOUD_STORAGE_PREFIX": "from-env",
        "CLOUD_STORAGE_URL_TTL_SECONDS": "120",
    }
    saved = saver_from_env(env).save(PNG, job=job)
    assert saved.key.startswith("from-env/job-123_")
    assert parse_qs(urlsplit(saved.url).query)["X-Amz-Expires"] == ["120"]
    assert _keys(s3_admin, bucket) == [saved.key]


def test_missing_bucket_is_a_permanent_config_error(s3_client: S3Client, job: JobData) -> None:
    with pytest.raises(ConnectorError) as caught:
        S3AssetSaver(bucket="no-such-bucket-here", client=s3_client).save(PNG, job=job)
    error = caught.value
    assert (error.failure_reason, error.retryable, error.status_code) == (
        FailureReason.CONFIG_ERROR,
        False,
        404,
    )
    assert error.context["code"] == "NoSuchBucket"


def _s3_error(status: int, code: str) -> Reply:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{code} says no</Message>"
        "<RequestId>r1</RequestId></Error>"
    )
    return Reply(status, body.encode(), {"Content-Type": "application/xml"})


@pytest.fixture(scope="module")
def fault_server() -> Iterator[LocalHttp]:
    """One S3-impersonating server for the error matrix (each test sets its reply)."""
    server = LocalHttp()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def fault_client(moto_endpoint: str, fault_server: LocalHttp) -> S3Client:
    # Built once: creating a boto3 client costs more than the request it makes.
    return build_s3_client(endpoint_url=fault_server.url(""), region_name="auto")


@pytest.mark.parametrize(
    ("status", "code", "ftype", "reason", "retryable"),
    [
        (503, "SlowDown", FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE, True),
        (500, "InternalError", FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True),
        (
            503,
            "ServiceUnavailable",
            FailureType.SERVICE_ERROR,
            FailureReason.SERVICE_UNAVAILABLE,
            True,
        ),
        (400, "RequestTimeout", FailureType.TIMEOUT, FailureReason.NETWORK_TIMEOUT, True),
        (502, "BadGateway", FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True),
        (
            403,
            "AccessDenied",
            FailureType.AUTH_ERROR,
            FailureReason.INSUFFICIENT_PERMISSIONS,
            False,
        ),
        (403, "InvalidAccessKeyId", FailureType.AUTH_ERROR, FailureReason.INVALID_API_KEY, False),
        (
            403,
            "SignatureDoesNotMatch",
            FailureType.AUTH_ERROR,
            FailureReason.INVALID_API_KEY,
            False,
        ),
        (404, "NoSuchBucket", FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, False),
    ],
)
@pytest.mark.parametrize("size", [len(PNG), 9 * MIB], ids=["single-put", "multipart"])
def test_storage_failures_are_classified_off_the_wire(
    fault_server: LocalHttp,
    fault_client: S3Client,
    job: JobData,
    size: int,
    status: int,
    code: str,
    ftype: FailureType,
    reason: FailureReason,
    retryable: bool,
) -> None:
    fault_server.fallback = _s3_error(status, code)
    saver = S3AssetSaver(bucket="assets-bucket", client=fault_client)
    with pytest.raises(ConnectorError) as caught:
        saver.save(PNG + b"\x00" * (size - len(PNG)), job=job)
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (ftype, reason, retryable)
    assert (error.service, error.status_code, error.context["code"]) == ("storage", status, code)
    assert SECRET_KEY not in json.dumps(error.to_dict())


def test_unreachable_endpoint_is_a_retryable_network_error(
    moto_endpoint: str, job: JobData
) -> None:
    saver = S3AssetSaver(
        bucket="assets-bucket", endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    with pytest.raises(ConnectorError) as caught:
        saver.save(PNG, job=job)
    assert (caught.value.failure_type, caught.value.retryable) == (FailureType.NETWORK_ERROR, True)
    assert caught.value.context["endpoint"] == "http://127.0.0.1:9"


def test_a_hung_endpoint_is_a_retryable_timeout(
    moto_endpoint: str, http: LocalHttp, job: JobData
) -> None:
    http.fallback = Reply(200, b"", delay=1.0)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=http.url(""),
        region_name="us-east-1",
        config=Config(
            read_timeout=0.2, retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}
        ),
    )
    with pytest.raises(ConnectorError) as caught:
        S3AssetSaver(bucket="assets-bucket", client=client).save(PNG, job=job)
    assert (caught.value.failure_type, caught.value.retryable) == (FailureType.TIMEOUT, True)


def test_endpoint_credentials_never_reach_error_context(moto_endpoint: str, job: JobData) -> None:
    saver = S3AssetSaver(
        bucket="assets-bucket",
        endpoint_url="http://user:hunter2@127.0.0.1:9",
        region_name="us-east-1",
    )
    with pytest.raises(ConnectorError) as caught:
        saver.save(PNG, job=job)
    assert "hunter2" not in json.dumps(caught.value.to_dict())


def test_the_default_client_makes_one_attempt(moto_endpoint: str) -> None:
    client: Any = build_s3_client(endpoint_url=moto_endpoint, region_name="auto")
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.s3["addressing_style"] == "path"
