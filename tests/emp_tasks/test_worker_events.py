"""WorkerEvents: the consumer's task events flushed once per interval, jobs' events included."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.events.dispatcher import EventDispatcher

from connectors.errors import ConnectorError
from emp_tasks import event_sender, worker_events
from emp_tasks.worker_events import EventBatching, WorkerEvents, flush_interval


class FakeHub:
    """Records what the consumer's event loop is asked to run, and runs it on demand."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []
        self.later: list[tuple[float, Callable[[], None]]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.later.append((delay, callback))

    def turn(self) -> None:
        """One loop turn: what was asked to run soon."""
        ready, self.soon = self.soon, []
        for callback in ready:
            callback()

    def fire(self) -> None:
        """The timers fall due."""
        due, self.later = self.later, []
        for _, callback in due:
            callback()


class FakeProducer:
    """Collects what the dispatcher publishes; `fail` makes it raise as a lost broker does."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []
        self.fail = False

    def publish(self, body: Any, routing_key: str, **_: Any) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.published.append((routing_key, body))


def _dispatcher(producer: FakeProducer, groups: list[str] | None = None) -> EventDispatcher:
    app = Celery("emp_worker_events_test", broker="memory://")
    dispatcher = EventDispatcher(
        connection=None,
        hostname="w@host",
        enabled=True,
        groups=groups,
        buffer_group=["task"],
        app=app,
    )
    dispatcher.producer = producer
    return dispatcher


@pytest.fixture
def loop() -> tuple[FakeHub, FakeProducer, WorkerEvents]:
    hub, producer = FakeHub(), FakeProducer()
    return hub, producer, WorkerEvents(hub, _dispatcher(producer), interval=0.1)


def _types(body: Any) -> list[str]:
    return [event["type"] for event in body]


def test_events_of_one_interval_leave_in_one_publish(loop: Any) -> None:
    hub, producer, events = loop
    for n in range(50):
        events.dispatcher.send("task-succeeded", uuid=str(n))
        assert events.send("w@host", "task-complete_job", {"uuid": str(n)})
    hub.turn()
    assert [delay for delay, _ in hub.later] == [0.1]  # one flush, an interval later
    assert producer.published == []
    hub.fire()
    [(routing_key, body)] = producer.published
    assert routing_key == "task.multi"
    assert _types(body) == ["task-succeeded", "task-complete_job"] * 50


def test_the_first_event_after_a_flush_asks_for_the_next(loop: Any) -> None:
    hub, producer, events = loop
    events.send("w@host", "task-complete_job", {"uuid": "a"})
    assert len(hub.soon) == 1
    events.send("w@host", "task-complete_job", {"uuid": "b"})
    assert len(hub.soon) == 1  # one wake-up per interval, not per event
    hub.turn()
    hub.fire()
    events.send("w@host", "task-complete_job", {"uuid": "c"})
    hub.turn()
    hub.fire()
    assert [[e["uuid"] for e in body] for _, body in producer.published] == [["a", "b"], ["c"]]


def test_an_event_sent_while_a_flush_runs_is_kept_for_the_next(loop: Any) -> None:
    hub, producer, events = loop
    original = producer.publish

    def publish_while_another_thread_sends(body: Any, routing_key: str, **kw: Any) -> None:
        events.send("w@host", "task-complete_job", {"uuid": "late"})
        original(list(body), routing_key, **kw)

    producer.publish = publish_while_another_thread_sends
    events.send("w@host", "task-complete_job", {"uuid": "first"})
    hub.turn()
    hub.fire()
    producer.publish = original
    hub.turn()
    hub.fire()
    assert [[e["uuid"] for e in body] for _, body in producer.published] == [["first"], ["late"]]


def test_interval_zero_flushes_on_the_next_turn_as_celery_does() -> None:
    hub, producer = FakeHub(), FakeProducer()
    events = WorkerEvents(hub, _dispatcher(producer), interval=0)
    events.send("w@host", "task-complete_job", {"uuid": "a"})
    hub.turn()
    assert hub.later == []
    assert len(producer.published) == 1


def test_stop_publishes_what_is_buffered_and_refuses_later_events(loop: Any) -> None:
    _, producer, events = loop
    events.send("w@host", "task-complete_job", {"uuid": "a"})
    events.stop()
    assert [_types(body) for _, body in producer.published] == [["task-complete_job"]]
    assert not events.send("w@host", "task-complete_job", {"uuid": "b"})


def test_after_stop_celerys_own_events_are_published_at_once(loop: Any) -> None:
    hub, producer, events = loop
    events.stop()  # a warm stop or a consumer restart: the hub's timers may not fire
    events.dispatcher.send("task-succeeded", uuid="finishing")
    assert [_types(body) for _, body in producer.published] == [["task-succeeded"]]
    assert hub.later == []


def test_after_stop_an_event_the_lost_broker_refused_is_kept_for_the_new_consumer(
    loop: Any,
) -> None:
    _, producer, events = loop
    events.stop()
    producer.fail = True  # the broker is gone; Celery restarts the consumer
    events.dispatcher.send("task-succeeded", uuid="during-the-outage")
    renewed = _dispatcher(FakeProducer())
    renewed.extend_buffer(events.dispatcher)  # what Celery's Events step does on restart
    renewed.flush()
    [(_, body)] = renewed.producer.published
    assert [e["uuid"] for e in body] == ["during-the-outage"]


def test_a_solo_worker_is_not_batched() -> None:
    from celery.concurrency.solo import TaskPool

    pool = TaskPool.__new__(TaskPool)
    consumer = SimpleNamespace(hub=FakeHub(), event_dispatcher=_dispatcher(FakeProducer()))
    consumer.pool = pool
    EventBatching(consumer).start(consumer)
    assert worker_events.current() is None


def test_a_flush_while_the_broker_is_down_keeps_the_events(loop: Any) -> None:
    hub, producer, events = loop
    events.send("w@host", "task-complete_job", {"uuid": "a"})
    producer.fail = True
    hub.turn()
    hub.fire()
    producer.fail = False
    events.dispatcher.flush()  # what Celery's Events step does for the reconnected consumer
    assert [[e["uuid"] for e in body] for _, body in producer.published] == [["a"]]


@pytest.mark.parametrize(
    ("hostname", "groups", "enabled"),
    [
        ("other@host", None, True),  # another worker's name: its own dispatcher sends it
        ("w@host", ["worker"], True),  # task events switched off (`disable_events`)
        ("w@host", None, False),
    ],
)
def test_events_the_worker_dispatcher_would_not_carry_are_refused(
    hostname: str, groups: list[str] | None, enabled: bool
) -> None:
    hub, producer = FakeHub(), FakeProducer()
    dispatcher = _dispatcher(producer, groups=groups)
    dispatcher.enabled = enabled
    events = WorkerEvents(hub, dispatcher, interval=0.1)
    assert not events.send(hostname, "task-complete_job", {"uuid": "a"})
    events.stop()
    assert producer.published == []


def test_the_buffer_is_flushed_by_time_not_by_celerys_count_of_24(loop: Any) -> None:
    hub, producer, events = loop
    for n in range(500):
        events.send("w@host", "task-complete_job", {"uuid": str(n)})
    assert producer.published == []  # no flush from the sending thread
    hub.turn()
    hub.fire()
    assert len(producer.published[0][1]) == 500


def test_sends_from_many_threads_all_arrive(loop: Any) -> None:
    _, producer, events = loop

    def send(n: int) -> None:
        for i in range(100):
            events.send("w@host", "task-complete_job", {"uuid": f"{n}-{i}"})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events.stop()
    uuids = [event["uuid"] for _, body in producer.published for event in body]
    assert sorted(uuids) == sorted(f"{n}-{i}" for n in range(8) for i in range(100))


@pytest.fixture
def installed() -> Iterator[tuple[FakeHub, FakeProducer, Any]]:
    hub, producer = FakeHub(), FakeProducer()
    consumer = SimpleNamespace(hub=hub, event_dispatcher=_dispatcher(producer))
    step = EventBatching(consumer)
    step.start(consumer)
    yield hub, producer, consumer
    step.shutdown(consumer)


def test_the_consumer_step_routes_the_jobs_events_into_the_batch(installed: Any) -> None:
    hub, producer, consumer = installed
    app = SimpleNamespace()  # no dispatcher of its own is opened: the batch carries the event
    event_sender.sender_for(app).send("w@host", "task-complete_job", uuid="a")
    assert consumer.event_dispatcher._group_buffer["task"][0]["uuid"] == "a"
    hub.turn()
    hub.fire()
    assert len(producer.published) == 1


def test_the_consumer_steps_shutdown_flushes_and_unregisters(installed: Any) -> None:
    _, producer, consumer = installed
    live = worker_events.current()
    assert live is not None
    live.send("w@host", "task-complete_job", {"uuid": "a"})
    EventBatching(consumer).shutdown(consumer)
    assert worker_events.current() is None
    assert len(producer.published) == 1


def test_a_forked_pool_child_does_not_use_the_parents_consumer(
    installed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert worker_events.current() is None


def test_without_an_event_loop_nothing_is_installed() -> None:
    consumer = SimpleNamespace(hub=None, event_dispatcher=_dispatcher(FakeProducer()))
    EventBatching(consumer).start(consumer)
    assert worker_events.current() is None


@pytest.mark.parametrize(("raw", "expected"), [("", 0.1), ("0", 0.0), ("0.5", 0.5), ("5", 5.0)])
def test_flush_interval_reads_the_setting(raw: str, expected: float) -> None:
    assert flush_interval({"EMP_EVENT_FLUSH_INTERVAL": raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "6", "soon", "nan"])
def test_a_bad_flush_interval_is_a_configuration_error_naming_it(raw: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        flush_interval({"EMP_EVENT_FLUSH_INTERVAL": raw})
    assert "EMP_EVENT_FLUSH_INTERVAL" in str(caught.value)
