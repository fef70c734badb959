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

__all__ = [
    "PersistentRedisServer",
    "RabbitMQServer",
    "RedisServer",
    "WorkerProcess",
    "console_script",
    "start_mock_worker",
]


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


def _rabbitmq_binary(name: str) -> str:
    # Debian's /usr/sbin wrappers switch to the rabbitmq user (another Erlang cookie, no access
    # to our folder); the scripts behind them run as whoever starts them.
    direct = Path("/usr/lib/rabbitmq/bin") / name
    return str(direct) if direct.exists() else shutil.which(name) or name


class RabbitMQServer:
    """A throwaway rabbitmq-server node of its own on loopback ports, in a temporary folder."""

    def __init__(self, port: int, dist_port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.node = f"emptest{port}@localhost"
        (folder / "plugins").write_text("[].\n")  # no plugins: a quicker start
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "plugins"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 60) -> RabbitMQServer:
        binary = _rabbitmq_binary("rabbitmq-server")
        for sub in ("mnesia", "log"):
            (self.folder / sub).mkdir(exist_ok=True)
        if not Path(binary).exists():
            raise RuntimeError("rabbitmq-server not found: `make system-deps` installs it")
        log = (self.folder / "server.log").open("wb")
        self.proc = subprocess.Popen([binary], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.folder / "server.log").read_text(errors="replace"))
            try:
                if self.ctl("await_startup", timeout=15).returncode == 0:
                    return self
            except (
                subprocess.TimeoutExpired
            ):  # rabbitmqctl's own VM is slow to start on a busy host
                continue
            time.sleep(0.5)
        raise RuntimeError("rabbitmq-server did not start")

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`rabbitmqctl -n NODE ARGS`."""
        binary = _rabbitmq_binary("rabbitmqctl")
        return subprocess.run(
            [binary, "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.ctl("stop", timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
        # Ready, and its start-up health probes are done, so they are not counted among the
        # calls a test makes (a plain Celery app, as the benchmarks' baseline, has no probes).
        self.ready_when: tuple[str, ...] = (" ready.", "at start")

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
            if all(marker in text for marker in self.ready_when):
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


class PersistentRedisServer(RedisServer):
    """A redis-server that keeps its data in `folder` with the append-only file on.

    `kill()` is a `kill -9`; `start()` again on the same port and folder reloads the AOF, so
    whatever the server had acknowledged before it died is back.
    """

    def __init__(self, port: int, folder: Path, fsync: str = "everysec") -> None:
        super().__init__(port)
        self.folder, self.fsync = folder, fsync

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> PersistentRedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: `make system-deps` installs it")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}")
            try:
                if client.ping():  # answers only once the AOF is loaded
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """`kill -9`: no shutdown, no final write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
