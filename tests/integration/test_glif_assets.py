"""A Glif job end to end through a Celery worker, its output saved to S3 (a moto server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

import emp_tasks
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_URL, free_port
from tests.integration.conftest import glif_env
from tests.integration.helpers import finish
from tests.integration.processes import RedisServer, WorkerProcess

pytestmark = pytest.mark.integration

BUCKET = "emp-assets"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "moto-secret-0f9e8d",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def s3_worker(
    redis_server: RedisServer,
    glif_emulator: GlifEmulator,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = glif_env(
        glif_emulator,
        EMP_BROKER_URL=REDIS_URL,
        EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1"),
        CLOUD_STORAGE_PROVIDER="s3",
        CLOUD_STORAGE_ENDPOINT_URL=s3_endpoint,
        CLOUD_STORAGE_BUCKET=BUCKET,
        CLOUD_STORAGE_REGION="us-east-1",
        **AWS,
    )
    log = Path(tmp_path_factory.mktemp("s3-worker")) / "worker.log"
    worker = WorkerProcess(env, log, name="s3").start()
    yield worker
    worker.stop()


def test_image_output_lands_in_the_bucket_and_the_result_points_at_it(
    s3_worker: WorkerProcess, s3_endpoint: str, glif_emulator: GlifEmulator
) -> None:
    record = finish(emp_tasks.submit("glif", {"workflow_id": "sandbox-image", "inputs": ["fox"]}))
    assert record["status"] == "completed"
    result = record["result"]
    (saved,) = result["output_files"]
    obj = s3(s3_endpoint).get_object(Bucket=BUCKET, Key=saved["path"])
    body = obj["Body"].read()
    provider_url = result["data"]["raw_response"]["output"]
    assert body == requests.get(provider_url, timeout=10).content  # the provider's own bytes
    assert obj["ContentType"] == "image/png" == result["data"]["mime_type"]
    assert saved["path"].startswith("emp-tasks/glif/")
    assert saved["path"].endswith(".png")
    assert "X-Amz-Signature" in result["data"]["image_url"]  # presigned: no CDN configured
    assert requests.get(result["data"]["image_url"], timeout=10).content == body


def test_a_rerun_of_the_same_job_overwrites_its_own_object(
    s3_worker: WorkerProcess, s3_endpoint: str
) -> None:
    payload = {"workflow_id": "sandbox-audio", "inputs": ["hello"]}
    first = finish(emp_tasks.submit("glif", payload, job_id="same-job-1"))
    second = finish(emp_tasks.submit("glif", payload, job_id="same-job-1"))
    keys = [first["result"]["output_files"][0]["path"], second["result"]["output_files"][0]["path"]]
    assert keys[0] == keys[1]
    listed = s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="emp-tasks/glif/same-job-1")
    assert listed["KeyCount"] == 1
    assert first["result"]["data"]["mime_type"] == "audio/mpeg"


def test_an_output_that_cannot_be_saved_fails_the_job_without_retrying(
    s3_worker: WorkerProcess, glif_emulator: GlifEmulator
) -> None:
    ctx = {"bucket": "no-such-bucket"}
    record = finish(
        emp_tasks.submit("glif", {"workflow_id": "sandbox-image", "inputs": ["x"]}, ctx=ctx)
    )
    assert record["status"] == "failed"
    assert record["error"]["retryable"] is False
    assert "no-such-bucket" in record["error"]["message"]
    assert len([c for c in glif_emulator.calls() if c.kind == "provider"]) == 1
