"""Every command the README shows, run as written, in order, from a directory outside the repo.

The README's ```bash blocks are read as a user follows them: `export` lines set the shell's
environment, long-running commands (workers, Flower, the sandbox emulator) are started and left
running - each until it says it is ready - and every other line must exit 0. It runs on the
embedded default (no EMP_BROKER_URL), as a new user would. The OpenAI and Gemini emulators stand
in for the real APIs of the user's own environment, so nothing leaves loopback.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Lines started and left running, and what each prints or answers once it is ready.
LONG_RUNNING = (
    "emp-tasks worker",
    "celery -A emp_tasks worker",
    "emp-tasks flower",
    "python -m emp_tasks.sandbox",
)
# The one line not run here, and why.
NOT_RUN = {"make test": "it is the command that runs this test"}
REPO_COMMANDS = ("make ",)  # typed in the clone: run from the repository root
# [--opt], <id>, JOB_ID, ...: a template the user would have to fill in
PLACEHOLDER = re.compile(r"^(\[.*\]|<.*>|[A-Z][A-Z_]{2,}|\.\.\.)$")


def readme_commands(text: str) -> list[str]:
    """The command lines of every bash block, in order, without comments."""
    lines = []
    for block in BLOCK.findall(text):
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def command(line: str) -> str:
    """The line without its leading `VAR=value` assignments."""
    return re.sub(r"^(\w+=\S*\s+)+", "", line)


def apply_export(line: str, env: dict[str, str]) -> None:
    for assignment in shlex.split(line)[1:]:
        name, _, value = assignment.partition("=")
        env[name] = value


class Started:
    """A long-running README command, its output in a file."""

    def __init__(self, line: str, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.line, self.log = line, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", line],  # its own session: stopped as a group
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if "flower" in self.line:
            port = re.search(r"--port[ =](\d+)", self.line)
            url = f"http://127.0.0.1:{port.group(1) if port else 5555}/healthcheck"
            try:
                return requests.get(url, timeout=1).ok
            except requests.RequestException:
                return False
        if "emp_tasks.sandbox" in self.line:
            return "http://" in self.text()
        return " ready." in self.text()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            code = self.proc.poll()
            assert code is None, f"{self.line!r} exited {code}: {self.text()}"
            assert time.monotonic() < deadline, f"{self.line!r} not ready: {self.text()}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def user_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A shell with the project installed and the user's own OpenAI and Gemini keys."""
    with OpenAIEmulator(tokens=("sk-user",)) as openai, GeminiEmulator(tokens=("g-user",)) as gem:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EMP_", "GLIF_", "OPENAI_", "GEMINI_", "FLOWER_"))
        }
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            OPENAI_API_KEY="sk-user",
            OPENAI_BASE_URL=openai.url + "/v1",
            GEMINI_API_KEY="g-user",
            GEMINI_BASE_URL=gem.url + "/v1beta",
        )
        yield env


def test_readme_lists_only_commands_this_test_can_run() -> None:
    commands = readme_commands(README.read_text())
    assert commands, "no bash blocks found"
    for line in commands:
        assert not line.endswith("&"), f"{line!r}: say 'in a terminal of its own' instead"
        templates = [token for token in shlex.split(line) if PLACEHOLDER.match(token)]
        assert templates == [], f"{line!r} is a template, not a command"


@pytest.mark.timeout(420)
def test_every_readme_command_runs_as_written(user_env: dict[str, str], tmp_path: Path) -> None:
    env, started = dict(user_env), []
    try:
        for number, line in enumerate(readme_commands(README.read_text())):
            if line in NOT_RUN:
                continue
            if line.startswith("export "):
                apply_export(line, env)
            elif command(line).startswith(LONG_RUNNING):
                proc = Started(line, env, tmp_path, tmp_path / f"long-{number}.log")
                started.append(proc)
                proc.wait_ready()
            else:
                cwd = ROOT if line.startswith(REPO_COMMANDS) else tmp_path
                done = subprocess.run(
                    ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True,
                    timeout=180,
                )  # fmt: skip
                assert done.returncode == 0, f"{line!r}: {done.stdout}\n{done.stderr}"
    finally:
        for proc in reversed(started):
            proc.stop()
    assert (tmp_path / "var" / "assets").exists()  # the tour's image was saved where it says
