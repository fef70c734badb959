"""The call gate counts a call it lets go at once in the limiter's own script, on a real Redis.

Calls go through a real `HttpClient` (its transport a fake), which counts what the gate did not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.errors import ConnectorError
from connectors.protocol.client import HttpClient, HttpRequest
from connectors.protocol.gate import deferral
from connectors.testing import fake_session, json_reply
from emp_tasks.breaker import RedisBreakerStore
from emp_tasks.callgate import GateSettings, ProviderGate
from emp_tasks.journal import Journal, RedisStore
from emp_tasks.ratelimit import Rate, RedisLimiter
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration


def _gate(client: Any, rate: Rate | None, sleeps: list[float]) -> ProviderGate:
    settings = {"glif": GateSettings(rate=rate)}
    return ProviderGate(
        RedisLimiter(client), RedisBreakerStore(client), settings, sleep=sleeps.append
    )


def _send(gate: ProviderGate, journal: Journal) -> None:
    """One paid call through the client, as a connector sends it."""
    session, _ = fake_session(json_reply({"ok": True}))
    client = HttpClient("glif", "http://127.0.0.1:9", session=session).with_gate(gate)
    client.send(HttpRequest("POST", client.url()), journal=journal)


def _journal(client: Any, job_id: str, tmp_path: Path) -> Journal:
    return Journal(RedisStore(client, ttl_seconds=600), job_id, tmp_path, 65536, fresh=True)


def _sent(client: Any, action: Any) -> dict[str, int]:
    """The commands Redis ran (a script's own included) while `action` ran."""
    before = client.info("commandstats")
    action()
    after = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): row["calls"] - before.get(name, {}).get("calls", 0)
        for name, row in after.items()
        if row["calls"] != before.get(name, {}).get("calls") and name != "cmdstat_info"
    }


@pytest.mark.parametrize("rate", [None, Rate(100, 1)], ids=["no limit", "a limit not reached"])
def test_a_call_that_may_go_at_once_is_admitted_and_counted_in_one_round_trip(
    own_redis: RedisServer, tmp_path: Path, rate: Rate | None
) -> None:
    client = redis.Redis(port=own_redis.port, db=1)
    gate, journal = _gate(client, rate, []), _journal(client, "job-1", tmp_path)
    _send(gate, journal)  # loads the script, reads the breaker once
    time.sleep(0.02)  # past the next slot (10 ms on): this call may go at once
    sent = _sent(client, lambda: _send(gate, journal))
    assert (sent["evalsha"], sent["incr"], sent["expire"]) == (1, 1, 1)
    assert set(sent) <= {"evalsha", "time", "get", "set", "incr", "expire"}
    assert journal.provider_calls() == 2
    assert client.get(RedisStore.key("job-1", "provider_calls")) == b"2"
    assert 590 < client.ttl(RedisStore.key("job-1", "provider_calls")) <= 600


def test_a_call_that_waits_for_its_slot_is_counted_once_after_the_wait(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    client = redis.Redis(port=own_redis.port, db=1)
    sleeps: list[float] = []
    gate, journal = _gate(client, Rate(5, 1), sleeps), _journal(client, "job-2", tmp_path)
    _send(gate, journal)
    _send(gate, journal)  # 0.2 s later than the first: slept in, then counted
    assert sleeps == [pytest.approx(0.2, abs=0.05)]
    assert journal.provider_calls() == 2
    assert client.get(RedisStore.key("job-2", "provider_calls")) == b"2"


def test_a_deferred_call_is_not_counted(own_redis: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis(port=own_redis.port, db=1)
    gate, journal = _gate(client, None, []), _journal(client, "job-3", tmp_path)
    gate.limiter.hold("glif:default", 5.0)  # a provider's Retry-After
    with pytest.raises(ConnectorError) as info:
        _send(gate, journal)
    assert deferral(info.value) == "hold"
    assert journal.provider_calls() == 0
    assert client.get(RedisStore.key("job-3", "provider_calls")) is None


def test_a_jobs_own_client_of_the_same_database_is_counted_in_the_gates_script(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # Celery gives every thread its own result backend, and so its own client.
    gate_client = redis.Redis(port=own_redis.port, db=1)
    job_client = redis.Redis(port=own_redis.port, db=1)
    gate, journal = _gate(gate_client, None, []), _journal(job_client, "job-5", tmp_path)
    _send(gate, journal)
    sent = _sent(gate_client, lambda: _send(gate, journal))
    assert (sent["evalsha"], sent["incr"]) == (1, 1)
    assert job_client.get(RedisStore.key("job-5", "provider_calls")) == b"2"


def test_a_journal_in_another_redis_counts_there_itself(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    gate_client = redis.Redis(port=own_redis.port, db=1)
    journal_client = redis.Redis(port=own_redis.port, db=2)
    gate, journal = _gate(gate_client, None, []), _journal(journal_client, "job-4", tmp_path)
    _send(gate, journal)
    assert journal_client.get(RedisStore.key("job-4", "provider_calls")) == b"1"
    assert gate_client.get(RedisStore.key("job-4", "provider_calls")) is None
