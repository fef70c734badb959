"""StreamingHTTPConnector: one streamed request, decoded chunk by chunk, under a size cap.

The framing is a decoder passed in (`SSEDecoder`, `NDJSONDecoder`: see `framing`); the service
folds chunks into its own state. The mode counts bytes before the decoder sees them, so the cap
holds for any framing; turns an error sent mid-stream (the status already 200) into a classified
ConnectorError; refuses a stream that stops early, because a truncated answer must not pass for
a whole one; and ends a job that outlives its deadline, however steadily bytes still arrive.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import requests
import urllib3

from connectors.base import BaseConnector, P
from connectors.classify import classify_message, classify_status, error_from_exception
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult, ProgressCallback, report_progress
from connectors.protocol.client import HttpClient, HttpRequest
from connectors.protocol.framing import (
    STREAM_END,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    StreamCut,
    StreamDecoder,
)
from connectors.rules import UNKNOWN

__all__ = [  # the decoders are re-exported from framing: services import them from here
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_STREAM_DEADLINE",
    "STREAM_END",
    "NDJSONDecoder",
    "SSEDecoder",
    "SSEEvent",
    "StreamDecoder",
    "StreamingHTTPConnector",
    "stream_error",
    "stream_progress",
]

DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024  # the original StreamingMixin's max_response_size
# Seconds for a whole job, submission included. Nothing else bounds a stream that keeps sending:
# Celery's time limits are not enforced under the threads pool the workers use.
DEFAULT_STREAM_DEADLINE = 600.0
# Bytes asked of the socket per read. Bounded so the size cap is checked as data arrives; a
# chunked response (what SSE and NDJSON providers send) still yields each HTTP chunk at once.
READ_CHUNK_BYTES = 8192
R = FailureReason
T = FailureType
Acc = TypeVar("Acc")


def stream_progress(chunks: int, half_at: int = 50) -> float:
    """Progress after `chunks` chunks of an unknown total: rises from 5 toward, never past, 95."""
    count = max(0, chunks)
    return min(95.0, 5.0 + 90.0 * count / (count + max(1, half_at)))


def stream_error(chunk: Any, service: str | None = None) -> ConnectorError | None:
    """The classified error a chunk carries, or None (an `error` event or an `error` key)."""
    payload = chunk.data if isinstance(chunk, SSEEvent) else chunk
    if isinstance(chunk, SSEEvent) and chunk.event == "error":
        info = payload  # Responses API: `event: error` with code and message at the top level
    elif isinstance(payload, dict) and payload.get("error"):
        info = payload["error"]  # OpenAI chat, Gemini: {"error": {...}}; Ollama: {"error": "..."}
    else:
        return None
    fields = info if isinstance(info, dict) else {"message": info}
    message = str(fields.get("message") or fields.get("code") or json.dumps(fields)[:300])
    # The code and status name often say more than the message ("rate_limit_exceeded").
    words = [message, *(str(fields[k]) for k in ("code", "status") if fields.get(k))]
    codes = [fields.get(k) for k in ("code", "status_code", "status")]  # Gemini: code 429
    status = next((c for c in codes if type(c) is int and 100 <= c <= 599), None)
    found = classify_message(" ".join(words), status=status)
    if found == UNKNOWN and status is not None:
        found = classify_status(status)  # the text says nothing known: the status still does
    return found.error(
        f"Error in the middle of the stream: {message}",
        status_code=status,
        service=service,
        context={"stream_error": payload},
    )


# How the connection or the bytes can fail while a stream is read (ChunkedEncodingError, a read
# timeout, bytes that are not UTF-8): classified like the same failure anywhere else.
_BROKEN_STREAM = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, UnicodeError)


@dataclass
class _Stream:
    """One response being read: counts for progress, the size cap and error context."""

    request: HttpRequest
    response: requests.Response
    started: float  # the job's start on `clock`: the deadline covers the submission too
    clock: Callable[[], float]
    chunks: int = 0
    size: int = 0
    ended: bool = False

    def context(self) -> dict[str, Any]:
        kind = self.response.headers.get("content-type")
        stream = {"chunks": self.chunks, "bytes": self.size, "content_type": kind}
        return {"request": self.request.summary(), "stream": stream}

    def counted(self, cap: int, deadline: float | None) -> Iterator[bytes]:
        for chunk in self.response.iter_content(READ_CHUNK_BYTES):
            self.size += len(chunk)
            if self.size > cap:
                # The same request streams the same oversized answer: not retryable.
                raise Classification(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False).error(
                    f"Streamed response passed the {cap}-byte cap",
                    context={**self.context(), "max_response_bytes": cap},
                )
            elapsed = self.clock() - self.started
            if deadline is not None and elapsed > deadline:
                # A slow provider, not a wrong request: retryable.
                raise Classification(T.TIMEOUT, R.SERVICE_TIMEOUT, True).error(
                    f"Stream still open after {elapsed:.0f}s, past its {deadline:g}s deadline",
                    context={**self.context(), "deadline": deadline, "elapsed": elapsed},
                )
            yield chunk

    def ended_early(self, why: str) -> ConnectorError:
        # A cut connection looks like a clean end to the reader; the answer is incomplete and a
        # new attempt usually streams it whole, so this is a retryable network failure.
        return Classification(T.NETWORK_ERROR, R.CONNECTION_FAILED, True).error(
            f"Stream ended early ({why})", context=self.context()
        )


class StreamingHTTPConnector(BaseConnector[P], Generic[P, Acc]):
    """An HTTP connector whose 2xx body is a stream of chunks, decoded by an injected decoder."""

    def __init__(
        self,
        *,
        client: HttpClient,
        decoder: StreamDecoder,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        progress_every: int = 10,
        deadline: float | None = DEFAULT_STREAM_DEADLINE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # `clock` (BaseConnector's) times the deadline
        if max_response_bytes < 1 or progress_every < 1:
            raise ValueError("max_response_bytes and progress_every must be >= 1")
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds or None, not {deadline!r}")
        self.client = client
        self.decoder = decoder
        self.max_response_bytes = max_response_bytes
        self.progress_every = progress_every  # the original reported every 10 items
        # Seconds for the whole job, checked as bytes arrive (a silent server meets the read
        # timeout first), so a job ends within deadline + read timeout. This is the only bound
        # on a stream that keeps sending, keep-alive comments included: the byte cap is far off
        # and Celery's time limits are not enforced under the threads pool. None: no bound.
        self.deadline = deadline

    @abc.abstractmethod
    def build_request(self, job: JobData, payload: P) -> HttpRequest:
        """The request for this job (sent streamed, whatever it says)."""

    @abc.abstractmethod
    def new_accumulator(self, job: JobData) -> Acc:
        """A fresh per-job state for the chunks to fold into."""

    @abc.abstractmethod
    def accumulate(self, state: Acc, chunk: Any, job: JobData) -> Acc:
        """Fold one decoded, error-free chunk into the state; return the new state."""

    @abc.abstractmethod
    def build_result(self, state: Acc, job: JobData, payload: P) -> JobResult:
        """Turn the complete stream's state into the job's result."""

    def check_chunk(self, chunk: Any, job: JobData) -> ConnectorError | None:
        """Hook: the error a chunk reports, or None. Default: `stream_error(chunk)`."""
        return stream_error(chunk, self.service_type)

    def is_complete(self, state: Acc, job: JobData) -> bool:
        """Hook: whether the stream reached its natural end (e.g. a final `done` chunk seen)."""
        return True

    def health_probe(self) -> bool:
        """The client's probe (its `ApiProfile`), through `send_probe`; healthy without one."""
        return self.client.probe()

    def process_job_impl(self, job: JobData, payload: P, progress: ProgressCallback) -> JobResult:
        started = self._clock()
        # Forced: a body read whole before decoding would bypass the size cap and the progress.
        request = replace(self.build_request(job, payload), stream=True)
        report_progress(progress, job, 5, "submitting", "Connecting")
        sent = self.client.send(request, journal=job.journal)
        run = _Stream(request, sent, started, self._clock)
        try:
            state = self._consume(run, job, progress)
        finally:
            run.response.close()  # returns the connection to the pool even when we stopped early
        result = self.build_result(state, job, payload)
        report_progress(progress, job, 100, "completed", "Completed")
        return result

    def _consume(self, run: _Stream, job: JobData, progress: ProgressCallback) -> Acc:
        state = self.new_accumulator(job)
        try:
            chunks = run.counted(self.max_response_bytes, self.deadline)
            for chunk in self.decoder.events(chunks):
                if chunk is STREAM_END:
                    run.ended = True
                    break
                error = self.check_chunk(chunk, job)
                if error is not None:
                    raise error.with_context(run.context())
                state = self.accumulate(state, chunk, job)
                run.chunks += 1
                if run.chunks % self.progress_every == 0:
                    value = stream_progress(run.chunks)
                    report_progress(
                        progress, job, value, "streaming", f"Received {run.chunks} chunks"
                    )
        except StreamCut as exc:  # what arrived of the cut frame was discarded
            raise run.ended_early(str(exc)) from None
        except ConnectorError as exc:
            if "stream" in exc.context:
                raise
            # A hook's error: a copy that says how far the stream got.
            raise exc.with_context({"stream": run.context()["stream"]}) from exc.__cause__
        except _BROKEN_STREAM as exc:
            raise error_from_exception(exc, self.service_type, context=run.context()) from exc
        if (self.decoder.end_required and not run.ended) or run.chunks == 0:
            raise run.ended_early("no terminal marker" if run.chunks else "no chunks")
        if not self.is_complete(state, job):
            raise run.ended_early("the final chunk never came")
        return state
