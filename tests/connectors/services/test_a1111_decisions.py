"""AUTOMATIC1111's pure decisions: progress replies and `info` strings, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.services.a1111 import parse_info
from connectors.services.a1111_progress import read_progress
from emp_tasks.sandbox.a1111_replies import Generation, progress_reply

RUN = Generation("txt2img", {"prompt": "a fox"}, "a fox", 20, 64, 64, 1234, 1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (progress_reply(None, 0, 0), None),
        (progress_reply(RUN, 0, 2.0), (10.8, "Generating: 1% (step 0/20), about 2s left")),
        (progress_reply(RUN, 10, 1.0), (50.8, "Generating: 51% (step 10/20), about 1s left")),
        ({"progress": 7, "state": {"job_count": 1}}, (90.0, "Generating: 100%")),
        ({"progress": "half"}, None),
        ("not json", None),
    ],
)
def test_read_progress_table(body: Any, expected: tuple[float, str] | None) -> None:
    assert read_progress(body) == expected


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ('{"seed": 5}', {"seed": 5}),
        ({"seed": 6}, {"seed": 6}),
        ("{bad", {}),
        ("[1]", {}),
        (None, {}),
    ],
)
def test_parse_info_table(info: Any, expected: dict[str, Any]) -> None:
    assert parse_info(info) == expected
