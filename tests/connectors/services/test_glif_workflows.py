"""Named Glif workflows: a name resolved to its workflow id, the job's inputs over the defaults."""

from __future__ import annotations

import re
from typing import Any

import pytest

from connectors.errors import ConnectorError, FailureType
from connectors.services.glif import GlifConnector
from connectors.services.glif_workflows import GlifWorkflow, merge_inputs, resolve_workflow

WORKFLOWS = {
    "logo-maker": GlifWorkflow(workflow_id="clv6logo", inputs={"prompt": "a fox", "style": "flat"}),
    "poster": GlifWorkflow(workflow_id="clv6poster", inputs=["a city", "noir", "A3"]),
    "bare": GlifWorkflow(workflow_id="clv6bare"),
}


@pytest.mark.parametrize(
    ("defaults", "given", "merged"),
    [
        ({"prompt": "a fox", "style": "flat"}, {"style": "3d"}, {"prompt": "a fox", "style": "3d"}),
        ({"prompt": "a fox"}, {"extra": "x"}, {"prompt": "a fox", "extra": "x"}),
        (["a city", "noir", "A3"], ["Paris"], ["Paris", "noir", "A3"]),
        (["a city", "noir"], ["Paris", "pop", "A4"], ["Paris", "pop", "A4"]),
        (["a city"], None, ["a city"]),
        (["a city"], [], ["a city"]),
        ({"prompt": "a fox"}, {}, {"prompt": "a fox"}),
        ({}, ["given"], ["given"]),  # no defaults: the job's inputs, either form
        ([], {"k": "v"}, {"k": "v"}),
        ({}, None, {}),
    ],
)
def test_job_inputs_are_merged_over_the_defaults(defaults: Any, given: Any, merged: Any) -> None:
    assert merge_inputs(defaults, given, workflow="w", service="glif") == merged


def test_merging_does_not_change_the_table() -> None:
    defaults = ["a", "b"]
    merged = merge_inputs(defaults, None, workflow="w", service="glif")
    merged.append("c")
    assert defaults == ["a", "b"]


@pytest.mark.parametrize(
    ("defaults", "given", "says"),
    [
        ({"prompt": "a fox"}, ["x"], "takes named (an object) inputs, this job gave positional"),
        (["a city"], {"prompt": "x"}, "takes positional (a list) inputs, this job gave named"),
    ],
)
def test_inputs_of_the_other_form_are_a_validation_error(
    defaults: Any, given: Any, says: str
) -> None:
    with pytest.raises(ConnectorError, match=re.escape(says)) as caught:
        merge_inputs(defaults, given, workflow="w", service="glif")
    assert caught.value.context["field"] == "inputs"
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("payload", "resolved"),
    [
        (
            {"workflow": "logo-maker", "inputs": {"prompt": "an owl"}},
            {"workflow_id": "clv6logo", "inputs": {"prompt": "an owl", "style": "flat"}},
        ),
        (
            {"workflow": "poster", "inputs": ["Rome"], "visibility": "PUBLIC", "strict": True},
            {
                "workflow_id": "clv6poster",
                "inputs": ["Rome", "noir", "A3"],
                "visibility": "PUBLIC",
                "strict": True,
            },
        ),
        (
            {"workflow": "logo-maker"},
            {"workflow_id": "clv6logo", "inputs": WORKFLOWS["logo-maker"].inputs},
        ),
        ({"workflow": "bare", "inputs": ["x"]}, {"workflow_id": "clv6bare", "inputs": ["x"]}),
        ({"workflow_id": "raw", "inputs": ["x"]}, {"workflow_id": "raw", "inputs": ["x"]}),
    ],
)
def test_named_workflow_resolves_to_a_payload_the_glif_connector_accepts(
    payload: dict[str, Any], resolved: dict[str, Any]
) -> None:
    result = resolve_workflow(payload, WORKFLOWS)
    assert result == resolved
    GlifConnector.validate_payload(result)


def test_unknown_workflow_is_a_validation_error_listing_the_known_ones() -> None:
    with pytest.raises(ConnectorError) as caught:
        resolve_workflow({"workflow": "logo-makr", "inputs": []}, WORKFLOWS)
    error = caught.value
    assert error.failure_type is FailureType.VALIDATION_ERROR
    assert error.retryable is False
    assert "unknown Glif workflow 'logo-makr'; known workflows: bare, logo-maker, poster" in str(
        error
    )
    assert error.context["known_workflows"] == ["bare", "logo-maker", "poster"]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"workflow": "logo-maker", "workflow_id": "x", "inputs": []}, "not both"),
        ({"workflow": 3, "inputs": []}, "must be the name of a Glif workflow"),
        ({"workflow": " ", "inputs": []}, "must be the name of a Glif workflow"),
    ],
)
def test_ambiguous_or_malformed_names_are_refused(payload: dict[str, Any], says: str) -> None:
    with pytest.raises(ConnectorError, match=says) as caught:
        resolve_workflow(payload, WORKFLOWS)
    assert caught.value.context["field"] == "workflow"


def test_an_empty_table_says_so() -> None:
    with pytest.raises(
        ConnectorError, match=re.escape("none (the mapping's glif_workflows is empty)")
    ):
        resolve_workflow({"workflow": "x"}, {})


@pytest.mark.parametrize(
    "entry",
    [{"workflow_id": ""}, {"workflow_id": "has space"}, {"workflow_id": "x", "inputs": [1]}, {}],
)
def test_a_bad_table_entry_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        GlifWorkflow.model_validate(entry)
