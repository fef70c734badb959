"""kombu's Redis transport, keeping one redis-py client per channel instead of one per command.

kombu builds a new `redis.Redis` object for every publish and queue operation of a channel
(`Channel._create_client`). The object is only a front for the channel's connection pool, but
redis-py builds its response-callback table in `__init__`: about 0.4 ms of CPU each time
(measured here), paid on every event and retry a worker sends. A client is thread-safe (each
command takes a connection from the pool), so one per channel serves them all; it is dropped
whenever kombu drops the pools (after a fork, on close), so it never outlives its pool.
Everything else - queues, the unacked hash, visibility restore - is kombu's own.

celeryconfig makes it the transport of every `redis://` URL in the process (kombu's scheme
alias), so an app whose broker URL changes after start-up still gets its scheme's transport.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["Channel", "Transport"]


class Channel(kombu_redis.Channel):
    """A kombu Redis channel that reuses its synchronous client."""

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's client (BRPOP): kombu keeps its own
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        if self._sync_client is None:
            self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return self._sync_client

    def _disconnect_pools(self) -> None:
        self._sync_client = None
        super()._disconnect_pools()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel
