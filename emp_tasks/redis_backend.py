"""Celery's Redis result backend, storing a job's state in one atomic round trip instead of two.

Before every state it stores (STARTED, PROGRESS, SUCCESS, RETRY, FAILURE) Celery reads the
current one, so that a late duplicate never overwrites a SUCCESS, and then writes and publishes
the new one: two round trips, and a gap between them in which a SUCCESS stored by another
worker is still overwritten. Here one Lua script does the check, the write and the publish
together - the same keys, values, expiry and pub/sub message as Celery's, so its result
consumers, `AsyncResult` and Flower see no difference. A job stores two to four states, so this
saves as many round trips per job; at a thousand jobs in flight a round trip is CPU the worker
does not have to spare. The STARTED state of a job that begins is stored by the timer thread
with the other states of its tick, at most 50 ms later (emp_tasks.state_batch).

Only with the JSON result serializer, whose encoding of a SUCCESS meta begins with a known
prefix (checked with GETRANGE, so a large result is not copied into the script); with another
serializer the backend is Celery's own. celeryconfig makes it the backend of `redis://` and
`rediss://` result URLs (Celery's scheme alias).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import states
from celery.backends import redis as celery_redis
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str
from kombu.utils.objects import cached_property
from redis.exceptions import NoScriptError

from emp_tasks.state_batch import state_batch

__all__ = ["STORE_UNLESS_DONE", "RedisBackend"]

log = logging.getLogger(__name__)

# KEYS: the task's meta key. ARGV: the encoded meta, its expiry in seconds (0: none), and the
# prefix a SUCCESS meta begins with. Returns 0 when a SUCCESS is already stored (nothing done).
STORE_UNLESS_DONE = """
local prefix = ARGV[3]
if redis.call('GETRANGE', KEYS[1], 0, #prefix - 1) == prefix then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class RedisBackend(celery_redis.RedisBackend):  # type: ignore[misc]
    """Celery's Redis backend whose state writes check, store and publish in one script."""

    @cached_property
    def _success_prefix(self) -> str | None:
        """How an encoded SUCCESS meta begins, or None when the serializer is not JSON."""
        if self.serializer != "json":
            return None
        encoded = bytes_to_str(self.encode({"status": states.SUCCESS}))
        return str(encoded[:-1])  # without the closing brace: more keys follow

    @cached_property
    def _store_unless_done(self) -> Any:
        return self.client.register_script(STORE_UNLESS_DONE)

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        prefix = self._success_prefix
        if prefix is None:
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        if state == states.STARTED and request is not None:
            # Celery's trace, as the job begins: stored by the timer thread's next tick
            # (emp_tasks.state_batch), not with a round trip on the job's own thread.
            state_batch().defer(self, task_id, state, result, request)
            return result
        state_batch().discard(task_id)  # an older state still kept must not land after this
        key, value, expires = self._encoded(task_id, result, state, traceback, request)
        self.ensure(self._store, (key, value, expires, prefix))
        return result

    def store_many(self, items: list[tuple[str, Any, str, Any]]) -> None:
        """Store `(task_id, result, state, request)` items in one pipeline, each as above.

        An item that cannot be stored (too large) is logged and left out, not the others.
        """
        prefix = self._success_prefix
        if prefix is None:
            for task_id, result, state, request in items:
                self.store_result(task_id, result, state, request=request)
            return
        writes = []
        for task_id, result, state, request in items:
            try:
                encoded = self.encode_result(result, state)
                writes.append(self._encoded(task_id, encoded, state, None, request))
            except BackendStoreError:
                log.exception("%s state of %s not stored", state, task_id)
        if writes:
            self.ensure(self._store_all, (writes, prefix))

    def _encoded(
        self, task_id: str, result: Any, state: str, traceback: Any, request: Any
    ) -> tuple[Any, Any, int]:
        """The key, encoded meta and expiry (0: none) Celery would store for this state."""
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        return self.get_key_for_task(task_id), value, int(expires or 0)

    def _store(self, key: Any, value: Any, expires: int, prefix: str) -> None:
        self._store_unless_done(keys=[key], args=[value, int(expires), prefix])

    def _store_all(self, writes: list[tuple[Any, Any, int]], prefix: str) -> None:
        # EVALSHA by hand: a Script in a pipeline asks SCRIPT EXISTS first, a round trip of
        # its own on every execute. A Redis that lost the script (a restart) is sent it once.
        sha = self._store_unless_done.sha
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for key, value, expires in writes:
                pipe.evalsha(sha, 1, key, value, expires, prefix)
            try:
                pipe.execute()
                return
            except NoScriptError:  # nothing was stored: no script ran
                if attempt == 2:
                    raise
                self.client.script_load(STORE_UNLESS_DONE)
