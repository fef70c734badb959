"""The call gate: what an `HttpClient` asks before each paid call and tells after it.

The runtime (emp_tasks) injects a gate that holds a provider's rate limit, its Retry-After
holds and its circuit breaker; the library only defines the shape, so it stays free of Celery
and Redis. A gate that says "not now" raises a *deferral*: a retryable rate_limit
ConnectorError whose context names why and whose `retry_after` says for how long. The runtime
re-queues such a job as a wait, which is not a retry and not a paid call.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.journal import JobJournal

__all__ = [
    "DEFERRED",
    "SLOT_AT",
    "CallGate",
    "deferral",
    "deferred_error",
    "key_id",
]

# The context key that marks an error as a deferral (its value: why the call was not sent).
DEFERRED = "deferred"
SLOT_AT = "slot_at"
_WAIT = Classification(FailureType.RATE_LIMIT, FailureReason.REQUESTS_PER_MINUTE, retryable=True)


class CallGate(Protocol):
    """Admits a provider's paid calls (or defers them) and learns how each one went."""

    def admit(self, service: str, key: str | None, journal: JobJournal | None = None) -> bool:
        """Return when the call may be sent now; raise a deferral (`deferred_error`) if not.

        True when the gate has counted the call in the job's `journal` itself (in the same
        step as its own check); otherwise the client counts it.
        """
        ...

    def settle(self, service: str, key: str | None, error: ConnectorError | None) -> None:
        """Told how an admitted call went: None for an answer, else its classified error."""
        ...


def deferred_error(
    service: str, why: str, wait: float, slot_at: float | None = None
) -> ConnectorError:
    """The error a gate raises for a call it will not send for `wait` seconds.

    `slot_at` names a slot the gate reserved for this job, to be presented when it is back.
    """
    context: dict[str, object] = {DEFERRED: why}
    if slot_at is not None:
        context[SLOT_AT] = slot_at
    return _WAIT.error(
        f"{service}: call deferred for {wait:.2f}s ({why})",
        retry_after=max(0.0, wait),
        service=service,
        context=context,
    )


def deferral(error: BaseException) -> str | None:
    """Why `error` is a deferral (`rate_limit`, `hold`, `circuit_open`, ...), or None."""
    if not isinstance(error, ConnectorError):
        return None
    why = error.context.get(DEFERRED)
    return why if isinstance(why, str) else None


def key_id(secret: str) -> str:
    """A short, stable, one-way name for an API key: limiter keys never hold the key itself."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]
