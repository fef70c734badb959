"""benchmarks/overhead.py runs end to end as the README shows it, on a small load."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_overhead_benchmark_prints_each_run_the_ratio_and_the_peak_rss(
    tmp_path: Path,
) -> None:
    argv = [sys.executable, str(ROOT / "benchmarks" / "overhead.py")]
    argv += ["--jobs", "20", "--concurrency", "4", "--latency", "0.05", "--rounds", "1"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = re.findall(
        r"^(emp\.glif|bare) +20 jobs in .* jobs/s; CPU per job: worker [\d.]+ ms, Redis [\d.]+,"
        r" client [\d.]+, emulator [\d.]+$",
        done.stdout,
        re.MULTILINE,
    )
    assert sorted(runs) == ["bare", "emp.glif"]
    assert re.search(r"^ratio emp/bare = [\d.]+ \(median of 1;", done.stdout, re.MULTILINE)
    assert re.search(r"^emp worker peak RSS \d+ MiB", done.stdout, re.MULTILINE)
