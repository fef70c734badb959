"""EventSender on a real Redis: events from many threads arrive, and again after a restart."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import redis
from celery import Celery

from emp_tasks.event_sender import EventSender
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration


def _received(port: int, expected: int, send: Any) -> list[dict[str, Any]]:
    """The emp-test events published on the broker's event channel while `send()` runs."""
    listener = redis.Redis(port=port).pubsub()
    listener.psubscribe("/0.celeryev/*")
    assert listener.get_message(timeout=5) is not None  # subscribed
    send()
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(got) < expected and time.monotonic() < deadline:
        message = listener.get_message(timeout=1)
        if message and message["type"] == "pmessage":
            event = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
            if event["type"] == "task-emp-test":
                got.append(event)
    listener.close()
    return got


def test_events_from_many_threads_arrive_through_one_dispatcher(own_redis: RedisServer) -> None:
    app = Celery("emp_events_test", broker=f"redis://127.0.0.1:{own_redis.port}/0")
    sender = EventSender(app)

    def send() -> None:
        threads = [
            threading.Thread(
                target=lambda n=n: [
                    sender.send("w@test", "task-emp-test", uuid=f"{n}-{i}") for i in range(10)
                ]
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    got = _received(own_redis.port, 40, send)
    assert sorted(event["uuid"] for event in got) == sorted(
        f"{n}-{i}" for n in range(4) for i in range(10)
    )
    assert len(sender._dispatchers) == 1
    sender.close()


def test_events_arrive_again_after_redis_restarts(own_redis: RedisServer) -> None:
    app = Celery("emp_events_test", broker=f"redis://127.0.0.1:{own_redis.port}/0")
    sender = EventSender(app)
    sender.send("w@test", "task-emp-test", uuid="before")
    own_redis.stop()
    with pytest.raises(Exception):  # noqa: B017  (whatever the transport raises)
        sender.send("w@test", "task-emp-test", uuid="while-down")
    own_redis.start()
    got = _received(own_redis.port, 1, lambda: sender.send("w@test", "task-emp-test", uuid="after"))
    assert [event["uuid"] for event in got] == ["after"]
    sender.close()
