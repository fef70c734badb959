"""What a job keeps across its attempts and deliveries: provider answers and paid calls.

A provider call costs money; what follows it (parsing, downloading, saving to the bucket) can
still fail and be retried. So a mode writes the provider's answer - or the provider's own job
id - to the job's journal as soon as it has one, and a later attempt of the same job reads it
back instead of paying for the call again. The journal also counts the job's paid calls, which
the job record shows as `provider_calls`.

The connectors package holds only the protocol and an in-memory journal; the runtime supplies
one kept in the result backend (`emp_tasks.journal`). A journal that cannot be read or written
is a lost optimisation, never a failed job: implementations log and carry on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

__all__ = ["ANSWER", "PROVIDER_JOB", "JobJournal", "MemoryJournal", "NoJournal", "count_paid_call"]

log = logging.getLogger(__name__)

# Entry names the modes use.
ANSWER = "answer"  # the provider's reply to a one-shot call (HTTP mode)
PROVIDER_JOB = "provider_job"  # the provider's id for a submitted job (polling mode)


class JobJournal(Protocol):
    """One job's checkpoints and paid-call count, kept across its attempts."""

    def load(self, name: str) -> dict[str, Any] | None:
        """The entry saved under `name`, or None."""
        ...

    def save(self, name: str, value: dict[str, Any]) -> None:
        """Keep `value` (JSON) under `name` for the job's later attempts."""
        ...

    def drop(self, name: str) -> None:
        """Forget `name`: the answer it holds must not be used again."""
        ...

    def paid_call(self) -> None:
        """Record that the job is about to make one paid provider call."""
        ...

    def provider_calls(self) -> int:
        """How many paid calls the job has made, over all its attempts."""
        ...


class NoJournal:
    """A journal that keeps nothing: every attempt calls the provider afresh."""

    def load(self, name: str) -> dict[str, Any] | None:
        return None

    def save(self, name: str, value: dict[str, Any]) -> None:
        pass

    def drop(self, name: str) -> None:
        pass

    def paid_call(self) -> None:
        pass

    def provider_calls(self) -> int:
        return 0


class MemoryJournal:
    """A journal in memory: for tests, and for library users who re-run a job in-process."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def load(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.entries.get(name)
            return dict(entry) if entry is not None else None

    def save(self, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.entries[name] = dict(value)

    def drop(self, name: str) -> None:
        with self._lock:
            self.entries.pop(name, None)

    def paid_call(self) -> None:
        with self._lock:
            self.calls += 1

    def provider_calls(self) -> int:
        with self._lock:
            return self.calls


def count_paid_call(journal: JobJournal | None) -> None:
    """Count one paid call in `journal`; a count that fails is logged, never raised.

    A call about to be sent is sent whatever its count does: a lost count must not keep the
    call, or the settling of its outcome, from happening.
    """
    if journal is None:
        return
    try:
        journal.paid_call()
    except Exception:
        log.exception("a paid call was not counted")
