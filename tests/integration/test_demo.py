"""`emp-tasks demo`: the offline showcase ends with every job as expected and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_every_showcase_job_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EMP_BROKER_URL", "EMP_RESULT_BACKEND")}
    env["EMP_VAR_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "emp_tasks.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unexpected" not in done.stdout
    labels = (
        "glif rate-limited, then ok",
        "openai out of credits",
        "gem-nano-banana (edit)",
        "comfyui workflow",
        "a1111 out of GPU memory, ok",
        "ollama (streamed)",
        "simulation retried, then ok",
        "glif logo-maker (named)",
    )
    for label in labels:
        assert label in done.stdout
    saved = {path.parent.name for path in (tmp_path / "assets").rglob("*.png")}
    assert saved == {
        "glif",
        "openai_responses",
        "openai_image",
        "gemini_image",
        "gemini_image_edit",
        "comfyui",
        "a1111",
    }
