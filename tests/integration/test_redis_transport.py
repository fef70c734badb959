"""The Redis transport: kombu's own, with one redis-py client per channel, on a real Redis."""

from __future__ import annotations

import pytest
from kombu import Connection

from emp_tasks.redis_transport import Channel, Transport
from tests.conftest import REDIS_URL
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration

URL = REDIS_URL.replace("/0", "/5")


def test_the_apps_redis_broker_and_any_redis_url_get_this_transport() -> None:
    from emp_tasks.celery_app import app

    with app.connection_for_write() as conn:  # reads celeryconfig, which installs it
        assert isinstance(conn.transport, Transport)
    with Connection(URL) as conn:
        assert isinstance(conn.transport, Transport)


def test_a_channel_reuses_one_client_until_its_pools_are_dropped(
    redis_server: RedisServer,
) -> None:
    with Connection(URL, transport=Transport) as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        first = channel._create_client()
        assert channel._create_client() is first
        channel._disconnect_pools()  # what kombu does after a fork
        again = channel._create_client()
        assert again is not first
        assert again.connection_pool is channel.pool


def test_messages_still_go_through_queues_and_back(redis_server: RedisServer) -> None:
    with Connection(URL, transport=Transport) as conn:
        queue = conn.SimpleQueue("emp-transport-test")
        for n in range(20):
            queue.put({"n": n})
        got = []
        for _ in range(20):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        queue.close()
    assert got == list(range(20))
