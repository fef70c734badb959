"""Service health: probes, the worker's periodic monitor, and the CLI's decisions, as tables."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import pytest
from celery.worker.control import Panel
from click.testing import CliRunner
from prometheus_client import REGISTRY

from connectors.errors import ConnectorError
from emp_tasks import health as health_module
from emp_tasks.config import ServiceSpec, load_services
from emp_tasks.health import (
    HealthMonitor,
    ServiceHealth,
    check_services,
    health_complaint,
    latest_outcomes,
    probe_service,
    schedule,
    start_health_checks,
)
from emp_tasks.health_cmd import (
    Selection,
    bounded,
    exit_code,
    health,
    health_document,
    ping_verdict,
    select_services,
    workers_by_service,
)

SPECS = load_services(env={})
TOKEN = "glif-health-unit-token-93ab1c"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLIF_API_TOKEN", "GLIF_BASE_URL", "GLIF_HEALTH_CHECK_WORKFLOW_ID"):
        monkeypatch.delenv(name, raising=False)


def spec(name: str, every: float = 0.0) -> ServiceSpec:
    return SPECS[name].model_copy(update={"health_check_interval_seconds": every})


def outcome(name: str, healthy: bool = True, periodic: bool = True) -> ServiceHealth:
    return ServiceHealth(
        service=name,
        healthy=healthy,
        detail="ok" if healthy else "network_error/connection_failed: down",
        health_check_class="minimal",
        capabilities={},
        support=None,
        periodic=periodic,
    )


class FakeTime:
    """A clock that `wait` advances; it says stop after `waits` waits."""

    def __init__(self, waits: int) -> None:
        self.now = 1000.0
        self.left = waits
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.now += seconds
        self.left -= 1
        return self.left < 0


class ScriptedProbe:
    """Answers each service from a script of healthy flags and records when it was asked."""

    def __init__(self, fake: FakeTime, script: dict[str, list[bool]], periodic: bool = True):
        self.fake, self.script, self.periodic = fake, script, periodic
        self.calls: list[tuple[str, float]] = []

    def __call__(self, spec: ServiceSpec) -> ServiceHealth:
        self.calls.append((spec.name, self.fake.now))
        flags = self.script.get(spec.name) or [True]
        healthy = flags.pop(0) if len(flags) > 1 else flags[0]
        return outcome(spec.name, healthy, self.periodic)


def monitor(
    specs: list[ServiceSpec], fake: FakeTime, probe: Any, **kwargs: Any
) -> tuple[HealthMonitor, dict[str, list[bool]]]:
    gauges: dict[str, list[bool]] = {}
    mon = HealthMonitor(
        specs,
        clock=fake.clock,
        wait=fake.wait,
        probe=probe,
        gauge=lambda service, ok: gauges.setdefault(service, []).append(ok),
        **kwargs,
    )
    return mon, gauges


# --- scheduling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intervals", "last", "now", "due", "pause"),
    [
        ({"a": 10}, {"a": 100}, 105, [], 5),
        ({"a": 10}, {"a": 100}, 110, ["a"], 0),
        ({"a": 10, "b": 3}, {"a": 100, "b": 100}, 101, [], 2),
        ({"a": 0}, {"a": 100}, 500, [], None),
        ({}, {}, 1, [], None),
        ({"a": 10}, {}, 5, ["a"], 0),  # never checked: due now
    ],
    ids=["waiting", "due", "nearest_wins", "zero_is_off", "nothing", "never_checked"],
)
def test_schedule(
    intervals: dict[str, float],
    last: dict[str, float],
    now: float,
    due: list[str],
    pause: float | None,
) -> None:
    assert schedule(intervals, last, now) == (due, pause)


# --- the periodic monitor -----------------------------------------------------------------------


def test_every_service_is_probed_once_at_start_and_then_on_its_interval() -> None:
    fake = FakeTime(waits=4)
    probe = ScriptedProbe(fake, {})
    mon, _ = monitor([spec("mock", 10), spec("glif", 25)], fake, probe)
    mon.run()
    assert probe.calls == [
        ("mock", 1000),
        ("glif", 1000),
        ("mock", 1010),
        ("mock", 1020),
        ("glif", 1025),
        ("mock", 1030),
    ]


def test_interval_zero_means_start_probe_only_and_no_waiting() -> None:
    fake = FakeTime(waits=3)
    probe = ScriptedProbe(fake, {})
    mon, _ = monitor([spec("mock", 0)], fake, probe)
    mon.run()
    assert probe.calls == [("mock", 1000)]
    assert fake.waited == []


def test_the_override_replaces_every_interval() -> None:
    fake = FakeTime(waits=2)
    probe = ScriptedProbe(fake, {})
    mon, _ = monitor([spec("mock", 0)], fake, probe, interval_override=7)
    mon.run()
    assert [at for _, at in probe.calls] == [1000, 1007, 1014]


def test_a_service_whose_periodic_probe_costs_money_is_probed_at_start_only() -> None:
    fake = FakeTime(waits=3)
    probe = ScriptedProbe(fake, {}, periodic=False)
    mon, _ = monitor([spec("glif", 10)], fake, probe, interval_override=5)
    mon.run()
    assert probe.calls == [("glif", 1000)]


def test_outcomes_and_gauges_follow_each_check() -> None:
    fake = FakeTime(waits=2)
    probe = ScriptedProbe(fake, {"mock": [False, True, True]})
    mon, gauges = monitor([spec("mock", 10)], fake, probe)
    mon.run()
    assert gauges == {"mock": [False, True, True]}
    assert mon.outcomes() == {
        "mock": {"healthy": True, "detail": "ok", "checked_at": "1970-01-01T00:17:00+00:00"}
    }


def test_one_warning_line_at_start_then_only_transitions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeTime(waits=3)
    probe = ScriptedProbe(fake, {"mock": [False, False, True, True], "glif": [False]})
    mon, _ = monitor([spec("mock", 10), spec("glif", 0)], fake, probe)
    with caplog.at_level(logging.INFO, logger="emp_tasks.health"):
        mon.run()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("emp-tasks health: unhealthy at start (worker keeps running): ")
    assert "mock: network_error" in lines[0]
    assert "glif: network_error" in lines[0]
    assert lines[1] == "emp-tasks health: mock is healthy again"
    assert caplog.records[0].levelno == logging.WARNING


def test_the_real_gauge_is_set_per_service() -> None:
    fake = FakeTime(waits=0)
    mon = HealthMonitor(
        [spec("mock"), spec("glif")],
        clock=fake.clock,
        wait=fake.wait,
        probe=ScriptedProbe(fake, {"glif": [False]}),
    )
    mon.run()
    sample = REGISTRY.get_sample_value
    assert sample("emp_service_healthy", {"service": "mock"}) == 1.0
    assert sample("emp_service_healthy", {"service": "glif"}) == 0.0


def test_start_health_checks_runs_in_a_thread_and_feeds_the_control_command() -> None:
    monitor_ = start_health_checks([spec("mock")])
    try:
        deadline = time.monotonic() + 5
        while "mock" not in latest_outcomes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert latest_outcomes()["mock"]["healthy"] is True
        assert Panel.data["emp_health"](None) == latest_outcomes()
        assert Panel.meta["emp_health"].type == "inspect"
    finally:
        monitor_.stop()
        health_module._current = None
    assert Panel.data["emp_health"](None) == {}


# --- probing a service --------------------------------------------------------------------------


def test_mock_is_healthy_and_its_class_is_satisfied() -> None:
    report = probe_service(spec("mock"))
    assert (report.healthy, report.detail, report.health_check_class) == (True, "ok", "minimal")
    assert report.support is not None
    assert report.support["isSupported"] is True
    assert report.capabilities["supportsBasicHealthCheck"] is True


def test_missing_required_env_is_unhealthy_and_names_the_variable() -> None:
    report = probe_service(spec("glif"))
    assert not report.healthy
    assert report.detail == (
        "system_error/config_error: required environment variable(s) not set: GLIF_API_TOKEN"
    )
    assert report.periodic is False


@pytest.mark.parametrize(("workflow", "periodic"), [(None, False), ("cheap-wf", True)])
def test_glif_provider_down_is_a_network_error_and_periodic_needs_a_workflow(
    monkeypatch: pytest.MonkeyPatch, workflow: str | None, periodic: bool
) -> None:
    monkeypatch.setenv("GLIF_API_TOKEN", TOKEN)
    monkeypatch.setenv("GLIF_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    if workflow:
        monkeypatch.setenv("GLIF_HEALTH_CHECK_WORKFLOW_ID", workflow)
    report = probe_service(spec("glif"))
    assert not report.healthy
    assert report.detail.startswith("network_error/connection_failed: ")
    assert TOKEN not in json.dumps(report.to_dict())
    assert report.periodic is periodic


def test_check_services_and_the_require_healthy_complaint() -> None:
    reports = check_services([spec("mock"), spec("glif")])
    assert [r.healthy for r in reports] == [True, False]
    complaint = health_complaint(reports)
    assert complaint.startswith("emp-tasks worker: unhealthy service(s): glif: system_error/")
    assert "mock" not in complaint
    assert "\n" not in complaint
    assert health_complaint(reports[:1]) == ""


# --- the CLI's decisions ------------------------------------------------------------------------


KNOWN = {"glif": 1, "mock": 1, "openai_text": 1, "openai_responses": 1}
ALIASES = {"openai": "openai_responses"}
NEEDS = {"glif": ["GLIF_API_TOKEN"], "openai_text": ["OPENAI_API_KEY"]}


def _resolve(name: str) -> str:
    target = ALIASES.get(name, name)
    if target not in KNOWN:
        raise ConnectorError(f"Unknown service '{name}'")
    return target


@pytest.mark.parametrize(
    ("requested", "selection"),
    [
        (
            [],
            Selection(
                ["mock", "openai_responses"],
                {"glif": "GLIF_API_TOKEN not set", "openai_text": "OPENAI_API_KEY not set"},
            ),
        ),
        (["glif"], Selection(["glif"])),  # named: checked even with its env missing
        (["openai", "openai_responses"], Selection(["openai_responses"])),
        (["nope", "mock"], Selection(["mock"], {}, ["nope"])),
    ],
    ids=["default_skips_missing_env", "named", "alias_deduplicated", "unknown"],
)
def test_select_services(requested: list[str], selection: Selection) -> None:
    assert select_services(requested, KNOWN, _resolve, lambda n: NEEDS.get(n, [])) == selection


@pytest.mark.parametrize(
    ("selection", "healthy", "code"),
    [
        (Selection(["a", "b"]), {"a": True, "b": True}, 0),
        (Selection(["a", "b"]), {"a": True, "b": False}, 1),
        (Selection(["a"], {}, ["x"]), {"a": True}, 2),
        (Selection([]), {}, 1),
    ],
    ids=["all_healthy", "one_unhealthy", "unknown", "nothing_checked"],
)
def test_exit_code(selection: Selection, healthy: dict[str, bool], code: int) -> None:
    assert exit_code(selection, healthy) == code


def test_worker_replies_are_grouped_by_service() -> None:
    seen = {"healthy": True, "detail": "ok", "checked_at": "t"}
    replies: list[dict[str, Any]] = [
        {"w1@h": {"mock": seen, "glif": seen}},
        {"w2@h": {"mock": seen}},
        {"w3@h": "?"},  # not a mapping: ignored
        {"w4@h": {"error": "KeyError('emp_health')"}},  # a worker without the command
    ]
    assert workers_by_service(replies) == {
        "mock": {"w1@h": seen, "w2@h": seen},
        "glif": {"w1@h": seen},
    }


@pytest.mark.parametrize(
    ("reports", "healthy"),
    [({"a": {"healthy": True}}, True), ({"a": {"healthy": True}, "b": {"healthy": False}}, False)],
)
def test_health_document(reports: dict[str, dict[str, Any]], healthy: bool) -> None:
    doc = health_document(reports, {"a": {"w@h": {}}}, {"c": "C_KEY not set"})
    assert doc["healthy"] is healthy
    assert doc["services"]["a"]["workers"] == {"w@h": {}}
    assert all(s["workers"] == {} for n, s in doc["services"].items() if n != "a")
    assert doc["skipped"] == {"c": "C_KEY not set"}


MOCK_Q = [{"name": "mock"}]
GLIF_Q = [{"name": "glif"}]


@pytest.mark.parametrize(
    ("alive", "queues", "ok", "line"),
    [
        (["w1@h"], {"w1@h": MOCK_Q}, True, "mock: alive (w1@h)"),
        (["w1@h", "w2@h"], {"w1@h": GLIF_Q, "w2@h": MOCK_Q}, True, "mock: alive (w2@h)"),
        (["w1@h"], {"w1@h": GLIF_Q}, False, "mock: no worker consuming queue 'mock' answered"),
        (["w1@h"], {}, False, "mock: no worker consuming queue 'mock' answered"),
        ([], {}, False, "mock: no worker answered within 5s"),
        ([], {"w9@h": MOCK_Q}, False, "mock: no worker answered within 5s"),  # not pinged
    ],
    ids=["serving", "one_of_two", "other_queue", "no_queues_reply", "silence", "not_alive"],
)
def test_ping_verdict(alive: list[str], queues: dict[str, Any], ok: bool, line: str) -> None:
    found = ping_verdict("mock", "mock", alive, queues, 5.0)
    assert found[0] is ok
    assert found[1].startswith(line)


def test_bounded_gives_the_default_on_failure_or_when_too_slow() -> None:
    assert bounded(lambda: 1, 1.0, 0) == 1
    assert bounded(lambda: int(1 / 0), 1.0, -1) == -1

    def slow() -> int:
        time.sleep(5)
        return 1

    started = time.monotonic()
    assert bounded(slow, 0.1, -1) == -1
    assert time.monotonic() - started < 1


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--service", "mock"], 0, "mock: healthy - ok"),
        (["--service", "glif"], 1, "glif: UNHEALTHY - system_error/config_error"),
        (["--service", "mock", "--service", "glif"], 1, "required environment variable"),
        (["--service", "nope"], 2, "unknown service 'nope'"),
        ([], 0, "skipped glif: GLIF_API_TOKEN not set"),
    ],
    ids=["healthy", "missing_env", "one_of_two", "unknown", "default"],
)
def test_health_command_text(runner: CliRunner, args: list[str], code: int, says: str) -> None:
    result = runner.invoke(health, [*args, "--workers-timeout", "0"])
    assert result.exit_code == code, result.output
    assert says in result.output


def test_health_command_json_is_one_object(runner: CliRunner) -> None:
    result = runner.invoke(health, ["--service", "mock", "--json", "--workers-timeout", "0"])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    mock = doc["services"]["mock"]
    assert doc["healthy"] is True
    assert (mock["healthy"], mock["health_check_class"], mock["workers"]) == (True, "minimal", {})
    assert mock["support"]["isSupported"] is True
