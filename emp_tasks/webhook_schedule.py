"""When a webhook delivery is tried again: one pure decision per attempt.

- 2xx: delivered.
- 410 Gone: the receiver asks for no more; deliveries to that URL stop.
- Other 4xx except 408 and 429: the request itself is wrong; not retried.
- 408, 429, 5xx, 3xx (redirects are not followed), a timeout or a refused connection: retried
  after the schedule's wait for that attempt (EMP_WEBHOOK_RETRY_DELAYS: immediately, then 5 s,
  5 min, 30 min, 2 h, 5 h, 10 h, ...; the last wait repeats), or after the receiver's
  `Retry-After` when it asks for longer, until EMP_WEBHOOK_MAX_ATTEMPTS attempts are spent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connectors.classify import parse_retry_after

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "Clock",
    "DeliveryDecision",
    "Outcome",
    "decide",
    "scheduled_delay",
]

Outcome = Literal["delivered", "retrying", "failed", "gone"]
Clock = Callable[[], datetime]
# A receiver's Retry-After is honoured up to a day: beyond that the delivery would outlive
# the job's record, where its attempts are kept.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class DeliveryDecision:
    """What follows one attempt: its outcome and, when retrying, the wait in seconds."""

    outcome: Outcome
    countdown: float | None = None
    reason: str = ""


def scheduled_delay(attempt: int, delays: Sequence[float]) -> float:
    """The wait after failed attempt `attempt` (1-based): the schedule's, the last one repeating."""
    if not delays:
        return 0.0
    return float(delays[min(attempt, len(delays)) - 1])


def _final(status: int | None) -> DeliveryDecision | None:
    if status is None:
        return None
    if 200 <= status < 300:
        return DeliveryDecision("delivered")
    if status == 410:
        return DeliveryDecision("gone", reason="410 Gone: no more deliveries to this URL")
    if 400 <= status < 500 and status not in (408, 429):
        return DeliveryDecision("failed", reason=f"HTTP {status} is not retried")
    return None


def decide(
    status: int | None,
    attempt: int,
    *,
    delays: Sequence[float],
    max_attempts: int,
    headers: Mapping[str, str] | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> DeliveryDecision:
    """The decision after attempt `attempt` (1-based) ended with `status` (None: no answer)."""
    final = _final(status)
    if final is not None:
        return final
    if attempt >= max_attempts:
        return DeliveryDecision(
            "failed", reason=f"gave up after {attempt} attempts (EMP_WEBHOOK_MAX_ATTEMPTS)"
        )
    wait = scheduled_delay(attempt, delays)
    asked = parse_retry_after(headers or {}, clock())
    if asked is not None:
        wait = max(wait, min(asked, MAX_RETRY_AFTER_SECONDS))
    return DeliveryDecision("retrying", countdown=wait, reason=f"retry {attempt + 1} in {wait:g} s")
