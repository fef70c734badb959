"""A storm against a rate-limited provider: N Glif jobs, 2 worker processes, one shared limit.

The Glif emulator allows `--limit` calls a second (a bucket of that many; beyond it 429 with
Retry-After). Two `emp-tasks worker --service glif` processes x `--concurrency` threads share
a redis-server started here, and with it the limiter, the Retry-After holds and the breaker.
Prints failed jobs, provider calls per completed job and the wall time against the ideal
(jobs / limit). Targets: 0 failed, <= 1.1 calls per job, <= 1.3x the ideal.

    .venv/bin/python benchmarks/storm.py [--jobs 200] [--limit 10] [--no-limiter]

`--no-limiter` sets GLIF_RATE_LIMIT=0: no spacing, so calls beyond the provider's limit get
429s; the shared Retry-After holds (and the breaker) still apply.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402  (also pins EMP_* for this process)
from tests.integration.processes import RedisServer, WorkerProcess, console_script  # noqa: E402

TOKEN = "storm-token"
BODY = {"workflow_id": "sandbox-text", "inputs": ["storm"]}


def _workers(env: dict[str, str], logs: Path, count: int, concurrency: int) -> list[WorkerProcess]:
    workers = []
    for index in range(count):
        argv = [console_script("emp-tasks"), "worker", "--service", "glif"]
        argv += ["--concurrency", str(concurrency), "--name", f"storm{index}-{os.getpid()}@%h"]
        workers.append(WorkerProcess(env, logs / f"worker{index}.log", argv=argv))
    return workers


def _storm(jobs: int) -> tuple[list[Any], float]:
    import emp_tasks

    started = time.perf_counter()
    results = [emp_tasks.tasks.glif.delay(BODY) for _ in range(jobs)]
    for result in results:
        result.get(timeout=600, propagate=False)
    return results, time.perf_counter() - started


def _report(results: list[Any], elapsed: float, calls: list[Any], waits: int, args: Any) -> None:
    failed = sum(1 for r in results if r.state != "SUCCESS")
    completed = len(results) - failed
    retried = sum(
        (r.result.get("metadata", {}).get("attempts", 1) - 1)
        for r in results
        if r.state == "SUCCESS"
    )
    ideal = args.jobs / args.limit
    per_job = len(calls) / completed if completed else float("inf")
    print(
        f"jobs {args.jobs}, limit {args.limit:g}/s, {args.workers} workers x {args.concurrency}"
        f" {args.pool}"
    )
    print(f"failed              {failed} (target 0)")
    print(f"completed           {completed}, retries among them {retried}")
    print(f"provider calls      {len(calls)} ({sum(1 for c in calls if c.status == 429)} x 429)")
    print(f"calls per completed {per_job:.3f} (target <= 1.1)")
    print(f"waits               {waits} (re-queued for a slot, a hold or the breaker)")
    times = sorted(call.monotonic for call in calls)
    idle = sum(max(0.0, b - a - 1.5 / args.limit) for a, b in itertools.pairwise(times))
    print(f"idle provider time  {idle:.2f}s (gaps between calls beyond 1.5 intervals)")
    print(f"wall time           {elapsed:.2f}s, ideal {ideal:.1f}s = {elapsed / ideal:.2f}x")
    print("                    (target <= 1.3x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--limit", type=float, default=10.0, help="provider calls a second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="emulator seconds per call")
    parser.add_argument("--no-limiter", action="store_true", help="GLIF_RATE_LIMIT=0")
    parser.add_argument("--pool", default="threads", help="the workers' pool: threads or gevent")
    args = parser.parse_args()

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    os.environ.update(EMP_BROKER_URL=broker, EMP_RESULT_BACKEND=f"redis://127.0.0.1:{port}/1")
    from emp_tasks.sandbox.glif import GlifEmulator

    redis_server = RedisServer(port).start()
    emulator = GlifEmulator(tokens=(TOKEN,), latency=args.latency).start()
    limit = "0" if args.no_limiter else f"{args.limit:g}/s"
    env = {
        "GLIF_API_TOKEN": TOKEN,
        "GLIF_BASE_URL": emulator.url,
        "GLIF_RATE_LIMIT": limit,
        "GLIF_HEALTH_CHECK_INTERVAL_SECONDS": "0",
        "GLIF_POOL": args.pool,
        "PYTHONPATH": str(ROOT),
        "EMP_BROKER_URL": broker,
        "EMP_RESULT_BACKEND": os.environ["EMP_RESULT_BACKEND"],
    }
    logs = Path(tempfile.mkdtemp(prefix="emp-storm-"))
    workers = _workers(env, logs, args.workers, args.concurrency)
    try:
        import emp_tasks

        for worker in workers:
            worker.start()
        emp_tasks.submit("glif", BODY).get(timeout=60)  # warm-up: imports, connections
        time.sleep(1.0)  # the warm-up's call leaves the emulator's bucket full again
        emulator.reset()
        emulator.set_rate_limit(args.limit)
        results, elapsed = _storm(args.jobs)
        calls = [call for call in emulator.calls() if call.kind == "provider"]
        time.sleep(0.5)  # the last log lines reach the files
        waits = sum(worker.text().count(" waited after ") for worker in workers)
        _report(results, elapsed, calls, waits, args)
        return 0
    finally:
        for worker in workers:
            worker.stop()
        emulator.stop()
        redis_server.stop()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
