"""The baseline for benchmarks/overhead.py: a bare Celery task doing the same `requests.post`."""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery

app = Celery("bare", broker=os.environ["EMP_BROKER_URL"], backend=os.environ["EMP_RESULT_BACKEND"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    task_routes={"bare.glif_post": {"queue": "bare"}},
)
_session = requests.Session()
# As many keep-alive connections as the worker has slots, as emp's connectors keep.
_size = int(os.environ.get("BARE_POOL_SIZE") or 10)
_session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=_size, pool_maxsize=_size))


@app.task(name="bare.glif_post")
def glif_post(body: dict[str, Any]) -> Any:
    """POST the body to Glif and return the JSON, nothing else."""
    response = _session.post(
        os.environ["GLIF_BASE_URL"],
        json=body,
        timeout=(10, 60),
        headers={"Authorization": f"Bearer {os.environ['GLIF_API_TOKEN']}"},
    )
    response.raise_for_status()
    return response.json()
