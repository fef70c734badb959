"""ComfyUI's refusals of a prompt (HTTP 400 on POST /prompt), as validation errors naming the node.

ComfyUI answers `{"error": {"type", "message", "details", "extra_info"}, "node_errors": {...}}`;
every such 400 is permanent. `prompt_outputs_failed_validation` names the bad nodes and inputs,
`invalid_prompt` a node whose class does not exist (a missing custom node), `prompt_no_outputs`
the workflow as a whole. Pure: `refine_prompt_error` is the ApiProfile's refiner.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = ["PROMPT_ERRORS", "refine_prompt_error", "rejection"]

R = FailureReason
T = FailureType
PROMPT_ERRORS = frozenset(
    {"prompt_outputs_failed_validation", "invalid_prompt", "prompt_no_outputs"}
)
# Inputs whose "value not in list" means a model file the server does not have.
_MODEL_INPUTS = frozenset(
    {"ckpt_name", "lora_name", "vae_name", "unet_name", "clip_name", "control_net_name"}
)
_NODE_ID = re.compile(r"#?'?#?([^'\s]+)'?")


def _reason(kind: str, error_type: str, input_name: str | None, message: str) -> FailureReason:
    if error_type == "required_input_missing":
        return R.MISSING_REQUIRED_FIELD
    if error_type == "value_not_in_list" and input_name in _MODEL_INPUTS:
        return R.MODEL_NOT_FOUND
    if kind == "invalid_prompt" and "does not exist" in message:
        return R.COMPONENT_ERROR  # a node class the server lacks: a custom node not installed
    return R.INVALID_PAYLOAD


def _first_node_error(node_errors: Any) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    if not isinstance(node_errors, dict):
        return None
    for node, info in node_errors.items():
        errors = info.get("errors") if isinstance(info, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(node), info, errors[0]
    return None


def _node_from_details(details: str) -> str | None:
    # invalid_prompt: details "Node ID '#3'"
    if not details.startswith("Node ID"):
        return None
    found = _NODE_ID.search(details.removeprefix("Node ID").strip())
    return found.group(1) if found else None


def rejection(body: Any) -> tuple[Classification, str, dict[str, Any]] | None:
    """The classification, message and context of a prompt refusal body, or None if not one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or error.get("type") not in PROMPT_ERRORS:
        return None
    kind, message = str(error["type"]), str(error.get("message") or error["type"])
    details = str(error.get("details") or "")
    node, error_type, input_name, class_type = _node_from_details(details), kind, None, None
    first = _first_node_error(body.get("node_errors"))
    if first is not None:
        node, info, item = first
        error_type = str(item.get("type") or kind)
        extra = item.get("extra_info")
        input_name = (extra.get("input_name") if isinstance(extra, dict) else None) or None
        class_type = info.get("class_type")
        message = str(item.get("message") or message)
        details = str(item.get("details") or "")
    field = "workflow" if node is None else f"workflow.{node}"
    field += f".inputs.{input_name}" if node is not None and input_name else ""
    where = (
        "the workflow"
        if node is None
        else f"node {node}" + (f" ({class_type})" if class_type else "")
    )
    text = f"ComfyUI rejected {where}: {message}" + (f": {details}" if details else "")
    found = Classification(
        T.VALIDATION_ERROR, _reason(kind, error_type, input_name, message), False
    )
    context = {
        "field": field,
        "node_id": node,
        "comfyui_error": kind,
        "node_errors": body.get("node_errors"),
    }
    return found, text, context


def refine_prompt_error(
    error: ConnectorError, response: requests.Response, body: Any
) -> ConnectorError:
    """The ApiProfile refiner: a prompt refusal named by node, anything else as `error` is."""
    if response.status_code != 400:
        return error
    found = rejection(body)
    if found is None:
        return error
    classification, message, context = found
    return error.reclassified(classification, message, context=context)
