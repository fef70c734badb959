"""The Celery application, configured from the top-level `celeryconfig` module."""

from __future__ import annotations

from celery import Celery

__all__ = ["app"]

app = Celery("emp_tasks")
app.config_from_object("celeryconfig")

from emp_tasks import worker  # noqa: E402,F401  - the start-up check for `celery -A emp_tasks worker`
