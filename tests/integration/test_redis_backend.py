"""The Redis result backend: one atomic round trip per state, Celery's keys and messages."""

from __future__ import annotations

import json
import time

import pytest
import redis
from celery import Celery, states
from celery.app.task import Context

from emp_tasks import timers
from emp_tasks.redis_backend import RedisBackend
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def results_url(own_redis: RedisServer) -> str:
    """Results in a Redis of the test's own, so its command counts are the test's alone."""
    return f"redis://127.0.0.1:{own_redis.port}/1"


def _app(url: str, **conf: object) -> Celery:
    app = Celery("emp_backend_test", broker="memory://", backend=url)
    app.conf.update({"result_serializer": "json", "result_extended": True, **conf})
    return app


def _calls(url: str) -> dict[str, int]:
    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def test_the_apps_redis_results_use_this_backend() -> None:
    from emp_tasks.celery_app import app

    assert isinstance(app.backend, RedisBackend)


def test_a_state_is_stored_and_published_in_one_round_trip(results_url: str) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-a", {"n": 1}, states.STARTED)  # loads the script
    before = _calls(results_url)
    backend.store_result("job-a", {"done": True}, states.SUCCESS)
    after = _calls(results_url)
    counting = {"hello", "select", "info", "client|setinfo"}  # _calls' own connection
    sent = {
        name: n - before.get(name, 0)
        for name, n in after.items()
        if n != before.get(name) and name not in counting
    }
    # One EVALSHA; inside it GETRANGE, SETEX and PUBLISH (Redis counts a script's commands).
    assert sent == {"evalsha": 1, "getrange": 1, "setex": 1, "publish": 1}
    meta = backend.get_task_meta("job-a")
    assert (meta["status"], meta["result"]) == (states.SUCCESS, {"done": True})


def test_a_stored_success_is_never_overwritten(results_url: str) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-b", {"answer": 42}, states.SUCCESS)
    backend.store_result("job-b", {"pid": 1}, states.STARTED)  # a late duplicate
    backend.store_result("job-b", None, states.FAILURE)
    meta = backend.get_task_meta("job-b")
    assert (meta["status"], meta["result"]) == (states.SUCCESS, {"answer": 42})


def test_states_keep_celerys_expiry_and_a_failure_its_own(results_url: str) -> None:
    backend = _app(results_url, result_expires=600, result_failure_expires=60).backend
    client = redis.Redis.from_url(results_url)
    backend.store_result("job-c", {"n": 1}, states.STARTED)
    assert 590 < client.ttl(backend.get_key_for_task("job-c")) <= 600
    backend.mark_as_failure("job-d", ValueError("no"))
    assert 50 < client.ttl(backend.get_key_for_task("job-d")) <= 60


def test_a_waiting_client_gets_the_result_through_the_published_message(results_url: str) -> None:
    app = _app(results_url)
    result = app.AsyncResult("job-e")
    result.backend.on_task_call(None, "job-e")  # subscribe, as `delay()` does
    app.backend.store_result("job-e", {"ok": 1}, states.SUCCESS)
    assert result.get(timeout=5) == {"ok": 1}


def test_another_serializer_keeps_celerys_own_store(results_url: str) -> None:
    app = _app(results_url, result_serializer="pickle", result_accept_content=["pickle"])
    backend = app.backend
    assert backend._success_prefix is None
    backend.store_result("job-f", {"n": 2}, states.SUCCESS)
    assert backend.get_task_meta("job-f")["result"] == {"n": 2}


def test_store_many_stores_each_state_as_store_result_does(
    results_url: str,
) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-m0", {"n": 0}, states.STARTED)  # loads the script
    backend.store_result("job-m3", {"answer": 1}, states.SUCCESS)
    one = redis.Redis.from_url(results_url).get(backend.get_key_for_task("job-m0"))
    before = _calls(results_url)
    items = [(f"job-m{n}", {"progress": 10 * n}, "PROGRESS", None) for n in range(4)]
    backend.store_many(items)
    after = _calls(results_url)
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 4
    for n in range(3):
        meta = backend.get_task_meta(f"job-m{n}")
        assert (meta["status"], meta["result"]) == ("PROGRESS", {"progress": 10 * n})
    done = backend.get_task_meta("job-m3")
    assert (done["status"], done["result"]) == (states.SUCCESS, {"answer": 1})  # not overwritten
    stored = redis.Redis.from_url(results_url).get(backend.get_key_for_task("job-m0"))
    assert set(json.loads(stored)) == set(json.loads(one))  # the same fields as one by one
    assert redis.Redis.from_url(results_url).ttl(backend.get_key_for_task("job-m1")) > 0


def test_store_many_sends_the_script_again_to_a_redis_that_lost_it(results_url: str) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-n0", {"n": 0}, states.STARTED)
    redis.Redis.from_url(results_url).script_flush()  # what a restarted Redis has forgotten
    backend.store_many([("job-n1", {"progress": 10}, "PROGRESS", None)])
    assert backend.get_task_meta("job-n1")["result"] == {"progress": 10}
    before = _calls(results_url)
    backend.store_many([("job-n1", {"progress": 20}, "PROGRESS", None)])
    after = _calls(results_url)
    assert after.get("script|exists", 0) == before.get("script|exists", 0)  # no check first
    assert backend.get_task_meta("job-n1")["result"] == {"progress": 20}


def test_store_many_leaves_out_only_a_state_too_large_to_store(results_url: str) -> None:
    backend = _app(results_url).backend
    backend._MAX_STR_VALUE_SIZE = 400  # Redis' own limit is 512 MiB: a small one stands in
    backend.store_many(
        [
            ("job-big", {"progress": 10, "message": "x" * 1000}, "PROGRESS", None),
            ("job-small", {"progress": 20}, "PROGRESS", None),
        ]
    )
    assert backend.get_task_meta("job-small")["result"] == {"progress": 20}
    assert backend.get_task_meta("job-big")["status"] == states.PENDING


def _wait_for_status(backend: RedisBackend, task_id: str, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        meta: dict[str, object] = backend.get_task_meta(task_id)
        if meta["status"] == status:
            return meta
        backend._cache.pop(task_id, None)
        time.sleep(0.01)
    raise AssertionError(f"{task_id} never became {status}")


def _request(task_id: str) -> Context:
    return Context(id=task_id, task="emp.glif", args=[{"inputs": ["x"]}], kwargs={}, retries=0)


def test_a_running_jobs_started_state_is_stored_by_the_timer_thread(results_url: str) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-s0", {"n": 0}, states.STARTED)  # loads the script
    backend.store_result("job-s1", {"pid": 7}, states.STARTED, request=_request("job-s1"))
    meta = _wait_for_status(backend, "job-s1", states.STARTED)
    assert (meta["result"], meta["name"]) == ({"pid": 7}, "emp.glif")  # Celery's own record


@pytest.mark.parametrize("outcome", [states.SUCCESS, states.FAILURE, states.RETRY])
def test_a_started_state_still_kept_never_lands_after_the_jobs_outcome(
    results_url: str, outcome: str
) -> None:
    backend = _app(results_url).backend
    task_id = f"job-o-{outcome.lower()}"
    backend.store_result(task_id, {"pid": 7}, states.STARTED, request=_request(task_id))
    result = ValueError("no") if outcome != states.SUCCESS else {"done": True}
    backend.store_result(task_id, result, outcome, request=_request(task_id))
    time.sleep(3 * timers.GRID)  # the timer's next tick has come and gone
    backend._cache.pop(task_id, None)
    assert backend.get_task_meta(task_id)["status"] == outcome


def test_a_started_state_still_kept_never_replaces_a_newer_one_stored_at_once(
    results_url: str,
) -> None:
    backend = _app(results_url).backend
    backend.store_result("job-p", {"pid": 7}, states.STARTED, request=_request("job-p"))
    backend.store_result("job-p", {"progress": 50}, "PROGRESS", request=_request("job-p"))
    time.sleep(3 * timers.GRID)
    backend._cache.pop("job-p", None)
    assert backend.get_task_meta("job-p")["status"] == "PROGRESS"
