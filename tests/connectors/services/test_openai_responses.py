"""OpenAIResponsesConnector: background Responses, polled with an injected clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobProgress
from connectors.protocol.polling import PollPolicy
from connectors.services.openai_common import BASE64_REMOVED
from connectors.services.openai_responses import OpenAIResponsesConnector
from connectors.services.openai_responses_payload import OpenAIResponsesPayload, request_body
from tests.connectors.protocol.stream_fakes import ScriptedTransport, json_reply
from tests.connectors.services.openai_support import (
    CANCEL,
    PNG_B64,
    POLL,
    RESPONSES,
    FakeClock,
    R,
    StubSaver,
    T,
    err,
    fails,
    job,
    kind,
    make,
)

pytestmark = pytest.mark.usefixtures("clean_openai_env")


def response(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "model": "gpt-4.1",
        "output": [],
        **extra,
    }


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def image_call(result: str | None = PNG_B64, status: str = "completed") -> dict[str, Any]:
    return {"type": "image_generation_call", "id": "ig_1", "status": status, "result": result}


def responses_connector(
    *polls: dict[str, Any], saver: StubSaver | None = None, **policy: Any
) -> tuple[OpenAIResponsesConnector, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = (
        ScriptedTransport()
        .add("POST", RESPONSES, json_reply(response("queued")))
        .add("GET", POLL, *(json_reply(p) for p in polls))
        .add("POST", CANCEL, json_reply(response("cancelled")))
    )
    policy = {"interval": 2.0, "deadline": 30.0, **policy}
    connector = make(
        OpenAIResponsesConnector,
        transport,
        assets=saver or StubSaver(),
        poll_policy=PollPolicy(clock=clock, sleep=clock.sleep, **policy),
        clock=clock,
    )
    return connector, transport, clock


DONE_TEXT = response("completed", output=[message("A fox.")], usage={"total_tokens": 5})


def test_request_is_forced_to_background_with_job_keys_removed() -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    payload = {
        "input": "a fox",
        "temperature": 0.2,
        "save_assets": True,
        "user_id": "u1",
        "stream": True,
    }
    connector.process_job(job("openai_responses", **payload))
    assert transport.sent[0].json == {
        "input": "a fox",
        "temperature": 0.2,
        "model": "gpt-4.1",
        "background": True,
    }


def test_dynamic_json_is_sent_as_the_request() -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    dynamic = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}], "background": False}
    connector.process_job(
        job("openai_responses", dynamic_json={**dynamic, "ctx": {}}, ctx={"note": "x"})
    )
    assert transport.sent[0].json == {**dynamic, "background": True}


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        ({"input": "a fox"}, {"input": "a fox", "model": "gpt-4.1", "background": True}),
        (
            {
                "input": "x",
                "model": "gpt-5",
                "background": False,
                "bucket": "b",
                "save_assets": True,
            },
            {"input": "x", "model": "gpt-5", "background": True},
        ),
        (
            {"dynamic_json": {"prompt": {"id": "pmpt_1"}, "prefix": "p/"}},
            {"prompt": {"id": "pmpt_1"}, "model": "gpt-4.1", "background": True},
        ),
    ],
    ids=["default_model", "job_keys_dropped", "dynamic_json"],
)
def test_request_body_is_a_pure_function_of_the_payload(
    payload: dict[str, Any], body: dict[str, Any]
) -> None:
    parsed = OpenAIResponsesPayload.model_validate(payload)
    assert request_body(parsed, "gpt-4.1") == body


GOOD_PAYLOADS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "every_allowed_knob": (
        {
            "input": "a fox",
            "model": "gpt-5",
            "instructions": "be brief",
            "tools": [{"type": "image_generation", "size": "1024x1024"}],
            "tool_choice": "auto",
            "temperature": 1,
            "top_p": 0.9,
            "max_output_tokens": 400,
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "text"}},
            "metadata": {"job": "42"},
            "parallel_tool_calls": False,
            "previous_response_id": "resp_0",
            "truncation": "auto",
            "user": "u-1",
            "include": ["reasoning.encrypted_content"],
            "service_tier": "flex",
            "store": True,
        },
        set(),
    ),
    "prompt_template_without_input": ({"prompt": {"id": "pmpt_1", "version": "2"}}, set()),
    "input_items": ({"input": [{"role": "user", "content": "hi"}]}, set()),
    "nulls_are_left_out": ({"input": "x", "instructions": None}, {"instructions"}),
    "job_keys_are_left_out": (
        {"input": "x", "bucket": "b", "user_id": "u1", "stream": True},
        {"bucket", "user_id", "stream"},
    ),
}


@pytest.mark.parametrize(("payload", "left_out"), GOOD_PAYLOADS.values(), ids=GOOD_PAYLOADS.keys())
def test_known_responses_parameters_are_sent_as_given(
    payload: dict[str, Any], left_out: set[str]
) -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    connector.process_job(job("openai_responses", **payload))
    sent = {key: value for key, value in payload.items() if key not in left_out}
    assert transport.sent[0].json == {"model": "gpt-4.1", **sent, "background": True}


BAD_RESPONSES: dict[str, tuple[dict[str, Any], str]] = {
    "dynamic_json_unknown_key": ({"dynamic_json": {"foo": 1}}, "dynamic_json.foo"),
    "dynamic_json_without_input": ({"dynamic_json": {"model": "gpt-5"}}, "dynamic_json"),
    "dynamic_json_model_not_text": (
        {"dynamic_json": {"input": "x", "model": 5}},
        "dynamic_json.model",
    ),
    "dynamic_json_store_false": (
        {"dynamic_json": {"input": "x", "store": False}},
        "dynamic_json.store",
    ),
    "dynamic_json_typo": (
        {"dynamic_json": {"input": "x", "temprature": 0.2}},
        "dynamic_json.temprature",
    ),
    "dynamic_json_not_an_object": ({"dynamic_json": '{"input": "x"}'}, "dynamic_json"),
    "dynamic_json_nested": (
        {"dynamic_json": {"input": "x", "dynamic_json": {}}},
        "dynamic_json.dynamic_json",
    ),
    "dynamic_json_save_assets": (
        {"dynamic_json": {"input": "x", "save_assets": False}},
        "dynamic_json.save_assets",
    ),
    "beside_dynamic_json": ({"input": "x", "dynamic_json": {"input": "y"}}, "dynamic_json"),
    "typo": ({"input": "x", "temprature": 0.2}, "temprature"),
    "store_false": ({"input": "x", "store": False}, "store"),
    "model_not_text": ({"input": "x", "model": 5}, "model"),
    "input_not_text_or_list": ({"input": 5}, "input"),
    "input_empty_list": ({"input": []}, "input"),
    "input_item_not_object": ({"input": ["hi"]}, "input"),
    "temperature_too_high": ({"input": "x", "temperature": 2.5}, "temperature"),
    "temperature_text": ({"input": "x", "temperature": "0.5"}, "temperature"),
    "top_p_too_high": ({"input": "x", "top_p": 1.5}, "top_p"),
    "max_output_tokens_zero": ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    "max_output_tokens_float": ({"input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
    "tools_not_a_list": ({"input": "x", "tools": {"type": "image_generation"}}, "tools"),
    "tool_not_an_object": ({"input": "x", "tools": ["image_generation"]}, "tools.0"),
    "truncation_unknown": ({"input": "x", "truncation": "sometimes"}, "truncation"),
    "metadata_value_not_text": ({"input": "x", "metadata": {"n": 1}}, "metadata.n"),
}


@pytest.mark.parametrize(("payload", "field"), BAD_RESPONSES.values(), ids=BAD_RESPONSES.keys())
def test_bad_responses_payload_names_the_field_and_sends_nothing(
    payload: dict[str, Any], field: str
) -> None:
    connector, transport, _ = responses_connector(DONE_TEXT)
    error = fails(connector, job("openai_responses", **payload))
    assert kind(error) == (T.VALIDATION_ERROR, error.failure_reason, False)
    assert error.context["field"] == field
    assert f"'{field}'" in error.message
    assert transport.sent == []
    with pytest.raises(ConnectorError) as at_submit:
        OpenAIResponsesConnector.validate_payload(payload)
    assert at_submit.value.context["field"] == field


def test_store_false_is_refused_because_background_mode_needs_it() -> None:
    with pytest.raises(ConnectorError, match="background mode needs a stored response"):
        OpenAIResponsesConnector.validate_payload({"input": "x", "store": False})


def test_queued_and_in_progress_report_progress_then_completed_returns_text() -> None:
    connector, transport, clock = responses_connector(
        response("queued"), response("in_progress"), DONE_TEXT
    )
    reports: list[JobProgress] = []
    result = connector.process_job(job("openai_responses", input="a fox"), reports.append)
    assert result.data is not None
    assert (result.data["content_type"], result.data["text"]) == ("text", "A fox.")
    assert result.data["openai_response_id"] == "resp_1"
    assert [r.progress for r in reports if r.current_step == "polling"] == [25, 30, 60]
    assert reports[-1].progress == 100
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert len(transport.calls("GET", POLL)) == 3
    assert transport.calls("POST", CANCEL) == []


def test_generated_image_is_saved_and_no_base64_stays_in_the_result() -> None:
    saver = StubSaver()
    done = response("completed", output=[image_call(), message("Here is your fox.")])
    connector, _, _ = responses_connector(done, saver=saver)
    result = connector.process_job(
        job("openai_responses", input="draw a fox", tools=[{"type": "image_generation"}])
    )
    assert [(src.data, mime) for src, mime in saver.saved] == [(PNG_B64, "image/png")]  # type: ignore[union-attr]
    assert saver.expects == ["image"]  # the saver refuses anything that is not an image
    data = result.data or {}
    assert data["content_type"] == "image"
    assert data["image_url"] == "https://cdn.test/emp/job-openai_responses_1.png"
    assert data["mime_type"] == "image/png"
    assert data["text"] == "Here is your fox."
    assert data["raw_output"][0]["result"] == BASE64_REMOVED
    assert [f.path for f in result.output_files] == ["emp/job-openai_responses_1.png"]
    assert PNG_B64[:100] not in result.model_dump_json()


def test_save_assets_false_returns_the_image_inline_without_saving() -> None:
    saver = StubSaver()
    connector, _, _ = responses_connector(response("completed", output=[image_call()]), saver=saver)
    result = connector.process_job(job("openai_responses", input="x", save_assets=False))
    assert saver.saved == []
    assert (result.data or {})["image_base64"] == PNG_B64
    assert result.output_files == []


FOX = [image_call(), message("Here is your fox.")]
RESPONSE_FAILURES: dict[str, tuple[dict[str, Any], tuple[FailureType, FailureReason, bool]]] = {
    "refusal_text": (
        response("completed", output=[message("I'm sorry, but I can't assist with that.")]),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "refusal_beats_image": (
        response("completed", output=[image_call(), message("I can't create that image.")]),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "refusal_part": (
        response(
            "completed",
            output=[{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}],
        ),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "image_without_result": (
        response("completed", output=[image_call(None, "failed")]),
        (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False),
    ),
    "empty_output": (response("completed"), (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)),
    "failed_server_error": (
        response("failed", error={"code": "server_error", "message": "oops"}),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    ),
    "failed_rate_limit": (
        response("failed", error={"code": "rate_limit_exceeded", "message": "busy"}),
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    ),
    "failed_image_policy": (
        response("failed", error={"code": "image_content_policy_violation", "message": "no"}),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "failed_bio_policy": (
        response("failed", error={"code": "bio_policy", "message": "no"}),
        (T.GENERATION_REFUSAL, R.POLICY_VIOLATION, False),
    ),
    "failed_bad_image_url": (
        response("failed", error={"code": "invalid_image_url", "message": "404"}),
        (T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    ),
    "failed_unknown_code": (
        response("failed", error={"code": "mystery", "message": "?"}),
        (T.SERVICE_ERROR, R.JOB_FAILED, False),
    ),
    "cancelled": (response("cancelled"), (T.SERVICE_ERROR, R.JOB_FAILED, False)),
    "incomplete_tokens": (
        response(
            "incomplete",
            incomplete_details={"reason": "max_output_tokens"},
            output=[message("A fo")],
        ),
        (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False),
    ),
    "incomplete_filter": (
        response("incomplete", incomplete_details={"reason": "content_filter"}),
        (T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    ),
    "unknown_status": (response("exploded"), (T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False)),
}


@pytest.mark.parametrize(
    ("final", "expected"), RESPONSE_FAILURES.values(), ids=RESPONSE_FAILURES.keys()
)
def test_every_terminal_status_is_classified(
    final: dict[str, Any], expected: tuple[FailureType, FailureReason, bool]
) -> None:
    saver = StubSaver()
    connector, transport, _ = responses_connector(response("in_progress"), final, saver=saver)
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == expected
    assert len(transport.calls("GET", POLL)) == 2
    assert saver.saved == []  # a refused or failed response saves nothing
    assert PNG_B64[:100] not in json.dumps(error.to_dict())


def test_incomplete_keeps_the_partial_text_for_forensics() -> None:
    final = RESPONSE_FAILURES["incomplete_tokens"][0]
    connector, _, _ = responses_connector(final)
    error = fails(connector, job("openai_responses", input="x"))
    assert error.context["incomplete_reason"] == "max_output_tokens"
    assert error.context["partial_text"] == "A fo"


def test_deadline_cancels_the_response_and_is_a_retryable_timeout() -> None:
    connector, transport, clock = responses_connector(response("in_progress"), deadline=10.0)
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == (T.TIMEOUT, R.SERVICE_TIMEOUT, True)
    assert len(transport.calls("POST", CANCEL)) == 1
    assert error.context["cancel_succeeded"] is True
    assert sum(clock.sleeps) == 10.0


def test_a_poll_404_stops_polling_at_once() -> None:
    connector, transport, _ = responses_connector()
    transport.add(
        "GET", POLL, err(404, None, "invalid_request_error", "Response with id 'resp_1' not found.")
    )
    error = fails(connector, job("openai_responses", input="x"))
    assert kind(error) == (T.VALIDATION_ERROR, R.INVALID_REQUEST, False)
    assert len(transport.calls("GET", POLL)) == 1


def test_a_poll_rate_limit_waits_the_hint_and_polls_on() -> None:
    connector, transport, clock = responses_connector()
    limited = err(429, "rate_limit_exceeded", "requests", "slow down", **{"retry-after-ms": "7000"})
    transport.add("GET", POLL, limited, json_reply(DONE_TEXT))
    result = connector.process_job(job("openai_responses", input="x"))
    assert (result.data or {})["text"] == "A fox."
    assert clock.sleeps == [2.0, 7.0]
