"""Stand-ins for a bound Celery task, its timers and a connector: runtime glue without a broker.

`FakeTask` has what `run_job` and `JobEvents` touch - `.request`, `.retry`, `.update_state`,
`app.emp_event_sender` and `app.events.default_dispatcher` - and records every call.
`FakeTimers` is a `TimerFactory` that starts nothing: a test fires a timer when it wants, so no
test sleeps. The connectors live in an importable module because the service mapping names
connectors by `module:Class`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

from celery.exceptions import Retry
from pydantic import BaseModel, ConfigDict

from connectors.base import BaseConnector
from connectors.errors import ConnectorError
from connectors.models import JobData, JobResult, ProgressCallback

__all__ = [
    "BrokenConnector",
    "FakeTask",
    "FakeTimer",
    "FakeTimers",
    "RetryCall",
    "ScriptedConnector",
    "ScriptedPayload",
    "SentEvent",
]


@dataclass(frozen=True)
class SentEvent:
    """One event a task sent, without Celery's `task-` prefix."""

    name: str
    uuid: str
    fields: dict[str, Any]
    hostname: str | None


@dataclass(frozen=True)
class RetryCall:
    """The arguments of one `task.retry(...)` call."""

    exc: BaseException | None
    countdown: float | None
    max_retries: int | None


class FakeTask:
    """A bound task as `run_job` sees it: its request, retry, update_state and event dispatcher.

    `retry` raises Celery's `Retry` as the real one does (`throw=True`); with `retry_raises=False`
    it returns it instead, as `throw=False` would.
    """

    def __init__(
        self,
        job_id: str = "job-1",
        retries: int = 0,
        hostname: str = "worker@test",
        retry_raises: bool = True,
    ) -> None:
        self.request = SimpleNamespace(id=job_id, retries=retries, hostname=hostname)
        self.retry_raises = retry_raises
        self.sent: list[SentEvent] = []
        self.states: list[tuple[str, str, dict[str, Any]]] = []
        self.retries: list[RetryCall] = []
        # States written and events sent, in the order they happened: (state or event, fields).
        self.timeline: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()  # JobEvents may send from a timer thread
        self.app = SimpleNamespace(
            events=SimpleNamespace(default_dispatcher=self.dispatcher),
            emp_event_sender=SimpleNamespace(send=self._send),
            conf=SimpleNamespace(broker_url="memory://"),
        )

    def _send(self, hostname: str | None, type: str, uuid: str, **fields: Any) -> None:
        with self._lock:
            event = SentEvent(type.removeprefix("task-"), uuid, fields, hostname)
            self.sent.append(event)
            self.timeline.append((event.name, fields))

    @contextmanager
    def dispatcher(self, hostname: str | None = None) -> Iterator[Any]:
        yield SimpleNamespace(
            send=lambda type, uuid, **fields: self._send(hostname, type, uuid, **fields)
        )

    def update_state(self, task_id: str, state: str, meta: dict[str, Any]) -> None:
        with self._lock:
            self.states.append((task_id, state, meta))
            self.timeline.append((state, meta))

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **_: Any,
    ) -> Retry:
        self.retries.append(RetryCall(exc, countdown, max_retries))
        retry = Retry(exc=exc, when=countdown)
        if self.retry_raises:
            raise retry
        return retry

    @property
    def event_names(self) -> list[str]:
        return [event.name for event in self.sent]

    def event(self, name: str) -> dict[str, Any]:
        """The fields of the one event called `name`."""
        found = [event for event in self.sent if event.name == name]
        assert len(found) == 1, f"{len(found)} {name} events in {self.event_names}"
        return found[0].fields


@dataclass
class FakeTimer:
    """A timer that never fires by itself."""

    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Fire as a real timer would: not at all once cancelled."""
        if not self.cancelled:
            self.callback()

    def fire_late(self) -> None:
        """Fire though cancelled: a real timer thread can be past its wait when cancel() comes."""
        self.callback()


@dataclass
class FakeTimers:
    """A `TimerFactory` that records the timers it was asked to start."""

    started: list[FakeTimer] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.started.append(timer)
        return timer


class ScriptedPayload(BaseModel):
    """What a scripted job should do: succeed, or fail in one of a few classified ways."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    fail: Literal["service_error", "auth_error", "bug"] | None = None
    retry_after: float | None = None


class ScriptedConnector(BaseConnector[ScriptedPayload]):
    """Counts its provider calls and fails as its payload asks."""

    service_type: ClassVar[str] = "scripted"
    payload_model = ScriptedPayload

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def process_job_impl(
        self, job: JobData, payload: ScriptedPayload, progress: ProgressCallback
    ) -> JobResult:
        self.calls += 1  # a payload that reaches here was "sent to the provider"
        if payload.fail == "bug":
            raise KeyError("choices")  # a bug of ours, not a verdict of the provider
        if payload.fail is not None:
            raise ConnectorError(
                f"scripted {payload.fail}",
                failure_type=payload.fail,
                failure_reason={
                    "service_error": "service_unavailable",
                    "auth_error": "invalid_api_key",
                }[payload.fail],
                retry_after=payload.retry_after,
            )
        return JobResult(
            success=True, data={"echo": payload.prompt, "job_metadata": dict(job.metadata)}
        )


class BrokenConnector(ScriptedConnector):
    """A connector that cannot even be built in this worker (a setup failure, not a job's)."""

    service_type: ClassVar[str] = "broken"

    def __init__(self, **kwargs: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'session'")
