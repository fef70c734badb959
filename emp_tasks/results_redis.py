"""The result backend's Redis, where the runtime keeps what its workers share.

Delivery counts, journals, webhook records, spend and the call gate's state all live beside the
results, so they need no server of their own and expire with them. This is the one place that
finds that Redis client (none when results are elsewhere, e.g. the embedded default's SQLite).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RESULTS_TTL_DEFAULT", "results_redis", "results_ttl"]

RESULTS_TTL_DEFAULT = 86400  # seconds, when the backend sets no expiry
_REDIS_BACKENDS = ("RedisBackend", "SentinelBackend")


def results_redis(backend: Any) -> Any | None:
    """`backend`'s Redis client when it is a Redis result backend, else None."""
    client = getattr(backend, "client", None)
    if client is None or type(backend).__name__ not in _REDIS_BACKENDS:
        return None
    return client


def results_ttl(backend: Any) -> int:
    """How long the backend keeps a result, in seconds; what lives beside it expires with it."""
    return int(getattr(backend, "expires", None) or RESULTS_TTL_DEFAULT)
