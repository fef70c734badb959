"""Job types: a named Glif workflow submitted as a service of its own, resolved at both ends.

A job submitted as service `logo-maker` (a name in the mapping's `glif_workflows`) goes to the
glif service with `"workflow": "logo-maker"` added to its payload; one submitted to glif with
`{"workflow": NAME, ...}` is the same job. The queued message keeps the name: the submitter
resolves it only to validate (an unknown name is refused before it reaches a queue), and the
worker resolves it again, with its own environment, just before the connector runs - so the
worker's `GLIF_*_WORKFLOW_ID` variables decide which workflow id is called, and a replayed job
follows the table as it is then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.errors import validation_error
from connectors.services.glif_workflows import GlifWorkflow, resolve_workflow
from emp_tasks.config import glif_workflows

__all__ = ["GLIF_SERVICE", "named_payload", "prepare_payload"]

GLIF_SERVICE = "glif"


def named_payload(
    name: str, payload: Any, workflows: Mapping[str, GlifWorkflow] | None = None
) -> Any:
    """The payload of a job submitted as service `name`: `workflow` added for a workflow name."""
    table = glif_workflows() if workflows is None else workflows
    if name not in table or not isinstance(payload, Mapping):
        return payload  # not a job type, or a payload the connector's validation refuses
    given = payload.get("workflow", name)
    if given != name:
        raise validation_error(
            "workflow",
            f"'{given}' contradicts the service '{name}' it was submitted as",
            service=GLIF_SERVICE,
        )
    return {**payload, "workflow": name}


def prepare_payload(
    service: str, payload: Any, workflows: Mapping[str, GlifWorkflow] | None = None
) -> Any:
    """The payload the service's connector runs: a glif `workflow` name resolved, else as given."""
    if service != GLIF_SERVICE or not isinstance(payload, Mapping) or "workflow" not in payload:
        return payload
    table = glif_workflows() if workflows is None else workflows
    return resolve_workflow(payload, table, service=GLIF_SERVICE)
