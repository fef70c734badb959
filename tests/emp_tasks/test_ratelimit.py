"""The GCRA limiter: rate parsing, the pure step, and the in-process limiter on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from connectors.errors import ConnectorError
from emp_tasks.config import ServiceSpec
from emp_tasks.ratelimit import (
    RESERVATION_GRACE,
    MemoryLimiter,
    Rate,
    Slot,
    gcra_step,
    parse_rate,
)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", Rate(10, 1)),
        ("600/m", Rate(600, 60)),
        ("5/h", Rate(5, 3600)),
        (" 2.5 / sec ", Rate(2.5, 1)),
        ("30/minute", Rate(30, 60)),
        ("", None),
        ("0", None),
        ("0/s", None),
        (None, None),
    ],
)
def test_a_rate_is_parsed_or_means_no_limit(text: str | None, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10", "10/d", "ten/s", "-1/s", "10 per second"])
def test_a_malformed_rate_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConnectorError) as raised:
        parse_rate(text)
    assert raised.value.failure_type.value == "system_error"
    assert "10/s" in raised.value.message


def test_the_mapping_refuses_a_malformed_rate_limit() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        ServiceSpec(name="x", connector="m:C", queue="x", rate_limit="fast")


def test_an_interval_is_the_period_over_the_count() -> None:
    assert Rate(10, 1).interval == pytest.approx(0.1)
    assert Rate(600, 60).interval == pytest.approx(0.1)


TOO_LATE = 9.5 - RESERVATION_GRACE  # a slot reserved for this long before now (10.0)
# (tat, now, interval, horizon, hold, reserved) -> (slot, new tat)
STEPS = [
    # first call: now, the next one interval later
    ((None, 10.0, 0.1, 5.0, 0.0, 0.0), (Slot(True, 0.0, "rate_limit", 10.0), 10.1)),
    # a TAT in the past counts from now (no burst saved up)
    ((3.0, 10.0, 0.1, 5.0, 0.0, 0.0), (Slot(True, 0.0, "rate_limit", 10.0), 10.1)),
    # a TAT ahead: the slot is reserved there
    ((12.0, 10.0, 0.5, 5.0, 0.0, 0.0), (Slot(True, 2.0, "rate_limit", 12.0), 12.5)),
    # beyond the horizon: not granted, ask again when it is within
    ((17.0, 10.0, 0.5, 5.0, 0.0, 0.0), (Slot(False, 2.0, "rate_limit"), None)),
    # a hold defers every call, reserved or not
    ((None, 10.0, 0.1, 5.0, 13.0, 0.0), (Slot(False, 3.0, "hold"), None)),
    ((None, 10.0, 0.1, 5.0, 13.0, 11.0), (Slot(False, 3.0, "hold"), None)),
    # no limit: only the hold matters
    ((None, 10.0, 0.0, 5.0, 0.0, 0.0), (Slot(True, 0.0, "none", 10.0), None)),
    # a reservation is kept: early (sleep the rest) or a little late
    ((30.0, 10.0, 0.1, 5.0, 0.0, 10.4), (Slot(True, 0.4, "reserved", 10.4), None)),
    ((30.0, 10.0, 0.1, 5.0, 0.0, 9.5), (Slot(True, 0.0, "reserved", 9.5), None)),
    # too late: a new slot is taken
    ((10.0, 10.0, 0.1, 5.0, 0.0, TOO_LATE), (Slot(True, 0.0, "rate_limit", 10.0), 10.1)),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), STEPS)
def test_gcra_step(
    given: tuple[float | None, float, float, float, float, float],
    expected: tuple[Slot, float | None],
) -> None:
    slot, tat = gcra_step(*given)
    want_slot, want_tat = expected
    assert slot.granted == want_slot.granted
    assert slot.why == want_slot.why
    assert slot.delay == pytest.approx(want_slot.delay)
    assert slot.at == pytest.approx(want_slot.at)
    assert tat == (None if want_tat is None else pytest.approx(want_tat))


def test_callers_at_one_instant_get_slots_one_interval_apart() -> None:
    limiter = MemoryLimiter(Clock())
    delays = [limiter.take("glif:k", Rate(10, 1), horizon=60).delay for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_over_any_stretch_no_more_than_the_rate_is_granted() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    sends = []
    for _ in range(200):  # a crowd asking every 10 ms, each sending at its slot
        slot = limiter.take("glif:k", Rate(10, 1), horizon=1.0)
        if slot.granted:
            sends.append(clock.now + slot.delay)
        clock.now += 0.01
    assert len(sends) == 30  # 2 s of asking + the 1 s horizon, at 10/s
    assert all(b - a == pytest.approx(0.1) for a, b in itertools.pairwise(sends))


def test_keys_are_limited_apart() -> None:
    limiter = MemoryLimiter(Clock())
    assert limiter.take("glif:a", Rate(1, 1), 60).delay == 0.0
    assert limiter.take("glif:b", Rate(1, 1), 60).delay == 0.0
    assert limiter.take("glif:a", Rate(1, 1), 60).delay == pytest.approx(1.0)


def test_a_hold_defers_until_it_ends_then_slots_resume_after_it() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limiter.hold("glif:k", 2.0)
    held = limiter.take("glif:k", Rate(10, 1), 60)
    assert (held.granted, held.why) == (False, "hold")
    assert held.delay == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.take("glif:k", Rate(10, 1), 60).delay == pytest.approx(0.0)


def test_a_shorter_hold_does_not_shorten_a_longer_one() -> None:
    limiter = MemoryLimiter(Clock())
    limiter.hold("glif:k", 5.0)
    limiter.hold("glif:k", 1.0)
    assert limiter.take("glif:k", None, 60).delay == pytest.approx(5.0)


def test_without_a_rate_every_call_goes_at_once() -> None:
    limiter = MemoryLimiter(Clock())
    assert [limiter.take("x:k", None, 60).delay for _ in range(3)] == [0.0, 0.0, 0.0]
