"""LocalAssetSaver: files under a folder, deterministic keys, atomic writes, classified failures."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from connectors.assets import AssetSaver, Base64Data, DownloadPolicy, LocalAssetSaver, RemoteUrl
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from tests.connectors.assets.conftest import PNG, LocalHttp, Reply

JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 100


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_local_saver_implements_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalAssetSaver(tmp_path), AssetSaver)


def test_bytes_are_saved_under_the_default_prefix(tmp_path: Path, job: JobData) -> None:
    saved = LocalAssetSaver(tmp_path).save(PNG, job=job)
    digest = hashlib.sha256(PNG).hexdigest()
    assert saved.key == f"emp-tasks/glif/job-123_{digest[:12]}.png"
    assert (saved.mime_type, saved.size_bytes, saved.sha256, saved.bucket) == (
        "image/png",
        len(PNG),
        digest,
        None,
    )
    assert (tmp_path / saved.key).read_bytes() == PNG
    assert saved.url == (tmp_path / saved.key).as_uri()


def test_public_url_replaces_the_file_url(tmp_path: Path, job: JobData) -> None:
    saved = LocalAssetSaver(tmp_path, public_url="http://localhost:8000/assets/").save(PNG, job=job)
    assert saved.url == f"http://localhost:8000/assets/{saved.key}"


@pytest.mark.parametrize(
    ("source", "mime"),
    [
        (Base64Data(base64.b64encode(JPEG).decode()), "image/jpeg"),
        (Base64Data("data:image/jpeg;base64," + base64.b64encode(JPEG).decode()), "image/jpeg"),
        (
            Base64Data("data:application/octet-stream;base64," + base64.b64encode(JPEG).decode()),
            "image/jpeg",
        ),
    ],
)
def test_base64_sources_are_decoded_and_typed(
    tmp_path: Path, job: JobData, source: Base64Data, mime: str
) -> None:
    saved = LocalAssetSaver(tmp_path).save(source, job=job)
    assert (saved.mime_type, saved.key.rsplit(".", 1)[1]) == (mime, "jpg")
    assert (tmp_path / saved.key).read_bytes() == JPEG


def test_explicit_mime_type_wins_and_sets_the_extension(tmp_path: Path, job: JobData) -> None:
    saved = LocalAssetSaver(tmp_path).save(b"a,b\n1,2\n", job=job, mime_type="text/csv")
    assert (saved.mime_type, saved.key.endswith(".csv")) == ("text/csv", True)


def test_remote_url_from_an_allow_listed_host_is_saved(
    tmp_path: Path, job: JobData, http: LocalHttp
) -> None:
    url = http.route("/out/render", Reply(body=JPEG, headers={"Content-Type": "image/jpeg"}))
    saver = LocalAssetSaver(tmp_path, policy=DownloadPolicy(allow_hosts=frozenset({"127.0.0.1"})))
    saved = saver.save(RemoteUrl(url), job=job)
    assert (saved.mime_type, (tmp_path / saved.key).read_bytes()) == ("image/jpeg", JPEG)


def test_saving_the_same_output_again_overwrites_the_same_file(
    tmp_path: Path, job: JobData
) -> None:
    saver = LocalAssetSaver(tmp_path)
    first = saver.save(PNG, job=job)
    second = saver.save(Base64Data(base64.b64encode(PNG).decode()), job=job)
    assert first.key == second.key
    assert _files(tmp_path) == [first.key]  # no duplicates, no leftover temp files


def test_different_content_or_job_gets_a_different_key(tmp_path: Path, job: JobData) -> None:
    saver = LocalAssetSaver(tmp_path)
    keys = {
        saver.save(PNG, job=job).key,
        saver.save(PNG + b"!", job=job).key,
        saver.save(PNG, job=JobData(id="job-456", type="glif")).key,
    }
    assert len(keys) == 3


def test_ctx_prefix_is_used_but_cannot_escape_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    job = JobData(id="../../../etc/cron.d/x", type="glif", ctx={"prefix": "../../outside/"})
    saved = LocalAssetSaver(root).save(PNG, job=job)
    assert saved.key.startswith("outside/")
    assert _files(tmp_path) == [f"assets/{saved.key}"]


def test_saver_names_keys_with_the_jobs_storage_prefix_over_the_flat_one(tmp_path: Path) -> None:
    ctx = {"prefix": "flat", "storage": {"prefix": "nested/run-1"}}
    saved = LocalAssetSaver(tmp_path).save(PNG, job=JobData(id="j-1", type="glif", ctx=ctx))
    assert saved.key.startswith("nested/run-1/j-1_")


def test_configured_prefix_applies_when_ctx_gives_none(tmp_path: Path, job: JobData) -> None:
    saved = LocalAssetSaver(tmp_path, prefix="renders/2024").save(PNG, job=job)
    assert saved.key.startswith("renders/2024/job-123_")


def test_empty_output_fails_instead_of_saving_nothing(tmp_path: Path, job: JobData) -> None:
    with pytest.raises(ConnectorError) as caught:
        LocalAssetSaver(tmp_path).save(b"", job=job)
    assert (caught.value.failure_reason, caught.value.retryable) == (
        FailureReason.MISSING_EXPECTED_DATA,
        False,
    )


def test_bytes_over_the_cap_are_refused(tmp_path: Path, job: JobData) -> None:
    saver = LocalAssetSaver(tmp_path, policy=DownloadPolicy(max_bytes=10))
    with pytest.raises(ConnectorError, match="exceeds ASSET_MAX_BYTES"):
        saver.save(PNG, job=job)


def test_unwritable_folder_is_a_classified_storage_error(tmp_path: Path, job: JobData) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ConnectorError) as caught:
        LocalAssetSaver(blocker).save(PNG, job=job)
    assert (caught.value.failure_type, caught.value.service) == (
        FailureType.SYSTEM_ERROR,
        "storage",
    )
    assert list(tmp_path.iterdir()) == [blocker]


def test_saved_file_is_readable_by_a_static_file_server(tmp_path: Path, job: JobData) -> None:
    saved = LocalAssetSaver(tmp_path).save(PNG, job=job)
    assert (tmp_path / saved.key).stat().st_mode & 0o777 == 0o644
