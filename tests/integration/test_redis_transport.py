"""The Redis transport: kombu's, with atomic claims and one client per channel, on a real Redis."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue
from kombu.message import Message

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


def _connection(**options: object) -> Connection:
    return Connection(URL, transport=Transport, transport_options=dict(options))


def _raw() -> redis.Redis:
    return redis.Redis.from_url(URL)


def _queue(name: str, conn: Connection) -> Queue:
    queue = Queue(f"{name}-{uuid.uuid4().hex[:8]}", Exchange("emp-claim-test"), routing_key=name)
    return queue(conn.default_channel)


def test_a_claimed_message_is_recorded_as_unacked_in_kombus_own_format(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        queue = _queue("claim", conn)
        queue.declare()
        Producer(conn.default_channel).publish(
            {"n": 1}, exchange=queue.exchange, routing_key="claim"
        )
        message = queue.get()  # basic_get: the claim script
        assert message is not None
        assert message.payload == {"n": 1}
        raw = _raw()
        stored, exchange, routing_key = json.loads(raw.hget("unacked", message.delivery_tag))
        assert stored["properties"]["delivery_tag"] == message.delivery_tag
        assert (exchange, routing_key) == ("emp-claim-test", "claim")
        assert raw.zscore("unacked_index", message.delivery_tag) is not None
        message.ack()
        assert raw.hget("unacked", message.delivery_tag) is None
        assert raw.zscore("unacked_index", message.delivery_tag) is None


CLAIM_AND_DIE = """
import os, sys
from kombu import Connection, Exchange, Queue
from emp_tasks.redis_transport import Transport
with Connection(sys.argv[1], transport=Transport) as conn:
    queue = Queue(sys.argv[2], Exchange("emp-claim-test"), routing_key="die")(conn.default_channel)
    got = []
    with conn.Consumer(queue, callbacks=[lambda body, message: got.append(body)]):
        conn.drain_events(timeout=10)
    print(got, flush=True)
    os.kill(os.getpid(), 9)  # no ack, no close: the message is held by a dead consumer
"""


def test_a_message_claimed_by_a_consumer_killed_before_its_ack_is_restored(
    redis_server: RedisServer,
) -> None:
    with _connection(visibility_timeout=1) as conn:
        queue = _queue("die", conn)
        queue.declare()
        Producer(conn.default_channel).publish({"n": 7}, exchange=queue.exchange, routing_key="die")
        done = subprocess.run(
            [sys.executable, "-c", CLAIM_AND_DIE, URL, queue.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == -9, done.stderr
        assert done.stdout.strip() == "[{'n': 7}]"
        assert _raw().llen(queue.name) == 0  # off its queue, and yet not lost:
        time.sleep(1.2)  # older than the visibility timeout
        conn.default_channel.qos.restore_visible(num=100, interval=1)
        message = queue.get()
        assert message is not None
        assert message.payload == {"n": 7}
        assert message.delivery_info["redelivered"] is True
        message.ack()


def test_a_no_ack_consumer_leaves_nothing_in_unacked(redis_server: RedisServer) -> None:
    with _connection() as conn:
        queue = _queue("noack", conn)
        queue.declare()
        Producer(conn.default_channel).publish(
            {"n": 2}, exchange=queue.exchange, routing_key="noack"
        )
        got: list[object] = []
        with conn.Consumer(queue, no_ack=True, callbacks=[lambda body, _m: got.append(body)]):
            conn.drain_events(timeout=5)
        assert got == [{"n": 2}]
        tags = {key.decode() for key in _raw().hkeys("unacked")}
        assert not any(queue.name in json.loads(_raw().hget("unacked", t))[2] for t in tags)


def test_a_consumer_of_two_queues_gets_a_message_from_the_one_it_does_not_block_on(
    redis_server: RedisServer,
) -> None:
    # The consumer is already idle - waiting on the first queue's list - when the message
    # lands on the second: it looks there every MULTI_KEY_WAIT, not after kombu's 1 s wait.
    with _connection() as conn:
        first, second = _queue("first", conn), _queue("second", conn)
        for queue in (first, second):
            queue.declare()
        got: list[float] = []
        sent: list[float] = []

        def publish_later() -> None:
            time.sleep(0.5)
            with _connection() as other:
                sent.append(time.monotonic())
                Producer(other.default_channel).publish(
                    {"n": 3}, exchange=second.exchange, routing_key="second"
                )

        def on_message(body: object, message: Message) -> None:
            got.append(time.monotonic())
            message.ack()

        publisher = threading.Thread(target=publish_later)
        with conn.Consumer([first, second], callbacks=[on_message]):
            publisher.start()
            conn.drain_events(timeout=5)
        publisher.join(5)
        assert len(got) == 1
        assert got[0] - sent[0] < 0.5


def test_an_idle_consumer_waits_on_redis_instead_of_asking_again_and_again(
    own_redis: RedisServer,
) -> None:
    # A Redis of its own: the shared one may have other consumers whose commands would count.
    url = f"redis://127.0.0.1:{own_redis.port}/0"

    def fetches() -> int:
        stats = redis.Redis.from_url(url).info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "blmove"))

    with Connection(url, transport=Transport) as conn:
        queue = _queue("idle", conn)
        queue.declare()
        before = fetches()
        with (
            conn.Consumer(queue, callbacks=[lambda body, message: None]),
            pytest.raises(TimeoutError),
        ):
            conn.drain_events(timeout=3)
        # kombu's wait is 1 s: about one claim and one wait a second, not a busy loop.
        assert fetches() - before <= 10


def test_closing_a_channel_after_its_connection_is_gone_is_a_connection_error(
    redis_server: RedisServer,
) -> None:
    # Not an AttributeError, which Celery calls unrecoverable: the worker would exit.
    with _connection() as conn:
        channel = conn.default_channel
        channel._disconnect_pools()
        channel.connection.client = None
        with pytest.raises(redis.exceptions.ConnectionError):
            channel.qos.restore_unacked()


CONSUME_UNTIL_KILLED = """
import sys
from kombu import Connection, Exchange, Queue
from kombu.utils.imports import symbol_by_name
import redis
url, name, transport = sys.argv[1:4]
done = redis.Redis.from_url(url)
with Connection(url, transport=symbol_by_name(transport)) as conn:
    queue = Queue(name, Exchange("emp-claim-test"), routing_key="kill")(conn.default_channel)

    def on_message(body, message):
        done.sadd(name + ".done", body["n"])  # before the ack: done is never under-counted
        message.ack()

    with conn.Consumer(queue, callbacks=[on_message], prefetch_count=1):
        print("ready", flush=True)
        while True:
            conn.drain_events(timeout=10)
"""


def kill_consumers_while_they_take(transport: str, messages: int, kills: int) -> int:
    """Messages neither done nor still on the queue or in unacked after `kills` kill -9s."""
    raw = _raw()
    with _connection(visibility_timeout=1) as conn:
        queue = _queue("kill", conn)
        queue.declare()
        producer = Producer(conn.default_channel)
        for n in range(messages):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="kill")
        rng = random.Random(7)
        for _ in range(kills):
            consumer = subprocess.Popen(
                [sys.executable, "-c", CONSUME_UNTIL_KILLED, URL, queue.name, transport],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert consumer.stdout is not None
            assert consumer.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.02, 0.15))
            consumer.kill()
            consumer.wait(10)
        time.sleep(1.2)  # every unacked message is now older than the visibility timeout
        conn.default_channel.qos.restore_visible(num=messages, interval=1)
        while (message := queue.get()) is not None:
            raw.sadd(f"{queue.name}.done", message.payload["n"])
            message.ack()
        return messages - int(raw.scard(f"{queue.name}.done"))


def test_consumers_killed_while_taking_messages_lose_none(redis_server: RedisServer) -> None:
    # With kombu's own transport ("kombu.transport.redis:Transport") this loses messages: a
    # kill between its BRPOP and its HSET of the unacked record.
    lost = kill_consumers_while_they_take("emp_tasks.redis_transport:Transport", 3000, 25)
    assert lost == 0


def test_one_claim_takes_as_many_messages_as_the_prefetch_window_has_room_for(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        queue = _queue("batch", conn)
        queue.declare()
        producer = Producer(conn.default_channel)
        for n in range(12):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="batch")
        got: list[Any] = []
        consumer = conn.Consumer(
            queue, callbacks=[lambda body, message: got.append(message)], prefetch_count=5
        )
        with consumer:
            conn.drain_events(timeout=5)  # one reply
            assert [message.payload["n"] for message in got] == [0, 1, 2, 3, 4]
            raw = _raw()
            assert raw.llen(queue.name) == 7
            assert all(raw.hget("unacked", m.delivery_tag) is not None for m in got)
            got[0].ack()
            got[1].ack()
            conn.drain_events(timeout=5)  # room for two again: two more, in order
            assert [message.payload["n"] for message in got] == list(range(7))
            for message in got[2:]:
                message.ack()


def test_a_message_whose_delivery_fails_does_not_hold_back_the_others_claimed_with_it(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        queue = _queue("batch-fail", conn)
        queue.declare()
        producer = Producer(conn.default_channel)
        for n in range(4):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="batch-fail")
        got: list[int] = []

        def receive(body: Any, message: Any) -> None:
            if body["n"] == 1:
                raise ValueError("this one cannot be handled")
            got.append(body["n"])
            message.ack()

        consumer = conn.Consumer(queue, callbacks=[receive], prefetch_count=4)
        with consumer, pytest.raises(ValueError, match="cannot be handled"):
            conn.drain_events(timeout=5)
        assert got == [0, 2, 3]


class _Loop:
    """What the transport needs of Celery's event loop: its thread, and its tick and close."""

    def __init__(self) -> None:
        self._loop_thread = threading.get_ident()
        self.on_tick: set[Any] = set()
        self.on_close: set[Any] = set()
        self.poller = None

    def tick(self) -> None:
        for callback in list(self.on_tick):
            callback()

    def close(self) -> None:
        for callback in list(self.on_close):
            callback(self)


def _three_claimed(conn: Connection, name: str) -> list[Any]:
    queue = _queue(name, conn)
    queue.declare()
    producer = Producer(conn.default_channel)
    for n in range(3):
        producer.publish({"n": n}, exchange=queue.exchange, routing_key=name)
    got: list[Any] = []
    consumer = conn.Consumer(
        queue, callbacks=[lambda body, message: got.append(message)], prefetch_count=3
    )
    consumer.consume()
    conn.drain_events(timeout=5)
    assert len(got) == 3
    return got


def _loop_of(conn: Connection) -> _Loop:
    loop = _Loop()
    # The tick and close hooks only: kombu's own registration needs a real poller.
    conn.transport._ack_loop = loop
    loop.on_tick.add(conn.transport.flush_acks)
    loop.on_close.add(conn.transport._loop_closing)
    return loop


def _in_unacked(messages: list[Any]) -> list[bool]:
    raw = _raw()
    return [raw.hget("unacked", m.delivery_tag) is not None for m in messages]


def test_acks_on_the_loops_thread_leave_unacked_together_at_its_tick(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        got = _three_claimed(conn, "acks-tick")
        loop = _loop_of(conn)
        qos = conn.default_channel.qos
        for message in got:
            message.ack()
        assert _in_unacked(got) == [True, True, True]  # kept for the tick
        assert qos.can_consume_max_estimate() == 3  # but their room is open at once
        before = int(_raw().info("commandstats").get("cmdstat_multi", {}).get("calls", 0))
        loop.tick()
        after = int(_raw().info("commandstats").get("cmdstat_multi", {}).get("calls", 0))
        assert _in_unacked(got) == [False, False, False]
        assert after - before == 1  # one pipeline for the three


def test_an_ack_on_another_thread_or_a_closing_loop_goes_at_once(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        got = _three_claimed(conn, "acks-now")
        loop = _loop_of(conn)
        worker = threading.Thread(target=got[0].ack)
        worker.start()
        worker.join()
        got[1].ack()  # kept, then removed as the loop closes
        assert _in_unacked(got) == [False, True, True]
        loop.close()
        assert _in_unacked(got) == [False, False, True]
        got[2].ack()
        assert _in_unacked(got) == [False, False, False]


def test_a_closing_channel_removes_the_acks_it_kept(redis_server: RedisServer) -> None:
    with _connection() as conn:
        got = _three_claimed(conn, "acks-close")
        _loop_of(conn)
        for message in got:
            message.ack()
        assert _in_unacked(got) == [True, True, True]
        conn.default_channel.close()
        assert _in_unacked(got) == [False, False, False]


def test_restoring_unacked_messages_does_not_bring_back_the_acks_it_kept(
    redis_server: RedisServer,
) -> None:
    with _connection() as conn:
        got = _three_claimed(conn, "acks-restore")
        _loop_of(conn)
        got[0].ack()  # kept
        conn.default_channel.qos.restore_unacked()
        assert _in_unacked(got) == [False, False, False]
        queue = got[0].delivery_info["routing_key"]
        names = [k.decode() for k in _raw().keys(f"{queue}-*")]
        back = [json.loads(m)["body"] for name in names for m in _raw().lrange(name, 0, -1)]
        assert len(back) == 2  # the two never acked are back on their queue, the acked one not
