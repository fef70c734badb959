"""The Celery application, configured from the top-level `celeryconfig` module."""

from __future__ import annotations

from celery import Celery

from emp_tasks.worker_events import EventBatching

__all__ = ["app"]

# `include`: every worker imports the tasks however it was started (`emp-tasks worker`,
# `celery -A emp_tasks worker`, from any directory), so none starts with an empty [tasks] list.
app = Celery("emp_tasks", include=["emp_tasks.tasks"])
app.config_from_object("celeryconfig")
app.steps["consumer"].add(EventBatching)

from emp_tasks import worker  # noqa: E402,F401  - the start-up check for `celery -A emp_tasks worker`
