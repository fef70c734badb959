"""Worker metrics in Prometheus' text format, served at `http://HOST:$EMP_METRICS_PORT/metrics`.

Nothing listens unless EMP_METRICS_PORT is set. Under a prefork pool the job counters live in
child processes, so prometheus_client's multiprocess mode is used: `emp-tasks worker` points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before Celery starts, and the main process serves the
children's files merged. Labels never carry a job id, payload or token: only service names,
statuses and the taxonomy's values, so the series count stays small and nothing leaks.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess

from connectors.errors import configuration_error

__all__ = [
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "JOBS",
    "JOBS_IN_PROGRESS",
    "JOB_COST",
    "JOB_FAILURES",
    "JOB_WAITS",
    "PROVIDER_CALLS",
    "PROVIDER_CALL_SECONDS",
    "PROVIDER_HOLDS",
    "SERVICE_HEALTHY",
    "MetricsAddress",
    "metrics_address",
    "observe_call",
    "serve_metrics",
]

JOBS = Counter("emp_jobs_total", "Job attempts by outcome", ["service", "outcome"])
JOB_FAILURES = Counter(
    "emp_job_failures_total",
    "Jobs that failed for good, by classification",
    ["service", "failure_type", "failure_reason"],
)
PROVIDER_CALLS = Counter(
    "emp_provider_calls_total", "HTTP calls to a provider, by status", ["service", "status"]
)
PROVIDER_CALL_SECONDS = Histogram(
    "emp_provider_call_seconds",
    "Time to a provider's response headers",
    ["service"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
JOBS_IN_PROGRESS = Gauge(
    "emp_jobs_in_progress", "Jobs running now", ["service"], multiprocess_mode="livesum"
)
JOB_COST = Counter(
    "emp_job_cost_total",
    "What completed jobs cost, as the provider prices them",
    ["service", "currency"],
)
SERVICE_HEALTHY = Gauge(
    "emp_service_healthy",
    "1 when the worker's last health check of the service passed, else 0",
    ["service"],
    multiprocess_mode="liveall",
)

# The call gate (emp_tasks/callgate.py): waits, provider holds and breaker changes.
JOB_WAITS = Counter(
    "emp_job_waits_total",
    "Jobs re-queued to wait for their provider (not retries, not calls), by why",
    ["service", "reason"],
)
PROVIDER_HOLDS = Counter(
    "emp_provider_holds_total", "429s with a Retry-After that held every worker", ["service"]
)
BREAKER_STATE = Gauge(
    "emp_breaker_state",
    "The provider's circuit breaker as this worker last changed it: 0 closed, 1 half-open, 2 open",
    ["service"],
    multiprocess_mode="liveall",
)
BREAKER_TRANSITIONS = Counter(
    "emp_breaker_transitions_total",
    "Circuit breaker state changes, by new state",
    ["service", "state"],
)


def observe_call(service: str, status: str, seconds: float) -> None:
    """Record one provider call (`status`: the HTTP status, or the failure type of no reply)."""
    PROVIDER_CALLS.labels(service, status).inc()
    PROVIDER_CALL_SECONDS.labels(service).observe(seconds)


class MetricsAddress(tuple[str, int]):
    """Where the worker serves /metrics: (address, port)."""

    __slots__ = ()


def metrics_address(env: Mapping[str, str] | None = None) -> MetricsAddress | None:
    """EMP_METRICS_PORT / EMP_METRICS_ADDRESS, checked; None when metrics are off."""
    env = os.environ if env is None else env
    raw = (env.get("EMP_METRICS_PORT") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise configuration_error(
            f"EMP_METRICS_PORT must be a TCP port number (1-65535), not {raw!r}",
            variables=["EMP_METRICS_PORT"],
        )
    address = (env.get("EMP_METRICS_ADDRESS") or "0.0.0.0").strip()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise configuration_error(
            f"EMP_METRICS_ADDRESS must be an IP address, not {address!r}",
            variables=["EMP_METRICS_ADDRESS"],
        ) from None
    return MetricsAddress((address, int(raw)))


def serve_metrics(where: MetricsAddress) -> None:
    """Serve /metrics from this process (merging prefork children's files when multiprocess)."""
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    address, port = where
    if registry is None:
        start_http_server(port, addr=address)
    else:
        start_http_server(port, addr=address, registry=registry)
