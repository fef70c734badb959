"""results_redis: the result backend's Redis client, found in one place, and which clients meet."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from emp_tasks.results_redis import RESULTS_TTL_DEFAULT, results_redis, results_ttl, same_database


class RedisBackend:
    """Named like Celery's, which is what is checked."""

    def __init__(self, expires: Any = None) -> None:
        self.client = object()
        self.expires = expires


class DatabaseBackend:
    """The embedded default's SQL backend: no Redis client."""

    expires = 3600


def test_a_redis_result_backend_gives_its_client_and_expiry() -> None:
    backend = RedisBackend(expires=600)
    assert results_redis(backend) is backend.client
    assert results_ttl(backend) == 600


def test_other_backends_have_no_redis() -> None:
    assert results_redis(DatabaseBackend()) is None
    assert results_redis(None) is None


def test_a_backend_without_an_expiry_keeps_a_day() -> None:
    assert results_ttl(RedisBackend()) == RESULTS_TTL_DEFAULT == 86400


BASE = redis.Redis(host="127.0.0.1", port=6379, db=1)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (BASE, True),
        (redis.Redis(host="127.0.0.1", port=6379, db=1), True),
        (redis.Redis(host="127.0.0.1", port=6379, db=2), False),
        (redis.Redis(host="127.0.0.1", port=6380, db=1), False),
        (redis.Redis(host="127.0.0.2", port=6379, db=1), False),
        (redis.Redis(unix_socket_path="/tmp/redis.sock", db=1), False),
        (object(), False),
    ],
    ids=[
        "itself",
        "another client",
        "another db",
        "another port",
        "another host",
        "a socket",
        "no client",
    ],
)
def test_clients_reach_the_same_database_only_at_the_same_place(other: object, same: bool) -> None:
    assert same_database(BASE, other) is same
