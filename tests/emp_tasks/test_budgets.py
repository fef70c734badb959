"""Budgets: UTC periods, settings, the refuse decision and charging, with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery

from connectors.errors import ConnectorError
from connectors.models import JobData, JobResult
from emp_tasks import budgets, spend
from emp_tasks.costs import Limit, load_budgets, load_prices, window
from emp_tasks.spend import MemorySpend, RedisSpend
from emp_tasks.spend_sql import SqlSpend


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "period", "label", "ends"),
    [
        ("2026-12-01T00:00:00", "day", "2026-12-01", "2026-12-02T00:00:00"),
        ("2026-12-01T23:59:59.999999", "day", "2026-12-01", "2026-12-02T00:00:00"),
        ("2026-12-31T23:59:59", "day", "2026-12-31", "2027-01-01T00:00:00"),
        ("2026-12-31T23:59:59", "month", "2026-12", "2027-01-01T00:00:00"),
        ("2027-01-01T00:00:00", "month", "2027-01", "2027-02-01T00:00:00"),
        ("2028-02-29T12:00:00", "month", "2028-02", "2028-03-01T00:00:00"),
        ("2028-02-29T12:00:00", "day", "2028-02-29", "2028-03-01T00:00:00"),
    ],
)
def test_periods_are_utc_days_and_months(now: str, period: Any, label: str, ends: str) -> None:
    found = window(period, at(now))
    assert found.label == label
    assert found.expires_at == at(ends) + timedelta(days=2)  # kept a while past its end


def test_a_time_in_another_zone_falls_in_its_utc_day() -> None:
    tokyo = datetime.fromisoformat("2026-12-02T08:00:00+09:00")  # 23:00 UTC on the 1st
    assert window("day", tokyo).label == "2026-12-01"


LIMITS = (
    Limit(limit=5, currency="glif_credits", period="day"),
    Limit(limit=20, currency="glif_credits", period="month"),
)


@pytest.mark.parametrize(
    ("spent_at", "spent", "checked_at", "reached"),
    [
        ("2026-12-01T10:00:00", 4.9, "2026-12-01T11:00:00", None),
        ("2026-12-01T10:00:00", 5.0, "2026-12-01T11:00:00", "day"),  # reached means >= limit
        ("2026-12-01T23:59:59", 6.0, "2026-12-02T00:00:00", None),  # a new UTC day
        ("2026-12-01T10:00:00", 20.0, "2026-12-02T00:00:00", "month"),  # same month
        ("2026-12-31T23:59:59", 20.0, "2027-01-01T00:00:00", None),  # a new month
    ],
)
def test_a_limit_is_reached_within_its_period_only(
    spent_at: str, spent: float, checked_at: str, reached: str | None
) -> None:
    store = MemorySpend()
    budgets.charge(store, "tenant-a", _cost(spent), at(spent_at))
    found = budgets.exceeded(store, "tenant-a", "glif_credits", LIMITS, at(checked_at))
    assert (found[0].period if found else None) == reached


def test_limits_in_another_currency_do_not_stop_a_job() -> None:
    store = MemorySpend()
    budgets.charge(store, "tenant-a", _cost(100), at("2026-12-01T10:00:00"))
    assert budgets.exceeded(store, "tenant-a", "usd", LIMITS, at("2026-12-01T11:00:00")) is None


def test_a_zero_limit_refuses_every_job() -> None:
    zero = (Limit(limit=0, currency="usd", period="month"),)
    assert budgets.exceeded(MemorySpend(), "t", "usd", zero, at("2026-12-01T00:00:00"))


def _cost(amount: float, currency: str = "glif_credits") -> Any:
    from connectors.cost import Cost

    return Cost(amount=amount, currency=currency, source="provider")


BUDGETS = json.dumps({"tenant-a": [{"limit": 5, "currency": "glif_credits", "period": "day"}]})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"tenant-a": [{"limit": 5, "currency": "usd", "period": "week"}]}', "period"),
        ('{"tenant-a": [{"limit": -1, "currency": "usd", "period": "day"}]}', "limit"),
        ('{"bad tenant!": []}', "bad tenant!"),
        ('{"tenant-a": [{"limit": 5, "currency": "a:b", "period": "day"}]}', "currency"),
        ('{"tenant-a": [{"limit": 5, "period": "day"}]}', "currency"),
        ("/no/such/budgets.json", "neither JSON nor a readable file"),
    ],
)
def test_a_bad_budget_setting_is_a_config_error_naming_it(raw: str, problem: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        load_budgets({"EMP_BUDGETS": raw})
    assert caught.value.failure_reason.value == "config_error"
    assert caught.value.message.startswith("EMP_BUDGETS")
    assert problem in caught.value.message
    assert caught.value.context["variables"] == ["EMP_BUDGETS"]


def test_budgets_come_from_json_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    path.write_text(BUDGETS)
    assert load_budgets({"EMP_BUDGETS": BUDGETS}) == load_budgets({"EMP_BUDGETS": str(path)})
    assert load_budgets({"EMP_BUDGETS": BUDGETS})["tenant-a"][0].limit == 5
    assert load_budgets({}) == {}


def test_emp_prices_overrides_the_default_table(tmp_path: Path) -> None:
    default = load_prices({})
    assert default.currency == "usd"
    assert default.price("gpt-4o-mini") is not None
    override = json.dumps({"models": {"gpt-4o-mini": {"input": 1, "output": 2}, "mine": {}}})
    path = tmp_path / "prices.json"
    path.write_text(override)
    for value in (override, str(path)):
        table = load_prices({"EMP_PRICES": value})
        assert table.price("gpt-4o-mini-2024-07-18") == table.models["gpt-4o-mini"]
        assert (table.models["gpt-4o-mini"].input, table.models["gpt-4o-mini"].output) == (1, 2)
        assert table.price("gemini-2.5-flash") == default.price("gemini-2.5-flash")
    with pytest.raises(ConnectorError, match=r"EMP_PRICES: models\.x\.input"):
        load_prices({"EMP_PRICES": '{"models": {"x": {"input": "free"}}}'})


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemorySpend:
    memory = MemorySpend()
    monkeypatch.setattr(budgets, "store_for", lambda app: memory)
    return memory


ENV = {"EMP_BUDGETS": BUDGETS}
NOON = at("2026-12-01T12:00:00")


def test_a_tenant_at_its_limit_is_refused_with_budget_exceeded(store: MemorySpend) -> None:
    budgets.refuse_over_budget(None, "glif", {"tenant": "tenant-a"}, env=ENV, clock=lambda: NOON)
    budgets.charge(store, "tenant-a", _cost(5.0), NOON)
    with pytest.raises(ConnectorError) as caught:
        budgets.refuse_over_budget(
            None, "glif", {"tenant": "tenant-a"}, env=ENV, clock=lambda: NOON
        )
    error = caught.value
    assert (error.failure_type.value, error.failure_reason.value) == (
        "resource_limit",
        "budget_exceeded",
    )
    assert error.retryable is False
    assert error.context == {
        "tenant": "tenant-a",
        "currency": "glif_credits",
        "period": "day",
        "window": "2026-12-01",
        "limit": 5.0,
        "spent": 5.0,
    }
    # Another tenant, no tenant, or a service charged in another currency: not refused.
    budgets.refuse_over_budget(None, "glif", {"tenant": "tenant-b"}, env=ENV, clock=lambda: NOON)
    budgets.refuse_over_budget(None, "glif", None, env=ENV, clock=lambda: NOON)
    budgets.refuse_over_budget(
        None, "openai_text", {"tenant": "tenant-a"}, env=ENV, clock=lambda: NOON
    )


def test_a_completed_job_carries_its_cost_and_charges_its_tenant(store: MemorySpend) -> None:
    job = JobData(id="j1", type="glif", ctx={"tenant": "tenant-a"})
    result = JobResult(metadata={"price": 2.1000875})
    budgets.settle_result(None, job, result, env={}, clock=lambda: NOON)
    assert result.metadata["cost"] == {
        "amount": 2.1000875,
        "currency": "glif_credits",
        "source": "provider",
    }
    days = [window("day", NOON), window("month", NOON)]
    assert store.spent("tenant-a", "glif_credits", days) == [2.1000875, 2.1000875]


def test_a_job_without_a_known_cost_says_so_and_charges_nothing(store: MemorySpend) -> None:
    job = JobData(id="j2", type="mock", ctx={"tenant": "tenant-a"})
    result = JobResult(data={"test_data": "x"})
    budgets.settle_result(None, job, result, env={}, clock=lambda: NOON)
    assert result.metadata["cost"] is None
    assert store.rows() == []


def test_a_billed_failure_records_its_cost_in_the_error_and_is_charged(
    store: MemorySpend,
) -> None:
    from connectors.services.openai_common import refusal_error

    context = {"usage": {"prompt_tokens": 1000, "completion_tokens": 0}, "model": "gpt-4o"}
    error = refusal_error("no", service="openai_text", context=context)
    settled = budgets.settle_error(None, "openai_text", {"tenant": "t1"}, error, env={})
    assert settled.context["cost"] == {"amount": 0.0025, "currency": "usd", "source": "price_table"}
    assert (settled.failure_type, settled.message) == (error.failure_type, error.message)
    assert [row.amount for row in store.rows("t1")] == [0.0025, 0.0025]


def test_an_unbilled_failure_is_left_as_it_is(store: MemorySpend) -> None:
    error = ConnectorError("bad key", failure_type="auth_error", failure_reason="invalid_api_key")
    assert budgets.settle_error(None, "openai_text", {"tenant": "t1"}, error, env={}) is error
    assert store.rows() == []


def test_a_charge_that_cannot_be_stored_does_not_fail_the_job(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Down(MemorySpend):
        def add(self, *args: Any) -> None:
            raise ConnectionError("redis is down")

    monkeypatch.setattr(budgets, "store_for", lambda app: Down())
    result = JobResult(metadata={"price": 1.0})
    job = JobData(id="j3", type="glif", ctx={"tenant": "tenant-a"})
    budgets.settle_result(None, job, result, env={}, clock=lambda: NOON)
    assert result.metadata["cost"]["amount"] == 1.0
    assert "could not charge" in caplog.text


def test_sql_spend_adds_atomically_and_forgets_old_periods(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.sqlite'}")
    now = NOON
    store = SqlSpend(engine, clock=lambda: now)
    windows = [window("day", now), window("month", now)]
    store.add("tenant-a", "usd", 0.25, windows)
    store.add("tenant-a", "usd", 0.5, windows)
    store.add("tenant-b", "glif_credits", 2.0, windows[:1])
    assert store.spent("tenant-a", "usd", windows) == [0.75, 0.75]
    assert store.spent("tenant-a", "glif_credits", windows) == [0.0, 0.0]
    assert {(r.tenant, r.period) for r in store.rows()} == {
        ("tenant-a", "day"),
        ("tenant-a", "month"),
        ("tenant-b", "day"),
    }
    assert len(SqlSpend(engine).rows("tenant-b")) == 1  # a second process sees it
    now = at("2027-02-01T00:00:00")  # long after: the December rows are deleted on next add
    store.add("tenant-c", "usd", 1.0, [window("day", now)])
    assert [r.tenant for r in store.rows()] == ["tenant-c"]


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("db+sqlite:///{dir}/results.sqlite", SqlSpend),  # the embedded default
        ("redis://127.0.0.1:1/1", RedisSpend),  # not contacted until used
        ("cache+memory://", MemorySpend),
    ],
)
def test_spend_is_kept_where_the_results_are(tmp_path: Path, backend: str, kind: type) -> None:
    app = Celery("spend-test", result_backend=backend.format(dir=tmp_path))
    assert isinstance(spend._store(app.backend), kind)
