"""emp-tasks runtime: the Celery app, one task per service, submit(), events and the CLI.

    import emp_tasks
    job = emp_tasks.submit("glif", {"workflow_id": "...", "inputs": ["a happy horse"]})
    job.get()

The Celery app is loaded on first use, so `emp_tasks.sandbox` (the emulators) can be imported
without configuring a broker.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "job_record", "submit", "tasks"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'emp_tasks' has no attribute {name!r}")
    from emp_tasks import client, tasks  # registers one task per service
    from emp_tasks.celery_app import app

    found = {"app": app, "submit": client.submit, "job_record": client.job_record, "tasks": tasks}
    globals().update(found)
    return found[name]
