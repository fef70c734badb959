"""ComfyUI's payload and messages, decided without I/O: ids, steps, failures, history outcomes.

The prompt id and the client id are derived from the job id (uuid5), so every attempt of a job
uses the same ones: a retry finds its prompt in ComfyUI's queue or history by id, and listens on
the socket ComfyUI sends that prompt's events to. Wire format: provider-apis.md section 5.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.protocol.websocket import Message, Step

__all__ = [
    "ComfyNode",
    "ComfyUIPayload",
    "HistoryOutcome",
    "client_id_for",
    "execution_failure",
    "history_outcome",
    "image_refs",
    "interrupted",
    "prompt_id_for",
    "read_message",
]

R = FailureReason
T = FailureType
_NAMESPACE = uuid.UUID("5b0f3c8e-8a51-4f5e-9d7e-3c2b1a0e9f11")  # emp-tasks' ComfyUI ids
_OOM = re.compile(r"out ?of ?memory|outofmemoryerror|allocation on device", re.IGNORECASE)
# CUDA out of memory passes once the GPU is free again: worth a later attempt.
_GPU_FULL = Classification(T.RESOURCE_LIMIT, R.GPU_MEMORY_FULL, retryable=True)
# The node raised on this input: the same workflow raises again.
_NODE_FAILED = Classification(T.SERVICE_ERROR, R.JOB_FAILED, retryable=False)
# Someone interrupted it on purpose (POST /interrupt): cancelled, not retried.
_CANCELLED = Classification(T.SERVICE_ERROR, R.JOB_FAILED, retryable=False)
HistoryOutcome = Literal["success", "unfinished"] | ConnectorError


class ComfyNode(BaseModel):
    """One node of an API-format workflow: its class and inputs (links are `[node id, index]`)."""

    model_config = ConfigDict(extra="allow")  # `_meta` and friends ride along untouched

    class_type: StrictStr = Field(min_length=1, pattern=r"\S")
    inputs: dict[str, Any] = Field(default_factory=dict)


class ComfyUIPayload(BaseModel):
    """A ComfyUI job: the workflow in API format, and optionally the socket's client id."""

    model_config = ConfigDict(extra="forbid")

    workflow: dict[str, ComfyNode] = Field(min_length=1)
    # Must be unique per job: ComfyUI keeps one socket per client id. Default: from the job id.
    client_id: StrictStr | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _links_name_nodes(self) -> ComfyUIPayload:
        for node_id, node in self.workflow.items():
            for name, value in node.inputs.items():
                if _is_link(value) and str(value[0]) not in self.workflow:
                    raise ValueError(
                        f"node {node_id} input {name!r} links to node {value[0]!r}, "
                        "which is not in the workflow"
                    )
        return self

    def graph(self) -> dict[str, Any]:
        """The workflow as ComfyUI's POST /prompt takes it."""
        return {key: node.model_dump(mode="json") for key, node in self.workflow.items()}


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
    )


def prompt_id_for(job_id: str) -> str:
    """The prompt id every attempt of `job_id` submits under (ComfyUI takes it from the client)."""
    return str(uuid.uuid5(_NAMESPACE, f"prompt:{job_id}"))


def client_id_for(job_id: str) -> str:
    """The socket client id of `job_id`: ComfyUI sends the prompt's events to this socket."""
    return uuid.uuid5(_NAMESPACE, f"client:{job_id}").hex


def execution_failure(data: dict[str, Any]) -> ConnectorError:
    """The error of an `execution_error` message: OOM retryable, any other exception not."""
    etype = str(data.get("exception_type") or "Exception")
    text = str(data.get("exception_message") or "").strip()
    found = _GPU_FULL if _OOM.search(etype) or _OOM.search(text) else _NODE_FAILED
    node, kind = data.get("node_id"), data.get("node_type")
    trace = data.get("traceback")
    return found.error(
        f"ComfyUI node {node} ({kind}) failed: {etype}: {text[:500]}",
        context={
            "node_id": node,
            "node_type": kind,
            "exception_type": etype,
            "exception_message": text,
            "traceback": trace[-5:] if isinstance(trace, list) else None,
        },
    )


def interrupted(data: dict[str, Any]) -> ConnectorError:
    """The error of an `execution_interrupted` message: cancelled, not retried."""
    node, kind = data.get("node_id"), data.get("node_type")
    return _CANCELLED.error(
        f"ComfyUI prompt was interrupted (cancelled) at node {node} ({kind})",
        context={"node_id": node, "node_type": kind, "cancelled": True},
    )


def read_message(message: Message) -> Step:
    """What one ComfyUI event for our prompt means (events of other prompts never get here)."""
    kind, data = message.get("type"), message.get("data")
    data = data if isinstance(data, dict) else {}
    if kind == "executing":
        if data.get("node") is None:
            return Step("done")  # sent after the history is written: safe to read it now
        return Step("progress", message=f"Executing node {data['node']}")
    if kind == "progress":
        value, top = data.get("value"), data.get("max")
        if not _number(value) or not _number(top) or top <= 0:
            return Step()
        share = 100.0 * min(float(value), float(top)) / float(top)
        return Step("progress", share, f"Node {data.get('node')}: step {value} of {top}")
    if kind == "executed":
        output = {"node": data.get("node"), "output": data.get("output")}
        return Step("progress", message=f"Node {data.get('node')} produced output", output=output)
    if kind == "execution_start":
        return Step("progress", 0.0, "Execution started")
    if kind == "execution_cached":
        nodes = data.get("nodes") or []
        return Step("progress", message=f"{len(nodes)} cached nodes reused")
    if kind == "execution_error":
        return Step("failed", error=execution_failure(data))
    if kind == "execution_interrupted":
        return Step("failed", error=interrupted(data))
    return Step()  # status, progress_state, execution_success, custom nodes' own events


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def history_outcome(entry: Any) -> HistoryOutcome:
    """How a `/history/<id>` entry ended: success, the classified failure, or unfinished."""
    status = entry.get("status") if isinstance(entry, dict) else None
    if not isinstance(status, dict):
        return "unfinished"
    for message in reversed(status.get("messages") or []):
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
            if message[0] == "execution_error":
                return execution_failure(message[1])
            if message[0] == "execution_interrupted":
                return interrupted(message[1])
    done = status.get("status_str") == "success" and status.get("completed") is not False
    return "success" if done else "unfinished"


def image_refs(outputs: Any) -> list[dict[str, str]]:
    """Every image an outputs map lists (`{node: {"images": [...]}}`), tagged with its node."""
    refs: list[dict[str, str]] = []
    if not isinstance(outputs, dict):
        return refs
    for node, output in outputs.items():
        images = output.get("images") if isinstance(output, dict) else None
        for image in images if isinstance(images, list) else []:
            if isinstance(image, dict) and isinstance(image.get("filename"), str):
                refs.append(
                    {
                        "node": str(node),
                        "filename": image["filename"],
                        "subfolder": str(image.get("subfolder") or ""),
                        "type": str(image.get("type") or "output"),
                    }
                )
    return refs
