"""Rate limits, Retry-After holds and the circuit breaker, shared by two real worker processes.

Two `emp-tasks worker --service glif` processes share one redis-server (broker and result
backend, and so the limiter and the breaker) and one Glif emulator that allows 10 calls a
second itself (429 + Retry-After beyond).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from emp_tasks import tasks
from emp_tasks.ratelimit import Rate, RedisLimiter
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_PORT, REDIS_URL
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.helpers import EventCollector, finish, provider_calls
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

TEXT = {"workflow_id": "sandbox-text", "inputs": ["storm"]}
RATE = 10


@pytest.fixture(scope="module")
def limited_glif() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,), rate_limit=RATE) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def two_workers(
    redis_server: RedisServer,
    limited_glif: GlifEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[WorkerProcess]]:
    state = redis.Redis(port=REDIS_PORT, db=1)
    for key in state.scan_iter("emp:[rc][lb]:*"):  # limits and breakers of earlier modules
        state.delete(key)
    env = glif_env(
        limited_glif,
        EMP_BROKER_URL=REDIS_URL,
        EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1"),
        GLIF_RATE_LIMIT=f"{RATE}/s",
        GLIF_RETRY_ATTEMPTS="5",
        GLIF_BREAKER_FAILURES="3",
        GLIF_BREAKER_COOLDOWN_SECONDS="2",
        GLIF_HEALTH_CHECK_INTERVAL_SECONDS="0",
    )
    logs = Path(tmp_path_factory.mktemp("rate-limits"))
    workers = []
    for index in (1, 2):
        argv = [console_script("emp-tasks"), "worker", "--service", "glif", "--concurrency", "5"]
        argv += ["--name", f"limits{index}-{os.getpid()}@%h"]
        workers.append(WorkerProcess(env, logs / f"worker{index}.log", argv=argv).start())
    yield workers
    for worker in workers:
        worker.stop()


@pytest.fixture(autouse=True)
def _fresh(two_workers: list[WorkerProcess], limited_glif: GlifEmulator) -> None:
    limited_glif.reset()


def test_the_redis_script_decides_as_the_pure_step(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis.Redis(port=REDIS_PORT, db=1))
    key = f"test:{os.getpid()}"
    slots = [limiter.take(key, Rate(10, 1), horizon=0.35) for _ in range(6)]
    assert [s.granted for s in slots] == [True] * 4 + [False] * 2
    assert [s.delay for s in slots[:4]] == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=0.01)
    assert slots[4].delay == pytest.approx(0.05, abs=0.01)  # when the next is within reach
    kept = limiter.take(key, Rate(10, 1), horizon=0.35, reserved=slots[3].at)
    assert (kept.why, kept.at) == ("reserved", slots[3].at)
    limiter.hold(key, 1.5)
    held = limiter.take(key, Rate(10, 1), horizon=60)
    assert (held.granted, held.why) == (False, "hold")
    assert held.delay == pytest.approx(1.5, abs=0.05)
    assert limiter.held(key) == pytest.approx(1.5, abs=0.05)


def test_the_limit_holds_across_both_workers(
    two_workers: list[WorkerProcess], limited_glif: GlifEmulator
) -> None:
    results = [tasks.glif.delay(TEXT) for _ in range(30)]
    records = [finish(result, timeout=30) for result in results]
    assert [r["status"] for r in records] == ["completed"] * 30
    calls = provider_calls(limited_glif)
    assert [c.status for c in calls] == [200] * 30  # the emulator's own limit never tripped
    times = sorted(c.monotonic for c in calls)
    # 30 calls at 10/s take 2.9 s; in no second are there more than 10 (+1 for timing jitter).
    assert times[-1] - times[0] >= 2.9 * 0.95
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= RATE + 1
    assert all(" completed after" in worker.text() for worker in two_workers)  # both served


def test_a_retry_after_holds_every_worker_not_only_the_job_that_got_it(
    limited_glif: GlifEmulator,
) -> None:
    limited_glif.queue_faults([Fault("rate_limit", retry_after=2)])
    with EventCollector() as collector:
        results = [tasks.glif.delay(TEXT) for _ in range(8)]
        records = [finish(result, timeout=30) for result in results]
    assert [r["status"] for r in records] == ["completed"] * 8
    calls = provider_calls(limited_glif)
    limited = [c for c in calls if c.status == 429]
    assert len(limited) == 1  # one 429, and no second one from another worker
    at = limited[0].monotonic
    later = [c.monotonic - at for c in calls if c.monotonic > at]
    # Unshared, the other 7 jobs would call at +0.1 ... +0.7 s. A call admitted just before the
    # 429 came back may still land early; none admitted after it goes before Retry-After.
    assert [d for d in later if 0.35 < d < 1.9] == []
    assert len(calls) == 9  # 8 jobs, one of them retried once
    # A wait is not a paid call: the jobs that waited out the hold paid once, the 429 twice.
    assert sorted(r["provider_calls"] for r in records) == [1] * 7 + [2]
    waited = [e for e in collector.events if e["type"] == "task-wait_job"]
    assert waited
    assert {e["reason"] for e in waited} <= {"hold", "rate_limit"}


def test_the_breaker_opens_waits_out_its_cool_down_and_one_probe_closes_it(
    two_workers: list[WorkerProcess], limited_glif: GlifEmulator
) -> None:
    limited_glif.queue_faults([Fault("server_error")] * 3)
    with EventCollector() as collector:
        first = tasks.glif.delay(TEXT)
        records = [finish(first, timeout=30)]
        records += [finish(tasks.glif.delay(TEXT), timeout=30) for _ in range(3)]
    assert [r["status"] for r in records] == ["completed"] * 4
    assert records[0]["attempts"] == 4  # three 500s, then the probe: waits are not attempts
    calls = provider_calls(limited_glif)
    assert [c.status for c in calls] == [500, 500, 500, 200, 200, 200, 200]
    assert calls[3].monotonic - calls[2].monotonic >= 2.0 * 0.95  # the cool-down was kept
    states = [
        (e["previous"], e["state"]) for e in collector.events if e["type"] == "task-breaker_state"
    ]
    assert states == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert "circuit_open" in {e.get("reason") for e in collector.events}
    logs = "".join(worker.text() for worker in two_workers)
    assert "circuit breaker for glif: half_open -> closed" in logs
