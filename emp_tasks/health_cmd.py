"""`emp-tasks health` (probe each service's provider) and `emp-tasks ping` (worker liveness).

`health` exits 0 only when every requested service is healthy, 1 otherwise, 2 for an unknown
service name. `ping` exits 0 when a worker consuming the service's queue answers within the
timeout, 1 otherwise. Both bound their broker calls by a thread join, so an unreachable broker
costs the timeout, not kombu's reconnect loop.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from connectors.errors import ConnectorError

__all__ = [
    "Selection",
    "exit_code",
    "health",
    "health_document",
    "ping",
    "ping_verdict",
    "select_services",
    "workers_by_service",
]

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 2
T = TypeVar("T")


@dataclass(frozen=True)
class Selection:
    """Which services to check, which were skipped (and why), which names are unknown."""

    names: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def select_services(
    requested: Iterable[str],
    known: Mapping[str, Any],
    resolve: Callable[[str], str],
    missing: Callable[[str], list[str]],
) -> Selection:
    """The named services (aliases resolved), or every service whose required env is set."""
    requested = list(requested)
    if not requested:
        skipped = {n: f"{', '.join(m)} not set" for n in known if (m := missing(n))}
        return Selection([n for n in known if n not in skipped], skipped)
    names: list[str] = []
    unknown: list[str] = []
    for name in requested:
        try:
            target = resolve(name)
        except ConnectorError:
            unknown.append(name)
            continue
        if target not in names:
            names.append(target)
    return Selection(names, {}, unknown)


def exit_code(selection: Selection, healthy: Mapping[str, bool]) -> int:
    """2 for an unknown name, 0 when every checked service is healthy, else 1."""
    if selection.unknown:
        return EXIT_UNKNOWN
    return EXIT_OK if selection.names and all(healthy.values()) else EXIT_FAILED


def workers_by_service(replies: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`emp_health` broadcast replies ([{node: {service: outcome}}]) regrouped by service."""
    grouped: dict[str, dict[str, Any]] = {}
    for reply in replies:
        for node, outcomes in reply.items():
            # A worker without the command answers {"error": "KeyError(...)"}: no outcome.
            for service, outcome in (outcomes if isinstance(outcomes, Mapping) else {}).items():
                if isinstance(outcome, Mapping):
                    grouped.setdefault(service, {})[node] = dict(outcome)
    return grouped


def health_document(
    reports: Mapping[str, dict[str, Any]],
    workers: Mapping[str, dict[str, Any]],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """The `--json` object: overall health, each service's report and its workers' view."""
    services = {
        name: {**report, "workers": workers.get(name, {})} for name, report in reports.items()
    }
    healthy = bool(services) and all(r["healthy"] for r in services.values())
    return {"healthy": healthy, "services": services, "skipped": dict(skipped)}


def bounded(call: Callable[[], T], timeout: float, default: T) -> T:
    """`call()` in a daemon thread; `default` when it fails or takes longer than `timeout`."""
    box: list[T] = []

    def run() -> None:
        # A broker problem means no answer, which the caller reports as such.
        with contextlib.suppress(Exception):
            box.append(call())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return box[0] if box else default


def _app() -> Any:
    from emp_tasks.celery_app import app

    return app


def _ask_workers(timeout: float) -> dict[str, dict[str, Any]]:
    if timeout <= 0:
        return {}
    none: list[dict[str, Any]] = []
    replies = bounded(
        lambda: _app().control.broadcast("emp_health", reply=True, timeout=timeout),
        timeout + 1.0,
        none,
    )
    return workers_by_service(replies or none)


def _text(name: str, report: Mapping[str, Any]) -> list[str]:
    caps = [k for k, v in report["capabilities"].items() if v is True] or ["none"]
    support = report["support"]
    supported = "unknown" if support is None else ("yes" if support["isSupported"] else "no")
    state = "healthy" if report["healthy"] else "UNHEALTHY"
    lines = [
        f"{name}: {state} - {report['detail']}",
        f"  health-check class {report['health_check_class']}; capabilities: {', '.join(caps)}; "
        f"supported: {supported}",
    ]
    for node, seen in sorted(report["workers"].items()):
        seen_state = "healthy" if seen.get("healthy") else "unhealthy"
        lines.append(f"  worker {node}: {seen_state} at {seen.get('checked_at')}")
    return lines


@click.command()
@click.option("--service", "services", multiple=True, help="Service (or alias); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option(
    "--workers-timeout",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds to wait for running workers' last checks (0: do not ask).",
)
def health(services: tuple[str, ...], as_json: bool, workers_timeout: float) -> None:
    """Probe each service's provider. Exit 0 all healthy, 1 any unhealthy, 2 unknown service."""
    from emp_tasks import config
    from emp_tasks.health import probe_service

    known = config.services()
    selection = select_services(
        services,
        known,
        lambda name: config.resolve_service(name).name,
        lambda name: config.missing_env(known[name]) or config.unconfigured(known[name]),
    )
    if selection.unknown:
        names = ", ".join(repr(n) for n in selection.unknown)
        click.echo(
            f"emp-tasks health: unknown service {names}; known: {', '.join(known)}", err=True
        )
        sys.exit(EXIT_UNKNOWN)
    asked: list[dict[str, dict[str, Any]]] = []
    for name in selection.names:  # imported here first: two threads importing one module race
        with contextlib.suppress(Exception):  # a class that cannot load is reported below
            config.connector_class(known[name])
    # Workers are asked while the providers are probed, so the wait overlaps.
    thread = threading.Thread(
        target=lambda: asked.append(_ask_workers(workers_timeout)), daemon=True
    )
    thread.start()
    reports = {name: probe_service(known[name]).to_dict() for name in selection.names}
    thread.join(workers_timeout + 2.0)
    doc = health_document(reports, asked[0] if asked else {}, selection.skipped)
    if as_json:
        click.echo(json.dumps(doc, default=str))
    else:
        for name, report in doc["services"].items():
            click.echo("\n".join(_text(name, report)))
        for name, why in selection.skipped.items():
            click.echo(f"skipped {name}: {why}")
    sys.exit(exit_code(selection, {n: r["healthy"] for n, r in reports.items()}))


def ping_verdict(
    service: str, queue: str, alive: Iterable[str], queues: Mapping[str, Any], timeout: float
) -> tuple[bool, str]:
    """Whether a worker that answered ping consumes `queue`, and the one line to print."""
    alive = sorted(alive)
    serving = sorted(
        node
        for node, active in queues.items()
        if node in alive and any(q.get("name") == queue for q in active or [])
    )
    if serving:
        return True, f"{service}: alive ({', '.join(serving)})"
    if alive:
        return (
            False,
            f"{service}: no worker consuming queue '{queue}' answered ({len(alive)} other)",
        )
    return False, f"{service}: no worker answered within {timeout:g}s"


class _Serving(Exception):
    """Raised from the reply callback: a worker of the queue answered, stop waiting."""


def _ping_fleet(queue: str, window: float, replies: dict[str, Any]) -> None:
    # One broadcast: a worker's `active_queues` reply is its answer to the ping and says what
    # it consumes. Nobody knows how many workers there are, so the wait ends when one serving
    # the queue has answered, or when no reply came for `window` seconds. Replies land in
    # `replies` as they come, so a caller that stops waiting still has what arrived.
    def on_reply(reply: Mapping[str, Any]) -> None:
        replies.update(reply)
        if any(q.get("name") == queue for active in reply.values() for q in active or []):
            raise _Serving

    with contextlib.suppress(_Serving):
        _app().control.broadcast("active_queues", reply=True, timeout=window, callback=on_reply)


@click.command()
@click.option("--service", required=True, help="Service (or alias) whose workers to ping.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds in all.")
def ping(service: str, timeout: float) -> None:
    """Liveness probe: exit 0 when a worker of SERVICE answers within the timeout, else 1."""
    from emp_tasks.config import resolve_service

    try:
        spec = resolve_service(service)
    except ConnectorError as exc:
        click.echo(f"emp-tasks ping: {exc.message}", err=True)
        sys.exit(EXIT_UNKNOWN)
    _app()  # loaded before the clock starts: T is for the workers, not for imports
    replies: dict[str, Any] = {}
    # Each reply restarts kombu's wait for the next one, so half of T is the quiet window.
    bounded(lambda: _ping_fleet(spec.queue, max(0.1, timeout / 2), replies), timeout, None)
    queues = dict(replies)  # one copy (atomic under the GIL): the thread may still add to it
    alive = list(queues)
    ok, line = ping_verdict(spec.name, spec.queue, alive, queues, timeout)
    click.echo(line)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
