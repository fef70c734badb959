"""The pure parts of the atomic claim: command layout, the idle wait, the server check."""

from __future__ import annotations

import pytest

from emp_tasks.redis_claim import CLAIM, MULTI_KEY_WAIT, claim_args, peek_args, supports_blmove


def test_claim_passes_both_unacked_keys_the_queues_one_flag_per_queue_and_the_most() -> None:
    args = claim_args("unacked", "unacked_index", ["glif", "webhooks"], [True, False], 12.5, 4)
    assert args == [
        "EVAL",
        CLAIM,
        4,
        "unacked",
        "unacked_index",
        "glif",
        "webhooks",
        "12.5",
        "1",
        "0",
        "4",
    ]


def test_an_idle_wait_on_one_queue_blocks_for_the_whole_timeout_and_takes_nothing() -> None:
    assert peek_args(["glif"], 1) == ["BLMOVE", "glif", "glif", "RIGHT", "RIGHT", 1]


@pytest.mark.parametrize("timeout", [0, 1, 5])
def test_an_idle_wait_on_several_queues_looks_again_soon(timeout: float) -> None:
    # It can block on the first list only, so the others are looked at every MULTI_KEY_WAIT.
    assert peek_args(["glif", "webhooks"], timeout)[-1] == MULTI_KEY_WAIT


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("7.0.15", True),
        ("6.2.0", True),
        ("6.0.9", False),
        ("5.0.7", False),
        ("", True),
        ("x", True),
    ],
)
def test_blmove_is_used_from_redis_6_2(version: str, supported: bool) -> None:
    assert supports_blmove(version) is supported
