"""Spend in a table `emp_spend` of the SQL result database (the embedded default's SQLite).

One upsert per period in one transaction (`INSERT ... ON CONFLICT DO UPDATE SET amount = amount
+ excluded.amount`: SQLite 3.24+, PostgreSQL), so concurrent workers never lose an addition and
`emp-tasks spend` in another process reads what they charged. Rows past their expiry are deleted
as new charges arrive. Kept apart from `emp_tasks.spend` so a Redis deployment never imports
SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from emp_tasks.costs import Window
from emp_tasks.spend import SpendRow

__all__ = ["SqlSpend"]

_metadata = sa.MetaData()
_TABLE = sa.Table(
    "emp_spend",
    _metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("label", sa.String(16), primary_key=True),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
_UPSERT = sa.text(
    "INSERT INTO emp_spend (tenant, currency, period, label, amount, expires_at) "
    "VALUES (:tenant, :currency, :period, :label, :amount, :expires_at) "
    "ON CONFLICT (tenant, currency, period, label) "
    "DO UPDATE SET amount = emp_spend.amount + excluded.amount"
)


class SqlSpend:
    """Spend in a table of the SQL result database (the embedded default's SQLite)."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._now = clock or (lambda: datetime.now(UTC))
        _metadata.create_all(engine, checkfirst=True)

    def add(self, tenant: str, currency: str, amount: float, windows: Iterable[Window]) -> None:
        now = self._now().timestamp()
        rows = [
            {
                "tenant": tenant,
                "currency": currency,
                "period": w.period,
                "label": w.label,
                "amount": amount,
                "expires_at": w.expires_at.timestamp(),
            }
            for w in windows
        ]
        with self._engine.begin() as conn:  # one transaction: every period or none
            conn.execute(_UPSERT, rows)
            conn.execute(sa.delete(_TABLE).where(_TABLE.c.expires_at < now))

    def spent(self, tenant: str, currency: str, windows: Iterable[Window]) -> list[float]:
        wanted = list(windows)
        query = sa.select(_TABLE.c.period, _TABLE.c.label, _TABLE.c.amount).where(
            _TABLE.c.tenant == tenant, _TABLE.c.currency == currency
        )
        with self._engine.connect() as conn:
            found = {(row.period, row.label): row.amount for row in conn.execute(query)}
        return [float(found.get((w.period, w.label), 0.0)) for w in wanted]

    def rows(self, tenant: str | None = None) -> list[SpendRow]:
        query = sa.select(_TABLE).where(_TABLE.c.expires_at >= self._now().timestamp())
        if tenant is not None:
            query = query.where(_TABLE.c.tenant == tenant)
        with self._engine.connect() as conn:
            return [
                SpendRow(r.tenant, r.currency, r.period, r.label, float(r.amount))
                for r in conn.execute(query)
            ]
