"""Delivery counting: the decision, the key, the error, and the Redis counter's commands."""

from __future__ import annotations

from typing import Any

import pytest

from emp_tasks.deliveries import (
    RedisDeliveryCounter,
    counter_for,
    delivery_key,
    is_poison,
    poison_error,
)


@pytest.mark.parametrize(
    ("deliveries", "limit", "poison"),
    [(1, 3, False), (3, 3, False), (4, 3, True), (2, 1, True), (1, 1, False)],
)
def test_a_delivery_past_the_limit_is_poison(deliveries: int, limit: int, poison: bool) -> None:
    assert is_poison(deliveries, limit) is poison


def test_each_attempt_has_its_own_key() -> None:
    assert delivery_key("job-1", 0) != delivery_key("job-1", 1)
    assert delivery_key("job-1", 2) == "emp:deliveries:job-1:2"


def test_the_poison_error_is_a_worker_lost_system_error_that_is_not_retried() -> None:
    error = poison_error("job-9", 4, 3, "mock")
    assert (error.failure_type.value, error.failure_reason.value) == ("system_error", "worker_lost")
    assert error.retryable is False
    assert "delivered 4 times" in error.message
    assert "EMP_DELIVERY_LIMIT=3" in error.message
    assert error.context["deliveries"] == 4


class FakeRedis:
    """Just the commands the counter sends, kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.ttls: dict[str, int] = {}

    def pipeline(self) -> FakeRedis:
        self._queued: list[Any] = []
        return self

    def incr(self, key: str) -> FakeRedis:
        self._queued.append(("incr", key))
        return self

    def expire(self, key: str, ttl: int) -> FakeRedis:
        self._queued.append(("expire", key, ttl))
        return self

    def execute(self) -> list[Any]:
        out: list[Any] = []
        for command in self._queued:
            if command[0] == "incr":
                self.values[command[1]] = self.values.get(command[1], 0) + 1
                out.append(self.values[command[1]])
            else:
                self.ttls[command[1]] = command[2]
                out.append(True)
        return out

    def decr(self, key: str) -> int:
        self.values[key] = self.values.get(key, 0) - 1
        return self.values[key]


def test_the_redis_counter_counts_expires_and_gives_back() -> None:
    redis = FakeRedis()
    counter = RedisDeliveryCounter(redis, ttl_seconds=600)
    assert [counter.count("j", 0) for _ in range(3)] == [1, 2, 3]
    assert counter.count("j", 1) == 1  # a retry starts its own count
    assert redis.ttls[delivery_key("j", 0)] == 600
    counter.give_back("j", 0)
    assert counter.count("j", 0) == 3


def test_nothing_is_counted_without_a_redis_result_backend() -> None:
    class App:
        backend = object()

    assert counter_for(App()) is None
