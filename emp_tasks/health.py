"""Service health: probe each service's provider, and keep a worker's last outcomes.

`probe_service` is the one way a service is checked (by `emp-tasks health`, by
`worker --require-healthy` through `check_services`, and by the worker's monitor). A worker calls
`start_health_checks` once at `worker_ready`: a daemon thread probes every served service at start
and then every `health_check_interval_seconds`, sets the `emp_service_healthy` gauge, and keeps
the last outcome per service for the `emp_health` remote-control command (registered when this
module is imported), which `emp-tasks health --json` asks every worker for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from celery.worker.control import inspect_command

from connectors.base import BaseConnector
from connectors.classify import error_from_exception
from connectors.errors import configuration_error
from connectors.health import HealthReport
from emp_tasks.config import ServiceSpec, connector_class, missing_env
from emp_tasks.metrics import SERVICE_HEALTHY

__all__ = [
    "HealthMonitor",
    "Outcome",
    "ServiceHealth",
    "check_services",
    "health_complaint",
    "latest_outcomes",
    "probe_service",
    "schedule",
    "start_health_checks",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceHealth:
    """One service's health-check class, capabilities, their support, and a probe's outcome."""

    service: str
    healthy: bool
    detail: str
    health_check_class: str | None  # None when the connector class cannot be imported
    capabilities: dict[str, Any]
    support: dict[str, Any] | None  # None when the connector could not be built or judged
    periodic: bool  # whether repeating the probe on a timer is allowed (free)
    failure_type: str | None = None
    failure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record (the detail is already redacted)."""
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """The last probe outcome a worker saw for one service."""

    healthy: bool
    detail: str
    checked_at: str  # ISO 8601, UTC


def build_connector(spec: ServiceSpec) -> BaseConnector[Any]:
    """The service's connector from the environment; a missing variable is a config error."""
    lacking = missing_env(spec)
    if lacking:
        raise configuration_error(
            f"required environment variable(s) not set: {', '.join(lacking)}",
            variables=lacking,
            service=spec.name,
        )
    return connector_class(spec)()


def _support(connector: BaseConnector[Any]) -> dict[str, Any] | None:
    try:
        return connector.service_support()
    except NotImplementedError:  # a CUSTOM class states its own requirements
        return None


def probe_service(spec: ServiceSpec) -> ServiceHealth:
    """Build the service's connector and probe its provider once; never raises."""
    cls: type[BaseConnector[Any]] | None = None
    periodic, support = False, None
    try:
        cls = connector_class(spec)
        connector = build_connector(spec)
    except Exception as exc:  # a connector that cannot be built is an unhealthy service
        report = HealthReport.from_error(error_from_exception(exc, spec.name))
    else:
        report = connector.health()
        periodic, support = connector.periodic_health_check_allowed(), _support(connector)
    return ServiceHealth(
        service=spec.name,
        healthy=report.healthy,
        detail=report.detail,
        health_check_class=cls.health_check_class.value if cls else None,
        capabilities=cls.capabilities.model_dump() if cls else {},
        support=support,
        periodic=periodic,
        failure_type=report.failure_type,
        failure_reason=report.failure_reason,
    )


def check_services(specs: Iterable[ServiceSpec]) -> list[ServiceHealth]:
    """Probe each service once (for `emp-tasks worker --require-healthy`)."""
    return [probe_service(spec) for spec in specs]


def health_complaint(reports: Iterable[ServiceHealth]) -> str:
    """An empty string when every service is healthy, else the one-line complaint."""
    bad = [f"{r.service}: {r.detail}" for r in reports if not r.healthy]
    return "emp-tasks worker: unhealthy service(s): " + "; ".join(bad) if bad else ""


def schedule(
    intervals: Mapping[str, float], last: Mapping[str, float], now: float
) -> tuple[list[str], float | None]:
    """The services due at `now`, and the seconds until the next is due (None: never again)."""
    # A service never checked is due at once.
    next_at = {
        name: last[name] + every if name in last else now
        for name, every in intervals.items()
        if every > 0
    }
    due = [name for name, at in next_at.items() if at <= now]
    return due, (min(next_at.values()) - now if next_at else None)


def _set_gauge(service: str, healthy: bool) -> None:
    SERVICE_HEALTHY.labels(service).set(1 if healthy else 0)


class HealthMonitor:
    """Probes a worker's services at start and on their intervals; keeps the last outcomes."""

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        interval_override: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
        gauge: Callable[[str, bool], None] = _set_gauge,
        probe: Callable[[ServiceSpec], ServiceHealth] = probe_service,
    ) -> None:
        self.specs = list(specs)
        self.interval_override = interval_override
        self.clock = clock  # wall time: it also stamps `checked_at`
        self._stop = threading.Event()
        # Waits up to the given seconds and says whether to stop; tests pass a fake.
        self._wait = wait or self._stop.wait
        self._gauge = gauge
        self._probe = probe
        self._lock = threading.Lock()
        self._outcomes: dict[str, Outcome] = {}
        self._intervals: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """The last outcome per service, JSON-safe."""
        with self._lock:
            return {name: asdict(outcome) for name, outcome in self._outcomes.items()}

    def start(self) -> HealthMonitor:
        """Run `run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="emp-health", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (a probe in flight finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The start probe of every service, then each periodic one when it is due."""
        last = {spec.name: self.clock() for spec in self.specs}
        started = [self._check(spec) for spec in self.specs]
        self._warn_at_start(started)
        by_name = {spec.name: spec for spec in self.specs}
        while True:
            due, pause = schedule(self._intervals, last, self.clock())
            for name in due:
                last[name] = self.clock()
                self._check(by_name[name])
            if not due and (pause is None or self._wait(pause)):
                return

    def _check(self, spec: ServiceSpec) -> ServiceHealth:
        report = self._probe(spec)
        every = self.interval_override
        every = spec.health_check_interval_seconds if every is None else every
        self._intervals[spec.name] = every if report.periodic else 0.0
        self._record(spec.name, report)
        return report

    def _record(self, service: str, report: ServiceHealth) -> None:
        when = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        with self._lock:
            before = self._outcomes.get(service)
            self._outcomes[service] = Outcome(report.healthy, report.detail, when)
        self._gauge(service, report.healthy)
        if before is not None and before.healthy != report.healthy:
            # Transitions only: a provider down for an hour is one line, not one per check.
            level = logging.INFO if report.healthy else logging.WARNING
            state = "healthy again" if report.healthy else f"unhealthy: {report.detail}"
            log.log(level, "emp-tasks health: %s is %s", service, state)

    def _warn_at_start(self, reports: list[ServiceHealth]) -> None:
        bad = [f"{r.service}: {r.detail}" for r in reports if not r.healthy]
        if bad:
            log.warning(
                "emp-tasks health: unhealthy at start (worker keeps running): %s", "; ".join(bad)
            )
        else:
            names = ", ".join(r.service for r in reports)
            log.info("emp-tasks health: healthy at start: %s", names)


_current: HealthMonitor | None = None


def start_health_checks(
    specs: Iterable[ServiceSpec], interval_override: float | None = None
) -> HealthMonitor:
    """Start the worker's health monitor (call once, in the worker's main process)."""
    global _current
    if _current is not None:
        _current.stop(timeout=0)
    _current = HealthMonitor(list(specs), interval_override).start()
    return _current


def latest_outcomes() -> dict[str, dict[str, Any]]:
    """What this process's monitor last saw, per service (empty when none runs)."""
    return _current.outcomes() if _current is not None else {}


@inspect_command(name="emp_health")  # type: ignore[untyped-decorator]
def _emp_health(state: Any, **_: Any) -> dict[str, dict[str, Any]]:
    """The last health outcome of each service this worker serves."""
    return latest_outcomes()
