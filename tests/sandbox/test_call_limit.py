"""The emulators' own rate limit: N calls a second, then 429 with a Retry-After."""

from __future__ import annotations

import pytest
import requests

from emp_tasks.sandbox.faults import CallLimit
from emp_tasks.sandbox.glif import GlifEmulator

TOKEN = "limit-token"


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_rate_calls_then_asks_to_wait() -> None:
    clock = Clock()
    limit = CallLimit(10, clock)
    assert [limit.take() for _ in range(11)] == [0] * 10 + [1]


def test_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limit = CallLimit(10, clock)
    for _ in range(10):
        limit.take()
    clock.now += 0.1
    assert (limit.take(), limit.take()) == (0, 1)


def test_a_slow_limit_asks_for_a_longer_wait() -> None:
    limit = CallLimit(0.2, Clock())  # one call per 5 s
    assert (limit.take(), limit.take()) == (0, 5)


@pytest.mark.parametrize("rate", [0, -1])
def test_a_limit_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="> 0"):
        CallLimit(rate)


def test_the_emulator_answers_429_with_retry_after_beyond_its_limit() -> None:
    with GlifEmulator(tokens=(TOKEN,), rate_limit=2) as emulator:
        body = {"id": "sandbox-text", "inputs": ["x"]}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        replies = [requests.post(emulator.url, json=body, headers=headers) for _ in range(3)]
        assert [r.status_code for r in replies] == [200, 200, 429]
        assert replies[2].headers["Retry-After"] == "1"
        assert [c.extra.get("fault") for c in emulator.calls()] == [None, None, "rate_limited"]
        emulator.set_rate_limit(0)
        assert requests.post(emulator.url, json=body, headers=headers).status_code == 200
