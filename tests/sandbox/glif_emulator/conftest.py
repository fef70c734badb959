"""Fixtures for the Glif emulator tests: one emulator per module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from emp_tasks.sandbox.glif import GlifEmulator
from tests.sandbox.glif_emulator.support import AUTH, TOKEN


@pytest.fixture(scope="module")
def server() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,)) as emulator:
        yield emulator


@pytest.fixture
def glif(server: GlifEmulator) -> GlifEmulator:
    server.reset()  # each test starts with an empty call log and fault queue
    return server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session
