"""Progress of a blocking AUTOMATIC1111 call, read from `/sdapi/v1/progress` while it runs.

`txt2img` answers only when the images are done, so the job's progress comes from a second
connection: `ProgressPoller` is a context manager around the blocking call that polls on its own
`HttpClient` (its own session, in its own thread) and reports what it reads. It stops, and its
thread is joined, when the `with` block ends, so it never outlives the job; after that it reports
nothing. A poll that fails is skipped: progress is a courtesy, never the job's outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from connectors.errors import ConnectorError
from connectors.protocol.client import HttpClient, HttpRequest

__all__ = [
    "PROGRESS_END",
    "PROGRESS_START",
    "ProgressPoller",
    "ProgressReport",
    "read_progress",
]

log = logging.getLogger(__name__)
# The job's progress runs from PROGRESS_START (submitted) to PROGRESS_END (images back, to save).
PROGRESS_START = 10.0
PROGRESS_END = 90.0
# A poll that takes longer than this says nothing useful about a run that is still going.
POLL_READ_TIMEOUT = 5.0
# Told a percentage and a message for each poll that saw the job move forward.
ProgressReport = Callable[[float, str], None]


def read_progress(body: Any) -> tuple[float, str] | None:
    """(job percentage, message) from a `/progress` reply, or None when it shows no work yet."""
    if not isinstance(body, Mapping):
        return None
    fraction = _number(body.get("progress"))
    raw_state = body.get("state")
    state: Mapping[str, Any] = raw_state if isinstance(raw_state, Mapping) else {}
    if fraction is None or fraction <= 0 or not state.get("job_count"):
        return None  # idle (job_count 0) or not started: nothing to say
    share = min(1.0, fraction)
    value = PROGRESS_START + (PROGRESS_END - PROGRESS_START) * share
    step, steps = state.get("sampling_step"), state.get("sampling_steps")
    message = f"Generating: {share:.0%}"
    if isinstance(step, int) and isinstance(steps, int) and steps > 0:
        message += f" (step {step}/{steps})"
    eta = _number(body.get("eta_relative"))
    if eta is not None and eta > 0:
        message += f", about {eta:.0f}s left"
    return round(value, 1), message


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


class ProgressPoller:
    """Polls `/sdapi/v1/progress` in a thread of its own while a blocking call runs."""

    def __init__(self, client: HttpClient, interval: float, report: ProgressReport) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval!r}")
        self.client = client
        self.interval = interval
        self.report = report
        self.polls = 0  # how many polls were answered (for tests and logs)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while reporting, so stop() cannot overtake a report
        self._best = 0.0
        self._thread = threading.Thread(target=self._run, name="a1111-progress", daemon=True)

    def __enter__(self) -> ProgressPoller:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop polling and wait for the thread (at most one poll's read timeout)."""
        with self._lock:
            self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.client.session.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            found = read_progress(self._poll())
            with self._lock:
                if self._stop.is_set():
                    return
                if found is not None and found[0] > self._best:
                    self._best = found[0]  # never backwards: a late poll may see an older step
                    self._report(*found)

    def _poll(self) -> Any:
        request = HttpRequest(
            "GET",
            self.client.url("sdapi/v1/progress"),
            params={"skip_current_image": "true"},
            read_timeout=min(POLL_READ_TIMEOUT, max(1.0, 2 * self.interval)),
        )
        try:
            body = self.client.json_body(self.client.send(request))
        except ConnectorError as exc:
            log.debug("a1111 progress poll failed: %s", exc)
            return None
        self.polls += 1
        return body

    def _report(self, value: float, message: str) -> None:
        try:
            self.report(value, message)
        except Exception:  # a lost progress report must not end the poller, nor the job
            log.exception("a1111 progress report failed")
