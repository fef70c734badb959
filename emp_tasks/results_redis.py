"""The result backend's Redis, where the runtime keeps what its workers share.

Delivery counts, journals, webhook records, spend and the call gate's state all live beside the
results, so they need no server of their own and expire with them. This is the one place that
finds that Redis client (none when results are elsewhere, e.g. the embedded default's SQLite).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RESULTS_TTL_DEFAULT", "results_redis", "results_ttl", "same_database"]

RESULTS_TTL_DEFAULT = 86400  # seconds, when the backend sets no expiry
_REDIS_BACKENDS = ("RedisBackend", "SentinelBackend")
_WHERE = ("host", "port", "path", "db", "username")  # what names a database to a client


def results_redis(backend: Any) -> Any | None:
    """`backend`'s Redis client when it is a Redis result backend, else None."""
    client = getattr(backend, "client", None)
    if client is None or type(backend).__name__ not in _REDIS_BACKENDS:
        return None
    return client


def results_ttl(backend: Any) -> int:
    """How long the backend keeps a result, in seconds; what lives beside it expires with it."""
    return int(getattr(backend, "expires", None) or RESULTS_TTL_DEFAULT)


def same_database(a: Any, b: Any) -> bool:
    """Whether two redis-py clients reach the same Redis database.

    Celery keeps one result backend per thread, each with its own client: a job's client and
    the process's call gate's differ, and reach the same keys.
    """
    if a is b:
        return True
    pools = getattr(a, "connection_pool", None), getattr(b, "connection_pool", None)
    if pools[0] is None or pools[1] is None or type(pools[0]) is not type(pools[1]):
        return False
    kwargs = [getattr(pool, "connection_kwargs", {}) for pool in pools]
    if not (kwargs[0].get("host") or kwargs[0].get("path")):
        return False  # nothing names where it connects (Sentinel's): only the same client
    return all(kwargs[0].get(k) == kwargs[1].get(k) for k in _WHERE)
