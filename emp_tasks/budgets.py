"""Per-tenant budgets: refuse a job whose tenant reached a limit, charge what each job cost.

A job's `ctx.tenant` is charged. `EMP_BUDGETS` sets limits per tenant, currency and UTC period
(`emp_tasks.costs`). Checks happen twice, both before anything is paid: at submit
(`JobTask.apply_async`: refused in the caller's process, nothing queued) and in the worker just
before the provider call (a queued job whose tenant reached a limit meanwhile). A limit is a stop
line, not a reservation: jobs already running when it is reached finish and are charged, so spend
can end above it by what they cost. A spend store that cannot be read fails the check (at
submit the caller gets the error; in the worker Celery retries the job), rather than letting
unbudgeted calls through. Charging happens after the provider answered and never fails the
job: a charge that cannot be stored is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.context import tenant_of
from connectors.cost import Cost, error_cost, result_cost
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult
from emp_tasks.costs import Limit, Period, load_budgets, load_prices, service_currency, window
from emp_tasks.spend import SpendStore, store_for

__all__ = [
    "BUDGET_EXCEEDED",
    "budget_error",
    "budget_reached",
    "charge",
    "exceeded",
    "refuse_over_budget",
    "settle_error",
    "settle_result",
]

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
BUDGET_EXCEEDED = Classification(
    FailureType.RESOURCE_LIMIT, FailureReason.BUDGET_EXCEEDED, retryable=False
)
PERIODS: tuple[Period, ...] = (
    "day",
    "month",
)  # every charge is added to both, so `spend` shows both


def _utcnow() -> datetime:
    return datetime.now(UTC)


def budget_reached(limit: Limit, spent: float) -> bool:
    """Whether a limit stops new jobs: its period's spend has reached it."""
    return spent >= limit.limit


def exceeded(
    store: SpendStore, tenant: str, currency: str, limits: tuple[Limit, ...], now: datetime
) -> tuple[Limit, float] | None:
    """The first of the tenant's limits in `currency` that its spend has reached, and that spend."""
    relevant = [limit for limit in limits if limit.currency == currency]
    if not relevant:
        return None
    totals = store.spent(tenant, currency, [window(limit.period, now) for limit in relevant])
    for limit, spent in zip(relevant, totals, strict=True):
        if budget_reached(limit, spent):
            return limit, spent
    return None


def budget_error(
    tenant: str, limit: Limit, spent: float, now: datetime, service: str
) -> ConnectorError:
    """The refusal of a job whose tenant reached `limit` (resource_limit / budget_exceeded)."""
    label = window(limit.period, now).label
    return BUDGET_EXCEEDED.error(
        f"tenant {tenant!r} has spent {spent:g} {limit.currency} this {limit.period} ({label}), "
        f"its limit is {limit.limit:g}: job refused (EMP_BUDGETS)",
        service=service,
        context={
            "tenant": tenant,
            "currency": limit.currency,
            "period": limit.period,
            "window": label,
            "limit": limit.limit,
            "spent": spent,
        },
    )


def refuse_over_budget(
    app: Any,
    service: str,
    ctx: Mapping[str, Any] | None,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = _utcnow,
) -> None:
    """Raise budget_exceeded when the job's tenant reached a limit in its service's currency."""
    tenant = tenant_of(ctx, service=service)
    limits = load_budgets(env).get(tenant) if tenant else None
    if not tenant or not limits:
        return
    currency = service_currency(service, load_prices(env))
    now = clock()
    found = exceeded(store_for(app), tenant, currency, limits, now)
    if found is not None:
        raise budget_error(tenant, found[0], found[1], now, service)


def charge(store: SpendStore, tenant: str | None, cost: Cost | None, now: datetime) -> None:
    """Add a cost to the tenant's day and month (no tenant or no cost: nothing to add)."""
    if tenant is None or cost is None or cost.amount <= 0:
        return
    windows = [window(period, now) for period in PERIODS]
    store.add(tenant, cost.currency, cost.amount, windows)


def _charge_quietly(app: Any, ctx: Any, cost: Cost | None, clock: Clock) -> None:
    try:
        tenant = tenant_of(ctx)
    except ConnectorError:
        return  # a job refused for its ctx made no call
    if tenant is None or cost is None:
        return
    try:
        charge(store_for(app), tenant, cost, clock())
    except Exception:  # the provider was paid already; the job's outcome must not change
        log.exception("could not charge %s %s to tenant %s", cost.amount, cost.currency, tenant)


def settle_result(
    app: Any,
    job: JobData,
    result: JobResult,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = _utcnow,
) -> None:
    """Put the job's `cost` in its result metadata (None when unknown) and charge its tenant."""
    try:
        cost = result_cost(job.type, result, load_prices(env))
    except Exception:  # a bad EMP_PRICES must not fail a job that was paid for
        log.exception("could not price job %s", job.id)
        cost = None
    result.metadata["cost"] = None if cost is None else cost.model_dump()
    _charge_quietly(app, job.ctx, cost, clock)


def settle_error(
    app: Any,
    service: str,
    ctx: Any,
    error: ConnectorError,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = _utcnow,
) -> ConnectorError:
    """The error with the `cost` of the attempt's billed call in its context, charged; or as is."""
    if "cost" in error.context:
        return error
    try:
        cost = error_cost(service, error.context, load_prices(env))
    except Exception:
        log.exception("could not price a failed %s attempt", service)
        return error
    if cost is None:
        return error
    _charge_quietly(app, ctx, cost, clock)
    return error.with_context({"cost": cost.model_dump()})
