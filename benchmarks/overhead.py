"""Throughput of `emp.glif` against a bare Celery task doing the same `requests.post`.

Same broker and result backend (a redis-server started here), same Glif emulator (a process of
its own, as a provider is: in this one its answers would wait on the submitting loop), same pool,
concurrency and N jobs; the bare task's session keeps as many connections as there are slots,
like emp's. Both sides' workers run at once (the idle side waits on Redis) and the N jobs go
through each side in turn, `--rounds` times, the first side alternating. Prints each run's
throughput, worker CPU and Redis commands per job, each round's ratio and their median (target
>= 0.9), the share of the ideal (concurrency / latency) emp reaches, and the emp worker's peak
RSS.

    .venv/bin/python benchmarks/overhead.py [--jobs 300] [--concurrency 5] [--latency 0.1]
        [--pool threads|gevent] [--processes 1] [--rounds 3] [--env NAME=VALUE ...]
    (--env: the emp worker's settings; --processes: worker processes per side sharing the C
    slots, e.g. one per core - one process is bound by its GIL to one core)
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
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


def run(
    label: str, submit: object, jobs: int, redis_url: str, pids: list[int], others: list[int]
) -> float:
    """One side's run; `others` are Redis' and the emulator's pids."""
    redis_pid, emulator_pid = others
    before, cpu = command_calls(redis_url), sum(map(cpu_seconds, pids))
    redis_cpu, emulator_cpu = cpu_seconds(redis_pid), cpu_seconds(emulator_pid)
    here_cpu = time.process_time()
    started = time.perf_counter()
    results = [submit() for _ in range(jobs)]  # type: ignore[operator]
    submitted = time.perf_counter() - started
    for result in results:
        result.get(timeout=300)
    elapsed = time.perf_counter() - started
    cpu_ms = (sum(map(cpu_seconds, pids)) - cpu) * 1000 / jobs
    redis_ms = (cpu_seconds(redis_pid) - redis_cpu) * 1000 / jobs
    emulator_ms = (cpu_seconds(emulator_pid) - emulator_cpu) * 1000 / jobs
    here_ms = (time.process_time() - here_cpu) * 1000 / jobs
    after = command_calls(redis_url)
    per_job = {name: (n - before.get(name, 0)) / jobs for name, n in after.items()}
    top = sorted(((n, name) for name, n in per_job.items() if n >= 0.05), reverse=True)
    print(
        f"{label:<10} {jobs} jobs in {elapsed:6.2f}s (submitted in {submitted:.2f}s)"
        f" = {jobs / elapsed:7.1f} jobs/s;"
        f" CPU per job: worker {cpu_ms:.2f} ms, Redis {redis_ms:.2f},"
        f" client {here_ms:.2f}, emulator {emulator_ms:.2f}"
    )
    print(
        f"{'':<10} Redis commands per job (client and worker): {sum(per_job.values()):.1f}: "
        + ", ".join(f"{name} {n:.1f}" for n, name in top[:20])
    )
    return jobs / elapsed


class EmulatorProcess:
    """The Glif emulator as its own process (`python -m emp_tasks.sandbox glif`)."""

    def __init__(self, latency: float) -> None:
        argv = [sys.executable, "-m", "emp_tasks.sandbox", "glif", "--port", "0"]
        argv += ["--token", TOKEN, "--latency", str(latency)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        # It prints its URL once serving.
        self.url = self.proc.stdout.readline().strip() if ready else ""
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the Glif emulator did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class PeakRss:
    """Samples the resident memory of processes on a thread and keeps the peak of their sum."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak_kib = pids, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss_kib(pid: int) -> int:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return int(next(x for x in status if x.startswith("VmRSS")).split()[1])

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                total = sum(map(self._rss_kib, self.pids))
            except (OSError, StopIteration):
                return
            self.peak_kib = max(self.peak_kib, total)

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
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes per side, sharing C"
    )
    parser.add_argument("--rounds", type=int, default=3, help="emp and bare runs, alternating")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    args = parser.parse_args()
    slots = max(1, args.concurrency // args.processes)

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    os.environ.update(EMP_BROKER_URL=broker, EMP_RESULT_BACKEND=f"redis://127.0.0.1:{port}/1")

    emulator = EmulatorProcess(args.latency)  # first: nothing else to stop if it fails
    redis_server = RedisServer(port).start()
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
    ours = [
        WorkerProcess(
            {**env, **settings}, logs / f"emp{n}.log", concurrency=slots, name=f"bench{n}"
        )
        for n in range(args.processes)
    ]
    bare_env = {**env, "BARE_POOL_SIZE": str(slots)}
    bare = [
        WorkerProcess(
            bare_env, logs / f"bare{n}.log", queues="bare", concurrency=slots, name=f"bare{n}"
        )
        for n in range(args.processes)
    ]
    for worker in bare:
        worker.argv[worker.argv.index("emp_tasks")] = "benchmarks.bare_app"
        worker.ready_when = (" ready.",)
    for worker in (*ours, *bare):
        worker.argv[worker.argv.index("threads")] = args.pool
    body = {"workflow_id": "sandbox-text", "inputs": ["benchmark"]}
    try:
        import emp_tasks
        from benchmarks.bare_app import glif_post

        processes = f" in {args.processes} processes" if args.processes > 1 else ""
        print(
            f"emulator latency {args.latency}s, {args.pool} pool, concurrency {args.concurrency}"
            f"{processes}, redis broker{', ' + ' '.join(args.env) if args.env else ''}"
        )
        bare_body = {"id": body["workflow_id"], "inputs": body["inputs"]}
        for worker in (*ours, *bare):  # both sides up at once; the idle side waits on Redis
            worker.start()
        # Warm-up: one job per slot on each side, so every thread and connection exists
        # before the first timed run (a cold pool of 1,000 threads is slower).
        for submit in (
            lambda: emp_tasks.tasks.glif.delay(body),
            lambda: glif_post.delay(bare_body),
        ):
            for result in [submit() for _ in range(args.concurrency)]:
                result.get(timeout=120)
        emp_pids = [worker.proc.pid for worker in ours if worker.proc is not None]
        bare_pids = [worker.proc.pid for worker in bare if worker.proc is not None]
        rss = PeakRss(emp_pids)
        assert redis_server.proc is not None
        redis_pid = redis_server.proc.pid
        sides = {
            "emp.glif": (lambda: emp_tasks.tasks.glif.delay(body), emp_pids),
            "bare": (lambda: glif_post.delay(bare_body), bare_pids),
        }
        ratios, emp_rates = [], []
        for round_ in range(args.rounds):
            # Alternate which side goes first, so a machine that slows down over the run
            # (2 shared cores) weighs on both alike.
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            rates = {}
            for label in order:
                submit, pids = sides[label]
                others = [redis_pid, emulator.proc.pid]
                rates[label] = run(label, submit, args.jobs, broker, pids, others)
            ratios.append(rates["emp.glif"] / rates["bare"])
            emp_rates.append(rates["emp.glif"])
            print(f"round {round_ + 1}: ratio emp/bare = {ratios[-1]:.3f}")
        peak = rss.stop()
        ideal = args.concurrency / args.latency
        print(
            f"ratio emp/bare = {statistics.median(ratios):.3f} (median of {len(ratios)};"
            f" range {min(ratios):.3f}-{max(ratios):.3f}; target >= 0.9)"
        )
        print(f"emp = {statistics.median(emp_rates) / ideal:.0%} of the ideal {ideal:.0f} jobs/s")
        print(f"emp worker peak RSS {peak:.0f} MiB{' (all processes)' if processes else ''}")
        return 0
    finally:
        for worker in (*ours, *bare):
            worker.stop()
        emulator.stop()
        redis_server.stop()
        if args.keep_logs:
            print(f"workers' logs: {logs}")
        else:
            subprocess.run(["rm", "-rf", str(logs)], check=False)


if __name__ == "__main__":
    sys.exit(main())
