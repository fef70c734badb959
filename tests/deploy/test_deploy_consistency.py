"""deploy/ (docker-compose and Kubernetes with KEDA) agrees with config/service-mapping.json."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from emp_tasks.config import ServiceSpec, load_services

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SPECS = load_services(env={})  # the values a worker gets with default env
NAMES = sorted(SPECS)
Doc = dict[str, Any]

COMPOSE: Doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
K8S: list[Doc] = [
    doc
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]
SECRET: Doc = yaml.safe_load((DEPLOY / "kubernetes" / "templates" / "secret.yaml").read_text())


def _kind(kind: str) -> list[Doc]:
    return [doc for doc in K8S if doc.get("kind") == kind]


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def _container(deployment: Doc) -> Doc:
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def _is_worker(args: list[str]) -> bool:
    return args[:1] == ["worker"]


COMPOSE_WORKERS: list[Doc] = [
    svc for svc in COMPOSE["services"].values() if _is_worker(svc.get("command", []))
]
K8S_WORKERS: list[Doc] = [d for d in _kind("Deployment") if _is_worker(_container(d)["args"])]
CONFIG: dict[str, str] = _kind("ConfigMap")[0]["data"]


def _compose_worker(name: str) -> Doc:
    return next(s for s in COMPOSE_WORKERS if _flag(s["command"], "--service") == name)


def _k8s_worker(name: str) -> Doc:
    return next(d for d in K8S_WORKERS if _flag(_container(d)["args"], "--service") == name)


def _scaled_object(deployment: Doc) -> Doc:
    name = deployment["metadata"]["name"]
    return next(s for s in _kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name)


def command_problems(spec: ServiceSpec, args: list[str]) -> list[str]:
    """How a worker's command line disagrees with the mapping (empty: it agrees)."""
    expected = {
        "--service": spec.name,
        "--pool": spec.worker_pool,
        "--concurrency": str(spec.concurrency),
    }
    problems = [] if _is_worker(args) else [f"{args[:1]} is not the worker command"]
    for flag, want in expected.items():
        if (got := _flag(args, flag)) != want:
            problems.append(f"{flag} is {got!r}, the mapping says {want!r}")
    return problems


def scaler_problems(spec: ServiceSpec, scaled: Doc, deployment: Doc) -> list[str]:
    """How a ScaledObject disagrees with its service's queue and Deployment (empty: it agrees)."""
    problems = []
    if scaled["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("scaleTargetRef is not the service's Deployment")
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
    if [t["metadata"].get("listName") for t in triggers] != [spec.queue]:
        problems.append(f"not exactly one redis trigger on list {spec.queue!r}")
    for trigger in triggers:
        length = trigger["metadata"].get("listLength")
        if not (isinstance(length, str) and length.isdigit() and int(length) > 0):
            problems.append(f"listLength {length!r} is not a positive integer string")
    return problems


def _compose_service_names() -> list[str | None]:
    return [_flag(s["command"], "--service") for s in COMPOSE_WORKERS]


def _k8s_service_names() -> list[str | None]:
    return [_flag(_container(d)["args"], "--service") for d in K8S_WORKERS]


def _scaled_service_names() -> list[str | None]:
    by_deployment = {d["metadata"]["name"]: d for d in K8S_WORKERS}
    return [
        _flag(_container(by_deployment[target])["args"], "--service")
        if (target := s["spec"]["scaleTargetRef"]["name"]) in by_deployment
        else None
        for s in _kind("ScaledObject")
    ]


KINDS = {
    "compose worker": _compose_service_names,
    "k8s Deployment": _k8s_service_names,
    "ScaledObject": _scaled_service_names,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_mapped_service_has_exactly_one(name: str, kind: str) -> None:
    assert Counter(KINDS[kind]())[name] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_no_worker_exists_for_a_service_outside_the_mapping(kind: str) -> None:
    assert set(KINDS[kind]()) <= set(SPECS)


@pytest.mark.parametrize("name", NAMES)
def test_worker_commands_match_the_mapping(name: str) -> None:
    assert command_problems(SPECS[name], _compose_worker(name)["command"]) == []
    assert command_problems(SPECS[name], _container(_k8s_worker(name))["args"]) == []


@pytest.mark.parametrize("name", NAMES)
def test_scaled_object_watches_the_queue_and_targets_the_deployment(name: str) -> None:
    deployment = _k8s_worker(name)
    assert scaler_problems(SPECS[name], _scaled_object(deployment), deployment) == []


@pytest.mark.parametrize("name", NAMES)
def test_scaled_object_never_scales_to_zero(name: str) -> None:
    assert int(_scaled_object(_k8s_worker(name))["spec"]["minReplicaCount"]) >= 1


def test_a_broken_copy_is_caught_by_the_same_checks() -> None:
    spec, deployment = SPECS["glif"], _k8s_worker("glif")
    scaled = copy.deepcopy(_scaled_object(deployment))
    scaled["spec"]["triggers"][0]["metadata"]["listName"] = "glif_typo"
    assert scaler_problems(spec, scaled, deployment)
    args = [a if a != str(spec.concurrency) else "99" for a in _compose_worker("glif")["command"]]
    assert command_problems(spec, args)
    assert command_problems(spec.model_copy(update={"pool": "gevent"}), args)


@pytest.mark.parametrize("name", NAMES)
def test_required_env_reaches_the_worker(name: str) -> None:
    environment = _compose_worker(name)["environment"]
    container = _container(_k8s_worker(name))
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for var in SPECS[name].required_env:
        assert environment.get(var) == f"${{{var}}}", f"compose passes {var} from the host"
        ref = from_secret.get(var, {})
        assert ref.get("name") == SECRET["metadata"]["name"], f"k8s reads {var} from the Secret"
        assert ref.get("key") in SECRET["stringData"], f"the Secret template has {var}"


@pytest.mark.parametrize("name", NAMES)
def test_liveness_pings_the_service(name: str) -> None:
    ping = ["emp-tasks", "ping", "--service", name, "--timeout", "5"]
    assert _compose_worker(name)["healthcheck"]["test"] == ["CMD", *ping]
    assert _container(_k8s_worker(name))["livenessProbe"]["exec"]["command"] == ping


@pytest.mark.parametrize("name", NAMES)
def test_grace_period_outlasts_the_soft_shutdown(name: str) -> None:
    soft = int(CONFIG["EMP_SOFT_SHUTDOWN_TIMEOUT"])
    assert int(_compose_worker(name)["environment"]["EMP_SOFT_SHUTDOWN_TIMEOUT"]) == soft
    assert int(str(_compose_worker(name)["stop_grace_period"]).removesuffix("s")) > soft
    pod = _k8s_worker(name)["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > soft


@pytest.mark.parametrize("name", NAMES)
def test_worker_metrics_are_where_prometheus_scrapes(name: str) -> None:
    port = CONFIG["EMP_METRICS_PORT"]
    assert _compose_worker(name)["environment"]["EMP_METRICS_PORT"] == port
    pod = _k8s_worker(name)["spec"]["template"]
    assert {"name": "metrics", "containerPort": int(port)} in _container(_k8s_worker(name))["ports"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port


@pytest.mark.parametrize("name", NAMES)
def test_only_gpu_bound_services_request_a_gpu(name: str) -> None:
    resources = _container(_k8s_worker(name)).get("resources", {})
    asked = {part: resources.get(part, {}).get("nvidia.com/gpu") for part in ("requests", "limits")}
    want = 1 if SPECS[name].is_gpu_bound else None
    assert asked == {"requests": want, "limits": want}


def test_redis_persists_jobs_with_aof() -> None:
    redis = COMPOSE["services"]["redis"]
    assert _flag(redis["command"], "--appendonly") == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert all(not str(p).startswith(("0.0.0.0", "6379")) for p in redis.get("ports", []))


def test_flower_requires_basic_auth_and_stays_off_public_interfaces() -> None:
    flower = COMPOSE["services"]["flower"]
    assert _flag(flower["command"], "--address") == "0.0.0.0"
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    (deployment,) = [d for d in _kind("Deployment") if _container(d)["args"][:1] == ["flower"]]
    env = {e["name"]: e for e in _container(deployment)["env"]}
    ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in SECRET["stringData"]
    assert [s["spec"].get("type", "ClusterIP") for s in _kind("Service")] == ["ClusterIP"]


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
