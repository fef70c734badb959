"""ComfyUI's payload, ids, events, failures and history outcomes: pure decisions, in tables."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.services.comfyui import ComfyUIConnector
from connectors.services.comfyui_errors import rejection
from connectors.services.comfyui_messages import (
    client_id_for,
    execution_failure,
    history_outcome,
    image_refs,
    prompt_id_for,
    read_message,
)
from tests.connectors.services.comfyui_support import WORKFLOW, workflow

R, T = FailureReason, FailureType
P = "p-1"


def validate(payload: Any) -> Any:
    connector: type[BaseConnector[Any]] = ComfyUIConnector
    return connector.validate_payload(payload)


def test_ids_are_derived_from_the_job_id_the_same_on_every_attempt() -> None:
    assert prompt_id_for("job-1") == prompt_id_for("job-1") != prompt_id_for("job-2")
    assert client_id_for("job-1") == client_id_for("job-1") != client_id_for("job-2")
    assert prompt_id_for("job-1") != client_id_for("job-1")


def test_the_example_workflow_is_a_valid_payload_and_round_trips() -> None:
    payload = validate({"workflow": WORKFLOW, "client_id": "ui-7"})
    assert payload.graph() == WORKFLOW
    assert payload.client_id == "ui-7"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "workflow"),
        ({"workflow": {}}, "workflow"),
        ({"workflow": {"3": {"inputs": {}}}}, "workflow.3.class_type"),
        ({"workflow": {"3": {"class_type": " "}}}, "workflow.3.class_type"),
        ({"workflow": {"3": {"class_type": "X", "inputs": []}}}, "workflow.3.inputs"),
        ({"workflow": WORKFLOW, "client_id": ""}, "client_id"),
        ({"workflow": WORKFLOW, "extra": 1}, "extra"),
    ],
)
def test_a_bad_payload_names_its_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        validate(payload)
    assert caught.value.failure_type is T.VALIDATION_ERROR
    assert caught.value.context["field"] == field


def test_a_link_to_a_missing_node_is_refused_naming_the_node() -> None:
    broken = workflow(**{"8": {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0]}}})
    with pytest.raises(ConnectorError) as caught:
        validate({"workflow": broken})
    assert "node 8 input 'samples' links to node '30'" in caught.value.message


STEPS = [
    ({"type": "executing", "data": {"node": None, "prompt_id": P}}, "done", None),
    ({"type": "executing", "data": {"node": "3", "prompt_id": P}}, "progress", None),
    ({"type": "progress", "data": {"value": 5, "max": 20, "node": "3"}}, "progress", 25.0),
    ({"type": "progress", "data": {"value": 30, "max": 20}}, "progress", 100.0),
    ({"type": "progress", "data": {"value": 1, "max": 0}}, "ignore", None),
    ({"type": "progress", "data": {"value": "1", "max": 4}}, "ignore", None),
    ({"type": "execution_start", "data": {"prompt_id": P}}, "progress", 0.0),
    ({"type": "execution_cached", "data": {"nodes": ["4", "6"]}}, "progress", None),
    ({"type": "execution_success", "data": {"prompt_id": P}}, "ignore", None),
    ({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}, "ignore", None),
    ({"type": "progress_state", "data": {"nodes": {}}}, "ignore", None),
    ({"type": "crystools.monitor", "data": {}}, "ignore", None),
    ({"type": "executing"}, "done", None),
]


@pytest.mark.parametrize(("message", "kind", "share"), STEPS)
def test_each_event_means_one_step(message: dict[str, Any], kind: str, share: float | None) -> None:
    step = read_message(message)
    assert (step.kind, step.progress) == (kind, share)


def test_executed_carries_the_nodes_output() -> None:
    images = [{"filename": "fox_00001_.png", "subfolder": "", "type": "output"}]
    step = read_message({"type": "executed", "data": {"node": "9", "output": {"images": images}}})
    assert step.output == {"node": "9", "output": {"images": images}}


FAILURES = [
    (
        "torch.OutOfMemoryError",
        "Allocation on device 0 would exceed allowed memory. (out of memory)",
        T.RESOURCE_LIMIT,
        True,
    ),
    ("RuntimeError", "CUDA error: out of memory", T.RESOURCE_LIMIT, True),
    (
        "torch.cuda.OutOfMemoryError",
        "CUDA out of memory. Tried to allocate 2.00 GiB",
        T.RESOURCE_LIMIT,
        True,
    ),
    ("ValueError", "bad latent shape", T.SERVICE_ERROR, False),
    ("KeyError", "'model'", T.SERVICE_ERROR, False),
    ("", "", T.SERVICE_ERROR, False),
]


@pytest.mark.parametrize(("etype", "text", "ftype", "retryable"), FAILURES)
def test_execution_errors_retry_only_out_of_memory(
    etype: str, text: str, ftype: FailureType, retryable: bool
) -> None:
    data = {
        "node_id": "3",
        "node_type": "KSampler",
        "exception_type": etype,
        "exception_message": text,
    }
    error = execution_failure(data)
    assert (error.failure_type, error.retryable) == (ftype, retryable)
    assert "node 3 (KSampler)" in error.message
    assert error.context["node_id"] == "3"


def _history(status: str, *messages: list[Any]) -> dict[str, Any]:
    return {
        "outputs": {},
        "status": {
            "status_str": status,
            "completed": status == "success",
            "messages": list(messages),
        },
    }


OOM = {"node_id": "3", "node_type": "KSampler", "exception_type": "torch.OutOfMemoryError"}
BAD = {"node_id": "3", "node_type": "KSampler", "exception_type": "ValueError"}
HISTORY = [
    (None, "unfinished"),
    ({}, "unfinished"),
    ({"status": None}, "unfinished"),
    (_history("success", ["execution_start", {}], ["execution_success", {}]), "success"),
    (
        _history("error", ["execution_start", {}], ["execution_error", OOM]),
        (R.GPU_MEMORY_FULL, True),
    ),
    (_history("error", ["execution_error", BAD]), (R.JOB_FAILED, False)),
    (_history("error", ["execution_interrupted", {"node_id": "3"}]), (R.JOB_FAILED, False)),
    (_history("error"), "unfinished"),
]


@pytest.mark.parametrize(("entry", "expected"), HISTORY)
def test_a_history_entry_tells_how_the_prompt_ended(entry: Any, expected: Any) -> None:
    outcome = history_outcome(entry)
    if isinstance(outcome, ConnectorError):
        assert (outcome.failure_reason, outcome.retryable) == expected
    else:
        assert outcome == expected


def test_image_refs_lists_every_image_with_its_node() -> None:
    outputs = {
        "9": {"images": [{"filename": "a.png", "subfolder": "x", "type": "output"}, {"bad": 1}]},
        "10": {"images": [{"filename": "b.png"}]},
        "11": {"text": ["hello"]},
    }
    assert image_refs(outputs) == [
        {"node": "9", "filename": "a.png", "subfolder": "x", "type": "output"},
        {"node": "10", "filename": "b.png", "subfolder": "", "type": "output"},
    ]
    assert image_refs(None) == []


def _rejected(
    kind: str, node_errors: Any = None, details: str = "", message: str = "m"
) -> dict[str, Any]:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return {"error": error, "node_errors": node_errors or {}}


def _node_error(error_type: str, input_name: str, class_type: str = "KSampler") -> dict[str, Any]:
    item = {
        "type": error_type,
        "message": "Required input is missing",
        "details": input_name,
        "extra_info": {"input_name": input_name},
    }
    return {"3": {"errors": [item], "dependent_outputs": ["9"], "class_type": class_type}}


REJECTIONS = [
    (
        _rejected(
            "prompt_outputs_failed_validation", _node_error("required_input_missing", "model")
        ),
        R.MISSING_REQUIRED_FIELD,
        "workflow.3.inputs.model",
        "node 3 (KSampler)",
    ),
    (
        _rejected(
            "prompt_outputs_failed_validation",
            _node_error("value_not_in_list", "ckpt_name", "CheckpointLoaderSimple"),
        ),
        R.MODEL_NOT_FOUND,
        "workflow.3.inputs.ckpt_name",
        "node 3 (CheckpointLoaderSimple)",
    ),
    (
        _rejected(
            "prompt_outputs_failed_validation", _node_error("value_bigger_than_max", "steps")
        ),
        R.INVALID_PAYLOAD,
        "workflow.3.inputs.steps",
        "node 3",
    ),
    (
        _rejected(
            "invalid_prompt",
            details="Node ID '#12'",
            message="Cannot execute because node Foo does not exist.",
        ),
        R.COMPONENT_ERROR,
        "workflow.12",
        "node 12",
    ),
    (
        _rejected("prompt_no_outputs", message="Prompt has no outputs"),
        R.INVALID_PAYLOAD,
        "workflow",
        "the workflow",
    ),
]


@pytest.mark.parametrize(("body", "reason", "field", "named"), REJECTIONS)
def test_a_prompt_refusal_is_a_validation_error_naming_the_node(
    body: dict[str, Any], reason: FailureReason, field: str, named: str
) -> None:
    found = rejection(body)
    assert found is not None
    classification, message, context = found
    assert (classification.failure_type, classification.failure_reason) == (
        T.VALIDATION_ERROR,
        reason,
    )
    assert not classification.retryable
    assert context["field"] == field
    assert named in message


@pytest.mark.parametrize(
    "body", [None, {}, {"error": "x"}, _rejected("no_prompt"), {"error": {"type": "server"}}]
)
def test_other_bodies_are_not_prompt_refusals(body: Any) -> None:
    assert rejection(body) is None
