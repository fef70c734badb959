"""Pure decisions: key naming, sanitising, MIME and extension, settings."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from connectors.assets import (
    Base64Data,
    LocalStore,
    S3Store,
    SavedAsset,
    Saver,
    asset_key,
    classify_storage_code,
    extension_for,
    load_settings,
    mime_from_magic,
    resolve_mime,
    saver_from_env,
)
from connectors.assets.base import sanitize_prefix, sanitize_segment
from connectors.assets.mime import mime_from_name, output_kind
from connectors.assets.staging import stage_base64
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

SHA = "0123456789abcdef" * 4


def test_asset_key_is_prefix_job_id_digest_and_extension() -> None:
    assert (
        asset_key("emp-tasks/glif", "job-1", SHA, "png") == "emp-tasks/glif/job-1_0123456789ab.png"
    )


def test_asset_key_without_prefix_is_just_the_name() -> None:
    assert asset_key("", "job-1", SHA, "png") == "job-1_0123456789ab.png"


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("../../etc/passwd", "_etc_passwd"),
        ("a/b", "a_b"),
        ("..", "_"),
        ("", "job"),
        (".hidden", "hidden"),
        ("job 1?x=2#y", "job_1_x_2_y"),
        ("wf_01J.v2", "wf_01J.v2"),
    ],
)
def test_job_ids_cannot_inject_path_segments(job_id: str, expected: str) -> None:
    assert sanitize_segment(job_id) == expected
    key = asset_key("p", job_id, SHA, "png")
    assert key.count("/") == 1
    assert ".." not in key


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("emp-tasks/glif/", "emp-tasks/glif"),
        ("/abs/path", "abs/path"),
        ("../../etc", "etc"),
        ("a/./b/../c", "a/b/c"),
        ("a\\..\\b", "a/b"),
        ("team one/out", "team_one/out"),
    ],
)
def test_prefixes_drop_traversal_segments(prefix: str, expected: str) -> None:
    assert sanitize_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"GIF87a...", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x20ftypqt  \x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "image/avif"),
        (b"ID3\x04\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64\x00", "audio/mpeg"),
        (b"\xff\xf3\x90\x64\x00", "audio/mpeg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", "video/x-matroska"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"fLaC\x00\x00", "audio/flac"),
        (b"\xff\xf1\x50\x80", None),  # AAC ADTS: not MPEG layer III
        (b"hello world", None),
        (b"", None),
    ],
)
def test_magic_bytes_identify_common_outputs(head: bytes, mime: str | None) -> None:
    assert mime_from_magic(head) == mime


@pytest.mark.parametrize(
    ("header", "head", "name", "expected"),
    [
        ("image/webp", b"\x89PNG\r\n\x1a\n", None, "image/webp"),  # a specific header wins
        ("IMAGE/JPG; charset=binary", b"", None, "image/jpeg"),  # normalised, aliases folded
        ("application/octet-stream", b"\x89PNG\r\n\x1a\n", "x.jpg", "image/png"),
        ("binary/octet-stream", b"", "https://h/out/clip.MP4?sig=1", "video/mp4"),
        ("text/plain", b"\x89PNG\r\n\x1a\n", None, "image/png"),  # magic beats weak text/plain
        ("text/plain", b"{}", "data.json", "application/json"),
        ("text/plain", b"hello", None, "text/plain"),
        (None, b"", "audio.wave", None),  # unknown extension
        (None, b"", None, "application/octet-stream"),
        ("", b"\xff\xd8\xff", None, "image/jpeg"),
    ],
)
def test_resolve_mime_prefers_header_then_magic_then_name(
    header: str | None, head: bytes, name: str | None, expected: str | None
) -> None:
    assert resolve_mime(header, head, name) == (expected or "application/octet-stream")


@pytest.mark.parametrize(
    ("mime", "ext"),
    [
        ("image/png", "png"),
        ("image/jpeg", "jpg"),
        ("image/jpg", "jpg"),
        ("video/mp4", "mp4"),
        ("audio/mpeg", "mp3"),
        ("audio/mp3", "mp3"),
        ("audio/wave", "wav"),
        ("application/json", "json"),
        ("text/plain; charset=utf-8", "txt"),
        ("application/x-unknown", "bin"),
        ("application/octet-stream", "bin"),
    ],
)
def test_extension_follows_the_mime_type(mime: str, ext: str) -> None:
    assert extension_for(mime) == ext


def test_name_lookup_ignores_query_strings_and_case() -> None:
    assert mime_from_name("https://cdn.x/a/b/IMG.JPEG?token=1") == "image/jpeg"
    assert mime_from_name("no-extension") is None


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("image/png", "image"),
        ("video/webm", "video"),
        ("audio/wav", "audio"),
        ("text/plain", "text"),
        ("application/json", "text"),
        ("application/pdf", "binary"),
    ],
)
def test_saved_asset_becomes_an_output_file(mime: str, kind: str) -> None:
    saved = SavedAsset(
        url="https://cdn/x/j_0123.png",
        key="x/j_0123.png",
        bucket="b",
        mime_type=mime,
        size_bytes=3,
        sha256=SHA,
    )
    out = saved.output_file()
    assert (out.filename, out.path, out.type, out.size_bytes, out.mime_type) == (
        "j_0123.png",
        "x/j_0123.png",
        kind,
        3,
        mime,
    )
    assert out.metadata == {"url": saved.url, "sha256": SHA, "bucket": "b"}
    assert output_kind(mime) == kind


@pytest.mark.parametrize(
    ("code", "status", "ftype", "reason", "retryable"),
    [
        ("NoSuchBucket", 404, FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, False),
        (
            "AccessDenied",
            403,
            FailureType.AUTH_ERROR,
            FailureReason.INSUFFICIENT_PERMISSIONS,
            False,
        ),
        ("InvalidAccessKeyId", 403, FailureType.AUTH_ERROR, FailureReason.INVALID_API_KEY, False),
        (
            "SignatureDoesNotMatch",
            403,
            FailureType.AUTH_ERROR,
            FailureReason.INVALID_API_KEY,
            False,
        ),
        ("ExpiredToken", 400, FailureType.AUTH_ERROR, FailureReason.EXPIRED_TOKEN, False),
        ("SlowDown", 503, FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE, True),
        ("Throttling", 400, FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE, True),
        ("RequestTimeout", 400, FailureType.TIMEOUT, FailureReason.NETWORK_TIMEOUT, True),
        ("InternalError", 500, FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True),
        (
            "ServiceUnavailable",
            503,
            FailureType.SERVICE_ERROR,
            FailureReason.SERVICE_UNAVAILABLE,
            True,
        ),
        ("Whatever", 502, FailureType.SERVICE_ERROR, FailureReason.SERVICE_UNAVAILABLE, True),
        ("Whatever", 403, FailureType.AUTH_ERROR, FailureReason.INSUFFICIENT_PERMISSIONS, False),
        ("Whatever", 404, FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, False),
        ("Whatever", 400, FailureType.VALIDATION_ERROR, FailureReason.INVALID_REQUEST, False),
    ],
)
def test_storage_codes_are_classified(
    code: str, status: int, ftype: FailureType, reason: FailureReason, retryable: bool
) -> None:
    assert classify_storage_code(code, status) == Classification(ftype, reason, retryable)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(b"\x89PNG\r\n\x1a\nabc").decode(),
        base64.b64encode(b"\x89PNG\r\n\x1a\nabc").decode().rstrip("="),  # padding dropped
        base64.urlsafe_b64encode(b"\x89PNG\r\n\x1a\nabc").decode(),
        base64.encodebytes(b"\x89PNG\r\n\x1a\nabc").decode(),  # MIME line breaks
        "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nabc").decode(),
    ],
)
def test_base64_forms_decode_to_the_same_bytes(text: str) -> None:
    with stage_base64(text, 1000) as staged:
        assert staged.file.read() == b"\x89PNG\r\n\x1a\nabc"
        assert staged.size == 11
        assert staged.head.startswith(b"\x89PNG")


def test_data_url_declares_its_mime_type() -> None:
    with stage_base64("data:audio/wav;base64,UklGRg==", 1000) as staged:
        assert staged.declared_mime == "audio/wav"


@pytest.mark.parametrize("text", ["not base64!", "data:image/png;base64", "ab=c"])
def test_invalid_base64_is_a_validation_error(text: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        stage_base64(text, 1000)
    assert caught.value.failure_type is FailureType.VALIDATION_ERROR
    assert caught.value.retryable is False


def test_base64_over_the_cap_is_refused_before_decoding() -> None:
    with pytest.raises(ConnectorError, match="exceeds ASSET_MAX_BYTES"):
        stage_base64(base64.b64encode(b"x" * 2000).decode(), 1000)


def test_empty_variables_count_as_unset() -> None:
    settings = load_settings(
        {"CLOUD_STORAGE_PROVIDER": "", "ASSET_MAX_BYTES": " ", "CLOUD_CDN_URL": ""}
    )
    assert settings.cloud_storage_provider == "local"
    assert settings.asset_max_bytes == 100 * 1024 * 1024
    assert settings.cloud_cdn_url is None


def test_allow_hosts_are_parsed_lower_case() -> None:
    settings = load_settings({"ASSET_DOWNLOAD_ALLOW_HOSTS": " Sandbox:8080, localhost ,,"})
    assert settings.allow_hosts() == frozenset({"sandbox:8080", "localhost"})


def test_explicit_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_PROVIDER", "s3")
    saver = saver_from_env({})
    assert isinstance(saver, Saver)
    assert isinstance(saver.store, LocalStore)


def test_original_container_variable_names_the_bucket() -> None:
    assert load_settings({"CLOUD_STORAGE_CONTAINER": "legacy"}).cloud_storage_bucket == "legacy"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CLOUD_STORAGE_PROVIDER": "azure"}, "CLOUD_STORAGE_PROVIDER"),
        ({"CLOUD_STORAGE_PROVIDER": "s3"}, "CLOUD_STORAGE_BUCKET"),
        ({"ASSET_MAX_BYTES": "lots"}, "ASSET_MAX_BYTES"),
        ({"CLOUD_STORAGE_URL_TTL_SECONDS": "0"}, "CLOUD_STORAGE_URL_TTL_SECONDS"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        saver_from_env(env)
    assert caught.value.failure_reason is FailureReason.CONFIG_ERROR
    assert caught.value.retryable is False
    assert variable in caught.value.message
    assert caught.value.context["variables"] == [variable]


def test_local_is_the_default_provider(tmp_path: Any) -> None:
    env = {"CLOUD_STORAGE_LOCAL_DIR": str(tmp_path), "CLOUD_STORAGE_PUBLIC_URL": "http://h/a/"}
    saver = saver_from_env(env)
    assert isinstance(saver, Saver)
    assert isinstance(saver.store, LocalStore)
    assert (saver.store.root, saver.store.public_url) == (tmp_path.resolve(), "http://h/a")


def test_s3_provider_builds_an_s3_saver() -> None:
    env = {
        "CLOUD_STORAGE_PROVIDER": "S3",
        "CLOUD_STORAGE_BUCKET": "outputs",
        "CLOUD_STORAGE_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com",
        "CLOUD_STORAGE_REGION": "auto",
        "CLOUD_CDN_URL": "https://cdn.example.com",
        "ASSET_MAX_BYTES": "1000",
    }
    saver = saver_from_env(env)
    assert isinstance(saver, Saver)
    assert isinstance(saver.store, S3Store)
    assert (saver.store.bucket, saver.store.cdn_url, saver.policy.max_bytes) == (
        "outputs",
        "https://cdn.example.com",
        1000,
    )


def test_source_types_are_frozen_values() -> None:
    assert Base64Data("eA==") == Base64Data("eA==")
