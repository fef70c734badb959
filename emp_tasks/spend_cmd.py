"""`emp-tasks spend`: what each tenant has spent this UTC day and month, against its limits."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click

from connectors.errors import ConnectorError

__all__ = ["spend", "spend_report"]

EXIT_REFUSED = 2
_COLUMNS = ("tenant", "currency", "period", "window", "amount", "limit")


def spend_report(
    rows: Iterable[Any],
    budgets: Mapping[str, Iterable[Any]],
    now: datetime,
    tenant: str | None = None,
) -> list[dict[str, Any]]:
    """One line per tenant, currency and current period: spent, and the limit if one is set."""
    from emp_tasks.costs import window

    current = {period: window(period, now).label for period in ("day", "month")}
    lines: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        if current.get(row.period) == row.label and tenant in (None, row.tenant):
            lines[(row.tenant, row.currency, row.period)] = {
                "tenant": row.tenant,
                "currency": row.currency,
                "period": row.period,
                "window": row.label,
                "amount": round(row.amount, 9),
                "limit": None,
            }
    for name, limits in budgets.items():
        if tenant not in (None, name):
            continue
        for limit in limits:
            key = (name, limit.currency, limit.period)
            line = lines.setdefault(
                key,
                {
                    "tenant": name,
                    "currency": limit.currency,
                    "period": limit.period,
                    "window": current[limit.period],
                    "amount": 0.0,
                    "limit": None,
                },
            )
            line["limit"] = limit.limit
    return [lines[key] for key in sorted(lines)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):  # every digit up to the 9 kept, no exponent, no trailing 0
        return f"{value:.9f}".rstrip("0").rstrip(".")
    return str(value)


def _text(lines: list[dict[str, Any]]) -> str:
    cells = [[_cell(line[column]) for column in _COLUMNS] for line in lines]
    header = ["tenant", "currency", "period", "window", "spent", "limit"]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *cells]
    )


@click.command()
@click.option("--tenant", help="Only this tenant (ctx.tenant).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def spend(tenant: str | None, as_json: bool) -> None:
    """Show tenants' spend this UTC day and month, with their EMP_BUDGETS limits."""
    from emp_tasks.celery_app import app
    from emp_tasks.costs import load_budgets
    from emp_tasks.spend import store_for

    try:
        budgets = load_budgets()
        lines = spend_report(store_for(app).rows(tenant), budgets, datetime.now(UTC), tenant)
    except ConnectorError as exc:
        click.echo(exc.message, err=True)  # one line naming the setting
        sys.exit(EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps({"spend": lines}))
    elif lines:
        click.echo(_text(lines))
    else:
        click.echo("no spend recorded this day or month" + (f" for {tenant}" if tenant else ""))
