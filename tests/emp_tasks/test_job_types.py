"""Named Glif workflows as job types: the mapping's table, the alias, submit and worker checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import emp_tasks
from connectors.errors import ConnectorError, FailureType
from connectors.services.glif_workflows import GlifWorkflow
from emp_tasks.config import load_glif_workflows, resolve_service, services
from emp_tasks.job_types import named_payload, prepare_payload
from emp_tasks.runner import run_job
from emp_tasks.tasks import _make_task
from tests.emp_tasks.fakes import FakeTask

TABLE = {"logo-maker": GlifWorkflow(workflow_id="clv6logo", inputs={"prompt": "a fox"})}
DEFAULT_LOGO_ID = "clgh1vxtu0011mo081dplq3xs"


def write_mapping(tmp_path: Path, workflows: dict[str, Any]) -> Path:
    mapping = {
        "services": {"glif": {"connector": "m:C", "queue": "glif"}},
        "aliases": {"old-glif": "glif"},
        "glif_workflows": workflows,
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    return path


@pytest.mark.parametrize(
    ("env", "workflow_id"),
    [
        ({}, DEFAULT_LOGO_ID),
        ({"GLIF_LOGO_MAKER_WORKFLOW_ID": ""}, DEFAULT_LOGO_ID),  # empty counts as unset
        ({"GLIF_LOGO_MAKER_WORKFLOW_ID": "clv6mine"}, "clv6mine"),
    ],
)
def test_the_mappings_logo_maker_follows_the_environment(
    env: dict[str, str], workflow_id: str
) -> None:
    logo = load_glif_workflows(env=env)["logo-maker"]
    assert logo.workflow_id == workflow_id
    assert isinstance(logo.inputs, dict)
    assert "node_6" in logo.inputs  # the block name of the docs' example glif


def test_comment_keys_are_skipped(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, {"_comment": "x", "a": {"workflow_id": "clv6a"}})
    assert list(load_glif_workflows(path, env={})) == ["a"]


@pytest.mark.parametrize(
    ("workflows", "says"),
    [
        ({"glif": {"workflow_id": "x"}}, "glif_workflows.glif: the name is already a service"),
        ({"old-glif": {"workflow_id": "x"}}, "glif_workflows.old-glif: the name is already"),
        ({"a": {"workflow_id": ""}}, "glif_workflows.a.workflow_id"),
        ({"a": {"workflow_id": "x", "inputs": [1]}}, "glif_workflows.a.inputs"),
        ({"a": {"workflow_id": "x", "price": 1}}, "glif_workflows.a.price"),
        ({"a": {"workflow_id": "${LOGO_ID}"}}, "LOGO_ID"),  # a bare variable is required
    ],
)
def test_a_bad_table_refuses_to_load_naming_the_entry(
    tmp_path: Path, workflows: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConnectorError, match=says) as caught:
        load_glif_workflows(write_mapping(tmp_path, workflows), env={})
    assert caught.value.failure_reason.value == "config_error"


def test_a_workflow_name_is_a_service_alias_of_glif() -> None:
    assert resolve_service("logo-maker").name == "glif"


def test_an_unknown_service_lists_the_named_workflows_too() -> None:
    with pytest.raises(ConnectorError, match="named Glif workflows: logo-maker"):
        resolve_service("logo-makr")


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        (
            "logo-maker",
            {"inputs": {"prompt": "x"}},
            {"inputs": {"prompt": "x"}, "workflow": "logo-maker"},
        ),
        ("logo-maker", {"workflow": "logo-maker"}, {"workflow": "logo-maker"}),
        ("glif", {"workflow_id": "w", "inputs": []}, {"workflow_id": "w", "inputs": []}),
        ("logo-maker", "not an object", "not an object"),  # the connector's validation says no
    ],
)
def test_a_job_submitted_as_a_workflow_name_names_its_workflow(
    name: str, payload: Any, expected: Any
) -> None:
    assert named_payload(name, payload, TABLE) == expected


def test_a_payload_naming_another_workflow_than_its_service_is_refused() -> None:
    with pytest.raises(ConnectorError, match="'poster' contradicts the service 'logo-maker'"):
        named_payload("logo-maker", {"workflow": "poster"}, TABLE)


@pytest.mark.parametrize(
    ("service", "payload", "expected"),
    [
        (
            "glif",
            {"workflow": "logo-maker", "inputs": {"style": "flat"}},
            {"workflow_id": "clv6logo", "inputs": {"prompt": "a fox", "style": "flat"}},
        ),
        ("glif", {"workflow_id": "w", "inputs": []}, {"workflow_id": "w", "inputs": []}),
        ("mock", {"workflow": "logo-maker"}, {"workflow": "logo-maker"}),  # glif only
    ],
)
def test_prepare_payload_resolves_glif_workflow_names_only(
    service: str, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert prepare_payload(service, payload, TABLE) == expected


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    app = Celery("test-job-types", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex}"
    yield app
    app.close()


def test_a_named_job_is_published_with_its_name_for_the_worker_to_resolve(
    memory_app: Celery,
) -> None:
    task = _make_task(services()["glif"], celery_app=memory_app)
    payload = {"workflow": "logo-maker", "inputs": {"node_6": "an owl"}}
    task.delay(payload)
    with memory_app.connection_for_read() as conn:
        message = conn.SimpleQueue(memory_app.conf.task_default_queue).get(timeout=1)
        message.ack()
    assert message.payload[0] == [payload]


@pytest.mark.parametrize(
    ("service", "payload", "field"),
    [
        ("glif", {"workflow": "nope", "inputs": []}, "workflow"),
        ("logo-maker", {"inputs": ["positional"]}, "inputs"),  # its defaults are named
        ("logo-maker", {"workflow": "other"}, "workflow"),
        ("logo-maker", {"inputs": {"node_6": 3}}, "inputs"),
    ],
)
def test_submit_refuses_a_bad_named_job_before_it_reaches_a_queue(
    service: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        emp_tasks.submit(service, payload)  # no broker runs here: refused before publishing
    assert caught.value.failure_type is FailureType.VALIDATION_ERROR
    assert caught.value.context["field"] == field


def test_the_worker_fails_an_unknown_name_before_any_call() -> None:
    task = FakeTask()
    with pytest.raises(ConnectorError, match="unknown Glif workflow 'nope'") as caught:
        run_job(task, services()["glif"], {"workflow": "nope", "inputs": []})
    assert caught.value.retryable is False
    assert task.event_names == ["fail_job"]
