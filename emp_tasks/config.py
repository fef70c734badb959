"""The service mapping: which services exist, their connectors, queues, pools and retry policy.

Substitution follows bash's `${VAR:-default}`: the default is used when VAR is unset *or empty*;
`${VAR}` with no default is required and an unset or empty VAR is an error naming it. There is no
nesting (a default cannot contain `}`). The original had two implementations that disagreed on
empty variables; this is the one, and `tests/emp_tasks/test_config.py` pins it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.base import BaseConnector
from connectors.errors import ConnectorError, configuration_error
from connectors.services.glif_workflows import GlifWorkflow
from emp_tasks.ratelimit import parse_rate

__all__ = [
    "CONFIG_DIR",
    "ServiceSpec",
    "connector_class",
    "glif_workflows",
    "load_glif_workflows",
    "load_services",
    "missing_env",
    "resolve_service",
    "services",
    "substitute",
]

CONFIG_DIR = Path(
    os.environ.get("EMP_CONFIG_DIR") or Path(__file__).resolve().parents[1] / "config"
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(text: str, env: Mapping[str, str] | None = None) -> str:
    """Expand every `${VAR:-default}` / `${VAR}` in `text` (bash semantics, see module doc)."""
    env = os.environ if env is None else env
    missing: list[str] = []

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name) or ""
        if value:
            return value
        if default is None:
            missing.append(name)
        return default or ""

    result = _VAR.sub(expand, text)
    if missing:
        raise configuration_error(
            f"Environment variable(s) required but not set: {', '.join(missing)}",
            variables=missing,
        )
    return result


def _expand(value: Any, env: Mapping[str, str] | None) -> Any:
    if isinstance(value, str):
        return substitute(value, env)
    if isinstance(value, list):
        return [_expand(item, env) for item in value]
    if isinstance(value, dict):
        return {key: _expand(item, env) for key, item in value.items()}
    return value


class ServiceSpec(BaseModel):
    """One service's connector, queue, worker pool and retry policy."""

    model_config = ConfigDict(extra="ignore")

    name: str
    connector: str
    description: str = ""
    queue: str
    type: str = "external_api"
    # GPU-bound services default to a prefork pool of one (a crash or a CUDA leak takes one
    # child process, not the worker); API services default to threads.
    is_gpu_bound: bool = False
    pool: Literal["threads", "prefork", "gevent", "solo"] | None = None
    concurrency: int = Field(default=1, ge=1)  # slots; 1 suits a GPU
    retry_attempts: int = Field(default=3, ge=0)  # retries after the first run
    retry_delay_seconds: float = Field(default=2.0, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    required_env: list[str] = Field(default_factory=list)
    # A self-hosted service (ComfyUI, A1111, Ollama) works on its default local URL, so it needs
    # no variable; one of these set says this machine uses it, and `emp-tasks health` without
    # --service probes it only then.
    configured_by: list[str] = Field(default_factory=list)
    saves_assets: bool = False  # its outputs go to CLOUD_STORAGE_*, checked at worker start
    # How often a worker re-probes the provider (0: never; the start-up probe still runs).
    health_check_interval_seconds: float = Field(default=0.0, ge=0)
    # Provider limits shared by the service's workers (emp_tasks/ratelimit.py, breaker.py):
    # "10/s", "600/m", "5/h", empty for none; the breaker opens after N consecutive retryable
    # failures (0: never) for a cool-down.
    rate_limit: str = ""
    breaker_failures: int = Field(default=5, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        try:
            parse_rate(value)
        except ConnectorError as exc:
            raise ValueError(exc.message) from None
        return value

    @property
    def worker_pool(self) -> str:
        """The pool this service's workers use (the mapping's, or derived from the kind)."""
        return self.pool or ("prefork" if self.is_gpu_bound else "threads")

    @property
    def task_name(self) -> str:
        return f"emp.{self.name}"


def load_services(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, ServiceSpec]:
    """Read and expand the service mapping."""
    raw = json.loads((path or CONFIG_DIR / "service-mapping.json").read_text())
    return {
        name: ServiceSpec.model_validate({"name": name, **_expand(spec, env)})
        for name, spec in raw["services"].items()
    }


def load_aliases(path: Path | None = None) -> dict[str, str]:
    """Job service names that route to another service (e.g. the original's names)."""
    raw = json.loads((path or CONFIG_DIR / "service-mapping.json").read_text())
    return dict(raw.get("aliases", {}))


def load_glif_workflows(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, GlifWorkflow]:
    """The mapping's named Glif workflows (`glif_workflows`), expanded and validated.

    Each name is also a job service name routed to `glif` (emp_tasks.job_types), so it may not
    be a service or an alias; keys starting with `_` are comments.
    """
    raw = json.loads((path or CONFIG_DIR / "service-mapping.json").read_text())
    taken = {*raw["services"], *raw.get("aliases", {})}
    table: dict[str, GlifWorkflow] = {}
    for name, entry in raw.get("glif_workflows", {}).items():
        if name.startswith("_"):
            continue
        if name in taken:
            raise configuration_error(
                f"glif_workflows.{name}: the name is already a service or an alias"
            )
        try:
            table[name] = GlifWorkflow.model_validate(_expand(entry, env))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in (name, *first["loc"]))
            raise configuration_error(f"glif_workflows.{where}: {first['msg']}") from None
    return table


@cache
def glif_workflows() -> dict[str, GlifWorkflow]:
    """The named Glif workflows for this process (read once, like the services)."""
    return load_glif_workflows()


@cache
def services() -> dict[str, ServiceSpec]:
    """The service mapping for this process (read once)."""
    return load_services()


def resolve_service(name: str) -> ServiceSpec:
    """The spec for a service name or alias; an unknown name is a validation_error."""
    known = services()
    target = load_aliases().get(name, name)
    if target not in known and name in glif_workflows():
        target = "glif"  # a named Glif workflow is a job type of the glif service
    if target not in known:
        named = sorted(glif_workflows())
        also = f"; named Glif workflows: {', '.join(named)}" if named else ""
        raise ConnectorError(
            f"Unknown service '{name}'. Known services: {', '.join(sorted(known))}{also}",
            failure_reason="invalid_request",
            retryable=False,
            context={"field": "service"},
        )
    return known[target]


def missing_env(spec: ServiceSpec, env: Mapping[str, str] | None = None) -> list[str]:
    """Required variables that are unset or empty for this service."""
    env = os.environ if env is None else env
    return [name for name in spec.required_env if not env.get(name)]


def unconfigured(spec: ServiceSpec, env: Mapping[str, str] | None = None) -> list[str]:
    """`configured_by` when none of its variables is set (the service is not set up here)."""
    env = os.environ if env is None else env
    if not spec.configured_by or any(env.get(name) for name in spec.configured_by):
        return []
    return list(spec.configured_by)


def connector_class(spec: ServiceSpec) -> type[BaseConnector[Any]]:
    """Import the connector class named by `module:Class` in the mapping."""
    module_name, _, class_name = spec.connector.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, BaseConnector)):
        raise TypeError(f"{spec.connector} is not a BaseConnector subclass")
    return cls
