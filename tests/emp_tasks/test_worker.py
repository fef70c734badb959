"""Worker start-up checks: required variables and output storage, before any job is taken."""

from __future__ import annotations

import pytest

from emp_tasks.config import load_services
from emp_tasks.worker import check_environment, services_for_queues

SPECS = load_services(env={})


@pytest.mark.parametrize(
    ("services", "env", "complaint"),
    [
        (["glif"], {"GLIF_API_TOKEN": "t"}, ""),
        (["glif"], {}, "missing required environment variables: glif: GLIF_API_TOKEN"),
        (["glif", "openai_text"], {}, "glif: GLIF_API_TOKEN; openai_text: OPENAI_API_KEY"),
        (
            ["glif"],
            {"GLIF_API_TOKEN": "t", "CLOUD_STORAGE_PROVIDER": "s3"},
            "output storage is misconfigured",
        ),
        (
            ["glif"],
            {"GLIF_API_TOKEN": "t", "CLOUD_STORAGE_PROVIDER": "azure"},
            "output storage is misconfigured",
        ),
        # a service that saves nothing does not care about storage settings
        (["openai_text"], {"OPENAI_API_KEY": "k", "CLOUD_STORAGE_PROVIDER": "s3"}, ""),
        (["mock"], {}, ""),
        (["mock"], {"EMP_METRICS_PORT": "9808", "EMP_LOG_FORMAT": "json"}, ""),
        (["mock"], {"EMP_METRICS_PORT": "port"}, "EMP_METRICS_PORT must be a TCP port"),
        (["mock"], {"EMP_METRICS_PORT": "0"}, "EMP_METRICS_PORT must be a TCP port"),
        (["mock"], {"EMP_METRICS_PORT": "9808", "EMP_METRICS_ADDRESS": "host"}, "ADDRESS"),
        (["mock"], {"EMP_LOG_FORMAT": "yaml"}, "EMP_LOG_FORMAT must be text or json"),
        (["mock"], {"EMP_TASK_SENT_EVENT": "0", "EMP_EVENT_FLUSH_INTERVAL": "0.5"}, ""),
        (["mock"], {"EMP_TASK_SENT_EVENT": "off"}, "EMP_TASK_SENT_EVENT must be 1 or 0"),
        (["mock"], {"EMP_EVENT_FLUSH_INTERVAL": "9"}, "EMP_EVENT_FLUSH_INTERVAL must be seconds"),
    ],
)
def test_start_up_check(services: list[str], env: dict[str, str], complaint: str) -> None:
    found = check_environment([SPECS[name] for name in services], env)
    assert (complaint in found) if complaint else found == ""
    assert "\n" not in found


def test_queues_select_services_and_no_queues_means_all() -> None:
    assert [s.name for s in services_for_queues(["glif", " mock "])] == ["glif", "mock"]
    assert len(services_for_queues([])) == len(SPECS)
