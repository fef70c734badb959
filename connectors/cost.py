"""What a job cost: the provider's own price (Glif) or token usage x a per-model price table.

Pure functions: `result_cost` reads a finished `JobResult`, `error_cost` the context of a
`ConnectorError` whose calls the provider billed (a refusal after generation, a Glif run that
reported its price). Either gives a `Cost` (amount, currency, source) or None when the cost
cannot be known (no usage reported, a model missing from the table). The table itself is
`PriceTable`, parsed from `config/prices.json` plus any override (emp_tasks.costs loads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.models import JobResult

__all__ = [
    "GLIF_CURRENCY",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "error_cost",
    "price_of",
    "result_cost",
    "token_counts",
]

GLIF_CURRENCY = "glif_credits"
# Services whose provider reports a price in its own currency; every other service is priced
# from token usage in the table's currency.
PROVIDER_CURRENCY = {"glif": GLIF_CURRENCY}
Source = Literal["provider", "price_table"]


class Cost(BaseModel):
    """What one job (or one failed attempt) cost, and who said so."""

    model_config = ConfigDict(frozen=True)

    amount: float = Field(ge=0)
    currency: str
    source: Source


class ModelPrice(BaseModel):
    """A model's prices: per 1M input / output tokens, and per image for image models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    image: float = Field(default=0.0, ge=0)


class PriceTable(BaseModel):
    """Per-model prices in one currency; a dated model name matches its family's entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(default="usd", min_length=1)
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    def price(self, model: str | None) -> ModelPrice | None:
        """The model's entry: exact, else the longest name it starts with (gpt-4o-mini-2024-...)."""
        if not model:
            return None
        name = model.removeprefix("models/")
        if name in self.models:
            return self.models[name]
        matches = [key for key in self.models if name.startswith(key)]
        return self.models[max(matches, key=len)] if matches else None

    def merged(self, override: PriceTable) -> PriceTable:
        """This table with `override`'s models replacing same-named entries."""
        return PriceTable(currency=override.currency, models={**self.models, **override.models})


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def token_counts(usage: Any) -> tuple[int, int] | None:
    """(input, output) tokens from OpenAI (chat or responses/images) or Gemini usage; None."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # chat completions
        return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    if "input_tokens" in usage or "output_tokens" in usage:  # responses, images
        return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    if "promptTokenCount" in usage:  # Gemini: thinking and tool-prompt tokens are billed too
        inputs = _int(usage.get("promptTokenCount")) + _int(usage.get("toolUsePromptTokenCount"))
        outputs = _int(usage.get("candidatesTokenCount")) + _int(usage.get("thoughtsTokenCount"))
        return inputs, outputs
    return None


def price_of(table: PriceTable, model: str | None, usage: Any, images: int = 0) -> Cost | None:
    """Usage x the model's prices; None when the model is not priced or nothing was reported."""
    price = table.price(model)
    tokens = token_counts(usage)
    if price is None or (tokens is None and not images):
        return None
    inputs, outputs = tokens or (0, 0)
    amount = (inputs * price.input + outputs * price.output) / 1_000_000 + images * price.image
    return Cost(amount=round(amount, 9), currency=table.currency, source="price_table")


def _provider_price(value: Any) -> float | None:
    """Glif's `price`: documented as a string ("2.1000875"), sometimes a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    return amount if amount >= 0 else None


def _glif(price: Any) -> Cost | None:
    amount = _provider_price(price)
    return (
        None if amount is None else Cost(amount=amount, currency=GLIF_CURRENCY, source="provider")
    )


def _images(data: Mapping[str, Any]) -> int:
    images = data.get("images")
    if isinstance(images, list):
        return len(images)
    return 1 if data.get("content_type") == "image" else 0


def _model(result: JobResult, data: Mapping[str, Any]) -> str | None:
    meta = result.service_metadata
    found = data.get("model_used") or (meta.model_used if meta else None)
    return str(found or result.metadata.get("model") or "") or None


def result_cost(service: str, result: JobResult, table: PriceTable) -> Cost | None:
    """The cost of a completed job, from its result."""
    if service in PROVIDER_CURRENCY:
        return _glif(result.metadata.get("price"))
    data = result.data or {}
    usage = data.get("usage") or result.metadata.get("usage")
    return price_of(table, _model(result, data), usage, _images(data))


def error_cost(service: str, context: Mapping[str, Any], table: PriceTable) -> Cost | None:
    """The cost of a failed attempt whose call the provider billed, from the error's context."""
    raw = context.get("raw_response")
    raw = raw if isinstance(raw, Mapping) else {}
    if service in PROVIDER_CURRENCY:
        return _glif(raw.get("price"))
    usage = context.get("usage") or raw.get("usageMetadata") or raw.get("usage")
    model = context.get("model") or raw.get("modelVersion") or raw.get("model")
    return price_of(table, str(model) if model else None, usage)
