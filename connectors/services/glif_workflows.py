"""Named Glif workflows: job types mapped to a workflow id and its default inputs.

The Glif record asks to "map Glif workflow IDs to job types". A table of `GlifWorkflow`s (the
service mapping's `glif_workflows`, loaded by `emp_tasks.config`) names workflows; a job asks for
one with `{"workflow": NAME, "inputs": ...}` instead of a `workflow_id`. `resolve_workflow`
turns that into the payload `GlifPayload` validates, with the job's inputs merged over the
workflow's defaults:

* named defaults (an object) and named inputs: the job's keys win, the defaults fill the rest;
* positional defaults (a list) and positional inputs: the job's value wins at every position
  it gives, the defaults fill the positions after its last;
* no inputs in the job (absent, `[]` or `{}`): the defaults as they are;
* inputs of the other form than the defaults: a validation_error, since a position cannot be
  matched to a block name without asking Glif for the workflow's block order.

Pure: no I/O, no configuration read here; the table is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import validation_error

__all__ = ["GlifInputs", "GlifWorkflow", "merge_inputs", "resolve_workflow"]

GlifInputs = list[str] | dict[str, str]


class GlifWorkflow(BaseModel):
    """A named Glif workflow: its id and the default inputs a job's own inputs override."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(min_length=1, pattern=r"^\S+$")
    inputs: GlifInputs = Field(default_factory=dict)
    description: str = ""


def _form(inputs: object) -> str:
    return "positional (a list)" if isinstance(inputs, list) else "named (an object)"


def merge_inputs(defaults: GlifInputs, given: Any, *, workflow: str, service: str) -> Any:
    """The job's inputs merged over the workflow's defaults (the rules in the module doc)."""
    if given is None or (isinstance(given, list | dict) and not given):
        return list(defaults) if isinstance(defaults, list) else dict(defaults)
    if not isinstance(given, list | dict) or not defaults:
        return given  # nothing to merge; GlifPayload says what is wrong with a bad value
    if isinstance(defaults, list) and isinstance(given, list):
        return [*given, *defaults[len(given) :]]
    if isinstance(defaults, dict) and isinstance(given, dict):
        return {**defaults, **given}
    raise validation_error(
        "inputs",
        f"workflow '{workflow}' takes {_form(defaults)} inputs, this job gave {_form(given)}",
        service=service,
        context={"workflow": workflow},
    )


def resolve_workflow(
    payload: Mapping[str, Any], workflows: Mapping[str, GlifWorkflow], *, service: str = "glif"
) -> dict[str, Any]:
    """The payload with `workflow: NAME` replaced by the workflow's id and merged inputs.

    A payload without `workflow` is returned unchanged. An unknown name, a name given with a
    `workflow_id`, or inputs of the wrong form are a validation_error, before any call.
    """
    if "workflow" not in payload:
        return dict(payload)
    rest = {key: value for key, value in payload.items() if key != "workflow"}
    name = payload["workflow"]
    if not isinstance(name, str) or not name.strip():
        raise validation_error("workflow", "must be the name of a Glif workflow", service=service)
    if "workflow_id" in rest:
        raise validation_error(
            "workflow", "give workflow (a name) or workflow_id, not both", service=service
        )
    entry = workflows.get(name)
    if entry is None:
        known = sorted(workflows)
        listed = ", ".join(known) if known else "none (the mapping's glif_workflows is empty)"
        raise validation_error(
            "workflow",
            f"unknown Glif workflow '{name}'; known workflows: {listed}",
            service=service,
            context={"known_workflows": known},
        )
    inputs = merge_inputs(entry.inputs, rest.get("inputs"), workflow=name, service=service)
    return {**rest, "workflow_id": entry.workflow_id, "inputs": inputs}
