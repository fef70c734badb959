"""Job journals kept in the result backend: checkpoints and paid-call counts beside the result.

Entries live wherever results live and expire with them (`result_expires`): on Redis as plain
keys (`emp:journal:<job id>:<name>`, one round trip each, no pub/sub copy), on the SQL backend
through Celery's own backend API under a derived task id (`<job id>.journal.<name>`) in a state
of its own. An entry larger than `EMP_JOURNAL_MAX_BYTES` (64 KiB) is staged as a file under the
worker's var folder and the backend keeps only its path: a base64 image never sits in Redis. A
staged entry is host-local; a retry on another host does not find it and calls again.

A job's first delivery has nothing to resume, so its journal reads nothing: a fresh job pays
one write per answer kept, and one per paid call (the count) unless the call gate's script
counts the call with its own check (emp_tasks.callgate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from connectors.journal import JobJournal, NoJournal
from emp_tasks.results_redis import results_redis, results_ttl

__all__ = [
    "JOURNAL_STATE",
    "BackendStore",
    "EntryStore",
    "Journal",
    "RedisCounter",
    "RedisStore",
    "journal_for",
    "max_entry_bytes",
    "provider_calls",
    "store_for",
]

log = logging.getLogger(__name__)
JOURNAL_STATE = "JOURNAL"  # not a task state: `failed` listings and Flower never show it
_CALLS = "provider_calls"
_DEFAULT_MAX_BYTES = 64 * 1024


def max_entry_bytes() -> int:
    """The largest entry kept in the backend itself (`EMP_JOURNAL_MAX_BYTES`)."""
    raw = os.environ.get("EMP_JOURNAL_MAX_BYTES") or ""
    return int(raw) if raw.isdigit() else _DEFAULT_MAX_BYTES


class EntryStore(Protocol):
    """Where a journal's entries are kept: text by name, and one counter."""

    def get(self, job_id: str, name: str) -> str | None: ...
    def set(self, job_id: str, name: str, text: str) -> None: ...
    def delete(self, job_id: str, name: str) -> None: ...
    def incr(self, job_id: str, name: str) -> int: ...


# KEYS: the counter. ARGV: its expiry in seconds. One command instead of a pipeline of two:
# redis-py's pipeline costs a paid call about twice a script call's CPU.
INCR_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""


@dataclass(frozen=True)
class RedisCounter:
    """Where a job's paid-call count is in Redis: a script on `client` may count there too."""

    client: Any
    key: str
    ttl: int  # seconds, renewed on every count


class RedisStore:
    """Entries as Redis keys, each expiring with the job's result."""

    def __init__(self, client: Any, ttl_seconds: int) -> None:
        self.client = client
        self.ttl = max(1, ttl_seconds)
        self._incr = client.register_script(INCR_SCRIPT)  # a SHA-1 of 80 bytes: cheap per job

    @staticmethod
    def key(job_id: str, name: str) -> str:
        return f"emp:journal:{job_id}:{name}"

    def get(self, job_id: str, name: str) -> str | None:
        raw = self.client.get(self.key(job_id, name))
        return raw.decode() if isinstance(raw, bytes) else raw

    def set(self, job_id: str, name: str, text: str) -> None:
        self.client.set(self.key(job_id, name), text, ex=self.ttl)

    def delete(self, job_id: str, name: str) -> None:
        self.client.delete(self.key(job_id, name))

    def incr(self, job_id: str, name: str) -> int:
        return int(self._incr(keys=[self.key(job_id, name)], args=[self.ttl]))


class BackendStore:
    """Entries through any Celery result backend's API, as results in a state of their own."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    @staticmethod
    def entry_id(job_id: str, name: str) -> str:
        return f"{job_id}.journal.{name}"

    def get(self, job_id: str, name: str) -> str | None:
        meta = self._backend.get_task_meta(self.entry_id(job_id, name))
        value = meta.get("result") if meta.get("status") == JOURNAL_STATE else None
        return value if isinstance(value, str) else None

    def set(self, job_id: str, name: str, text: str) -> None:
        self._backend.store_result(self.entry_id(job_id, name), text, JOURNAL_STATE)

    def delete(self, job_id: str, name: str) -> None:
        self._backend.forget(self.entry_id(job_id, name))

    def incr(self, job_id: str, name: str) -> int:
        # Read-modify-write is enough: one job's attempts never run at the same time.
        count = _count(self.get(job_id, name)) + 1
        self.set(job_id, name, str(count))
        return count


def _count(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


class Journal:
    """One job's journal over an `EntryStore`; failures are logged, never raised."""

    def __init__(
        self, store: EntryStore, job_id: str, stage_dir: Path, max_bytes: int, fresh: bool = False
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._stage_dir = stage_dir / hashlib.sha256(job_id.encode()).hexdigest()[:32]
        self._max_bytes = max_bytes
        self._fresh = fresh  # a first delivery: nothing earlier to read
        self._calls: int | None = 0 if fresh else None

    def load(self, name: str) -> dict[str, Any] | None:
        if self._fresh:
            return None
        try:
            value = json.loads(self._store.get(self._job_id, name) or "null")
            if isinstance(value, dict) and isinstance(value.get("staged"), str):
                value = json.loads(Path(value["staged"]).read_text("utf-8"))
        except Exception:  # a missing staged file or a backend hiccup: call the provider again
            log.warning("journal entry %s of %s unreadable", name, self._job_id, exc_info=True)
            return None
        return value if isinstance(value, dict) else None

    def save(self, name: str, value: dict[str, Any]) -> None:
        try:
            text = json.dumps(value, separators=(",", ":"))
            if len(text) > self._max_bytes:
                self._stage_dir.mkdir(parents=True, exist_ok=True)
                path = self._stage_dir / f"{name}.json"
                path.write_text(text, "utf-8")
                text = json.dumps({"staged": str(path)})
            self._store.set(self._job_id, name, text)
        except Exception:
            log.warning("could not keep journal entry %s of %s", name, self._job_id, exc_info=True)

    def drop(self, name: str) -> None:
        try:
            self._store.delete(self._job_id, name)
            (self._stage_dir / f"{name}.json").unlink(missing_ok=True)
        except Exception:
            log.warning("could not drop journal entry %s of %s", name, self._job_id, exc_info=True)

    def paid_call(self) -> None:
        try:
            self._calls = self._store.incr(self._job_id, _CALLS)
        except Exception:  # counted here at least, for this attempt's result
            log.warning("could not count a paid call of %s", self._job_id, exc_info=True)
            self._calls = self.provider_calls() + 1

    def redis_counter(self) -> RedisCounter | None:
        """The count's Redis key, for the call gate to count in its own script (or None)."""
        store = self._store
        if not isinstance(store, RedisStore):
            return None
        return RedisCounter(store.client, store.key(self._job_id, _CALLS), store.ttl)

    def counted(self, calls: int) -> None:
        """A paid call was counted elsewhere (the gate's script): the count is now `calls`."""
        self._calls = calls

    def provider_calls(self) -> int:
        if self._calls is None:
            try:
                self._calls = _count(self._store.get(self._job_id, _CALLS))
            except Exception:
                log.warning("could not read the paid calls of %s", self._job_id, exc_info=True)
                return 0
        return self._calls


def store_for(app: Any) -> EntryStore | None:
    """Where the app's result backend keeps journals (None when it keeps no results)."""
    backend = getattr(app, "backend", None)
    if backend is None or type(backend).__name__ == "DisabledBackend":
        return None
    client = results_redis(backend)
    if client is not None:
        return RedisStore(client, results_ttl(backend))
    return BackendStore(backend)


def journal_for(app: Any, job_id: str, stage_dir: Path, fresh: bool = False) -> JobJournal:
    """The job's journal in the app's result backend (a `NoJournal` without one)."""
    store = store_for(app)
    if store is None:
        return NoJournal()
    return Journal(store, job_id, stage_dir, max_entry_bytes(), fresh=fresh)


def provider_calls(app: Any, job_id: str) -> int:
    """How many paid calls a job has made, as its journal says (0 when it has none)."""
    return journal_for(app, job_id, Path(".")).provider_calls()
