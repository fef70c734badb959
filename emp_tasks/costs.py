"""Cost settings: the price table (config/prices.json + EMP_PRICES), budgets (EMP_BUDGETS), periods.

Both settings take JSON, or a path to a JSON file. A bad one is a configuration_error naming
the setting. Parsed results are cached on the raw text, so reading them per job costs a lookup.
Periods are UTC calendar days and months; a period's total is kept for `RETENTION` after it
ends (to look back at in Redis or SQL), then forgotten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, ValidationError

from connectors.context import TENANT_PATTERN
from connectors.cost import PROVIDER_CURRENCY, PriceTable
from connectors.errors import configuration_error
from emp_tasks.config import CONFIG_DIR

__all__ = [
    "RETENTION",
    "Limit",
    "Period",
    "Window",
    "load_budgets",
    "load_prices",
    "service_currency",
    "window",
]

Period = Literal["day", "month"]
RETENTION = timedelta(days=2)  # how long a period's spend outlives the period
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
Tenant = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]


class Limit(BaseModel):
    """One budget line: at most `limit` of `currency` per UTC `period`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: float = Field(ge=0)
    currency: Currency
    period: Period


class _Budgets(RootModel[dict[Tenant, list[Limit]]]):
    """EMP_BUDGETS: tenant -> its limits."""


@dataclass(frozen=True)
class Window:
    """One period's spend bucket: `label` (2026-12-01, 2026-12) and when it may be forgotten."""

    period: Period
    label: str
    expires_at: datetime


def window(period: Period, now: datetime) -> Window:
    """The UTC day or month that `now` falls in."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end, label = start + timedelta(days=1), start.strftime("%Y-%m-%d")
    else:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
        label = start.strftime("%Y-%m")
    return Window(period, label, end + RETENTION)


def _text(setting: str, raw: str) -> str:
    """The JSON of a setting: itself, or the file it names."""
    stripped = raw.strip()
    if stripped.startswith(("{", "[")):
        return stripped
    try:
        return Path(stripped).read_text()
    except OSError as exc:
        raise configuration_error(
            f"{setting} is neither JSON nor a readable file: {exc}", variables=[setting]
        ) from None


def _parse(setting: str, raw: str) -> Any:
    try:
        data = json.loads(_text(setting, raw))
    except ValueError as exc:
        raise configuration_error(
            f"{setting} is not valid JSON: {exc}", variables=[setting]
        ) from None
    if isinstance(data, dict):  # "_comment" keys document a file; they are not settings
        data = {key: value for key, value in data.items() if not str(key).startswith("_")}
    return data


def _invalid(setting: str, exc: ValidationError) -> Exception:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return configuration_error(f"{setting}: {where}: {first['msg']}", variables=[setting])


@lru_cache(maxsize=8)
def _prices(default_text: str, override: str) -> PriceTable:
    table = PriceTable.model_validate(_parse("config/prices.json", default_text))
    if not override.strip():
        return table
    try:
        return table.merged(PriceTable.model_validate(_parse("EMP_PRICES", override)))
    except ValidationError as exc:
        raise _invalid("EMP_PRICES", exc) from None


@lru_cache(maxsize=4)
def _read(path: Path) -> str:
    return path.read_text()  # once per process: the defaults ship with the code


def load_prices(env: Mapping[str, str] | None = None, path: Path | None = None) -> PriceTable:
    """The price table: config/prices.json with EMP_PRICES' models over it."""
    env = os.environ if env is None else env
    default = _read(path or CONFIG_DIR / "prices.json")
    return _prices(default, env.get("EMP_PRICES") or "")


@lru_cache(maxsize=8)
def _budgets(raw: str) -> dict[str, tuple[Limit, ...]]:
    if not raw.strip():
        return {}
    try:
        parsed = _Budgets.model_validate(_parse("EMP_BUDGETS", raw))
    except ValidationError as exc:
        raise _invalid("EMP_BUDGETS", exc) from None
    return {tenant: tuple(limits) for tenant, limits in parsed.root.items()}


def load_budgets(env: Mapping[str, str] | None = None) -> dict[str, tuple[Limit, ...]]:
    """EMP_BUDGETS: tenant -> limits (empty when unset)."""
    env = os.environ if env is None else env
    return _budgets(env.get("EMP_BUDGETS") or "")


def service_currency(service: str, table: PriceTable) -> str:
    """The currency a service's jobs are charged in: the provider's own, else the table's."""
    return PROVIDER_CURRENCY.get(service, table.currency)
