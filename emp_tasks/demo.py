"""The offline showcase behind `emp-tasks demo` (run as `python -m emp_tasks.demo`).

It starts the Glif emulator and one Celery worker on the embedded default broker, submits four
jobs that show the contract - a success with its image saved, a rate limit honoured and then a
success, a workflow error that fails at once, a rejected token that fails at once - prints
progress and a final table, stops everything it started, and exits 0 only if every job ended the
way it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator

__all__ = ["DemoJob", "main"]


@dataclass(frozen=True)
class DemoJob:
    """One showcase job: its payload, the fault the emulator injects, and the expected end."""

    label: str
    payload: dict[str, Any]
    fault: Fault | None
    expect_status: str
    expect_attempts: int


JOBS = (
    DemoJob(
        "image job",
        {"workflow_id": "sandbox-image", "inputs": ["a friendly oval robot"]},
        None,
        "completed",
        1,
    ),
    DemoJob(
        "rate-limited, then ok",
        {"workflow_id": "sandbox-text", "inputs": ["robots"]},
        Fault("rate_limit", retry_after=2),
        "completed",
        2,
    ),
    DemoJob(
        "workflow error",
        {"workflow_id": "sandbox-json", "inputs": []},
        Fault("invalid_workflow"),
        "failed",
        1,
    ),
    DemoJob(
        "bad token",
        {"workflow_id": "sandbox-html", "inputs": []},
        Fault("unauthorized"),
        "failed",
        1,
    ),
)


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "emp_tasks",
        "worker",
        "-Q",
        "glif",
        "-P",
        "threads",
        "-c",
        "4",
        "-E",
        "-l",
        "info",
        "-n",
        "demo-glif@%h",
    ]
    with log.open("wb") as out:  # the worker's own log, kept out of the showcase's output
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _watch(ids: dict[str, DemoJob], timeout: float) -> dict[str, dict[str, Any]]:
    from emp_tasks.client import job_record

    shown: dict[str, str] = {}
    records: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        for job_id, job in ids.items():
            if records.get(job_id, {}).get("status") in ("completed", "failed"):
                continue
            record = job_record(job_id, "glif")
            record["wall_seconds"] = time.monotonic() - started
            records[job_id] = record
            pct = (record.get("progress") or {}).get("progress")
            line = f"{record['status']}" + (f" {pct:.0f}%" if pct is not None else "")
            if shown.get(job_id) != line:
                shown[job_id] = line
                print(f"  {job.label:<24} {line}", flush=True)
        if all(r["status"] in ("completed", "failed") for r in records.values()):
            break
        time.sleep(0.2)
    return records


def _table(ids: dict[str, DemoJob], records: dict[str, dict[str, Any]], elapsed: float) -> bool:
    print(f"\n{'job':<24} {'status':<10} {'attempts':>8}  {'failure type':<18} {'time':>6}")
    print("-" * 72)
    ok = True
    for job_id, job in ids.items():
        rec = records[job_id]
        failure = (rec.get("error") or {}).get("failure_type") or "-"
        took = f"{rec['wall_seconds']:.1f}s"
        good = rec["status"] == job.expect_status and rec["attempts"] == job.expect_attempts
        ok = ok and good
        print(
            f"{job.label:<24} {rec['status']:<10} {rec['attempts']!s:>8}  {failure:<18} "
            f"{took:>6}{'' if good else '  <- unexpected'}"
        )
    print(f"\nall jobs done in {elapsed:.1f}s")
    return ok


def _saved(records: dict[str, dict[str, Any]]) -> None:
    for rec in records.values():
        data = (rec.get("result") or {}).get("data") or {}
        if data.get("content_type") == "image":
            print(f"image saved at: {data.get('image_url')}")


def main() -> int:
    var = Path(os.environ.get("EMP_VAR_DIR") or "var/demo")
    shutil.rmtree(var / "broker", ignore_errors=True)  # no jobs left over from an earlier run
    var.mkdir(parents=True, exist_ok=True)
    emulator = GlifEmulator(latency=0.8).start()  # slow enough to watch progress
    env = {
        **os.environ,
        "GLIF_API_TOKEN": "sandbox-token",
        "GLIF_BASE_URL": emulator.url,
        "GLIF_RETRY_DELAY_SECONDS": "1",
        "CLOUD_STORAGE_PROVIDER": "local",
        "ASSET_DOWNLOAD_ALLOW_HOSTS": "127.0.0.1",
        "EMP_VAR_DIR": str(var.resolve()),
    }
    os.environ.update(env)
    import emp_tasks  # after EMP_VAR_DIR is set: the embedded broker lives there

    print(f"Glif emulator at {emulator.url}; starting a worker on queue 'glif' ...", flush=True)
    log = var / "worker.log"
    proc = _worker(env, log)
    try:
        started = time.monotonic()
        ids = {}
        for job in JOBS:
            if job.fault is not None:
                emulator.queue_faults(
                    [job.fault], match={"workflow_id": job.payload["workflow_id"]}
                )
            ids[emp_tasks.submit("glif", job.payload).id] = job
        records = _watch(ids, timeout=90)
        ok = _table(ids, records, time.monotonic() - started)
        _saved(records)
        print(f"provider calls made: {len(emulator.calls())}; worker log: {log}")
        return 0 if ok else 1
    finally:
        _stop(proc)
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
