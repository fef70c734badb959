"""plan_worker: one pool, one size and the queues for a worker's services, each choice explained."""

from __future__ import annotations

import pytest

from emp_tasks.config import ServiceSpec, load_services
from emp_tasks.pools import PlanError, parse_autoscale, plan_worker

SPECS = load_services(env={})


def spec(name: str, **fields: object) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "name": name,
            "connector": "connectors.services.mock:MockConnector",
            "queue": name,
            **fields,
        }
    )


GPU = spec("comfy", is_gpu_bound=True)
FAST = spec("fast", pool="gevent", concurrency=200)


@pytest.mark.parametrize(
    ("services", "options", "pool", "slots", "note"),
    [
        ([SPECS["glif"]], {}, "threads", 5, None),
        ([SPECS["glif"], SPECS["mock"]], {}, "threads", 15, "15 = 5 (glif) + 10 (mock)"),
        ([SPECS["glif"]], {"concurrency": 2, "pool": "prefork"}, "prefork", 2, "overrides"),
        ([SPECS["glif"]], {"pool": "gevent", "concurrency": 500}, "gevent", 500, "overrides"),
        ([GPU], {}, "prefork", 1, None),
        ([GPU, SPECS["glif"]], {}, "prefork", 1, "GPU-bound comfy shares them with glif"),
        ([FAST, SPECS["glif"]], {}, "gevent", 205, "different pools"),
        ([SPECS["mock"]], {"pool": "prefork", "autoscale": "8,2"}, "prefork", 8, "overrides"),
        ([FAST], {"autoscale": "300,10"}, "gevent", 300, None),
    ],
)
def test_plan_reconciles_pools_and_slots(
    services: list[ServiceSpec],
    options: dict[str, object],
    pool: str,
    slots: int,
    note: str | None,
) -> None:
    plan = plan_worker(services, gevent_installed=True, **options)  # type: ignore[arg-type]
    assert (plan.pool, plan.concurrency) == (pool, slots)
    assert plan.queues == tuple(s.queue for s in services)
    if note is None:
        assert plan.notes == ()
    else:
        assert any(note in line for line in plan.notes), plan.notes


@pytest.mark.parametrize(
    ("services", "options", "names"),
    [
        ([], {}, "--service"),
        ([SPECS["mock"]], {"pool": "fibers"}, "--pool must be one of"),
        ([SPECS["mock"]], {"autoscale": "4,2"}, "--autoscale needs a prefork or gevent pool"),
        ([SPECS["mock"]], {"pool": "solo", "autoscale": "4,2"}, "the solo pool cannot grow"),
        ([SPECS["mock"]], {"concurrency": 0}, "--concurrency must be at least 1"),
    ],
)
def test_plan_refusals_name_the_option(
    services: list[ServiceSpec], options: dict[str, object], names: str
) -> None:
    with pytest.raises(PlanError, match=names):
        plan_worker(services, gevent_installed=True, **options)  # type: ignore[arg-type]


def test_gevent_without_the_extra_says_how_to_install_it() -> None:
    with pytest.raises(PlanError, match=r"pip install 'emp-tasks\[gevent\]'"):
        plan_worker([SPECS["mock"]], pool="gevent", gevent_installed=False)


@pytest.mark.parametrize(
    ("raw", "expected"), [("4,2", (4, 2)), (" 10 , 0 ", (10, 0)), ("1,1", (1, 1))]
)
def test_autoscale_parses_max_then_min(raw: str, expected: tuple[int, int]) -> None:
    assert parse_autoscale(raw) == expected


@pytest.mark.parametrize("raw", ["4", "2,4", "0,0", "a,b", "4,2,1", "-1,0", ""])
def test_autoscale_refuses_what_celery_would_misread(raw: str) -> None:
    with pytest.raises(PlanError, match="--autoscale"):
        parse_autoscale(raw)


def test_argv_puts_the_pool_on_celerys_command_line() -> None:
    plan = plan_worker([SPECS["glif"], SPECS["mock"]], pool="gevent", gevent_installed=True)
    argv = plan.celery_argv("info", quiet=True)
    assert argv[:4] == ["-m", "celery", "--quiet", "-A"]
    assert argv[argv.index("-P") + 1] == "gevent"
    assert argv[argv.index("-Q") + 1] == "glif,mock"
    assert argv[argv.index("-c") + 1] == "15"
    assert argv[argv.index("-n") + 1].startswith("glif+mock.")


def test_argv_with_autoscale_sizes_by_it_instead_of_concurrency() -> None:
    plan = plan_worker([SPECS["mock"]], pool="prefork", autoscale="6,1")
    argv = plan.celery_argv("info", node_name="mock@host")
    assert argv[argv.index("--autoscale") + 1] == "6,1"
    assert "-c" not in argv
    assert argv[argv.index("-n") + 1] == "mock@host"


def test_every_mapped_service_defaults_to_a_pool_celery_knows() -> None:
    for service in SPECS.values():
        assert plan_worker([service]).pool == ("prefork" if service.is_gpu_bound else "threads")
