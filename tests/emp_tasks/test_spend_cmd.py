"""`emp-tasks spend`: the current day's and month's spend per tenant, against its limits."""

from __future__ import annotations

from datetime import UTC, datetime

from emp_tasks.costs import Limit
from emp_tasks.spend import SpendRow
from emp_tasks.spend_cmd import _text, spend_report

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ROWS = [
    SpendRow("tenant-a", "glif_credits", "day", "2026-12-01", 4.2001750),
    SpendRow("tenant-a", "glif_credits", "month", "2026-12", 10.5),
    SpendRow("tenant-a", "glif_credits", "day", "2026-11-30", 6.3),  # yesterday: not shown
    SpendRow("tenant-b", "usd", "day", "2026-12-01", 0.25),
]
BUDGETS = {
    "tenant-a": (Limit(limit=5, currency="glif_credits", period="day"),),
    "tenant-c": (Limit(limit=1, currency="usd", period="month"),),
}


def test_the_report_shows_current_periods_with_limits_and_unspent_budgets() -> None:
    lines = spend_report(ROWS, BUDGETS, NOW)
    assert [(x["tenant"], x["period"], x["amount"], x["limit"]) for x in lines] == [
        ("tenant-a", "day", 4.200175, 5.0),
        ("tenant-a", "month", 10.5, None),
        ("tenant-b", "day", 0.25, None),
        ("tenant-c", "month", 0.0, 1.0),
    ]
    assert lines[0]["window"] == "2026-12-01"
    assert lines[-1]["window"] == "2026-12"


def test_the_report_of_one_tenant_shows_only_it() -> None:
    lines = spend_report(ROWS, BUDGETS, NOW, tenant="tenant-c")
    assert [x["tenant"] for x in lines] == ["tenant-c"]


def test_the_text_table_has_a_header_and_a_dash_for_no_limit() -> None:
    text = _text(spend_report(ROWS, BUDGETS, NOW, tenant="tenant-a"))
    header, day, month = text.splitlines()
    assert header.split() == ["tenant", "currency", "period", "window", "spent", "limit"]
    assert day.split() == ["tenant-a", "glif_credits", "day", "2026-12-01", "4.200175", "5"]
    assert month.split()[-1] == "-"
