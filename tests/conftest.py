"""Test-session wiring.

The test process is a Celery *client* of the workers that integration tests start. Its broker and
result backend are read once, when `emp_tasks` is first imported, so they are pinned here, before
any test module imports it: a Redis on a port chosen now, started by the `redis_url` fixture only
when an integration test asks for it. Tests of the embedded default run their clients as
subprocesses with their own environment.
"""

from __future__ import annotations

import os
import socket
import tempfile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS_PORT = free_port()
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
os.environ["EMP_BROKER_URL"] = REDIS_URL
os.environ["EMP_RESULT_BACKEND"] = f"redis://127.0.0.1:{REDIS_PORT}/1"
os.environ["EMP_VAR_DIR"] = tempfile.mkdtemp(prefix="emp-tasks-tests-")
