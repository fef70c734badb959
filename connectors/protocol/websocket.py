"""WebSocketConnector: submit a job over HTTP, then follow it on a WebSocket until it ends.

The provider (ComfyUI) pushes a job's events on a socket: JSON text frames, binary previews. The
mode opens the socket *before* the service submits, so no event can be missed; routes each
message by the provider's job key (a prompt id) and drops other jobs' messages; reports
progress; stops when a message says the job ended; and bounds the whole job with a deadline.
The HTTP parts (submit, history, downloads) go through the `HttpClient` the mode holds.

One connection per job, not one shared by the worker's jobs: ComfyUI routes a prompt's events
to the socket of the prompt's own client id, so a per-job socket receives only its job's
events, needs no routing table shared between threads, and a socket that drops takes one job
down, not every job in flight. The cost, one handshake per job, is nothing next to a GPU run.

Nothing here reconnects: a socket that closes or drops mid-job is a retryable network error and
Celery runs the job again. A service makes that retry safe by deriving its job key from the
job id (ComfyUI accepts a client-chosen prompt id), so the next attempt finds the prompt in
the provider's queue or history instead of submitting it twice.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Any, Generic, Literal
from urllib.parse import urlsplit, urlunsplit

import websocket

from connectors.base import BaseConnector, P
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult, ProgressCallback, report_progress
from connectors.protocol.client import HttpClient
from connectors.protocol.wsclient import (
    CLOSED,
    Message,
    SocketFactory,
    WebSocketLike,
    connect_websocket,
    decode_frame,
    socket_error,
)

__all__ = [  # the socket edge is re-exported from wsclient: services import it from here
    "Message",
    "SocketFactory",
    "Step",
    "Submission",
    "WebSocketConnector",
    "WebSocketLike",
    "connect_websocket",
    "decode_frame",
    "socket_error",
]

log = logging.getLogger(__name__)
R = FailureReason
T = FailureType
_DEADLINE = Classification(T.TIMEOUT, R.SERVICE_TIMEOUT, True)


@dataclass(frozen=True)
class Submission:
    """A job the provider holds: its key, and whether it had already ended (a resumed retry)."""

    key: str  # what the provider routes this job's messages by (ComfyUI: the prompt id)
    finished: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # for the service's build_result


@dataclass(frozen=True)
class Step:
    """What one message means: nothing, progress, the job's end, or its failure."""

    kind: Literal["ignore", "progress", "done", "failed"] = "ignore"
    progress: float | None = None  # 0-100 of the provider's work, if the message says
    message: str | None = None
    output: Any = None  # something build_result needs (collected in arrival order)
    error: ConnectorError | None = None


@dataclass
class _Run:
    """One job's socket while it is followed: counts and state for progress and errors."""

    url: str
    key: str
    started: float
    frames: int = 0
    binary: int = 0
    foreign: int = 0
    last_type: str | None = None
    shown: float = 10.0
    outputs: list[Any] = field(default_factory=list)

    def context(self, elapsed: float) -> dict[str, Any]:
        parts = urlsplit(self.url)
        socket = {
            "url": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "job_key": self.key,
            "frames": self.frames,
            "binary_frames": self.binary,
            "foreign_frames": self.foreign,
            "last_message_type": self.last_type,
            "elapsed": round(elapsed, 3),
        }
        return {"websocket": socket}


class WebSocketConnector(BaseConnector[P], Generic[P]):
    """A connector that submits over HTTP and follows the job's events on a WebSocket."""

    def __init__(
        self,
        *,
        client: HttpClient,
        deadline: float,
        connect: SocketFactory = connect_websocket,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # `clock` (BaseConnector's) times the deadline
        if not deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds, not {deadline!r}")
        self.client = client
        self.deadline = deadline  # seconds for the whole job: connect, submit, every frame
        self.connect = connect

    @abc.abstractmethod
    def websocket_url(self, job: JobData, payload: P) -> str:
        """The socket to listen on for this job (ComfyUI: `/ws?clientId=<the job's id>`)."""

    @abc.abstractmethod
    def submit(self, job: JobData, payload: P) -> Submission:
        """Hand the job to the provider (or find it there, on a retry): its key, whether done."""

    @abc.abstractmethod
    def read_message(self, message: Message, submission: Submission) -> Step:
        """What one of this job's JSON messages means."""

    @abc.abstractmethod
    def build_result(
        self, submission: Submission, outputs: list[Any], job: JobData, payload: P
    ) -> JobResult:
        """The result of a job that ended well (`outputs`: the steps' outputs, in order)."""

    def message_key(self, message: Message) -> str | None:
        """Hook: the job key a message is for (None: for every job). Default `data.prompt_id`."""
        data = message.get("data")
        key = data.get("prompt_id") if isinstance(data, dict) else None
        return str(key) if key is not None else None

    def read_binary(self, data: bytes, submission: Submission) -> Step:
        """Hook: what a binary frame means. Default: nothing (previews are skipped)."""
        return Step()

    def health_probe(self) -> bool:
        """The client's probe (its `ApiProfile`), through `send_probe`; healthy without one."""
        return self.client.probe()

    def process_job_impl(self, job: JobData, payload: P, progress: ProgressCallback) -> JobResult:
        started = self._clock()
        url = self.websocket_url(job, payload)
        ws = self._open(url, started)
        try:
            report_progress(progress, job, 5, "submitting", "Connected; submitting")
            submission = self.submit(job, payload)
            run = _Run(url, submission.key, started)
            if not submission.finished:
                self._follow(ws, run, submission, job, progress)
        finally:
            _close_quietly(ws)
        result = self.build_result(submission, run.outputs, job, payload)
        report_progress(progress, job, 100, "completed", "Completed")
        return result

    def _remaining(self, started: float) -> float:
        return self.deadline - (self._clock() - started)

    def _open(self, url: str, started: float) -> WebSocketLike:
        context = _Run(url, "", started).context(0.0)
        timeout = max(0.001, min(self.client.timeouts.connect, self._remaining(started)))
        try:
            return self.connect(url, timeout)
        except Exception as exc:
            raise socket_error(exc, "while connecting", context) from exc

    def _follow(
        self,
        ws: WebSocketLike,
        run: _Run,
        submission: Submission,
        job: JobData,
        progress: ProgressCallback,
    ) -> None:
        while True:
            step = self._next_step(ws, run, submission)
            if step.output is not None:
                run.outputs.append(step.output)
            if step.kind == "done":
                return
            if step.kind == "failed":
                error = step.error or CLOSED.error("The provider reported a failure")
                raise error.with_context(run.context(self._clock() - run.started))
            if step.kind == "progress":
                if step.progress is not None:
                    run.shown = max(run.shown, 10.0 + 0.85 * max(0.0, min(100.0, step.progress)))
                meta = {"job_key": run.key, "frames": run.frames}
                text = step.message or "Running"
                report_progress(progress, job, round(run.shown, 1), "running", text, meta)

    def _next_step(self, ws: WebSocketLike, run: _Run, submission: Submission) -> Step:
        data = self._receive(ws, run)
        run.frames += 1
        try:
            frame = decode_frame(data)
        except ConnectorError as exc:
            raise exc.with_context(run.context(self._clock() - run.started)) from None
        if isinstance(frame, bytes):
            run.binary += 1
            return self.read_binary(frame, submission)
        run.last_type = str(frame.get("type"))
        key = self.message_key(frame)
        if key is not None and key != run.key:
            run.foreign += 1  # another job's event on a shared client id: not ours to read
            return Step()
        return self.read_message(frame, submission)

    def _receive(self, ws: WebSocketLike, run: _Run) -> str | bytes:
        remaining = self._remaining(run.started)
        context = run.context(self.deadline - remaining)
        if remaining <= 0:
            raise _DEADLINE.error(
                f"Job still running after its {self.deadline:g}s deadline", context=context
            )
        try:
            ws.settimeout(remaining)
            data = ws.recv()
        except websocket.WebSocketTimeoutException:
            raise _DEADLINE.error(
                f"No end of the job within its {self.deadline:g}s deadline", context=context
            ) from None
        except Exception as exc:
            raise socket_error(exc, "mid-job", context) from exc
        if data == "":  # websocket-client's answer to a close frame
            raise CLOSED.error("WebSocket closed by the provider mid-job", context=context)
        return data


def _close_quietly(ws: WebSocketLike) -> None:
    try:
        ws.close()
    except Exception:  # the job's outcome is decided; a failed close changes nothing
        log.debug("websocket close failed", exc_info=True)
