"""The offline showcase behind `emp-tasks demo` (run as `python -m emp_tasks.demo`).

It starts an emulator of every provider and one Celery worker on the embedded default broker,
then submits the jobs of `emp_tasks.demo_jobs`, which show the contract: a Glif image saved to
storage, a rate limit honoured and then a success, a workflow error and a rejected token that
fail at once, one job of each OpenAI, Gemini, ComfyUI, AUTOMATIC1111, Ollama and simulation
kind, a named Glif workflow, a GPU out-of-memory retried, and an OpenAI 429 that means "out of
credits" (not retried). It prints progress and a final table, stops everything it started, and
exits 0 only if every job ended the way it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from emp_tasks.demo_jobs import DemoJob, demo_jobs
from emp_tasks.sandbox.a1111 import A1111Emulator
from emp_tasks.sandbox.comfyui import ComfyUIEmulator
from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.ollama import OllamaEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.png import make_png
from emp_tasks.sandbox.server import EmulatorServer

__all__ = ["main"]

TOKEN = "sandbox-token"
QUEUES = (
    "glif,openai_text,openai_responses,openai_image,gemini_text,gemini_image,gemini_image_edit,"
    "comfyui,a1111,ollama,simulation"
)


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # The documented command, as a user types it: `emp-tasks worker --service a,b,...`.
    argv = [sys.executable, "-m", "emp_tasks.cli", "worker", "--service", QUEUES]
    # Threads for all: the GPU services' prefork pool of one would serialise the whole showcase.
    argv += ["--pool", "threads", "--concurrency", "8", "--name", "demo@%h"]
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
            record = job_record(job_id)
            record["wall_seconds"] = time.monotonic() - started
            records[job_id] = record
            pct = (record.get("progress") or {}).get("progress")
            line = f"{record['status']}" + (f" {pct:.0f}%" if pct is not None else "")
            if shown.get(job_id) != line:
                shown[job_id] = line
                print(f"  {job.label:<28} {line}", flush=True)
        if all(r["status"] in ("completed", "failed") for r in records.values()):
            break
        time.sleep(0.2)
    return records


def _table(ids: dict[str, DemoJob], records: dict[str, dict[str, Any]], elapsed: float) -> bool:
    print(f"\n{'job':<28} {'status':<10} {'attempts':>8}  {'failure type':<18} {'time':>6}")
    print("-" * 76)
    ok = True
    for job_id, job in ids.items():
        rec = records[job_id]
        failure = (rec.get("error") or {}).get("failure_type") or "-"
        good = rec["status"] == job.expect_status and rec["attempts"] == job.expect_attempts
        ok = ok and good
        print(
            f"{job.label:<28} {rec['status']:<10} {rec['attempts']!s:>8}  {failure:<18} "
            f"{rec['wall_seconds']:5.1f}s{'' if good else '  <- unexpected'}"
        )
    print(f"\nall jobs done in {elapsed:.1f}s")
    return ok


def _saved(records: dict[str, dict[str, Any]]) -> None:
    for rec in records.values():
        for saved in (rec.get("result") or {}).get("output_files") or []:
            print(f"saved: {saved['metadata']['url']}")


def _environment(var: Path, emulators: dict[str, EmulatorServer]) -> dict[str, str]:
    glif, openai, gemini = emulators["glif"], emulators["openai"], emulators["gemini"]
    return {
        **os.environ,
        "EMP_VAR_DIR": str(var.resolve()),
        "GLIF_API_TOKEN": TOKEN,
        "GLIF_BASE_URL": glif.url,
        "GLIF_RETRY_DELAY_SECONDS": "1",
        "OPENAI_API_KEY": TOKEN,
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OPENAI_RETRY_DELAY_SECONDS": "1",
        "OPENAI_RESPONSES_POLL_INTERVAL_SECONDS": "0.5",
        "GEMINI_API_KEY": TOKEN,
        "GEMINI_BASE_URL": f"{gemini.url}/v1beta",
        "CLOUD_STORAGE_PROVIDER": "local",
        "CLOUD_STORAGE_LOCAL_DIR": str(var / "assets"),
        "ASSET_DOWNLOAD_ALLOW_HOSTS": "127.0.0.1",
        "COMFYUI_BASE_URL": emulators["comfyui"].url,
        "COMFYUI_RETRY_DELAY_SECONDS": "1",
        "A1111_BASE_URL": emulators["a1111"].url,
        "A1111_RETRY_DELAY_SECONDS": "1",
        "A1111_PROGRESS_INTERVAL_SECONDS": "0.25",
        "OLLAMA_BASE_URL": emulators["ollama"].url,
        "OLLAMA_RETRY_DELAY_SECONDS": "1",
    }


def _inject(job: DemoJob, emulators: dict[str, EmulatorServer]) -> None:
    if job.fault is not None and job.match is not None:
        provider = next(name for name in emulators if job.service.startswith(name))
        emulators[provider].queue_faults([job.fault], match={job.match[0]: job.match[1]})


def main() -> int:
    var = Path(os.environ.get("EMP_VAR_DIR") or "var/demo")
    shutil.rmtree(var / "broker", ignore_errors=True)  # no jobs left over from an earlier run
    var.mkdir(parents=True, exist_ok=True)
    emulators: dict[str, EmulatorServer] = {
        "glif": GlifEmulator(tokens=(TOKEN,), latency=0.8).start(),  # slow enough to watch
        "openai": OpenAIEmulator(tokens=(TOKEN,)).start(),
        "gemini": GeminiEmulator(tokens=(TOKEN,)).start(),
        "comfyui": ComfyUIEmulator(step_delay=0.1).start(),
        "a1111": A1111Emulator(step_seconds=0.05).start(),
        "ollama": OllamaEmulator().start(),
    }
    gemini = emulators["gemini"]
    assert isinstance(gemini, GeminiEmulator)
    gemini.add_file("input.png", make_png("demo-input", 64, 64), "image/png")
    env = _environment(var, emulators)
    os.environ.update(env)
    import emp_tasks  # after EMP_VAR_DIR is set: the embedded broker lives there

    log = var / "worker.log"
    print("Emulators: " + ", ".join(f"{n} {e.url}" for n, e in emulators.items()), flush=True)
    print(f"Starting one worker on queues {QUEUES} ...", flush=True)
    proc = _worker(env, log)
    try:
        started = time.monotonic()
        ids: dict[str, DemoJob] = {}
        for job in demo_jobs(gemini):
            _inject(job, emulators)
            ids[emp_tasks.submit(job.service, job.payload).id] = job
        records = _watch(ids, timeout=90)
        ok = _table(ids, records, time.monotonic() - started)
        _saved(records)
        calls = sum(len(e.calls()) for e in emulators.values())
        print(f"provider calls made: {calls}; worker log: {log}")
        return 0 if ok else 1
    finally:
        _stop(proc)
        for emulator in emulators.values():
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
