"""Job webhooks end to end: a real `emp-tasks worker --service mock --webhooks` on the test Redis,
posting to a real receiver (an http.server on 127.0.0.1) that verifies every signature with the
`standardwebhooks` package, fails first attempts on purpose, and counts what it accepted.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

import emp_tasks
from connectors.errors import ConnectorError
from tests.conftest import REDIS_PORT, REDIS_URL, free_port
from tests.integration.helpers import EventCollector, finish
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"integration-webhook-key-5f3a9c1e").decode()
KEY = SECRET.removeprefix("whsec_")
EMP_TASKS = console_script("emp-tasks")
FLAKY_FAILURES = 2  # /flaky answers 503 to the first two attempts of each message


@dataclass
class Receiver:
    """What the receiver saw: every attempt (verified or not) and each accepted message."""

    attempts: list[tuple[str, str, int]] = field(default_factory=list)  # id, path, status
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # webhook-id: body
    unverified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            payload = Webhook(SECRET).verify(body, headers)
        except Exception:
            with self.lock:
                self.unverified += 1
            return 400
        message_id = headers["webhook-id"]
        with self.lock:
            tried = sum(1 for seen, _, _ in self.attempts if seen == message_id)
            status = {"/gone": 410}.get(path, 200)
            if path == "/flaky" and tried < FLAKY_FAILURES:
                status = 503
            self.attempts.append((message_id, path, status))
            if status == 200:
                assert message_id not in self.accepted, "a message accepted twice"
                self.accepted[message_id] = payload
        return status

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for body in self.accepted.values() if body["job_id"] == job_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    seen = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status = seen.answer(self.path, body, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield seen, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def webhook_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = Path(tmp_path_factory.mktemp("webhooks"))
    env = {
        "EMP_BROKER_URL": REDIS_URL,
        "EMP_RESULT_BACKEND": REDIS_URL.replace("/0", "/1"),
        "EMP_WEBHOOK_SECRET": SECRET,
        "EMP_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "EMP_WEBHOOK_RETRY_DELAYS": "0.2",  # the schedule, shortened through its setting
        "EMP_WEBHOOK_MAX_ATTEMPTS": "4",
        "MOCK_MAX_RETRIES": "1",
        "MOCK_RETRY_DELAY_SECONDS": "0.1",
    }
    argv = [EMP_TASKS, "worker", "--service", "mock", "--webhooks", "--concurrency", "4"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def _client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The submitting process holds the secret (to verify) and its own allow-list."""
    monkeypatch.setenv("EMP_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("EMP_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")


def _submit(url: str, events: list[str] | None = None, **payload: Any) -> Any:
    hook: dict[str, Any] = {"url": url} if events is None else {"url": url, "events": events}
    return emp_tasks.submit("mock", {"delay_ms": 50, **payload}, ctx={"webhook": hook})


def _until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def _sequence(body: dict[str, Any]) -> int:
    return int(body["sequence"])


def _redis_values() -> Iterator[str]:
    """Every value in the test Redis's broker and result databases, as text."""
    for db in (0, 1):
        client = redis.Redis(port=REDIS_PORT, db=db)
        for key in client.keys("*"):
            kind = client.type(key)
            if kind == b"string":
                yield str(client.get(key))
            elif kind == b"list":
                yield str(client.lrange(key, 0, -1))
            elif kind == b"hash":
                yield str(client.hgetall(key))
            elif kind == b"zset":
                yield str(client.zrange(key, 0, -1))
            elif kind == b"set":
                yield str(client.smembers(key))


def test_a_flaky_receiver_gets_each_event_once_per_webhook_id_after_503s(
    webhook_worker: WorkerProcess, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    job = _submit(f"{base}/flaky")
    assert finish(job)["status"] == "completed"
    body = _until(lambda: seen.for_job(job.id))[0]
    assert (body["type"], body["status"], body["sequence"], body["attempt"]) == (
        "complete_job",
        "completed",
        1,
        1,
    )
    assert body["result"]["data"]["test_data"] == "Mock test successful"
    assert "ctx" not in body
    message_id = next(i for i, b in seen.accepted.items() if b["job_id"] == job.id)
    statuses = [status for i, _, status in seen.attempts if i == message_id]
    assert statuses == [503, 503, 200]
    assert seen.unverified == 0
    record = _until(lambda: len(emp_tasks.job_record(job.id).get("webhook_deliveries", [])) == 3)
    assert record
    deliveries = emp_tasks.job_record(job.id)["webhook_deliveries"]
    assert [(d["attempt"], d["status"], d["outcome"]) for d in deliveries] == [
        (1, 503, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    shown = subprocess.run(
        [EMP_TASKS, "status", job.id], capture_output=True, text=True, timeout=30, check=False
    )
    assert "webhook complete_job attempt 3: delivered (HTTP 200)" in shown.stdout


def test_a_retried_then_failed_job_sends_retry_and_fail_in_sequence(
    webhook_worker: WorkerProcess, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    job = _submit(f"{base}/ok", ["retry_job", "fail_job"], should_fail=True)
    assert finish(job)["status"] == "failed"
    bodies = _until(lambda: len(seen.for_job(job.id)) == 2 and seen.for_job(job.id))
    by_type = {body["type"]: body for body in bodies}
    assert (by_type["retry_job"]["sequence"], by_type["retry_job"]["attempt"]) == (1, 1)
    assert (by_type["fail_job"]["sequence"], by_type["fail_job"]["attempt"]) == (2, 2)
    assert by_type["fail_job"]["error"]["failure_type"] == "service_error"
    assert by_type["retry_job"]["countdown"] > 0


def test_a_receiver_that_is_down_neither_fails_nor_delays_the_job(
    webhook_worker: WorkerProcess,
) -> None:
    began = time.monotonic()
    job = _submit(f"http://127.0.0.1:{free_port()}/nobody-listens")
    assert finish(job)["status"] == "completed"
    assert time.monotonic() - began < 5
    _until(lambda: len(emp_tasks.job_record(job.id).get("webhook_deliveries", [])) == 4)
    deliveries = emp_tasks.job_record(job.id)["webhook_deliveries"]
    assert [d["outcome"] for d in deliveries] == ["retrying"] * 3 + ["failed"]
    assert deliveries[-1]["status"] is None


def test_a_410_stops_deliveries_to_that_url(
    webhook_worker: WorkerProcess, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    first, second = _submit(f"{base}/gone"), None
    finish(first)
    _until(lambda: emp_tasks.job_record(first.id).get("webhook_deliveries"))
    second = _submit(f"{base}/gone")
    finish(second)
    skipped = _until(lambda: emp_tasks.job_record(second.id).get("webhook_deliveries"))
    assert [d["outcome"] for d in skipped] == ["skipped"]
    assert [status for _, path, status in seen.attempts if path == "/gone"] == [410]


def test_a_loopback_receiver_outside_the_allow_list_is_refused_at_submit(
    receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = receiver
    port = base.rsplit(":", 1)[1]
    with pytest.raises(ConnectorError, match=r"address 127\.0\.0\.2 is loopback"):
        _submit(f"http://127.0.0.2:{port}/ok")
    monkeypatch.delenv("EMP_WEBHOOK_SECRET")
    with pytest.raises(ConnectorError, match="EMP_WEBHOOK_SECRET is not set"):
        _submit(f"{base}/ok")


def test_the_secret_is_in_no_result_event_log_or_redis_key(
    webhook_worker: WorkerProcess, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    with EventCollector() as collector:
        job = _submit(f"{base}/ok", ["complete_job", "update_job_progress"], delay_ms=1500)
        finish(job)
        _until(lambda: emp_tasks.job_record(job.id).get("webhook_deliveries"))
    progress = [b for b in seen.for_job(job.id) if b["type"] == "update_job_progress"]
    assert progress, "no progress webhook from a 1.5 s job"
    sent = [datetime.fromisoformat(b["timestamp"]) for b in sorted(progress, key=_sequence)]
    assert all((later - earlier).total_seconds() >= 0.99 for earlier, later in pairwise(sent))
    texts = {
        "record": json.dumps(emp_tasks.job_record(job.id)),
        "events": json.dumps(collector.events, default=str),
        "log": webhook_worker.text(),
        "redis": "\n".join(_redis_values()),
    }
    assert [where for where, text in texts.items() if KEY in text or SECRET in text] == []
