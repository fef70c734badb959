"""Per-job webhook state beside the job's result: event sequence, delivery attempts, gone URLs.

With a Redis result backend (production) the state is shared by every worker and expires with
the results: `emp:webhook:seq:<job>` (a counter), `emp:webhook:deliveries:<job>` (a list of
JSON attempts, which `emp-tasks status` shows) and `emp:webhook:gone:<sha256 of url>` (a
receiver that answered 410). Other backends (the embedded default's SQLite) get a per-process
store: sequence numbers still increase within a worker, but attempts are not shown by
`emp-tasks status` run elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from typing import Any, Protocol

from emp_tasks.results_redis import results_redis, results_ttl

__all__ = [
    "MemoryWebhookStore",
    "RedisWebhookStore",
    "WebhookStore",
    "store_for",
    "webhook_deliveries",
]

_PREFIX = "emp:webhook"


def _url_key(url: str) -> str:
    return f"{_PREFIX}:gone:{hashlib.sha256(url.encode()).hexdigest()}"


class WebhookStore(Protocol):
    """Where a job's webhook sequence, delivery attempts and gone receivers are kept."""

    def next_sequence(self, job_id: str) -> int: ...

    def record(self, job_id: str, entry: dict[str, Any]) -> None: ...

    def deliveries(self, job_id: str) -> list[dict[str, Any]]: ...

    def mark_gone(self, url: str) -> None: ...

    def is_gone(self, url: str) -> bool: ...


class RedisWebhookStore:
    """The state in the result backend's Redis, each key expiring with the results."""

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = max(1, ttl_seconds)

    def next_sequence(self, job_id: str) -> int:
        key = f"{_PREFIX}:seq:{job_id}"
        value, _ = self._client.pipeline().incr(key).expire(key, self._ttl).execute()
        return int(value)

    def record(self, job_id: str, entry: dict[str, Any]) -> None:
        key = f"{_PREFIX}:deliveries:{job_id}"
        self._client.pipeline().rpush(key, json.dumps(entry)).expire(key, self._ttl).execute()

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        raw = self._client.lrange(f"{_PREFIX}:deliveries:{job_id}", 0, -1)
        return [json.loads(item) for item in raw]

    def mark_gone(self, url: str) -> None:
        self._client.set(_url_key(url), "410", ex=self._ttl)

    def is_gone(self, url: str) -> bool:
        return bool(self._client.exists(_url_key(url)))


class MemoryWebhookStore:
    """The state in this process only: for result backends that are not Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequences: dict[str, int] = defaultdict(int)
        self._deliveries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._gone: set[str] = set()

    def next_sequence(self, job_id: str) -> int:
        with self._lock:
            self._sequences[job_id] += 1
            return self._sequences[job_id]

    def record(self, job_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._deliveries[job_id].append(dict(entry))

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._deliveries.get(job_id, [])]

    def mark_gone(self, url: str) -> None:
        with self._lock:
            self._gone.add(url)

    def is_gone(self, url: str) -> bool:
        with self._lock:
            return url in self._gone


_memory = MemoryWebhookStore()


def store_for(app: Any) -> WebhookStore:
    """The app's store: in its Redis result backend, else this process's memory."""
    backend = getattr(app, "backend", None)
    client = results_redis(backend)
    return RedisWebhookStore(client, results_ttl(backend)) if client is not None else _memory


def webhook_deliveries(app: Any, job_id: str) -> list[dict[str, Any]]:
    """A job's webhook delivery attempts, oldest first, as its job record shows them."""
    return store_for(app).deliveries(job_id)
