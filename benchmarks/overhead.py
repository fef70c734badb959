"""Throughput of `emp.glif` against a bare Celery task doing the same `requests.post`.

Same broker and result backend (a redis-server started here), same Glif emulator, same
concurrency, same N jobs. Prints both throughputs and their ratio (target >= 0.9).

    .venv/bin/python benchmarks/overhead.py [--jobs 300] [--concurrency 5] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402  (also pins EMP_* for this process)
from tests.integration.processes import RedisServer, WorkerProcess  # noqa: E402

TOKEN = "bench-token"


def run(label: str, submit: object, jobs: int) -> float:
    started = time.perf_counter()
    results = [submit() for _ in range(jobs)]  # type: ignore[operator]
    for result in results:
        result.get(timeout=300)
    elapsed = time.perf_counter() - started
    print(f"{label:<10} {jobs} jobs in {elapsed:6.2f}s = {jobs / elapsed:7.1f} jobs/s")
    return jobs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.1, help="emulator seconds per call")
    args = parser.parse_args()

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    os.environ.update(EMP_BROKER_URL=broker, EMP_RESULT_BACKEND=f"redis://127.0.0.1:{port}/1")
    from emp_tasks.sandbox.glif import GlifEmulator

    redis_server = RedisServer(port).start()
    emulator = GlifEmulator(tokens=(TOKEN,), latency=args.latency).start()
    env = {
        "GLIF_API_TOKEN": TOKEN,
        "GLIF_BASE_URL": emulator.url,
        "PYTHONPATH": str(ROOT),
        "EMP_BROKER_URL": broker,
        "EMP_RESULT_BACKEND": os.environ["EMP_RESULT_BACKEND"],
    }
    logs = Path(tempfile.mkdtemp(prefix="emp-bench-"))
    ours = WorkerProcess(env, logs / "emp.log", concurrency=args.concurrency, name="bench")
    bare = WorkerProcess(
        env, logs / "bare.log", queues="bare", concurrency=args.concurrency, name="bare"
    )
    bare.argv[bare.argv.index("emp_tasks")] = "benchmarks.bare_app"
    body = {"workflow_id": "sandbox-text", "inputs": ["benchmark"]}
    try:
        import emp_tasks
        from benchmarks.bare_app import glif_post

        print(f"emulator latency {args.latency}s, concurrency {args.concurrency}, redis broker")
        ours.start()
        emp_tasks.submit("glif", body).get(timeout=60)  # warm-up: imports, connections
        emp_rate = run("emp.glif", lambda: emp_tasks.tasks.glif.delay(body), args.jobs)
        ours.stop()
        bare.start()
        glif_post.delay({"id": body["workflow_id"], "inputs": body["inputs"]}).get(timeout=60)
        bare_rate = run(
            "bare",
            lambda: glif_post.delay({"id": body["workflow_id"], "inputs": body["inputs"]}),
            args.jobs,
        )
        print(f"ratio emp/bare = {emp_rate / bare_rate:.3f} (target >= 0.9)")
        return 0
    finally:
        ours.stop()
        bare.stop()
        emulator.stop()
        redis_server.stop()
        subprocess.run(["rm", "-rf", str(logs)], check=False)


if __name__ == "__main__":
    sys.exit(main())
