"""Screening outputs: active content is never stored, `expect` refuses the wrong kind.

Every refusal is checked on both savers (a local folder and the moto S3 server) and on both
ways a type reaches them (the caller's `mime_type`, a download's Content-Type), and nothing may
be written or uploaded when an output is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.assets import (
    AssetSaver,
    DownloadPolicy,
    ExpectedKind,
    LazyAssetSaver,
    LocalAssetSaver,
    RemoteUrl,
    S3AssetSaver,
    Saver,
    resolve_mime,
)
from connectors.assets.mime import markup_from_magic
from connectors.assets.screening import is_active
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from tests.connectors.assets.conftest import PNG, LocalHttp, Reply
from tests.connectors.fakes import StubSaver

HTML = b"<!DOCTYPE html><html><body><script>alert(document.domain)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>'
XML_SVG = b'<?xml version="1.0"?>\n<!-- drawn -->\n<SVG onload="alert(1)"></SVG>'
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 32
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 32
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 32
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (HTML, "text/html"),
        (b" \r\n\t<HTML lang=en>", "text/html"),
        (b"\xef\xbb\xbf<html>", "text/html"),  # UTF-8 byte-order mark
        ("<html>".encode("utf-16"), "text/html"),  # UTF-16 with its byte-order mark
        (b"<script>alert(1)</script>", "text/html"),
        (b"<a href=//evil>", "text/html"),
        (b"<!-- comment --><p>", "text/html"),
        (b"<!doctype html>", "text/html"),
        (SVG, "image/svg+xml"),
        (b"<!DOCTYPE svg PUBLIC>", "image/svg+xml"),
        (XML_SVG, "image/svg+xml"),
        (
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">',
            "application/xhtml+xml",
        ),
        (b'<?xml version="1.0"?><feed/>', "application/xml"),
        (b"<svgx>", None),  # not the <svg> tag
        (b"<abbr>", None),  # not one of the HTML openers
        (b"hello <html>", None),  # markup must open the content
        (b'{"html": "<html>"}', None),
        (PNG, None),
    ],
)
def test_markup_is_recognised_at_the_start_of_the_content(head: bytes, mime: str | None) -> None:
    assert markup_from_magic(head) == mime


@pytest.mark.parametrize(
    ("header", "head", "expected"),
    [
        ("image/png", HTML, "text/html"),  # the bytes contradict the header: the bytes win
        ("image/png", SVG, "image/png"),  # same major type: stands (screening refuses the markup)
        ("text/html", PNG, "image/png"),
        ("application/json", b"<!doctype html>", "text/html"),
        ("video/mp4", PNG, "image/png"),
        ("image/png", MP3, "audio/mpeg"),
        ("image/webp", PNG, "image/webp"),  # same major type: the header stands
        ("audio/mp4", MP4, "audio/mp4"),  # an ftyp box is also how M4A audio starts
        ("audio/webm", WEBM, "audio/webm"),  # WebM carries audio-only streams
        ("image/heic", HEIC, "image/heic"),  # ... and HEIF images start with an ftyp box
        ("text/csv", b"a,b\n1,2\n", "text/csv"),  # bytes that prove nothing never override
    ],
)
def test_a_header_that_contradicts_the_magic_bytes_loses(
    header: str, head: bytes, expected: str
) -> None:
    assert resolve_mime(header, head, None) == expected


@pytest.mark.parametrize(
    ("mime", "active"),
    [
        ("text/html; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("IMAGE/SVG+XML", True),
        ("text/javascript", True),
        ("application/javascript", True),
        ("application/xml", True),
        ("application/rss+xml", True),  # any +xml document can carry XHTML script
        ("image/png", False),
        ("text/plain", False),
        ("application/json", False),
        ("application/octet-stream", False),
    ],
)
def test_active_types_are_the_ones_a_browser_renders_or_runs(mime: str, active: bool) -> None:
    assert is_active(mime) is active


@dataclass
class Target:
    """A saver under test and a way to list what it stored."""

    saver: AssetSaver
    stored: Callable[[], list[str]]


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    policy = DownloadPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    if request.param == "local":
        return Target(
            LocalAssetSaver(tmp_path, policy=policy),
            lambda: sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")),
        )
    s3_admin: Any = request.getfixturevalue("s3_admin")
    bucket: str = request.getfixturevalue("bucket")
    saver = S3AssetSaver(bucket=bucket, client=request.getfixturevalue("s3_client"), policy=policy)

    def stored() -> list[str]:
        found = s3_admin.list_objects_v2(Bucket=bucket).get("Contents", [])
        return [item["Key"] for item in found]

    return Target(saver, stored)


@pytest.fixture(params=["argument", "download"])
def save(request: pytest.FixtureRequest, target: Target, job: JobData) -> Callable[..., Any]:
    """Save through `target`, the type given as `mime_type` or as a download's Content-Type."""

    def run(header: str | None, body: bytes, expect: ExpectedKind | None) -> Any:
        if request.param == "argument":
            return target.saver.save(body, job=job, mime_type=header, expect=expect)
        http: LocalHttp = request.getfixturevalue("http")
        headers = {"Content-Type": header} if header else {}
        url = http.route("/output", Reply(body=body, headers=headers))  # no extension
        return target.saver.save(RemoteUrl(url), job=job, expect=expect)

    return run


@pytest.mark.parametrize(
    ("header", "body", "expect", "saved_as"),
    [
        (None, PNG, "image", "image/png"),
        ("image/png", PNG, None, "image/png"),
        ("image/webp", PNG, "image", "image/webp"),
        ("text/html", PNG, "image", "image/png"),  # magic bytes beat a contradicting header
        ("application/octet-stream", PNG, "image", "image/png"),
        (None, MP3, "audio", "audio/mpeg"),
        ("audio/mp4", MP4, "audio", "audio/mp4"),
        (None, MP4, "video", "video/mp4"),
        ("text/plain", b"hello", None, "text/plain"),
        ("application/json", b'{"html": "<html>"}', None, "application/json"),
    ],
)
def test_outputs_of_the_expected_kind_are_saved(
    save: Callable[..., Any],
    target: Target,
    header: str | None,
    body: bytes,
    expect: ExpectedKind | None,
    saved_as: str,
) -> None:
    saved = save(header, body, expect)
    assert saved.mime_type == saved_as
    assert any(name.endswith(saved.key) for name in target.stored())


@pytest.mark.parametrize(
    ("header", "body", "expect", "words"),
    [
        # Active content, whatever `expect` is.
        ("text/html", HTML, None, ("text/html",)),
        (None, HTML, None, ("text/html",)),
        ("image/png", HTML, "image", ("text/html",)),  # an "image" that is an HTML page
        ("image/svg+xml", SVG, None, ("image/svg+xml",)),
        ("image/svg+xml", SVG, "image", ("image/svg+xml",)),
        ("image/png", SVG, "image", ("image/svg+xml", "image/png")),  # an SVG labelled PNG
        (None, XML_SVG, "image", ("image/svg+xml",)),
        ("text/plain", b"\n  <SCRIPT>alert(1)</SCRIPT>", None, ("text/html",)),
        ("text/csv", b"<html><body>x</body></html>", None, ("text/html", "text/csv")),
        ("application/xhtml+xml", b"<x/>", None, ("application/xhtml+xml",)),
        ("application/javascript", b"alert(1)", None, ("application/javascript",)),
        ("text/javascript", b"alert(1)", "image", ("text/javascript",)),
        # Another kind than the one expected.
        (None, b"not an image", "image", ("application/octet-stream", "image/*")),
        ("text/plain", b"hello", "image", ("text/plain", "image/*")),
        (None, MP3, "image", ("audio/mpeg", "image/*")),
        ("image/png", MP3, "image", ("audio/mpeg", "image/*")),
        (None, PNG, "video", ("image/png", "video/*")),
    ],
)
def test_active_content_and_unexpected_kinds_are_refused_before_storing(
    save: Callable[..., Any],
    target: Target,
    header: str | None,
    body: bytes,
    expect: ExpectedKind | None,
    words: tuple[str, ...],
) -> None:
    with pytest.raises(ConnectorError) as caught:
        save(header, body, expect)
    error = caught.value
    assert (error.failure_type, error.failure_reason, error.retryable, error.service) == (
        FailureType.RESPONSE_ERROR,
        FailureReason.UNEXPECTED_CONTENT_TYPE,
        False,
        "storage",
    )
    for word in words:
        assert word in error.message
    assert target.stored() == []  # nothing written, not even a temp file; nothing uploaded


def test_a_refused_download_names_its_url_without_the_query(
    tmp_path: Path, job: JobData, http: LocalHttp
) -> None:
    url = http.route("/render", Reply(body=SVG, headers={"Content-Type": "image/svg+xml"}))
    saver = LocalAssetSaver(tmp_path, policy=DownloadPolicy(allow_hosts=frozenset({"127.0.0.1"})))
    with pytest.raises(ConnectorError) as caught:
        saver.save(RemoteUrl(url + "?signature=secret"), job=job, expect="image")
    assert caught.value.context["url"] == url
    assert "secret" not in caught.value.message


def test_the_lazy_saver_passes_expect_through(
    tmp_path: Path, job: JobData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_PROVIDER", "local")
    monkeypatch.setenv("CLOUD_STORAGE_LOCAL_DIR", str(tmp_path))
    with pytest.raises(ConnectorError, match=r"not the image/\* this job expects"):
        LazyAssetSaver().save(b"plain text", job=job, expect="image")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("saver", [Saver, LazyAssetSaver, StubSaver])
def test_every_saver_takes_a_keyword_only_expect(saver: type[Any]) -> None:
    parameter = inspect.signature(saver.save).parameters["expect"]
    assert (parameter.kind, parameter.default) == (inspect.Parameter.KEYWORD_ONLY, None)
