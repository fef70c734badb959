"""Throughput of `emp.glif` against a bare Celery task doing the same `requests.post`.

Same broker and result backend (a redis-server started here), same Glif emulator, same pool,
concurrency and N jobs; the bare task's session keeps as many connections as there are slots,
like emp's. Prints both throughputs, their ratio (target >= 0.9), the share of the ideal
(concurrency / latency) emp reaches, and the emp worker's peak RSS.

    .venv/bin/python benchmarks/overhead.py [--jobs 300] [--concurrency 5] [--latency 0.1]
        [--pool threads|gevent] [--env NAME=VALUE ...]   (--env: the emp worker's settings)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402  (also pins EMP_* for this process)
from tests.integration.processes import RedisServer, WorkerProcess  # noqa: E402

TOKEN = "bench-token"


def command_calls(url: str) -> dict[str, int]:
    """Redis' count of each command it has run (INFO commandstats)."""
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its reaped children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run(label: str, submit: object, jobs: int, redis_url: str, pid: int) -> float:
    before, cpu = command_calls(redis_url), cpu_seconds(pid)
    started = time.perf_counter()
    results = [submit() for _ in range(jobs)]  # type: ignore[operator]
    for result in results:
        result.get(timeout=300)
    elapsed = time.perf_counter() - started
    cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / jobs
    after = command_calls(redis_url)
    per_job = {name: (n - before.get(name, 0)) / jobs for name, n in after.items()}
    top = sorted(((n, name) for name, n in per_job.items() if n >= 0.05), reverse=True)
    print(
        f"{label:<10} {jobs} jobs in {elapsed:6.2f}s = {jobs / elapsed:7.1f} jobs/s;"
        f" worker CPU {cpu_ms:.2f} ms per job"
    )
    print(
        f"{'':<10} Redis commands per job (client and worker): {sum(per_job.values()):.1f}: "
        + ", ".join(f"{name} {n:.1f}" for n, name in top[:20])
    )
    return jobs / elapsed


class PeakRss:
    """Samples a process's resident memory on a thread and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.wait(0.2):
            try:
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS"))
            except (OSError, StopIteration):
                return
            self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def stop(self) -> float:
        """The peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.1, help="emulator seconds per call")
    parser.add_argument("--pool", choices=["threads", "gevent"], default="threads")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
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
        "GLIF_RATE_LIMIT": "0",  # overhead, not the limiter: the emulator has no limit
        "PYTHONPATH": str(ROOT),
        "EMP_BROKER_URL": broker,
        "EMP_RESULT_BACKEND": os.environ["EMP_RESULT_BACKEND"],
    }
    logs = Path(tempfile.mkdtemp(prefix="emp-bench-"))
    settings = dict(item.split("=", 1) for item in args.env)
    ours = WorkerProcess(
        {**env, **settings}, logs / "emp.log", concurrency=args.concurrency, name="bench"
    )
    bare_env = {**env, "BARE_POOL_SIZE": str(args.concurrency)}
    bare = WorkerProcess(
        bare_env, logs / "bare.log", queues="bare", concurrency=args.concurrency, name="bare"
    )
    bare.argv[bare.argv.index("emp_tasks")] = "benchmarks.bare_app"
    bare.ready_when = (" ready.",)
    for worker in (ours, bare):
        worker.argv[worker.argv.index("threads")] = args.pool
    body = {"workflow_id": "sandbox-text", "inputs": ["benchmark"]}
    try:
        import emp_tasks
        from benchmarks.bare_app import glif_post

        print(
            f"emulator latency {args.latency}s, {args.pool} pool, concurrency {args.concurrency},"
            f" redis broker{', ' + ' '.join(args.env) if args.env else ''}"
        )
        ours.start()
        emp_tasks.submit("glif", body).get(timeout=60)  # warm-up: imports, connections
        assert ours.proc is not None
        rss = PeakRss(ours.proc.pid)
        emp_rate = run(
            "emp.glif", lambda: emp_tasks.tasks.glif.delay(body), args.jobs, broker, ours.proc.pid
        )
        peak = rss.stop()
        ours.stop()
        bare.start()
        glif_post.delay({"id": body["workflow_id"], "inputs": body["inputs"]}).get(timeout=60)
        assert bare.proc is not None
        bare_rate = run(
            "bare",
            lambda: glif_post.delay({"id": body["workflow_id"], "inputs": body["inputs"]}),
            args.jobs,
            broker,
            bare.proc.pid,
        )
        ideal = args.concurrency / args.latency
        print(f"ratio emp/bare = {emp_rate / bare_rate:.3f} (target >= 0.9)")
        print(
            f"emp = {emp_rate / ideal:.0%} of the ideal {ideal:.0f} jobs/s;"
            f" bare {bare_rate / ideal:.0%}"
        )
        print(f"emp worker peak RSS {peak:.0f} MiB")
        return 0
    finally:
        ours.stop()
        bare.stop()
        emulator.stop()
        redis_server.stop()
        subprocess.run(["rm", "-rf", str(logs)], check=False)


if __name__ == "__main__":
    sys.exit(main())
