"""deploy/'s files, loaded once, and the lookups and checks its tests share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from emp_tasks.config import ServiceSpec, load_services
from emp_tasks.pools import webhook_plan
from emp_tasks.webhooks import QUEUE as WEBHOOKS_QUEUE

__all__ = [
    "COMPOSE",
    "COMPOSE_WORKERS",
    "CONFIG",
    "DEPLOY",
    "K8S",
    "K8S_WORKERS",
    "NAMES",
    "SECRET",
    "SPECS",
    "WEBHOOKS",
    "WEBHOOKS_QUEUE",
    "WORKER_NAMES",
    "Doc",
    "command_problems",
    "compose_worker",
    "container",
    "containers",
    "expected_flags",
    "flag",
    "k8s_env_names",
    "k8s_worker",
    "kind",
    "scaled_object",
    "scaler_problems",
    "served",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SPECS = load_services(env={})  # the values a worker gets with default env
NAMES = sorted(SPECS)
# The webhooks-only worker (`emp-tasks worker --webhooks`) stands beside the services under the
# name of its queue; no service may take that name.
WEBHOOKS = WEBHOOKS_QUEUE
WORKER_NAMES = [*NAMES, WEBHOOKS]
Doc = dict[str, Any]

COMPOSE: Doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
K8S: list[Doc] = [
    doc
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]
SECRET: Doc = yaml.safe_load((DEPLOY / "kubernetes" / "templates" / "secret.yaml").read_text())


def kind(name: str) -> list[Doc]:
    """The Kubernetes documents of one kind."""
    return [doc for doc in K8S if doc.get("kind") == name]


def flag(args: list[str], name: str) -> str | None:
    """The value after `name` on a command line, None when it is absent."""
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def containers(deployment: Doc) -> list[Doc]:
    """Every container of a Deployment's pod."""
    found: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def container(deployment: Doc, name: str = "worker") -> Doc:
    """The pod's one container called `name` (a GPU pod also holds its provider server)."""
    found = [c for c in containers(deployment) if c["name"] == name]
    assert len(found) == 1, (deployment["metadata"]["name"], name)
    return found[0]


def _is_worker(args: list[str]) -> bool:
    return args[:1] == ["worker"]


def served(args: list[str]) -> str | None:
    """What a worker command serves: its --service, WEBHOOKS for `--webhooks` alone, else None."""
    if (service := flag(args, "--service")) is not None:
        return service
    return WEBHOOKS if _is_worker(args) and "--webhooks" in args else None


COMPOSE_WORKERS: list[Doc] = [
    svc for svc in COMPOSE["services"].values() if _is_worker(svc.get("command", []))
]
K8S_WORKERS: list[Doc] = [
    d for d in kind("Deployment") if any(_is_worker(c.get("args", [])) for c in containers(d))
]
CONFIG: dict[str, str] = kind("ConfigMap")[0]["data"]


def compose_worker(name: str) -> Doc:
    """The compose service running the worker of `name`."""
    return next(s for s in COMPOSE_WORKERS if served(s["command"]) == name)


def k8s_worker(name: str) -> Doc:
    """The Deployment running the worker of `name`."""
    return next(d for d in K8S_WORKERS if served(container(d)["args"]) == name)


def scaled_object(deployment: Doc) -> Doc:
    """The ScaledObject that targets a Deployment."""
    name = deployment["metadata"]["name"]
    return next(s for s in kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name)


def k8s_env_names(worker: Doc) -> set[str]:
    """Variables a worker container gets: its own `env` and the ConfigMap's through envFrom."""
    names = {e["name"] for e in worker.get("env", [])}
    maps = [s["configMapRef"]["name"] for s in worker.get("envFrom", []) if "configMapRef" in s]
    return names | (set(CONFIG) if kind("ConfigMap")[0]["metadata"]["name"] in maps else set())


def expected_flags(spec: ServiceSpec | None) -> dict[str, str | None]:
    """The flags a worker command must carry: a service's from the mapping, None: webhooks."""
    if spec is None:
        plan = webhook_plan()
        return {"--service": None, "--pool": plan.pool, "--concurrency": str(plan.concurrency)}
    return {
        "--service": spec.name,
        "--pool": spec.worker_pool,
        "--concurrency": str(spec.concurrency),
    }


def command_problems(expected: Mapping[str, str | None], args: list[str]) -> list[str]:
    """How a worker's command line disagrees with `expected_flags` (empty: it agrees)."""
    problems = [] if _is_worker(args) else [f"{args[:1]} is not the worker command"]
    for name, want in expected.items():
        if (got := flag(args, name)) != want:
            problems.append(f"{name} is {got!r}, the mapping says {want!r}")
    return problems


def scaler_problems(queue: str, concurrency: int, scaled: Doc, deployment: Doc) -> list[str]:
    """How a ScaledObject disagrees with its worker's queue and Deployment (empty: it agrees)."""
    problems = []
    if scaled["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("scaleTargetRef is not the worker's Deployment")
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
    if [t["metadata"].get("listName") for t in triggers] != [queue]:
        problems.append(f"not exactly one redis trigger on list {queue!r}")
    for trigger in triggers:
        if (length := trigger["metadata"].get("listLength")) != str(concurrency):
            problems.append(f"listLength {length!r} is not the concurrency {concurrency}")
    return problems
