"""GlifConnector: successful outputs, health checks and asset saving."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from connectors.errors import ConnectorError, FailureType
from connectors.services.glif import (
    ATTRIBUTION,
    GlifSettings,
    parse_price,
)
from tests.connectors.fakes import (
    Reply,
    StubSaver,
    body_json,
    empty_reply,
    html_reply,
    json_reply,
)
from tests.connectors.services.glif_support import (
    IMAGE_URL,
    TOKEN,
    WORKFLOW,
    R,
    T,
    clean_env,
    fail,
    image_body,
    make,
    ok_job,
    run,
    ticking_clock,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


# --- successful output --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "data"),
    [
        (
            {"type": "IMAGE", "value": IMAGE_URL},
            {"content_type": "image", "image_url": IMAGE_URL, "mime_type": "image/png"},
        ),
        (
            {"type": "AUDIO", "value": "https://cdn.test/a/song.mp3"},
            {
                "content_type": "audio",
                "asset_url": "https://cdn.test/a/song.mp3",
                "mime_type": "audio/mpeg",
            },
        ),
        (
            {"type": "VIDEO", "value": "https://cdn.test/v/clip.mp4"},
            {
                "content_type": "video",
                "asset_url": "https://cdn.test/v/clip.mp4",
                "mime_type": "video/mp4",
            },
        ),
        (
            {"type": "TEXT", "value": "once upon a time"},
            {"content_type": "text", "text": "once upon a time"},
        ),
        (
            {"type": "JSON", "value": '{"a": [1, 2], "b": "c"}'},
            {"content_type": "json", "json": {"a": [1, 2], "b": "c"}},
        ),
        ({"type": "JSON", "value": "{not json"}, {"content_type": "json", "json": "{not json"}),
        (
            {"type": "JSON", "value": {"already": "parsed"}},
            {"content_type": "json", "json": {"already": "parsed"}},
        ),
        ({"type": "HTML", "value": "<p>hi</p>"}, {"content_type": "html", "html": "<p>hi</p>"}),
        (
            {"type": "IMAGE", "value": "https://cdn.test/i/pic"},
            {
                "content_type": "image",
                "image_url": "https://cdn.test/i/pic",
                "mime_type": "image/png",
            },
        ),
    ],
    ids=[
        "image",
        "audio",
        "video",
        "text",
        "json",
        "json_unparsable",
        "json_object",
        "html",
        "image_no_ext",
    ],
)
def test_output_type_gives_the_data_shape(full: dict[str, Any], data: dict[str, Any]) -> None:
    body = {"output": full["value"], "outputFull": full, "price": "1"}
    result = run(json_reply(body))
    assert result.success is True
    assert result.data is not None
    assert {k: v for k, v in result.data.items() if k != "raw_response"} == data


@pytest.mark.parametrize("kind", ["image", "IMAGE", "Image", "iMaGe"])
def test_output_full_type_is_case_insensitive(kind: str) -> None:
    body = image_body(outputFull={"type": kind, "value": IMAGE_URL})
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["content_type"] == "image"
    assert result.data["image_url"] == IMAGE_URL


@pytest.mark.parametrize(
    ("output", "content_type", "key"),
    [
        (IMAGE_URL, "image", "image_url"),
        ("https://cdn.test/x/photo.JPG", "image", "image_url"),
        ("https://cdn.test/x/photo.webp?sig=1", "image", "image_url"),
        ("https://cdn.test/x/track.mp3", "audio", "asset_url"),
        ("https://cdn.test/x/movie.webm", "video", "asset_url"),
        ("https://cdn.test/x/page", "text", "text"),
        ("a plain text answer", "text", "text"),
    ],
)
def test_missing_output_full_infers_the_type_from_the_output(
    output: str, content_type: str, key: str
) -> None:
    result = run(json_reply({"output": output, "price": "0.5"}))
    assert result.data is not None
    assert result.data["content_type"] == content_type
    assert result.data[key] == output


def test_unknown_output_full_type_falls_back_to_inference() -> None:
    body = {"output": IMAGE_URL, "outputFull": {"type": "WIDGET", "value": IMAGE_URL}}
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["content_type"] == "image"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "wf"},
        {"output": None},
        {"error": "", "output": None},
        {"output": None, "outputFull": None},
        {"output": None, "outputFull": {"type": "TEXT"}},
    ],
)
def test_a_reply_without_any_output_is_not_a_success(body: dict[str, Any]) -> None:
    error, _ = fail(json_reply(body))
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.RESPONSE_ERROR,
        R.MISSING_EXPECTED_DATA,
        False,
    )


def test_an_empty_text_output_is_still_a_result() -> None:
    result = run(json_reply({"output": "", "outputFull": {"type": "TEXT", "value": ""}}))
    assert result.data is not None
    assert (result.data["content_type"], result.data["text"]) == ("text", "")


@pytest.mark.parametrize(
    ("message", "failure_type", "retryable"),
    [
        ("Rate limit exceeded. You have 0 credits left this minute", T.RATE_LIMIT, True),
        ("Timeout waiting for credit service", T.TIMEOUT, True),
        ("Insufficient credits: this run needs 2.1", T.RESOURCE_LIMIT, False),
    ],
)
def test_the_word_credit_alone_does_not_mean_out_of_credits(
    message: str, failure_type: FailureType, retryable: bool
) -> None:
    error, _ = fail(json_reply({"error": message}))
    assert (error.failure_type, error.retryable) == (failure_type, retryable)


@pytest.mark.parametrize("value", [None, ""])
def test_media_output_without_a_url_is_missing_expected_data(value: str | None) -> None:
    error, _ = fail(json_reply({"output": value, "outputFull": {"type": "IMAGE", "value": value}}))
    assert (error.failure_type, error.failure_reason) == (
        T.RESPONSE_ERROR,
        R.MISSING_EXPECTED_DATA,
    )
    assert error.retryable is False
    assert error.service == "glif"


@pytest.mark.parametrize(
    ("price", "expected"),
    [("2.1000875", 2.1000875), (0.05, 0.05), (3, 3.0), ("0", 0.0), (None, None), ("free", None)],
)
def test_price_string_or_number_becomes_a_float(price: Any, expected: float | None) -> None:
    result = run(json_reply(image_body(price=price)))
    assert result.metadata["price"] == expected
    if expected is not None:
        assert isinstance(result.metadata["price"], float)


@pytest.mark.parametrize(("value", "expected"), [(True, None), ([], None), ("1e2", 100.0)])
def test_parse_price_edge_values(value: Any, expected: float | None) -> None:
    assert parse_price(value) == expected


def test_result_metadata_and_attribution() -> None:
    result = run(json_reply(image_body()))
    assert result.metadata == {
        "service": "glif",
        "connector": "glif",
        "workflow_id": WORKFLOW,
        "price": 2.1000875,
        "attribution": "powered by glif.app",
    }
    assert ATTRIBUTION == "powered by glif.app"
    assert result.service_metadata is not None
    assert result.service_metadata.service_type == "glif"
    assert result.service_metadata.processing_stats == {"price": 2.1000875}


def test_result_keeps_the_raw_response() -> None:
    body = image_body()
    result = run(json_reply(body))
    assert result.data is not None
    assert result.data["raw_response"] == {
        "output": body["output"],
        "outputFull": body["outputFull"],
        "price": "2.1000875",
        "nodes": body["nodes"],
    }


def test_processing_time_is_measured() -> None:
    connector, _ = make(json_reply(image_body()), clock=ticking_clock(50.0, 53.5))
    assert connector.process_job(ok_job()).processing_time_ms == 3500


def test_result_serialises_to_json() -> None:
    result = run(json_reply(image_body()))
    assert json.loads(result.model_dump_json())["data"]["image_url"] == IMAGE_URL


# --- health and support -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "healthy", "detail"),
    [
        (json_reply({"error": "glif not found"}), True, "ok"),
        (json_reply({"error": "Unauthorized"}, 401), False, "auth_error/invalid_api_key: HTTP 401"),
        (empty_reply(503), False, "service_error/service_unavailable: HTTP 503"),
        (html_reply("<h1>proxy</h1>", 200), False, "response_error/invalid_response_format"),
        (requests.ConnectionError("refused"), False, "network_error/connection_failed"),
        (requests.ReadTimeout("slow"), False, "timeout/network_timeout"),
    ],
    ids=["200_error", "401", "503", "200_not_json", "refused", "timeout"],
)
def test_health_reports_why_and_check_health_never_raises(
    reply: Reply | BaseException, healthy: bool, detail: str
) -> None:
    connector, adapter = make(reply)
    report = connector.health()
    assert (report.healthy, report.detail.startswith(detail)) == (healthy, True), report.detail
    assert TOKEN not in report.detail
    assert body_json(adapter.last) == {"id": "", "inputs": []}
    adapter.add(reply)
    assert connector.check_health() is healthy


def test_health_probe_is_a_short_request_through_send() -> None:
    connector, adapter = make(json_reply({"error": "glif not found"}))
    assert connector.health().healthy
    assert adapter.timeouts == [(10.0, 10.0)]  # the probe's read timeout, not the job's 60 s


def test_health_probe_runs_the_configured_workflow() -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id="cheap-wf")
    connector, adapter = make(json_reply(image_body()), settings=settings)
    assert connector.check_health() is True
    assert body_json(adapter.last) == {"id": "cheap-wf", "inputs": ["health-check"]}
    assert adapter.last.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        ("Insufficient credits", "resource_limit/insufficient_credits"),
        ("glif not found", "validation_error/invalid_payload"),
    ],
)
def test_a_failing_health_check_workflow_is_unhealthy(error: str, detail: str) -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id="cheap-wf")
    connector, _ = make(json_reply({"error": error}), settings=settings)
    report = connector.health()
    assert not report.healthy
    assert report.detail.startswith(f"{detail}: Glif health-check workflow cheap-wf failed")


def test_a_redirect_is_not_followed_by_the_probe() -> None:
    connector, adapter = make(
        Reply(302, b"", {"Location": "https://elsewhere.example/"}),
        json_reply({"error": "glif not found"}),
    )
    report = connector.health()
    assert not report.healthy
    assert "HTTP 302" in report.detail
    assert "does not follow redirects" in report.detail
    assert [r.url for r in adapter.requests] == ["https://simple-api.glif.app/"]


@pytest.mark.parametrize(("workflow", "allowed"), [(None, False), ("cheap-wf", True)])
def test_periodic_checks_only_with_a_health_check_workflow(
    workflow: str | None, allowed: bool
) -> None:
    settings = GlifSettings(api_token=TOKEN, health_check_workflow_id=workflow)
    connector, _ = make(settings=settings)
    assert connector.periodic_health_check_allowed() is allowed


def test_glif_is_a_minimal_health_class_and_is_supported() -> None:
    connector, _ = make()
    assert connector.service_support()["isSupported"] is True


# --- asset saving --------------------------------------------------------------------------------


def test_image_output_is_saved_and_the_result_points_at_the_saved_copy() -> None:
    saver = StubSaver()
    connector, _ = make(json_reply(image_body()), assets=saver)
    result = connector.process_job(ok_job(save_assets=True))
    ((source, job_id, _mime),) = saver.saved
    provider_url = image_body()["output"]
    assert getattr(source, "url", None) == provider_url
    assert job_id == "job-glif-1"
    assert result.data is not None
    assert result.data["image_url"].startswith("https://cdn.example.test/")
    assert result.data["raw_response"]["output"] == provider_url  # the original is kept
    assert [f.type for f in result.output_files] == ["image"]
    assert result.metadata["saved_asset"]["fileUrl"] == result.data["image_url"]
    assert saver.expects == ["image"]  # the saver refuses anything that is not an image


def test_save_assets_false_keeps_the_provider_url_and_saves_nothing() -> None:
    saver = StubSaver()
    connector, _ = make(json_reply(image_body()), assets=saver)
    result = connector.process_job(ok_job(save_assets=False))
    assert saver.saved == []
    assert result.data is not None
    assert result.data["image_url"] == image_body()["output"]
    assert result.output_files == []


def test_an_output_that_cannot_be_saved_fails_the_job() -> None:
    refusal = ConnectorError(
        "storage unavailable",
        failure_type="service_error",
        failure_reason="service_unavailable",
        service="storage",
    )
    connector, _ = make(json_reply(image_body()), assets=StubSaver(error=refusal))
    with pytest.raises(ConnectorError) as info:
        connector.process_job(ok_job(save_assets=True))
    assert info.value.service == "storage"
    assert info.value.retryable is True


def test_text_outputs_are_not_saved() -> None:
    saver = StubSaver()
    connector, _ = make(
        json_reply(
            {
                "output": "hello",
                "outputFull": {"type": "TEXT", "value": "hello"},
                "price": "0.1",
                "nodes": [],
            }
        ),
        assets=saver,
    )
    connector.process_job(ok_job(save_assets=True))
    assert saver.saved == []
