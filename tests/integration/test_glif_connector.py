"""GlifConnector against the Glif emulator over loopback: every fault and output type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.assets import DownloadPolicy, LocalAssetSaver
from connectors.errors import ConnectorError
from connectors.models import JobData
from connectors.protocol.http import Timeouts
from connectors.services.glif import GlifConnector, GlifSettings
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GLIF_FAULT_KINDS, GlifEmulator

pytestmark = pytest.mark.integration

TOKEN = "glif-connector-token-5d2c"


@pytest.fixture(scope="module")
def emulator() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,)) as server:
        yield server


@pytest.fixture
def connector(emulator: GlifEmulator, tmp_path: Path) -> GlifConnector:
    emulator.reset()
    saver = LocalAssetSaver(tmp_path, policy=DownloadPolicy(allow_hosts=frozenset({"127.0.0.1"})))
    settings = GlifSettings(api_token=TOKEN, base_url=emulator.url, timeout_seconds=2)
    return GlifConnector(settings, assets=saver, timeouts=Timeouts(connect=2, read=2))


def job(workflow: str = "sandbox-text", **payload: object) -> JobData:
    return JobData(
        id="job-1", type="glif", payload={"workflow_id": workflow, "inputs": ["x"], **payload}
    )


# fault kind -> (failure_type, failure_reason, retryable, status_code)
FAULTS = {
    "rate_limit": ("rate_limit", "requests_per_minute", True, 429),
    "server_error": ("service_error", "service_unavailable", True, 500),
    "empty_error": ("service_error", "service_unavailable", True, 503),
    "unauthorized": ("auth_error", "invalid_api_key", False, 401),
    "forbidden": ("auth_error", "insufficient_permissions", False, 403),
    "non_json": ("response_error", "invalid_response_format", True, 200),
    "reset": ("network_error", "connection_failed", True, None),
    "workflow_error": ("service_error", "service_unavailable", True, 200),
    "invalid_workflow": ("validation_error", "invalid_payload", False, 200),
    "insufficient_credits": ("resource_limit", "insufficient_credits", False, 200),
    "rate_limit_text": ("rate_limit", "requests_per_minute", True, 200),
    "auth_text": ("auth_error", "invalid_api_key", False, 200),
    "timeout_text": ("timeout", "processing_timeout", True, 200),
}
SUCCESS_SHAPES = ("missing_output_full", "price_number", "lowercase_type")


def test_every_emulator_fault_kind_is_covered_here() -> None:
    assert set(GLIF_FAULT_KINDS) == {*FAULTS, *SUCCESS_SHAPES, "slow"}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fault_is_classified(kind: str, connector: GlifConnector, emulator: GlifEmulator) -> None:
    emulator.queue_faults([Fault(kind)], match={"workflow_id": "sandbox-text"})
    with pytest.raises(ConnectorError) as caught:
        connector.process_job(job())
    error = caught.value
    assert (
        error.failure_type.value,
        error.failure_reason.value,
        error.retryable,
        error.status_code,
    ) == FAULTS[kind]
    assert TOKEN not in str(error.to_dict())


def test_retry_after_header_reaches_the_error(
    connector: GlifConnector, emulator: GlifEmulator
) -> None:
    emulator.queue_faults(
        [Fault("rate_limit", retry_after=7)], match={"workflow_id": "sandbox-text"}
    )
    with pytest.raises(ConnectorError) as caught:
        connector.process_job(job())
    assert caught.value.retry_after == 7.0


def test_slow_reply_beyond_the_read_timeout_is_a_retryable_timeout(
    connector: GlifConnector, emulator: GlifEmulator
) -> None:
    emulator.queue_faults([Fault("slow", delay=3)], match={"workflow_id": "sandbox-text"})
    with pytest.raises(ConnectorError) as caught:
        connector.process_job(job())
    assert (caught.value.failure_type.value, caught.value.retryable) == ("timeout", True)


@pytest.mark.parametrize("kind", SUCCESS_SHAPES)
def test_odd_but_successful_shapes_still_succeed(
    kind: str, connector: GlifConnector, emulator: GlifEmulator
) -> None:
    emulator.queue_faults([Fault(kind)], match={"workflow_id": "sandbox-image"})
    result = connector.process_job(job("sandbox-image"))
    assert result.data is not None
    assert result.data["content_type"] == "image"
    assert isinstance(result.metadata["price"], float)


@pytest.mark.parametrize(
    ("workflow", "content_type", "key", "mime"),
    [
        ("sandbox-image", "image", "image_url", "image/png"),
        ("clgh1vxtu0011mo081dplq3xs", "image", "image_url", "image/png"),
        ("sandbox-audio", "audio", "asset_url", "audio/mpeg"),
        ("sandbox-video", "video", "asset_url", "video/mp4"),
    ],
)
def test_media_outputs_are_saved_locally(
    workflow: str,
    content_type: str,
    key: str,
    mime: str,
    connector: GlifConnector,
    tmp_path: Path,
) -> None:
    result = connector.process_job(job(workflow))
    assert result.data is not None
    assert result.data["content_type"] == content_type
    assert result.data["mime_type"] == mime
    (saved,) = result.output_files
    assert (tmp_path / saved.path).stat().st_size == saved.size_bytes > 0
    assert result.data[key].startswith("file://")


@pytest.mark.parametrize(
    ("workflow", "content_type", "key", "kind"),
    [
        ("sandbox-text", "text", "text", str),
        ("sandbox-json", "json", "json", (dict, list)),
        ("sandbox-html", "html", "html", str),
    ],
)
def test_text_outputs_are_returned_inline(
    workflow: str, content_type: str, key: str, kind: type, connector: GlifConnector
) -> None:
    result = connector.process_job(job(workflow))
    assert result.data is not None
    assert result.data["content_type"] == content_type
    assert isinstance(result.data[key], kind)
    assert result.output_files == []


def test_named_inputs_visibility_and_strict_reach_the_api(
    connector: GlifConnector, emulator: GlifEmulator
) -> None:
    payload = {
        "workflow_id": "sandbox-image",
        "inputs": {"prompt": "owl", "style": "ink"},
        "visibility": "PUBLIC",
        "strict": True,
    }
    result = connector.process_job(JobData(id="j", type="glif", payload=payload))
    call = emulator.calls()[0]
    assert call.query == {"strict": "1"}
    assert call.body_json["visibility"] == "PUBLIC"
    assert result.data is not None
    assert result.data["raw_response"]["output"]


def test_strict_mode_with_missing_inputs_is_a_validation_error(connector: GlifConnector) -> None:
    payload = {"workflow_id": "sandbox-image", "inputs": [], "strict": True}
    with pytest.raises(ConnectorError) as caught:
        connector.process_job(JobData(id="j", type="glif", payload=payload))
    assert caught.value.failure_reason.value == "missing_required_field"


def test_health_check_passes_with_a_good_token_and_fails_with_a_bad_one(
    emulator: GlifEmulator,
) -> None:
    good = GlifConnector(GlifSettings(api_token=TOKEN, base_url=emulator.url))
    bad = GlifConnector(GlifSettings(api_token="not-the-token", base_url=emulator.url))
    probe = GlifConnector(
        GlifSettings(
            api_token=TOKEN, base_url=emulator.url, health_check_workflow_id="sandbox-text"
        )
    )
    closed = GlifConnector(GlifSettings(api_token=TOKEN, base_url="http://127.0.0.1:9"))
    assert (
        good.check_health(),
        bad.check_health(),
        probe.check_health(),
        closed.check_health(),
    ) == (True, False, True, False)
