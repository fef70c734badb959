"""Chaos: `kill -9` of workers and a broker restart lose no job and pay only in-flight calls twice.

Redis runs with the append-only file on (its own port and folder, not the shared test Redis);
two `emp-tasks worker --service glif --concurrency 8` take jobs while the test submits 300 Glif
jobs (each with its own input, so the emulator's call log tells them apart), kills a worker four
times (a replacement is started after each kill) and restarts the broker once. On Redis that is
a `kill -9` of Redis, restarted on the same port and folder (the AOF brings the queues, the
unacked messages and the results back); on RabbitMQ (a node of the test's own, results in the
AOF Redis) it is `rabbitmqctl stop_app` and `start_app`.

Every job must end, none may fail, all within 60 s of the last kill; no worker the test did not
kill may exit by itself; and a job may reach the provider twice only when one of its calls was
in flight at a kill (README, "Delivery guarantees": such a call may legitimately be repeated).
The figures are printed.

On Redis this once found three defects, each fixed and now held by this test:

- a job lost: kombu's Redis transport pops a message (BRPOP) and records it in `unacked` in a
  second round trip, so a `kill -9` of the worker, or of Redis, between the two lost it for good.
  emp_tasks.redis_transport claims a message with one script that pops and records it together;
- a job failed with `redis.exceptions.ConnectionError` while storing its STARTED state during
  the Redis restart: result-backend writes are retried (`result_backend_always_retry`);
- a worker exiting on the Redis restart with `Unrecoverable error: AttributeError("'NoneType'
  object has no attribute 'hostname'")` (kombu's channel close, restoring its unacked messages
  from a closed connection): the transport raises a connection error there, which Celery
  handles by reconnecting.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from celery import Celery

from emp_tasks import queues
from emp_tasks.config import services
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.server import CallRecord
from tests.conftest import free_port
from tests.integration.conftest import TOKEN, glif_env
from tests.integration.helpers import provider_calls
from tests.integration.processes import (
    PersistentRedisServer,
    RabbitMQServer,
    WorkerProcess,
    console_script,
)

pytestmark = pytest.mark.integration

JOBS = 300
LATENCY = 0.3  # the emulator's answer time: a call is in flight this long
SUBMIT_SECONDS = 30.0  # jobs are submitted at a steady rate over this long, chaos in between
# (seconds after the first submission, what is killed): four workers and Redis once.
CHAOS = ((4.0, "worker"), (9.0, "worker"), (14.0, "broker"), (20.0, "worker"), (26.0, "worker"))
RECOVERY = 60.0  # every job completed within this long after the last kill
# After its provider call answers, a job still stores its result and is acked: a kill in that
# short window also repeats the call (README: "the instant between a job's result being stored
# and its message being acked"). A call counts as in flight at a kill if it started at most
# LATENCY + AFTER_CALL before it.
AFTER_CALL = 1.0
TERMINAL = ("SUCCESS", "FAILURE", "REVOKED")
BROKER_RESTART = {"redis": "kill -9, restarted on its AOF", "rabbitmq": "stop_app + start_app"}
WORKER_ENV = {"EMP_VISIBILITY_TIMEOUT": "6", "EMP_SOFT_SHUTDOWN_TIMEOUT": "5"}


@dataclass
class Kill:
    what: str  # "worker" or "broker"
    at: float  # time.monotonic() of the kill (the emulator's call log uses the same clock)
    wall: float  # time.time() of the kill
    worker: WorkerProcess | None = None
    back_at: float | None = None  # Redis answering again


@dataclass
class Fleet:
    """The workers of this test: started, killed, replaced."""

    tmp: Path
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)
    starting: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def new(self) -> WorkerProcess:
        name = f"chaos{len(self.workers)}"
        worker = WorkerProcess(
            self.env,
            self.tmp / f"{name}.log",
            argv=[
                console_script("emp-tasks"),
                "worker",
                "--service",
                "glif",
                "--concurrency",
                "8",
                "--name",
                f"{name}@%h",
            ],
            cwd=self.tmp,
        )
        self.workers.append(worker)
        return worker

    def start_in_background(self) -> None:
        """Start a replacement without holding up the submissions and the next kill."""
        worker = self.new()

        def run() -> None:
            try:
                worker.start(timeout=60)
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True, name="start-worker")
        thread.start()
        self.starting.append(thread)

    def victim(self) -> WorkerProcess:
        """The oldest live, ready worker (one that has been taking jobs)."""
        for worker in self.workers:
            alive = worker.proc is not None and worker.proc.poll() is None
            if alive and " ready." in worker.text():
                return worker
        raise AssertionError("no ready worker to kill")

    def stop(self) -> None:
        for thread in self.starting:
            thread.join(60)
        for worker in self.workers:
            worker.stop(timeout=10)


@dataclass
class Broker:
    """Where the jobs go: the AOF Redis itself, or a RabbitMQ node with results in that Redis."""

    name: str
    url: str
    restart: Callable[[], None]  # the broker's crash (or stop) and its return


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[PersistentRedisServer]:
    server = PersistentRedisServer(free_port(), tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(
    params=[
        "redis",
        "rabbitmq",
    ]
)
def broker(
    request: pytest.FixtureRequest, aof_redis: PersistentRedisServer, tmp_path: Path
) -> Iterator[Broker]:
    if request.param == "redis":

        def crash_redis() -> None:
            aof_redis.kill()
            aof_redis.start()

        yield Broker("redis", f"{aof_redis.url}/0", crash_redis)
        return
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        pytest.skip("rabbitmq-server is not installed (`make system-deps` installs it as root)")
    folder = tmp_path / "rabbitmq"
    folder.mkdir()
    node = RabbitMQServer(free_port(), free_port(), folder).start()

    def restart_rabbitmq() -> None:
        # The node's application stops (every connection closed, queues kept on disk) and
        # starts again: what a broker restart looks like to its clients.
        assert node.ctl("stop_app", timeout=60).returncode == 0
        assert node.ctl("start_app", timeout=60).returncode == 0
        assert node.ctl("await_startup", timeout=60).returncode == 0

    yield Broker("rabbitmq", node.url, restart_rabbitmq)
    node.stop()


@pytest.fixture
def slow_glif() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,), latency=LATENCY) as emulator:
        yield emulator


def client_app(broker_url: str, backend_url: str) -> Celery:
    """A Celery client of this test's broker (the test process's own app is pinned elsewhere)."""
    app = Celery("emp_tasks_chaos")
    app.config_from_object("celeryconfig")
    app.conf.update(
        broker_url=broker_url,
        result_backend=backend_url,
        # Declared as the workers declare them (quorum queues on RabbitMQ).
        task_queues=queues.service_queues(services().values(), broker_url),
    )
    return app


def submit(app: Celery, i: int) -> str:
    job_id = f"chaos-{i:04d}"
    payload = {"workflow_id": "sandbox-text", "inputs": [f"job-{i}"]}
    deadline = time.monotonic() + 20
    while True:  # publishing is not racing the broker restart (same thread), but be safe
        try:
            app.send_task(
                "emp.glif",
                args=(payload,),
                kwargs={"ctx": None, "metadata": None},
                task_id=job_id,
            )
            return job_id
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_states(results: redis.Redis, job_ids: list[str]) -> dict[str, dict[str, object]]:
    """Each job's stored result meta (status, date_done, result), when it has one."""
    try:
        raw = results.mget([f"celery-task-meta-{job_id}" for job_id in job_ids])
    except redis.RedisError:
        return {}
    return {job_id: json.loads(value) for job_id, value in zip(job_ids, raw, strict=True) if value}


def job_of(call: CallRecord) -> str | None:
    body = call.body_json if isinstance(call.body_json, dict) else {}
    inputs = body.get("inputs") or [None]
    value = inputs[0] if isinstance(inputs, list) else None
    if isinstance(value, str) and value.startswith("job-"):
        return f"chaos-{int(value.removeprefix('job-')):04d}"
    return None  # the workers' start-up health probes


def in_flight(call: CallRecord, kill: Kill) -> bool:
    """Whether `call` could still have been running (or not yet acked) at `kill`."""
    end = kill.back_at if kill.what == "broker" and kill.back_at is not None else kill.at
    return kill.at - LATENCY - AFTER_CALL <= call.monotonic <= end


def held_by(worker: WorkerProcess) -> set[str]:
    """Jobs the worker received and did not log as done: the ones it held when it died."""
    text = worker.text()
    received = set(re.findall(r"emp\.glif\[(chaos-\d+)\] received", text))
    done = set(re.findall(r"emp\.glif\[(chaos-\d+)\] (?:succeeded|raised|retry)", text))
    return received - done


def done_at(meta: dict[str, object]) -> float:
    stamp = str(meta.get("date_done") or "")
    if not stamp:
        return float("nan")
    when = datetime.fromisoformat(stamp)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@pytest.mark.timeout(300)
def test_kill_9_of_workers_and_a_broker_restart_lose_no_job_and_repeat_only_inflight_calls(
    broker: Broker, aof_redis: PersistentRedisServer, slow_glif: GlifEmulator, tmp_path: Path
) -> None:
    began = time.monotonic()
    env = glif_env(
        slow_glif,
        EMP_BROKER_URL=broker.url,
        EMP_RESULT_BACKEND=f"{aof_redis.url}/1",
        **WORKER_ENV,
    )
    fleet = Fleet(tmp_path, env)
    app = client_app(broker.url, f"{aof_redis.url}/1")
    results = redis.Redis.from_url(f"{aof_redis.url}/1", socket_timeout=5)
    kills: list[Kill] = []
    job_ids: list[str] = []
    try:
        for worker in (fleet.new(), fleet.new()):
            worker.start(timeout=60)
        slow_glif.reset()  # the start-up probes are not the test's calls

        start = time.monotonic()
        events = list(CHAOS)
        while len(job_ids) < JOBS or events:
            now = time.monotonic() - start
            while len(job_ids) < min(JOBS, int(now / SUBMIT_SECONDS * JOBS) + 1):
                job_ids.append(submit(app, len(job_ids)))
            if events and now >= events[0][0]:
                _, what = events.pop(0)
                if what == "worker":
                    victim = fleet.victim()
                    assert victim.proc is not None
                    os.kill(victim.proc.pid, signal.SIGKILL)
                    kills.append(Kill("worker", time.monotonic(), time.time(), victim))
                    victim.proc.wait(10)
                    fleet.start_in_background()
                else:
                    kills.append(Kill("broker", time.monotonic(), time.time()))
                    broker.restart()
                    kills[-1].back_at = time.monotonic()
            assert time.monotonic() - start < SUBMIT_SECONDS + 60, "the chaos loop overran"
            time.sleep(0.02)
        last_kill = kills[-1]

        # Every job ends, within RECOVERY of the last kill (bounded: whatever is left is stuck).
        states: dict[str, dict[str, object]] = {}
        while time.monotonic() < last_kill.at + RECOVERY + 5:
            states = read_states(results, job_ids)
            if all(str(states.get(j, {}).get("status")) in TERMINAL for j in job_ids):
                break
            time.sleep(0.5)
        settled = time.monotonic()
        time.sleep(1.0)  # a repeated call racing the last result would show in the log now
        calls = provider_calls(slow_glif)
        killed = [k.worker for k in kills if k.worker is not None]
        exited_alone = [
            w.log.name
            for w in fleet.workers
            if w not in killed and w.proc is not None and w.proc.poll() is not None
        ]
    finally:
        fleet.stop()

    statuses = {j: str(states.get(j, {}).get("status", "no result")) for j in job_ids}
    counts: dict[str, int] = defaultdict(int)
    for status in statuses.values():
        counts[status] += 1
    unfinished = sorted(j for j, s in statuses.items() if s not in TERMINAL)
    failed = sorted(j for j, s in statuses.items() if s != "SUCCESS" and s in TERMINAL)
    late = sorted(
        j
        for j in job_ids
        if statuses[j] == "SUCCESS" and done_at(states[j]) - last_kill.wall > RECOVERY
    )
    last_done = max(
        (done_at(states[j]) for j in job_ids if statuses[j] == "SUCCESS"), default=float("nan")
    )

    by_job: dict[str, list[CallRecord]] = defaultdict(list)
    for call in calls:
        if (job := job_of(call)) is not None:
            by_job[job].append(call)
    repeated = {j: c for j, c in by_job.items() if len(c) > 1}
    worker_kills = [k for k in kills if k.what == "worker"]
    broker_kills = [k for k in kills if k.what == "broker"]
    at_worker_kill = {
        j for j, c in repeated.items() if any(in_flight(x, k) for x in c for k in worker_kills)
    }
    at_broker_kill = {
        j
        for j, c in repeated.items()
        if j not in at_worker_kill and any(in_flight(x, k) for x in c for k in broker_kills)
    }
    unexplained = sorted(set(repeated) - at_worker_kill - at_broker_kill)
    held = set().union(*(held_by(k.worker) for k in worker_kills if k.worker is not None))
    never_called = sorted(j for j in job_ids if statuses[j] == "SUCCESS" and j not in by_job)

    print()
    print(
        f"chaos on {broker.name} (results in Redis with AOF everysec): {len(job_ids)} jobs, "
        f"{len(worker_kills)} worker kill -9, {len(broker_kills)} broker restart "
        f"({BROKER_RESTART[broker.name]}), visibility timeout 6 s, emulator latency {LATENCY} s"
    )
    for kill in kills:
        held_now = len(held_by(kill.worker)) if kill.worker is not None else 0
        extra = (
            f" (held {held_now} jobs)"
            if kill.what == "worker"
            else f" (back in {(kill.back_at or kill.at) - kill.at:.2f} s)"
        )
        print(f"  {kill.what} at +{kill.at - start:.1f} s{extra}")
    print(f"  statuses: {dict(sorted(counts.items()))}")
    print(
        f"  lost (no end): {len(unfinished)}  failed: {len(failed)}  "
        f"late (> {RECOVERY:.0f} s): {len(late)}"
    )
    print(
        f"  all ended {settled - last_kill.at:.1f} s after the last kill "
        f"(last result stored {last_done - last_kill.wall:.1f} s after it)"
    )
    print(
        f"  provider calls: {sum(len(c) for c in by_job.values())} for {len(by_job)} jobs; "
        f"jobs called more than once: {len(repeated)}"
    )
    print(
        f"    of those, a call in flight at a worker kill: {len(at_worker_kill)}, "
        f"at the broker restart only: {len(at_broker_kill)}, unexplained: {len(unexplained)}"
    )
    print(f"    of those, held by a killed worker (its log): {len(set(repeated) & held)}")
    print(
        f"  jobs held by killed workers: {len(held)}; "
        f"completed jobs with no call logged: {len(never_called)}"
    )
    print(f"  wall time {time.monotonic() - began:.1f} s")
    for worker in fleet.workers:
        lines = [ln for ln in worker.text().splitlines() if "ERROR" in ln or "CRITICAL" in ln]
        if lines:
            print(f"  {worker.log.name}: {len(lines)} error lines, first: {lines[0][:200]}")
    crashed = [w.log.name for w in fleet.workers if "Unrecoverable error" in w.text()]
    print(f"  workers not killed by the test that exited: {exited_alone or 'none'}")
    print(f"  workers logging Celery's 'Unrecoverable error': {crashed or 'none'}")
    for job in unfinished + failed:
        seen = [w.log.name for w in fleet.workers if f"[{job}]" in w.text()]
        print(f"    {job}: {statuses[job]}, in worker logs: {seen or 'none'}")
    for job in unexplained[:5]:
        starts = ", ".join(f"+{c.monotonic - start:.2f}" for c in repeated[job])
        print(f"    unexplained {job}: calls at {starts} s")

    assert not fleet.errors, f"a replacement worker did not start: {fleet.errors[0]}"
    assert not unfinished, f"{len(unfinished)} jobs never ended: {unfinished[:10]}"
    assert not failed, (
        f"{len(failed)} jobs failed: {[(j, states[j].get('result')) for j in failed[:5]]}"
    )
    assert not late, f"{len(late)} jobs completed more than {RECOVERY} s after the last kill"
    assert not never_called, f"completed without a provider call: {never_called[:10]}"
    assert not exited_alone, f"workers exited by themselves: {exited_alone} (see their logs)"
    assert not unexplained, f"{len(unexplained)} jobs called twice with no call in flight at a kill"
