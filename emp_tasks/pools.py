"""Which pool, how many slots and which queues a worker gets: one pure decision, explained.

`emp-tasks worker --service glif,mock` asks for one worker serving several services. Each service
has its own pool settings in the mapping; `plan_worker` reconciles them into one plan and says
what it chose and why, so an operator never has to guess why a worker runs 15 threads or 1
process. Refusals (`PlanError`) are one line naming the option, before anything starts.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from emp_tasks.config import ServiceSpec

__all__ = [
    "AUTOSCALING_POOLS",
    "POOLS",
    "WEBHOOK_CONCURRENCY",
    "PlanError",
    "WorkerPlan",
    "parse_autoscale",
    "plan_worker",
    "webhook_plan",
    "with_webhooks",
]

POOLS = ("threads", "prefork", "gevent", "solo")
# Pools whose size Celery's autoscaler can change; a thread pool's executor cannot grow.
AUTOSCALING_POOLS = ("prefork", "gevent")


# A webhooks-only worker's slots: each delivery mostly waits on a receiver (15 s at most).
WEBHOOK_CONCURRENCY = 10
_WEBHOOK_QUEUE = "webhooks"  # emp_tasks.webhooks.QUEUE, named here to keep this module pure


class PlanError(ValueError):
    """A worker request that cannot be honoured; the message names the option."""


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process will run: its services, queues, pool and size."""

    services: tuple[str, ...]
    queues: tuple[str, ...]
    pool: str
    concurrency: int
    autoscale: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """A short name for the node: its services, or `all`."""
        return "+".join(self.services) if len(self.services) <= 3 else "all"

    def celery_argv(
        self, loglevel: str, node_name: str | None = None, quiet: bool = False
    ) -> list[str]:
        """`celery -A emp_tasks worker ...` arguments; the pool is on the command line, where
        Celery looks for `-P gevent` to monkey-patch before anything else is imported."""
        name = node_name or f"{self.label}.{os.getpid()}@%h"  # unique per process on a host
        size = (
            ["--autoscale", f"{self.autoscale[0]},{self.autoscale[1]}"]
            if self.autoscale
            else ["-c", str(self.concurrency)]
        )
        return [
            "-m", "celery", *(["--quiet"] if quiet else []), "-A", "emp_tasks", "worker",
            "-Q", ",".join(self.queues), "-P", self.pool, *size,
            "-n", name, "-E", "-l", loglevel,
        ]  # fmt: skip


def parse_autoscale(raw: str) -> tuple[int, int]:
    """`MAX,MIN` as Celery takes it; MAX >= 1 and MAX >= MIN >= 0."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise PlanError(f"--autoscale must be MAX,MIN (two whole numbers), not {raw!r}")
    high, low = int(parts[0]), int(parts[1])
    if high < 1 or low > high:
        raise PlanError(f"--autoscale MAX,MIN needs MAX >= 1 and MIN <= MAX, not {raw!r}")
    return high, low


def _choose_pool(specs: Sequence[ServiceSpec], pool: str | None) -> tuple[str, list[str]]:
    wanted = {spec.name: spec.worker_pool for spec in specs}
    if pool is not None:
        if pool not in POOLS:
            raise PlanError(f"--pool must be one of {', '.join(POOLS)}, not {pool!r}")
        overridden = [name for name, mapped in wanted.items() if mapped != pool]
        notes = [f"--pool {pool} overrides the mapping's pool for {', '.join(overridden)}"]
        return pool, notes if overridden else []
    distinct = sorted(set(wanted.values()))
    if len(distinct) == 1:
        return distinct[0], []
    # One process has one pool: isolating a GPU-bound job in a child beats thread throughput,
    # and gevent serves whatever threads can.
    chosen = next(p for p in ("prefork", "gevent", "solo", "threads") if p in distinct)
    mix = ", ".join(f"{name}={mapped}" for name, mapped in wanted.items())
    return chosen, [f"pool {chosen}: the services ask for different pools ({mix})"]


def _choose_size(specs: Sequence[ServiceSpec], concurrency: int | None) -> tuple[int, list[str]]:
    if concurrency is not None:
        if concurrency < 1:
            raise PlanError(f"--concurrency must be at least 1, not {concurrency}")
        return concurrency, []
    gpu = [spec for spec in specs if spec.is_gpu_bound]
    if gpu:
        slots = min(spec.concurrency for spec in gpu)
        others = [spec.name for spec in specs if not spec.is_gpu_bound]
        notes = (
            [f"{slots} slot(s): GPU-bound {gpu[0].name} shares them with {', '.join(others)}; "
             "run API services in their own worker for more"]
            if others else []
        )  # fmt: skip
        return slots, notes
    total = sum(spec.concurrency for spec in specs)
    if len(specs) == 1:
        return total, []
    parts = " + ".join(f"{spec.concurrency} ({spec.name})" for spec in specs)
    return total, [f"concurrency {total} = {parts}: the services share the worker's slots"]


def plan_worker(
    specs: Sequence[ServiceSpec],
    *,
    pool: str | None = None,
    concurrency: int | None = None,
    autoscale: str | None = None,
    gevent_installed: bool | None = None,
) -> WorkerPlan:
    """Reconcile the services' pool settings and the command-line overrides into one plan."""
    if not specs:
        raise PlanError("name at least one service: --service NAME[,NAME...] or --all")
    chosen, pool_notes = _choose_pool(specs, pool)
    if chosen == "gevent":
        installed = (
            importlib.util.find_spec("gevent") is not None
            if gevent_installed is None
            else gevent_installed
        )
        if not installed:
            raise PlanError("--pool gevent needs gevent: pip install 'emp-tasks[gevent]'")
    scale = parse_autoscale(autoscale) if autoscale else None
    if scale and chosen not in AUTOSCALING_POOLS:
        raise PlanError(
            f"--autoscale needs a prefork or gevent pool; the {chosen} pool cannot grow or "
            "shrink (use --concurrency, or --pool prefork/gevent)"
        )
    slots, size_notes = _choose_size(specs, concurrency)
    if scale:
        slots = scale[0]
    queues = tuple(dict.fromkeys(spec.queue for spec in specs))
    return WorkerPlan(
        services=tuple(spec.name for spec in specs),
        queues=queues,
        pool=chosen,
        concurrency=slots,
        autoscale=scale,
        notes=tuple(pool_notes + ([] if scale else size_notes)),
    )


def webhook_plan(pool: str | None = None, concurrency: int | None = None) -> WorkerPlan:
    """A worker for the `webhooks` queue alone: threads by default, deliveries wait on I/O."""
    chosen = pool or "threads"
    if chosen not in POOLS:
        raise PlanError(f"--pool must be one of {', '.join(POOLS)}, not {chosen!r}")
    if concurrency is not None and concurrency < 1:
        raise PlanError(f"--concurrency must be at least 1, not {concurrency}")
    return WorkerPlan(
        services=(_WEBHOOK_QUEUE,),
        queues=(_WEBHOOK_QUEUE,),
        pool=chosen,
        concurrency=concurrency or WEBHOOK_CONCURRENCY,
    )


def with_webhooks(plan: WorkerPlan) -> WorkerPlan:
    """The plan also consuming the `webhooks` queue, its deliveries sharing the plan's slots."""
    if _WEBHOOK_QUEUE in plan.queues:
        return plan
    note = "also delivers webhooks (queue webhooks), sharing these slots with the jobs"
    return replace(plan, queues=(*plan.queues, _WEBHOOK_QUEUE), notes=(*plan.notes, note))
