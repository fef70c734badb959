"""deploy/ (docker-compose and Kubernetes with KEDA) agrees with config/service-mapping.json."""

from __future__ import annotations

import copy
import re
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.deploy.manifests import (
    COMPOSE,
    COMPOSE_WORKERS,
    CONFIG,
    DEPLOY,
    K8S,
    K8S_WORKERS,
    NAMES,
    SECRET,
    SPECS,
    WEBHOOKS,
    WORKER_NAMES,
    Doc,
    command_problems,
    compose_worker,
    container,
    containers,
    expected_flags,
    flag,
    k8s_env_names,
    k8s_worker,
    kind,
    scaled_object,
    scaler_problems,
    served,
)


def _compose_names() -> list[str | None]:
    return [served(s["command"]) for s in COMPOSE_WORKERS]


def _k8s_names() -> list[str | None]:
    return [served(container(d)["args"]) for d in K8S_WORKERS]


def _scaled_names() -> list[str | None]:
    by_deployment = {d["metadata"]["name"]: d for d in K8S_WORKERS}
    return [
        served(container(by_deployment[target])["args"])
        if (target := s["spec"]["scaleTargetRef"]["name"]) in by_deployment
        else None
        for s in kind("ScaledObject")
    ]


KINDS = {
    "compose worker": _compose_names,
    "k8s Deployment": _k8s_names,
    "ScaledObject": _scaled_names,
}


@pytest.mark.parametrize("kind_name", KINDS)
@pytest.mark.parametrize("name", WORKER_NAMES)
def test_every_mapped_service_and_the_webhooks_worker_has_exactly_one(
    name: str, kind_name: str
) -> None:
    assert Counter(KINDS[kind_name]())[name] == 1


@pytest.mark.parametrize("kind_name", KINDS)
def test_no_worker_exists_for_a_service_outside_the_mapping(kind_name: str) -> None:
    assert WEBHOOKS not in SPECS, "a service named like the webhooks queue would hide its worker"
    assert set(KINDS[kind_name]()) <= {*SPECS, WEBHOOKS}  # the webhooks-only worker, explicitly


def test_every_worker_pod_has_exactly_one_container_named_worker() -> None:
    for deployment in K8S_WORKERS:
        running = [c["name"] for c in containers(deployment) if c.get("args", [])[:1] == ["worker"]]
        assert running == ["worker"], deployment["metadata"]["name"]


@pytest.mark.parametrize("name", NAMES)
def test_worker_commands_match_the_mapping(name: str) -> None:
    expected = expected_flags(SPECS[name])
    assert command_problems(expected, compose_worker(name)["command"]) == []
    assert command_problems(expected, container(k8s_worker(name))["args"]) == []


@pytest.mark.parametrize("name", NAMES)
def test_scaled_object_watches_the_queue_and_targets_the_deployment(name: str) -> None:
    spec, deployment = SPECS[name], k8s_worker(name)
    problems = scaler_problems(spec.queue, spec.concurrency, scaled_object(deployment), deployment)
    assert problems == []


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_scaled_object_never_scales_to_zero(name: str) -> None:
    assert int(scaled_object(k8s_worker(name))["spec"]["minReplicaCount"]) >= 1


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_keda_reads_the_redis_address_from_the_worker_container(name: str) -> None:
    deployment = k8s_worker(name)
    scaled = scaled_object(deployment)
    # KEDA resolves addressFromEnv in envSourceContainerName, else in the pod's first container.
    source = scaled["spec"]["scaleTargetRef"].get("envSourceContainerName")
    chosen = container(deployment, source) if source else containers(deployment)[0]
    for trigger in scaled["spec"]["triggers"]:
        variable = trigger["metadata"]["addressFromEnv"]
        assert variable in CONFIG
        assert variable in k8s_env_names(chosen), f"{chosen['name']} lacks {variable}"


def test_a_broken_copy_is_caught_by_the_same_checks() -> None:
    spec, deployment = SPECS["glif"], k8s_worker("glif")
    scaled = scaled_object(deployment)
    broken = copy.deepcopy(scaled)
    broken["spec"]["triggers"][0]["metadata"]["listName"] = "glif_typo"
    assert scaler_problems(spec.queue, spec.concurrency, broken, deployment)
    assert scaler_problems(spec.queue, spec.concurrency + 1, scaled, deployment)
    args = [a if a != str(spec.concurrency) else "99" for a in compose_worker("glif")["command"]]
    assert command_problems(expected_flags(spec), args)
    assert command_problems(expected_flags(spec.model_copy(update={"pool": "gevent"})), args)


def _from_secret(worker: Doc) -> dict[str, Doc]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in worker.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


@pytest.mark.parametrize("name", NAMES)
def test_required_env_reaches_the_worker(name: str) -> None:
    environment = compose_worker(name)["environment"]
    from_secret = _from_secret(container(k8s_worker(name)))
    for var in SPECS[name].required_env:
        assert environment.get(var) == f"${{{var}}}", f"compose passes {var} from the host"
        ref = from_secret.get(var, {})
        assert ref.get("name") == SECRET["metadata"]["name"], f"k8s reads {var} from the Secret"
        assert ref.get("key") in SECRET["stringData"], f"the Secret template has {var}"


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].configured_by])
def test_a_self_hosted_service_is_told_where_its_server_is(name: str) -> None:
    environment = compose_worker(name)["environment"]
    worker = container(k8s_worker(name))
    own = {e["name"]: e.get("value") for e in worker.get("env", [])}
    for var in SPECS[name].configured_by:
        assert str(environment.get(var)).startswith(f"${{{var}:-http"), "host env, with a default"
        assert var in k8s_env_names(worker)
        if SPECS[name].is_gpu_bound:  # its server is the other container of its pod
            assert urlsplit(str(own.get(var))).hostname == "127.0.0.1"


@pytest.mark.parametrize("name", NAMES)
def test_liveness_pings_the_service(name: str) -> None:
    ping = ["emp-tasks", "ping", "--service", name, "--timeout", "5"]
    assert compose_worker(name)["healthcheck"]["test"] == ["CMD", *ping]
    assert container(k8s_worker(name))["livenessProbe"]["exec"]["command"] == ping


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_grace_period_outlasts_the_soft_shutdown(name: str) -> None:
    soft = int(CONFIG["EMP_SOFT_SHUTDOWN_TIMEOUT"])
    assert int(compose_worker(name)["environment"]["EMP_SOFT_SHUTDOWN_TIMEOUT"]) == soft
    assert int(str(compose_worker(name)["stop_grace_period"]).removesuffix("s")) > soft
    pod = k8s_worker(name)["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > soft


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_worker_metrics_are_where_prometheus_scrapes(name: str) -> None:
    port = CONFIG["EMP_METRICS_PORT"]
    assert compose_worker(name)["environment"]["EMP_METRICS_PORT"] == port
    pod = k8s_worker(name)["spec"]["template"]
    assert {"name": "metrics", "containerPort": int(port)} in container(k8s_worker(name))["ports"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port


def _gpus(one: Doc) -> dict[str, object]:
    resources = one.get("resources", {})
    return {part: resources.get(part, {}).get("nvidia.com/gpu") for part in ("requests", "limits")}


NO_GPU, ONE_GPU = {"requests": None, "limits": None}, {"requests": 1, "limits": 1}


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_only_a_gpu_bound_services_provider_server_requests_a_gpu(name: str) -> None:
    """A GPU-bound service's pod requests exactly one GPU, in its provider-server container,
    and the worker container none; API services' pods none."""
    deployment = k8s_worker(name)
    gpus = {c["name"]: _gpus(c) for c in containers(deployment)}
    assert gpus.pop("worker") == NO_GPU
    gpu_bound = name in SPECS and SPECS[name].is_gpu_bound
    assert list(gpus.values()) == ([ONE_GPU] if gpu_bound else [])


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].is_gpu_bound])
def test_a_gpu_server_outlives_its_workers_soft_shutdown(name: str) -> None:
    # SIGTERM reaches every container of the pod at once: the server must wait for the job.
    soft = int(CONFIG["EMP_SOFT_SHUTDOWN_TIMEOUT"])
    pod = k8s_worker(name)["spec"]["template"]["spec"]
    (server,) = [c for c in pod["containers"] if c["name"] != "worker"]
    sleep = server["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert soft < int(sleep[1]) < pod["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].is_gpu_bound])
def test_compose_runs_no_gpu_server_of_its_own(name: str) -> None:
    worker = compose_worker(name)
    assert worker["image"] == COMPOSE["services"]["worker-mock"]["image"]
    assert {"deploy", "runtime", "devices"}.isdisjoint(worker)  # no GPU reservation


def test_redis_persists_jobs_with_aof() -> None:
    redis = COMPOSE["services"]["redis"]
    assert flag(redis["command"], "--appendonly") == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert all(not str(p).startswith(("0.0.0.0", "6379")) for p in redis.get("ports", []))


def test_flower_requires_basic_auth_and_stays_off_public_interfaces() -> None:
    flower = COMPOSE["services"]["flower"]
    assert flag(flower["command"], "--address") == "0.0.0.0"
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    (deployment,) = [
        d
        for d in kind("Deployment")
        if any(c.get("args", [])[:1] == ["flower"] for c in containers(d))
    ]
    env = {e["name"]: e for e in container(deployment, "flower")["env"]}
    ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in SECRET["stringData"]
    assert [s["spec"].get("type", "ClusterIP") for s in kind("Service")] == ["ClusterIP"]


PLACEHOLDER = re.compile(r"<[a-z-]+>(:<[a-z-]+>)?")
# OpenAI, Google and AWS key shapes, and any long run of key-like characters.
KEY_LIKE = re.compile(r"sk-[\w-]{16,}|AIza[\w-]{30,}|AKIA[0-9A-Z]{16}|[A-Za-z0-9+/_-]{40,}")


def test_secret_template_holds_placeholders_only() -> None:
    assert SECRET["kind"] == "Secret"
    assert "data" not in SECRET  # base64 would hide what is in it
    values = SECRET["stringData"]
    assert values
    assert [k for k, v in values.items() if not PLACEHOLDER.fullmatch(str(v))] == []
    assert all(doc.get("kind") != "Secret" for doc in K8S), "only the template carries a Secret"
    texts = {p.name: p.read_text() for p in DEPLOY.rglob("*") if p.is_file() and p.name[0] != "."}
    assert {
        name: KEY_LIKE.findall(text) for name, text in texts.items() if KEY_LIKE.search(text)
    } == {}
