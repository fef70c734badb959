"""StreamingHTTPConnector with SSE and NDJSON decoders over a scripted streaming transport."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.base import AnyPayload
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobProgress, JobResult
from connectors.protocol.client import HttpClient
from connectors.protocol.framing import BOM
from connectors.protocol.http import HttpRequest
from connectors.protocol.streaming import (
    DEFAULT_STREAM_DEADLINE,
    STREAM_END,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    StreamDecoder,
    StreamingHTTPConnector,
    stream_error,
    stream_progress,
)
from tests.connectors.protocol.stream_fakes import (
    ReadClock,
    Reply,
    ScriptedTransport,
    json_reply,
    ndjson_chunks,
    sse_chunks,
)

BASE = "https://stream.test"
URL = f"{BASE}/generate"
JOB = JobData(id="j-1", type="stream", payload={"prompt": "hi"})
R = FailureReason
T = FailureType
SSE = {"content-type": "text/event-stream"}
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class Text:
    """What the test connectors accumulate: text parts and the event names seen."""

    parts: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    finished: bool = False


class TextConnector(StreamingHTTPConnector[AnyPayload, Text]):
    """Reads OpenAI chat chunks, Responses events or Ollama lines into text."""

    service_type = "streamer"

    def build_request(self, job: JobData, payload: AnyPayload) -> HttpRequest:
        return HttpRequest("POST", self.client.url("generate"), json=job.payload)  # not streamed

    def new_accumulator(self, job: JobData) -> Text:
        return Text()

    def accumulate(self, state: Text, chunk: Any, job: JobData) -> Text:
        if isinstance(chunk, SSEEvent):
            state.events.append(chunk.event)
            data = chunk.data
            if chunk.event == "response.output_text.delta":
                state.parts.append(data["delta"])
            elif chunk.event == "response.completed":
                state.finished = True
            elif data.get("choices"):
                state.parts.append(data["choices"][0]["delta"].get("content") or "")
        else:
            state.parts.append(chunk.get("response", ""))
            state.finished = state.finished or chunk.get("done") is True
        return state

    def build_result(self, state: Text, job: JobData, payload: AnyPayload) -> JobResult:
        return JobResult(data={"text": "".join(state.parts), "events": state.events})


class ResponsesConnector(TextConnector):
    """Responses-style named events: the stream is whole only after `response.completed`."""

    def is_complete(self, state: Text, job: JobData) -> bool:
        return state.finished


def chat_chunk(content: str) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}}],
    }


def ollama_line(text: str, done: bool = False) -> dict[str, Any]:
    return {"model": "llama3.2", "response": text, "done": done}


CHAT = [chat_chunk("Hel"), chat_chunk("lo"), {"choices": [{"delta": {}, "finish_reason": "stop"}]}]
OLLAMA = [ollama_line("Hel"), ollama_line("lo"), ollama_line("", done=True)]
RESPONSES = [
    ("response.created", {"type": "response.created", "response": {"status": "in_progress"}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hel"}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "lo"}),
    ("response.completed", {"type": "response.completed", "response": {"status": "completed"}}),
]


def client(transport: ScriptedTransport) -> HttpClient:
    return HttpClient("streamer", BASE, session=transport.session())


def run(
    reply: Reply,
    decoder: StreamDecoder,
    cls: type[TextConnector] = TextConnector,
    **kwargs: Any,
) -> tuple[JobResult, list[JobProgress], ScriptedTransport]:
    transport = ScriptedTransport().add("POST", URL, reply)
    connector = cls(client=client(transport), decoder=decoder, **kwargs)
    reports: list[JobProgress] = []
    return connector.process_job(JOB, reports.append), reports, transport


def run_failing(reply: Reply, decoder: StreamDecoder, **kwargs: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        run(reply, decoder, **kwargs)
    return info.value


def test_sse_chat_chunks_until_done_build_the_text() -> None:
    reply = Reply(200, sse_chunks(*CHAT, "[DONE]"), SSE)
    result, _, transport = run(reply, SSEDecoder(end_required=True))
    assert result.data == {"text": "Hello", "events": ["message"] * 3}
    assert transport.sent[0].stream is True  # forced, though build_request left it False
    assert transport.sent[0].json == {"prompt": "hi"}


def test_sse_named_events_keep_their_event_names() -> None:
    reply = Reply(200, sse_chunks(*RESPONSES), SSE)
    result, _, _ = run(reply, SSEDecoder(), ResponsesConnector)
    assert result.data is not None
    assert result.data["text"] == "Hello"
    assert result.data["events"] == [name for name, _ in RESPONSES]


def test_ndjson_ollama_lines_build_the_text_and_stop_at_done() -> None:
    after = [b'{"after": "done"}\n' * 1000] * 5  # more than one socket read past the end
    reply = Reply(200, [*ndjson_chunks(*OLLAMA), b"\n", *after], NDJSON)
    result, _, transport = run(reply, NDJSONDecoder(done_key="done"))
    assert result.data == {"text": "Hello", "events": []}
    body = transport.bodies[0]
    assert body.closed  # the connector closed it: the data after the end was never read
    assert body.bytes_read < sum(map(len, after))


def test_progress_is_reported_per_chunk_monotonic_and_ends_at_100() -> None:
    chunks = [chat_chunk(str(i)) for i in range(30)]
    reply = Reply(200, sse_chunks(*chunks, "[DONE]"), SSE)
    _, reports, _ = run(reply, SSEDecoder(end_required=True), progress_every=1)
    values = [r.progress for r in reports]
    streaming = [r.progress for r in reports if r.current_step == "streaming"]
    assert values[0] == 5
    assert values[-1] == 100
    assert len(streaming) == 30
    assert all(a < b for a, b in itertools.pairwise(values))
    assert max(streaming) <= 95


def test_progress_every_n_chunks_reports_less_often() -> None:
    reply = Reply(200, ndjson_chunks(*[ollama_line("x")] * 25, ollama_line("", True)), NDJSON)
    _, reports, _ = run(reply, NDJSONDecoder(done_key="done"), progress_every=10)
    assert [r.current_step for r in reports] == [
        "submitting",
        "streaming",
        "streaming",
        "completed",
    ]


MID_STREAM = {
    "openai_rate_limit": (
        SSEDecoder(end_required=True),
        sse_chunks(
            chat_chunk("a"),
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        (T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True, None),
    ),
    "gemini_overloaded_status_code": (
        SSEDecoder(),
        sse_chunks(
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        ),
        (T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True, 503),
    ),
    "unknown_text_falls_back_to_status": (
        SSEDecoder(),
        sse_chunks({"error": {"code": 401, "message": "nope"}}),
        (T.AUTH_ERROR, R.INVALID_API_KEY, False, 401),
    ),
    "responses_error_event": (
        SSEDecoder(),
        sse_chunks(("error", {"type": "error", "code": None, "message": "Internal server error"})),
        (T.SERVICE_ERROR, R.SERVICE_DOWN, True, None),
    ),
    "ollama_out_of_memory": (
        NDJSONDecoder(done_key="done"),
        ndjson_chunks(
            ollama_line("a"), {"error": "model requires more system memory than is available"}
        ),
        (T.RESOURCE_LIMIT, R.OUT_OF_MEMORY, False, None),
    ),
    "ollama_unknown_error": (
        NDJSONDecoder(done_key="done"),
        ndjson_chunks({"error": "llama runner process has terminated"}),
        (T.SYSTEM_ERROR, R.UNKNOWN_ERROR, True, None),
    ),
}


@pytest.mark.parametrize(
    ("decoder", "chunks", "expected"), MID_STREAM.values(), ids=MID_STREAM.keys()
)
def test_mid_stream_error_becomes_a_classified_connector_error(
    decoder: StreamDecoder, chunks: list[bytes], expected: tuple[Any, ...]
) -> None:
    error = run_failing(Reply(200, chunks), decoder)
    assert (
        error.failure_type,
        error.failure_reason,
        error.retryable,
        error.status_code,
    ) == expected
    assert error.message.startswith("Error in the middle of the stream")
    assert error.service == "streamer"
    assert "stream_error" in error.context
    assert "stream" in error.context


def test_response_over_the_size_cap_is_a_non_retryable_response_error() -> None:
    reply = Reply(200, sse_chunks(*[chat_chunk("x" * 100)] * 20, "[DONE]"), SSE)
    error = run_failing(reply, SSEDecoder(end_required=True), max_response_bytes=1000)
    assert (error.failure_type, error.retryable) == (T.RESPONSE_ERROR, False)
    assert error.context["max_response_bytes"] == 1000
    assert error.context["stream"]["bytes"] > 1000


ENDED_EARLY = {
    "sse_without_done": (SSEDecoder(end_required=True), Reply(200, sse_chunks(*CHAT), SSE)),
    "ndjson_without_done_line": (
        NDJSONDecoder(done_key="done"),
        Reply(200, ndjson_chunks(*OLLAMA[:2])),
    ),
    "empty_stream": (SSEDecoder(), Reply(200, [], SSE)),
    "json_body_instead_of_sse": (SSEDecoder(), json_reply({"ok": True})),
    # Cut mid-frame: the SSE spec discards the unfinished event; either way the answer is partial.
    "sse_cut_mid_event": (
        SSEDecoder(),
        Reply(200, [b'data: {"a":1}\n\n', b'data: {"choices": [{"del'], SSE),
    ),
    "sse_last_event_without_its_blank_line": (
        SSEDecoder(),
        Reply(200, [b'data: {"a":1}\n\n', b'data: {"b":2}\n'], SSE),
    ),
    "ndjson_cut_mid_line": (
        NDJSONDecoder(),
        Reply(200, [*ndjson_chunks(OLLAMA[0]), b'{"response": "Hel'], NDJSON),
    ),
    "ndjson_cut_inside_a_character": (
        NDJSONDecoder(),
        Reply(200, [*ndjson_chunks(OLLAMA[0]), b'{"response": "caf\xc3'], NDJSON),
    ),
}


@pytest.mark.parametrize(("decoder", "reply"), ENDED_EARLY.values(), ids=ENDED_EARLY.keys())
def test_stream_that_stops_before_its_end_is_a_retryable_network_error(
    decoder: StreamDecoder, reply: Reply
) -> None:
    error = run_failing(reply, decoder)
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.NETWORK_ERROR,
        R.CONNECTION_FAILED,
        True,
    )
    assert "ended early" in error.message
    assert "stream" in error.context


def test_is_complete_hook_rejects_a_stream_without_its_final_event() -> None:
    reply = Reply(200, sse_chunks(*RESPONSES[:3]), SSE)
    with pytest.raises(ConnectorError, match="final chunk never came") as info:
        run(reply, SSEDecoder(), ResponsesConnector)
    assert info.value.retryable is True


MALFORMED = {
    "ndjson_not_json": (NDJSONDecoder(), ndjson_chunks(ollama_line("a"), "<html>oops</html>")),
    "sse_data_not_json": (SSEDecoder(), sse_chunks(chat_chunk("a"), "not json")),
    "ndjson_not_utf8": (NDJSONDecoder(), [b'{"response": "\xff\xfe"}\n']),
    # Whole frames, terminated, that are not JSON: the provider sent them so, not a cut.
    "sse_last_event_complete_but_not_json": (
        SSEDecoder(),
        [b'data: {"a":1}\n\n', b'data: {"choices": [{"del\n\n'],
    ),
    "ndjson_last_line_complete_but_not_json": (
        NDJSONDecoder(),
        [*ndjson_chunks(OLLAMA[0]), b'{"response": "Hel\n'],
    ),
}


@pytest.mark.parametrize(("decoder", "chunks"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_is_a_non_retryable_response_error(
    decoder: StreamDecoder, chunks: list[bytes]
) -> None:
    error = run_failing(Reply(200, chunks), decoder)
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.RESPONSE_ERROR,
        R.INVALID_RESPONSE_FORMAT,
        False,
    )


BROKEN = {
    "connection_reset": ConnectionResetError(104, "Connection reset by peer"),
    "read_timeout": TimeoutError("timed out"),
}


@pytest.mark.parametrize("exc", BROKEN.values(), ids=BROKEN.keys())
def test_connection_failure_mid_stream_is_classified_and_closes_the_response(
    exc: Exception,
) -> None:
    reply = Reply(200, sse_chunks(chat_chunk("a")), SSE, error_after=exc)
    transport = ScriptedTransport().add("POST", URL, reply)
    connector = TextConnector(client=client(transport), decoder=SSEDecoder())
    with pytest.raises(ConnectorError) as info:
        connector.process_job(JOB)
    error = info.value
    assert (error.failure_type, error.retryable) == (T.NETWORK_ERROR, True)
    assert error.context["exception_type"].startswith("requests.exceptions.")
    assert error.context["stream"]["content_type"] == "text/event-stream"
    assert transport.bodies[0].closed


PING = b": ping\n\n"  # an SSE comment: the keep-alive OpenAI-style servers send while idle
PAST_DEADLINE = {
    # (decoder, body chunks, seconds per chunk read, seconds the submission takes)
    "sse_keepalive_pings_forever": (SSEDecoder(), [PING] * 20_000, 0.3, 0.0),
    "ndjson_lines_never_reaching_done": (
        NDJSONDecoder(done_key="done"),
        ndjson_chunks(*[ollama_line("x")] * 5_000),
        0.3,
        0.0,
    ),
    "submission_alone_outlasts_it": (
        SSEDecoder(end_required=True),
        sse_chunks(*[chat_chunk("x")] * 2_000, "[DONE]"),
        0.0,
        DEFAULT_STREAM_DEADLINE + 100,
    ),
}


@pytest.mark.parametrize(
    ("decoder", "chunks", "per_read", "submit"), PAST_DEADLINE.values(), ids=PAST_DEADLINE.keys()
)
def test_stream_past_its_deadline_is_a_retryable_timeout_and_closes_the_response(
    decoder: StreamDecoder, chunks: list[bytes], per_read: float, submit: float
) -> None:
    transport = ScriptedTransport().add("POST", URL, Reply(200, chunks, SSE))
    clock = ReadClock(transport, per_read, submit)
    connector = TextConnector(client=client(transport), decoder=decoder, clock=clock)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(JOB)
    error = info.value
    assert (error.failure_type, error.failure_reason, error.retryable) == (
        T.TIMEOUT,
        R.SERVICE_TIMEOUT,
        True,
    )
    assert error.context["deadline"] == DEFAULT_STREAM_DEADLINE
    assert error.context["elapsed"] > DEFAULT_STREAM_DEADLINE
    assert error.context["stream"]["bytes"] > 0
    body = transport.bodies[0]
    assert body.closed
    assert body.reads < len(chunks)  # stopped at the deadline, not at the body's end


WITHIN_DEADLINE = {
    "inside_the_default": ({}, 0.3),
    "inside_an_explicit_one": ({"deadline": 30.0}, 0.3),
    "none_sets_no_deadline": ({"deadline": None}, 1_000.0),
}


@pytest.mark.parametrize(
    ("kwargs", "per_read"), WITHIN_DEADLINE.values(), ids=WITHIN_DEADLINE.keys()
)
def test_stream_that_ends_inside_its_deadline_completes(
    kwargs: dict[str, Any], per_read: float
) -> None:
    transport = ScriptedTransport().add("POST", URL, Reply(200, sse_chunks(*CHAT, "[DONE]"), SSE))
    clock = ReadClock(transport, per_read)
    connector = TextConnector(
        client=client(transport),
        decoder=SSEDecoder(end_required=True),
        clock=clock,
        **kwargs,
    )
    assert connector.process_job(JOB).data == {"text": "Hello", "events": ["message"] * 3}


BAD_LIMITS = {
    "zero_byte_cap": {"max_response_bytes": 0},
    "zero_progress_every": {"progress_every": 0},
    "zero_deadline": {"deadline": 0},
    "negative_deadline": {"deadline": -5.0},
    "nan_deadline": {"deadline": float("nan")},
}


@pytest.mark.parametrize("kwargs", BAD_LIMITS.values(), ids=BAD_LIMITS.keys())
def test_constructor_rejects_limits_that_cannot_hold(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TextConnector(client=HttpClient("streamer", BASE), decoder=SSEDecoder(), **kwargs)


SUBMIT_FAILURES = {
    "429_retry_after": (
        json_reply({"error": "slow"}, 429, {"Retry-After": "3"}),
        T.RATE_LIMIT,
        3.0,
    ),
    "401": (json_reply({"error": {"message": "Incorrect API key"}}, 401), T.AUTH_ERROR, None),
    "503": (Reply(503, [b"<html>unavailable</html>"]), T.SERVICE_ERROR, None),
}


@pytest.mark.parametrize(
    ("reply", "ftype", "wait"), SUBMIT_FAILURES.values(), ids=SUBMIT_FAILURES.keys()
)
def test_error_status_before_the_stream_keeps_the_http_mapping(
    reply: Reply, ftype: FailureType, wait: float | None
) -> None:
    error = run_failing(reply, SSEDecoder())
    assert (error.failure_type, error.retry_after) == (ftype, wait)


def test_sse_decoder_stitches_events_split_across_network_chunks() -> None:
    chunks = [b'event: delta\ndata: {"a"', b": 1}\n", b"\n: keep-alive\n\n", b"data: [DONE]\n\n"]
    assert list(SSEDecoder().events(chunks)) == [SSEEvent("delta", {"a": 1}), STREAM_END]


SSE_FRAMING = {
    "leading_bom_stripped": (
        [BOM + b'data: {"a":1}\n\n', b"data: [DONE]\n\n"],
        [SSEEvent("message", {"a": 1}), STREAM_END],
    ),
    "bom_split_across_reads": (
        [b"\xef\xbb", b'\xbfdata: {"a":1}\n\n'],
        [SSEEvent("message", {"a": 1})],
    ),
    "only_one_bom_stripped": ([BOM + BOM + b'data: {"a":1}\n\n'], []),
    "crlf_split_across_reads": ([b'data: {"a":1}\r', b"\n\r\n"], [SSEEvent("message", {"a": 1})]),
    "lone_cr_ends_lines": ([b'event: delta\rdata: {"a":1}\r\r'], [SSEEvent("delta", {"a": 1})]),
    "data_lines_joined_by_newline": (
        [b'data: {"a":\ndata: 1}\n\n'],
        [SSEEvent("message", {"a": 1})],
    ),
    "no_space_after_the_colon": ([b"data:1\n\n"], [SSEEvent("message", 1)]),
    "event_without_data_is_not_dispatched": (
        [b"event: ping\n\n", b"data: 1\n\n"],
        [SSEEvent("message", 1)],
    ),
    "id_kept_with_its_event": (
        [b"id: 7\ndata: 1\n\n", b"data: 2\n\n"],
        [SSEEvent("message", 1, "7"), SSEEvent("message", 2)],
    ),
    "comment_cut_at_the_end_is_no_cut_event": ([b"data: 1\n\n", b": pi"], [SSEEvent("message", 1)]),
}


@pytest.mark.parametrize(("chunks", "expected"), SSE_FRAMING.values(), ids=SSE_FRAMING.keys())
def test_sse_decoder_follows_the_event_stream_parsing_rules(
    chunks: list[bytes], expected: list[Any]
) -> None:
    assert list(SSEDecoder().events(chunks)) == expected


def test_ndjson_decoder_joins_lines_split_across_chunks_and_skips_blanks() -> None:
    chunks = [b'{"a": ', b'1}\n\n  \n{"b"', b": 2}"]
    assert list(NDJSONDecoder().events(chunks)) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    "chunk",
    [{"error": None}, {"choices": []}, SSEEvent("message", {"error": ""}), "text", [1, 2]],
    ids=["null_error", "normal_chunk", "empty_error_event_data", "string", "list"],
)
def test_stream_error_ignores_chunks_without_an_error(chunk: Any) -> None:
    assert stream_error(chunk) is None


def test_stream_progress_rises_toward_95_and_never_passes_it() -> None:
    values = [stream_progress(n) for n in range(0, 10_000, 7)]
    assert values[0] == 5
    assert all(a < b for a, b in itertools.pairwise(values))
    assert values[-1] < 95


def test_decoders_satisfy_the_stream_decoder_protocol() -> None:
    decoders: list[StreamDecoder] = [SSEDecoder(), NDJSONDecoder(done_key="done")]
    assert [d.end_required for d in decoders] == [False, True]
    assert json.loads(json.dumps(repr(STREAM_END))) == "STREAM_END"
