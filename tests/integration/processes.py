"""Real processes for integration tests: redis-server and Celery workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import redis

__all__ = ["RedisServer", "WorkerProcess", "console_script", "start_mock_worker"]


class RedisServer:
    """A throwaway redis-server on a loopback port, no persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: `make system-deps` installs it")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def console_script(name: str) -> str:
    """The path of a console script installed beside this interpreter (emp-tasks, celery)."""
    return str(Path(sys.executable).with_name(name))


class WorkerProcess:
    """A worker started as users start it, from a directory that is not the repository.

    Default: `celery -A emp_tasks worker -Q <queues> -P threads ...` (the README's second form).
    `argv` replaces it, e.g. `[console_script("emp-tasks"), "worker", "--service", "glif"]`.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        queues: str = "glif",
        concurrency: int = 4,
        name: str = "test",
        argv: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.cwd = cwd or Path(tempfile.mkdtemp(prefix="emp-worker-cwd-"))
        self.argv = argv or [
            console_script("celery"),
            "-A",
            "emp_tasks",
            "worker",
            "-Q",
            queues,
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-E",
            "-l",
            "info",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> WorkerProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}: {self.text()}")
            text = self.text()
            # Ready, and its start-up health probes are done, so they are not counted among
            # the calls a test makes.
            if " ready." in text and "at start" in text:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready: {self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL after `timeout`; the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None if self.proc is None else self.proc.returncode


def start_mock_worker(folder: Path, name: str, env: Mapping[str, str]) -> WorkerProcess:
    """A started worker for the offline `mock` service, its log in `folder`."""
    return WorkerProcess(env, folder / "worker.log", queues="mock", name=name).start()
