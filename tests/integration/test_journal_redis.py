"""The job journal's Redis store on a real redis-server: counts, expiry, one command per count."""

from __future__ import annotations

import pytest
import redis

from emp_tasks.journal import RedisStore
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration


def test_a_paid_call_is_counted_in_one_command_and_expires_with_the_result(
    own_redis: RedisServer,
) -> None:
    client = redis.Redis(port=own_redis.port, db=1)
    store = RedisStore(client, ttl_seconds=600)
    assert store.incr("job-1", "provider_calls") == 1  # loads the script
    before = client.info("commandstats")
    assert store.incr("job-1", "provider_calls") == 2
    after = client.info("commandstats")
    sent = {
        name: row["calls"] - before.get(name, {}).get("calls", 0)
        for name, row in after.items()
        if row["calls"] != before.get(name, {}).get("calls") and name != "cmdstat_info"
    }
    assert sent == {"cmdstat_evalsha": 1, "cmdstat_incr": 1, "cmdstat_expire": 1}
    assert 590 < client.ttl(RedisStore.key("job-1", "provider_calls")) <= 600
    assert store.get("job-1", "provider_calls") == "2"


def test_the_count_survives_a_redis_that_lost_the_script(own_redis: RedisServer) -> None:
    client = redis.Redis(port=own_redis.port, db=1)
    store = RedisStore(client, ttl_seconds=60)
    assert store.incr("job-2", "provider_calls") == 1
    client.script_flush()
    assert store.incr("job-2", "provider_calls") == 2
