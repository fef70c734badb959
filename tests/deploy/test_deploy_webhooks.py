"""deploy/'s webhooks-only worker agrees with emp_tasks' webhook plan, queue and secret."""

from __future__ import annotations

from tests.deploy.manifests import (
    CONFIG,
    SECRET,
    WEBHOOKS,
    WEBHOOKS_QUEUE,
    command_problems,
    compose_worker,
    container,
    expected_flags,
    flag,
    k8s_worker,
    scaled_object,
    scaler_problems,
)

SECRET_ENV = "EMP_WEBHOOK_SECRET"
NODE = "webhooks@%h"  # Celery expands %h to the host name, which the probe reads back
# `emp-tasks ping` knows only the mapping's services, so the probe pings the node by name.
PING_NODE = [
    "python",
    "-c",
    "import socket, sys; from emp_tasks.celery_app import app; sys.exit(0 if app.control.ping("
    "destination=['webhooks@' + socket.gethostname()], timeout=5) else 1)",
]


def test_the_webhooks_worker_runs_the_webhook_plan() -> None:
    for args in (compose_worker(WEBHOOKS)["command"], container(k8s_worker(WEBHOOKS))["args"]):
        assert "--webhooks" in args
        assert command_problems(expected_flags(None), args) == []


def test_its_scaled_object_watches_the_webhooks_list() -> None:
    deployment = k8s_worker(WEBHOOKS)
    concurrency = int(flag(container(deployment)["args"], "--concurrency") or 0)
    scaled = scaled_object(deployment)
    assert scaler_problems(WEBHOOKS_QUEUE, concurrency, scaled, deployment) == []
    assert scaler_problems("webhook", concurrency, scaled, deployment)  # the check can fail


def test_the_signing_secret_reaches_it_from_the_host_and_the_secret() -> None:
    assert compose_worker(WEBHOOKS)["environment"].get(SECRET_ENV) == f"${{{SECRET_ENV}}}"
    env = {e["name"]: e for e in container(k8s_worker(WEBHOOKS)).get("env", [])}
    ref = env[SECRET_ENV]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == SECRET["metadata"]["name"]
    assert ref["key"] in SECRET["stringData"]
    assert not ref.get("optional"), "the worker refuses to start without it: fail in the pod spec"
    assert SECRET_ENV not in CONFIG, "a secret, not a setting"


def test_its_liveness_pings_its_own_node() -> None:
    compose, pod = compose_worker(WEBHOOKS), container(k8s_worker(WEBHOOKS))
    assert flag(compose["command"], "--name") == NODE
    assert flag(pod["args"], "--name") == NODE
    assert compose["healthcheck"]["test"] == ["CMD", *PING_NODE]
    assert pod["livenessProbe"]["exec"]["command"] == PING_NODE
