"""results_redis.same_database: which clients reach the same keys."""

from __future__ import annotations

import pytest
import redis

from emp_tasks.results_redis import same_database

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
