"""Fast recovery on Redis: a short visibility timeout that live workers keep extending.

kombu's Redis transport keeps every delivered, unacked message in the `unacked` hash, scored by
delivery time in the `unacked_index` sorted set; any consumer's periodic `restore_visible` puts
back on its queue whatever is older than the visibility timeout. With the timeout short
(EMP_VISIBILITY_TIMEOUT, 30 s) a killed worker's jobs run again on a live one within about a
minute - but a live job longer than the timeout (a 3-minute poll, a retry held 300 s as an ETA
message) would be restored too, and paid twice. So every worker re-scores the messages it still
holds every third of the timeout (`ZADD ... XX`: only entries that are still there, never one
already acked or restored): a message is restored only when the worker holding it has stopped
beating, i.e. died.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery import signals

from connectors.errors import configuration_error

__all__ = ["HeldMessages", "heartbeat_interval", "transport_options", "visibility_timeout"]

log = logging.getLogger(__name__)
DEFAULT_VISIBILITY_TIMEOUT = 30


def visibility_timeout(env: Mapping[str, str] | None = None) -> int:
    """EMP_VISIBILITY_TIMEOUT in seconds (at least 6: a beat every third of it)."""
    env = os.environ if env is None else env
    raw = (env.get("EMP_VISIBILITY_TIMEOUT") or str(DEFAULT_VISIBILITY_TIMEOUT)).strip()
    if not raw.isdigit() or int(raw) < 6:
        raise configuration_error(
            f"EMP_VISIBILITY_TIMEOUT must be a whole number of seconds, at least 6, not {raw!r}",
            variables=["EMP_VISIBILITY_TIMEOUT"],
        )
    return int(raw)


def heartbeat_interval(timeout: int) -> float:
    """How often a worker re-scores what it holds: three beats per timeout."""
    return timeout / 3


def transport_options(timeout: int) -> dict[str, object]:
    """kombu Redis options: the timeout, and a restore sweep every few seconds (not 100 s)."""
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(1, timeout // 6),
        "unacked_restore_throttle": 1,
    }


class HeldMessages:
    """The unacked messages this worker holds: received, not yet acked, rejected or restored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, Any] = {}

    def add(self, request: Any) -> None:
        with self._lock:
            self._requests[str(request.id)] = request

    def delivery_tags(self) -> list[str]:
        """Tags of the messages still held; forgets the ones that are done."""
        with self._lock:
            done = [key for key, req in self._requests.items() if req.acknowledged]
            for key in done:
                del self._requests[key]
            held = list(self._requests.values())
        return [str(req.message.delivery_tag) for req in held if req.message is not None]


def beat(client: Any, index_key: str, tags: Iterable[str], now: float) -> int:
    """Re-score `tags` in the unacked index to `now`; only existing entries (XX)."""
    scores = dict.fromkeys(tags, now)
    if not scores:
        return 0
    return int(client.zadd(index_key, scores, xx=True, ch=True) or 0)


_held = HeldMessages()


@signals.task_received.connect  # type: ignore[untyped-decorator]
def _track(request: Any = None, **_: Any) -> None:
    if request is not None:
        _held.add(request)


def _run(client: Any, index_key: str, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            beat(client, index_key, _held.delivery_tags(), time.time())
        except Exception:  # a missed beat is made up by the next; the job goes on
            log.warning("could not extend the visibility of held jobs", exc_info=True)


def start(app: Any, spawn: Callable[..., Any] | None = None) -> threading.Event | None:
    """Start beating for this worker when its broker is Redis; the event stops it."""
    url = str(app.conf.broker_url)
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    options = app.conf.broker_transport_options or {}
    prefix = str(options.get("global_keyprefix") or "")
    index_key = prefix + str(options.get("unacked_index_key") or "unacked_index")
    timeout = int(options.get("visibility_timeout") or DEFAULT_VISIBILITY_TIMEOUT)
    stop = threading.Event()
    args = (redis.Redis.from_url(url), index_key, heartbeat_interval(timeout), stop)
    if spawn is not None:
        spawn(_run, *args)
    else:
        threading.Thread(target=_run, args=args, daemon=True, name="visibility").start()
    return stop
