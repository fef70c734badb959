"""Fixtures the service connector tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def clean_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENAI_* setting leaks in from the developer's shell (the OpenAI tests use it)."""
    for name in ("API_KEY", "BASE_URL", "ORGANIZATION", "PROJECT", "MAX_TOKENS", "TEMPERATURE"):
        monkeypatch.delenv(f"OPENAI_{name}", raising=False)
