"""What a job cost: Glif's own price, or token usage x the per-model price table (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.cost import (
    Cost,
    ModelPrice,
    PriceTable,
    error_cost,
    price_of,
    result_cost,
    token_counts,
)
from connectors.models import JobResult, ServiceMetadata

TABLE = PriceTable(
    currency="usd",
    models={
        "gpt-4o": ModelPrice(input=2.5, output=10.0),
        "gpt-4o-mini": ModelPrice(input=0.15, output=0.6),
        "gpt-image-1": ModelPrice(input=5.0, output=40.0),
        "dall-e-3": ModelPrice(image=0.04),
        "gemini-2.5-flash": ModelPrice(input=0.3, output=2.5),
        "gemini-2.5-flash-image": ModelPrice(input=0.3, image=0.039),
    },
)


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}, (10, 20)),
        ({"input_tokens": 7, "output_tokens": 272, "total_tokens": 279}, (7, 272)),
        ({"promptTokenCount": 5, "candidatesTokenCount": 8, "totalTokenCount": 13}, (5, 8)),
        (
            {"promptTokenCount": 5, "candidatesTokenCount": 8, "thoughtsTokenCount": 100},
            (5, 108),
        ),
        ({"promptTokenCount": 4, "totalTokenCount": 4}, (4, 0)),  # blocked prompt
        ({"prompt_tokens": 3, "completion_tokens": None}, (3, 0)),
        ({}, None),
        (None, None),
        ({"total_tokens": 9}, None),
        ("12 tokens", None),
    ],
)
def test_token_counts_read_each_providers_usage_shape(usage: Any, tokens: Any) -> None:
    assert token_counts(usage) == tokens


@pytest.mark.parametrize(
    ("model", "usage", "images", "amount"),
    [
        ("gpt-4o-mini", {"prompt_tokens": 1_000_000, "completion_tokens": 0}, 0, 0.15),
        ("gpt-4o-mini", {"prompt_tokens": 1000, "completion_tokens": 2000}, 0, 0.00135),
        # A dated snapshot takes its family's price; the longest matching name wins.
        ("gpt-4o-mini-2024-07-18", {"prompt_tokens": 1000, "completion_tokens": 2000}, 0, 0.00135),
        ("gpt-4o-2024-08-06", {"prompt_tokens": 1000, "completion_tokens": 1000}, 0, 0.0125),
        ("gpt-image-1", {"input_tokens": 10, "output_tokens": 272}, 1, 0.01093),
        ("dall-e-3", None, 2, 0.08),
        (
            "models/gemini-2.5-flash",
            {"promptTokenCount": 100, "candidatesTokenCount": 10},
            0,
            5.5e-05,
        ),
        (
            "gemini-2.5-flash-image",
            {"promptTokenCount": 10, "candidatesTokenCount": 1290},
            1,
            0.039003,
        ),
    ],
)
def test_usage_times_the_models_price(model: str, usage: Any, images: int, amount: float) -> None:
    cost = price_of(TABLE, model, usage, images)
    assert cost is not None
    assert (cost.currency, cost.source) == ("usd", "price_table")
    assert cost.amount == pytest.approx(amount)


@pytest.mark.parametrize(
    ("model", "usage"),
    [
        ("unknown-model", {"prompt_tokens": 1, "completion_tokens": 1}),
        (None, {"prompt_tokens": 1, "completion_tokens": 1}),
        ("gpt-4o", None),  # nothing reported: unknown, not free
    ],
)
def test_an_unpriced_model_or_missing_usage_has_no_cost(model: Any, usage: Any) -> None:
    assert price_of(TABLE, model, usage) is None


def test_an_override_replaces_same_named_models_only() -> None:
    merged = TABLE.merged(PriceTable(models={"gpt-4o": ModelPrice(input=1, output=1)}))
    assert merged.price("gpt-4o") == ModelPrice(input=1, output=1)
    assert merged.price("gpt-4o-mini") == TABLE.price("gpt-4o-mini")


def _result(**fields: Any) -> JobResult:
    return JobResult(**fields)


@pytest.mark.parametrize(
    ("service", "result", "expected"),
    [
        (
            "glif",
            _result(metadata={"price": 2.1000875}),
            Cost(amount=2.1000875, currency="glif_credits", source="provider"),
        ),
        ("glif", _result(metadata={"price": None}), None),
        (
            "openai_text",
            _result(
                data={
                    "model_used": "gpt-4o-mini",
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 1000},
                }
            ),
            Cost(amount=0.00075, currency="usd", source="price_table"),
        ),
        (
            "openai_image",
            _result(
                data={
                    "content_type": "image",
                    "images": [{}, {}],
                    "usage": {},
                },
                service_metadata=ServiceMetadata(model_used="dall-e-3"),
            ),
            Cost(amount=0.08, currency="usd", source="price_table"),
        ),
        (
            "gemini_text",
            _result(
                data={"content_type": "text", "model_used": "gemini-2.5-flash"},
                metadata={"usage": {"promptTokenCount": 1000, "candidatesTokenCount": 1000}},
            ),
            Cost(amount=0.0028, currency="usd", source="price_table"),
        ),
        ("mock", _result(data={"test_data": "x"}), None),
    ],
)
def test_result_cost_per_service(service: str, result: JobResult, expected: Cost | None) -> None:
    cost = result_cost(service, result, TABLE)
    if expected is None:
        assert cost is None
    else:
        assert cost is not None
        assert (cost.currency, cost.source) == (expected.currency, expected.source)
        assert cost.amount == pytest.approx(expected.amount)


@pytest.mark.parametrize(
    ("service", "context", "amount"),
    [
        # A refusal after generation: the tokens were billed.
        (
            "openai_text",
            {"usage": {"prompt_tokens": 1000, "completion_tokens": 0}, "model": "gpt-4o"},
            0.0025,
        ),
        (
            "gemini_text",
            {
                "finish_reason": "SAFETY",
                "raw_response": {
                    "modelVersion": "gemini-2.5-flash",
                    "usageMetadata": {"promptTokenCount": 1000, "totalTokenCount": 1000},
                },
            },
            0.0003,
        ),
        ("glif", {"raw_response": {"error": "x", "price": "0.5"}}, 0.5),
        ("glif", {"raw_response": {"error": "Workflow execution failed"}}, None),
        ("openai_text", {"status": 401}, None),
    ],
)
def test_error_cost_reads_what_the_provider_billed(
    service: str, context: dict[str, Any], amount: float | None
) -> None:
    cost = error_cost(service, context, TABLE)
    assert (cost.amount if cost else None) == (None if amount is None else pytest.approx(amount))
