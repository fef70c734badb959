"""Visibility extension: what is held, what a beat sends, and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.errors import ConnectorError
from emp_tasks.visibility import (
    HeldMessages,
    beat,
    heartbeat_interval,
    transport_options,
    visibility_timeout,
)


@dataclass
class Message:
    delivery_tag: str


@dataclass
class Request:
    id: str
    message: Message
    acknowledged: bool = False


@dataclass
class FakeRedis:
    calls: list[tuple[str, dict[str, float], dict[str, Any]]] = field(default_factory=list)

    def zadd(self, key: str, mapping: dict[str, float], **flags: Any) -> int:
        self.calls.append((key, mapping, flags))
        return len(mapping)


def test_held_messages_forget_what_was_acked() -> None:
    held = HeldMessages()
    running, done = Request("a", Message("tag-a")), Request("b", Message("tag-b"))
    held.add(running)
    held.add(done)
    done.acknowledged = True
    assert held.delivery_tags() == ["tag-a"]
    running.acknowledged = True
    assert held.delivery_tags() == []


def test_a_beat_rescores_only_entries_still_in_the_index() -> None:
    redis = FakeRedis()
    assert beat(redis, "unacked_index", ["t1", "t2"], 1000.0) == 2
    ((key, mapping, flags),) = redis.calls
    assert (key, mapping) == ("unacked_index", {"t1": 1000.0, "t2": 1000.0})
    assert flags["xx"] is True  # never re-adds a message already acked or restored


def test_a_beat_with_nothing_held_sends_nothing() -> None:
    redis = FakeRedis()
    assert beat(redis, "unacked_index", [], 1.0) == 0
    assert redis.calls == []


def test_three_beats_fit_in_a_timeout_and_the_sweep_runs_often() -> None:
    assert heartbeat_interval(30) == 10
    options = transport_options(30)
    assert options["visibility_timeout"] == 30
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] == 5


@pytest.mark.parametrize(("raw", "seconds"), [(None, 30), ("", 30), ("6", 6), ("120", 120)])
def test_visibility_timeout_defaults_to_thirty_seconds(raw: str | None, seconds: int) -> None:
    assert visibility_timeout({} if raw is None else {"EMP_VISIBILITY_TIMEOUT": raw}) == seconds


@pytest.mark.parametrize("raw", ["5", "0", "thirty", "-30", "7.5"])
def test_a_bad_visibility_timeout_names_the_setting(raw: str) -> None:
    with pytest.raises(ConnectorError, match="EMP_VISIBILITY_TIMEOUT must be"):
        visibility_timeout({"EMP_VISIBILITY_TIMEOUT": raw})
