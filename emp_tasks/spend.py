"""Where tenants' spend is kept: the result backend's Redis, or its SQL database.

Redis (production): one key per tenant, currency and period, `emp:spend:<tenant>:<currency>:
<day|month>:<2026-12-01|2026-12>`, added to with INCRBYFLOAT in one MULTI with its EXPIREAT (the
period's end plus `costs.RETENTION`), so every worker on every host adds to the same total and
none is lost. SQL (the embedded default's SQLite, or any SQLAlchemy backend that has `ON
CONFLICT`): a table `emp_spend` in the results database (`emp_tasks.spend_sql`), one upsert per
period, so `emp-tasks spend` in another process sees what the workers charged. Any other
backend: a per-process dict, which says nothing about other processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from emp_tasks.costs import Window
from emp_tasks.results_redis import results_redis

__all__ = [
    "MemorySpend",
    "RedisSpend",
    "SpendRow",
    "SpendStore",
    "spend_key",
    "store_for",
]

_PREFIX = "emp:spend:"


@dataclass(frozen=True)
class SpendRow:
    """A tenant's spend in one currency over one period."""

    tenant: str
    currency: str
    period: str
    label: str
    amount: float


class SpendStore(Protocol):
    """Adds to and reads tenants' spend per currency and period."""

    def add(self, tenant: str, currency: str, amount: float, windows: Iterable[Window]) -> None:
        """Add `amount` to each window's total, atomically."""
        ...

    def spent(self, tenant: str, currency: str, windows: Iterable[Window]) -> list[float]:
        """The totals of the windows, in order (0 where nothing was spent)."""
        ...

    def rows(self, tenant: str | None = None) -> list[SpendRow]:
        """Every total kept (of one tenant, if given)."""
        ...


def spend_key(tenant: str, currency: str, window: Window) -> str:
    """The Redis key of one total (tenant and currency never contain `:`)."""
    return f"{_PREFIX}{tenant}:{currency}:{window.period}:{window.label}"


def _row(key: str, value: Any) -> SpendRow | None:
    parts = key.removeprefix(_PREFIX).split(":")
    if len(parts) != 4 or value is None:
        return None
    return SpendRow(parts[0], parts[1], parts[2], parts[3], float(value))


class RedisSpend:
    """Spend in Redis, shared by every worker."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def add(self, tenant: str, currency: str, amount: float, windows: Iterable[Window]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for window in windows:
            key = spend_key(tenant, currency, window)
            pipe.incrbyfloat(key, amount).expireat(key, int(window.expires_at.timestamp()))
        pipe.execute()

    def spent(self, tenant: str, currency: str, windows: Iterable[Window]) -> list[float]:
        keys = [spend_key(tenant, currency, window) for window in windows]
        return [float(value or 0) for value in self._client.mget(keys)] if keys else []

    def rows(self, tenant: str | None = None) -> list[SpendRow]:
        pattern = f"{_PREFIX}{tenant or '*'}:*"
        keys = [
            k.decode() if isinstance(k, bytes) else str(k) for k in self._client.scan_iter(pattern)
        ]
        values = self._client.mget(keys) if keys else []
        found = (_row(key, value) for key, value in zip(keys, values, strict=True))
        return [row for row in found if row is not None]


class MemorySpend:
    """Spend in this process only (a backend that is neither Redis nor SQL; unit tests)."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

    def add(self, tenant: str, currency: str, amount: float, windows: Iterable[Window]) -> None:
        with self._lock:
            for w in windows:
                key = (tenant, currency, w.period, w.label)
                self._totals[key] = self._totals.get(key, 0.0) + amount

    def spent(self, tenant: str, currency: str, windows: Iterable[Window]) -> list[float]:
        with self._lock:
            return [self._totals.get((tenant, currency, w.period, w.label), 0.0) for w in windows]

    def rows(self, tenant: str | None = None) -> list[SpendRow]:
        with self._lock:
            items = list(self._totals.items())
        return [SpendRow(*key, amount) for key, amount in items if tenant in (None, key[0])]


_stores: dict[str, SpendStore] = {}
_lock = threading.Lock()


def _store(backend: Any) -> SpendStore:
    client = results_redis(backend)
    if client is not None:
        return RedisSpend(client)
    if type(backend).__name__ == "DatabaseBackend":
        from emp_tasks.spend_sql import SqlSpend  # SQLAlchemy only where results are in SQL

        return SqlSpend(backend.ResultSession().get_bind())
    return MemorySpend()


def store_for(app: Any) -> SpendStore:
    """The app's spend store, built once per result backend URL (the SQL table is made then)."""
    # Keyed by URL, not by backend object: Celery keeps one backend per thread.
    key = str(app.conf.result_backend)
    with _lock:
        if key not in _stores:
            _stores[key] = _store(app.backend)
        return _stores[key]
