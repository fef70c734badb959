"""EventSender: one kept dispatcher per hostname, reopened after a failed send, per process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from emp_tasks import event_sender
from emp_tasks.event_sender import EventSender, sender_for


class FakeDispatcher:
    def __init__(self, app: FakeApp, hostname: str | None) -> None:
        self.app, self.hostname = app, hostname
        self.connection = SimpleNamespace(release=lambda: app.released.append(self))
        self.closed = False

    def send(self, type_: str, **fields: Any) -> None:
        if self.app.fail_next:
            self.app.fail_next = False
            raise ConnectionError("broker gone")
        self.app.sent.append((self.hostname, type_, fields))

    def close(self) -> None:
        self.closed = True


class FakeApp:
    def __init__(self) -> None:
        self.opened: list[FakeDispatcher] = []
        self.released: list[FakeDispatcher] = []
        self.sent: list[tuple[str | None, str, dict[str, Any]]] = []
        self.fail_next = False
        self.events = SimpleNamespace(Dispatcher=self._dispatcher)

    def connection_for_write(self) -> object:
        return object()

    def _dispatcher(self, connection: object, hostname: str | None, **_: Any) -> FakeDispatcher:
        dispatcher = FakeDispatcher(self, hostname)
        self.opened.append(dispatcher)
        return dispatcher


def test_every_event_of_a_hostname_goes_through_one_kept_dispatcher() -> None:
    app = FakeApp()
    sender = EventSender(app)
    for n in range(5):
        sender.send("w@h", "task-emp-x", uuid=str(n))
    sender.send("other@h", "task-emp-x", uuid="o")
    assert [d.hostname for d in app.opened] == ["w@h", "other@h"]
    assert len(app.sent) == 6


def test_a_failed_send_raises_and_the_next_one_opens_a_new_dispatcher() -> None:
    app = FakeApp()
    sender = EventSender(app)
    sender.send("w@h", "task-emp-x", uuid="1")
    app.fail_next = True
    with pytest.raises(ConnectionError):
        sender.send("w@h", "task-emp-x", uuid="2")
    first = app.opened[0]
    assert first.closed
    assert app.released == [first]
    sender.send("w@h", "task-emp-x", uuid="3")
    assert len(app.opened) == 2
    assert [fields["uuid"] for _, _, fields in app.sent] == ["1", "3"]


def test_a_forked_child_does_not_use_its_parents_dispatcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = FakeApp()
    sender = EventSender(app)
    sender.send("w@h", "task-emp-x", uuid="parent")
    monkeypatch.setattr(event_sender.os, "getpid", lambda: -1)
    sender.send("w@h", "task-emp-x", uuid="child")
    assert len(app.opened) == 2


def test_an_app_keeps_one_sender() -> None:
    app = SimpleNamespace()
    assert sender_for(app) is sender_for(app)
