"""kombu's Redis transport, with atomic message claims and one redis-py client per channel.

Four changes to kombu's own transport; everything else - queues, the unacked hash, visibility
restore, ack and reject - is kombu's:

- **No message lost between pop and record.** kombu pops with BRPOP and records the unacked
  message in a second round trip; a worker or Redis killed between the two loses it. Here a
  consumer claims a message with one Lua script that pops and records it together, and waits
  for work with a BLMOVE that takes nothing (`emp_tasks.redis_claim`). A claim takes as many
  messages as the consumer's prefetch window has room for (at most 16), where kombu's BRPOP
  takes one per round trip: the rate at which a busy worker's event loop refills its slots.
  Redis 6.2 or later; on an older server the channel falls back to kombu's BRPOP and says so
  once.
- **One client per channel.** kombu builds a new `redis.Redis` object for every publish and
  queue operation (`Channel._create_client`); redis-py builds its response-callback table in
  `__init__`, about 0.4 ms of CPU each time (measured here), paid on every event and retry a
  worker sends. A client is thread-safe (each command takes a connection from the pool), so one
  per channel serves them all; it is dropped whenever kombu drops the pools.
- **Acks in one pipeline per turn of the event loop.** kombu removes an acked message from
  `unacked` with a round trip of its own, on the event loop's thread that Celery hands every
  ack to: one per job on the thread that also takes messages. An ack made on that thread
  opens its room in the prefetch window at once and keeps its tag; the loop's tick (after its
  callbacks, before it polls) removes every tag kept in one pipeline - about five at 200 jobs
  in flight. Acks on other threads, and once the loop is closing, go at once; a channel that
  closes removes what it kept. A removal that fails leaves the tags in `unacked`, as a failed
  ack does in kombu: the messages come back after the visibility timeout, and Celery skips a
  job that already completed.
- **A lost connection is a connection error.** A channel closed after its connection is gone
  (a Redis restart) raises one where kombu raised an AttributeError that ended the worker.

celeryconfig makes it the transport of every `redis://` URL in the process (kombu's scheme
alias), so an app whose broker URL changes after start-up still gets its scheme's transport.
"""

from __future__ import annotations

import logging
import threading
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from emp_tasks.redis_claim import CLAIM_BATCH, claim_args, peek_args, supports_blmove

__all__ = ["Channel", "QoS", "Transport"]

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS; claimed messages are not recorded twice, acks leave in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked: list[str] = []  # acked on the loop's thread, still in `unacked`
        self._acked_lock = threading.Lock()

    def ack(self, delivery_tag: str) -> None:
        if getattr(self.channel, "_closing", False) or not self.channel.connection.defers_acks():
            super().ack(delivery_tag)  # kombu's: a round trip now
            return
        with self._acked_lock:
            self._acked.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)  # the prefetch window has room at once

    def flush_acks(self) -> None:
        """Remove the kept acked messages from `unacked`, in one pipeline."""
        with self._acked_lock:
            tags, self._acked = self._acked, []
        if not tags:
            return
        try:
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline()
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except Exception:  # as a failed ack in kombu: back after the visibility timeout
            log.warning("could not remove %d acked messages from unacked", len(tags), exc_info=True)

    def restore_unacked(self, client: Any = None) -> Any:
        # kombu walks the delivered messages without its own flush: a kept ack's record is
        # still in `unacked`, and would be restored though it was acked.
        self.flush_acks()
        return super().restore_unacked(client)

    def append(self, message: Any, delivery_tag: str) -> None:
        claimed = self.channel._claimed
        if delivery_tag in claimed:
            claimed.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # the in-memory part only
            return
        super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    """A kombu Redis channel that claims messages atomically and reuses its client."""

    QoS = QoS
    _sync_client: Any = None
    _atomic: bool | None = None  # whether the server has BLMOVE; asked once per channel
    _sent: str = "EVAL"  # the fetch command waiting for its reply: EVAL (claim) or BLMOVE
    _peek_next = False  # the last claim found nothing: wait for a message before the next
    _in_poll: Any = None  # kombu's: the connection a fetch reply is awaited on
    _brpop_sent_at: Any = None  # kombu's: when that fetch was sent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._claimed: set[str] = set()  # claimed and recorded, not yet through qos.append
        self._no_ack: set[str] = set()  # queues consumed without acks: claimed unrecorded
        # emp-tasks sets no message priorities; one list per queue (kombu makes four) lets a
        # worker of one queue block on it while idle instead of looking at each list in turn.
        # A `priority_steps` transport option still overrides it.
        self.priority_steps = [0]
        super().__init__(*args, **kwargs)

    # -- one client -------------------------------------------------------------------------

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's client (the fetch): kombu keeps its own
            return super()._create_client(asynchronous=True)
        if self._sync_client is None:
            self._sync_client = super()._create_client()
        return self._sync_client

    def close(self) -> None:
        if self._qos is not None:
            self._qos.flush_acks()
        super().close()

    def _disconnect_pools(self) -> None:
        self._sync_client = None
        super()._disconnect_pools()

    def _connparams(self, asynchronous: bool = False) -> Any:
        # Closing a channel after its connection was lost restores its unacked messages, and
        # kombu then builds a pool from a transport whose connection is already gone: an
        # AttributeError that Celery calls unrecoverable, and the worker exits. A connection
        # error instead is what the close expects; the messages come back by the visibility
        # restore.
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)

    # -- atomic claims ----------------------------------------------------------------------

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        (self._no_ack.add if no_ack else self._no_ack.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _is_atomic(self) -> bool:
        if self._atomic is None:
            try:
                version = str(self._create_client().info("server").get("redis_version", ""))
            except redis.exceptions.ResponseError:  # INFO renamed away: assume a new server
                version = ""
            self._atomic = supports_blmove(version)
            if not self._atomic:
                log.warning(
                    "Redis %s has no BLMOVE (6.2+): messages are fetched with kombu's BRPOP, "
                    "which can lose one popped by a worker killed before recording it",
                    version,
                )
        return self._atomic

    def _keys(self, queues: list[str]) -> tuple[list[str], list[bool]]:
        keys, acked = [], []
        for pri in self.priority_steps:
            for queue in queues:
                keys.append(self.global_keyprefix + self._q_for_pri(queue, pri))
                acked.append(queue not in self._no_ack)
        return keys, acked

    def _claim(self, keys: list[str], acked: list[bool], most: int = 1) -> list[object]:
        prefix = self.global_keyprefix
        return claim_args(
            prefix + self.unacked_key, prefix + self.unacked_index_key, keys, acked, time(), most
        )

    def _room(self) -> int:
        """How many messages one claim may take: the prefetch window's room, 1 without one."""
        room = self.qos.can_consume_max_estimate()
        return max(1, min(CLAIM_BATCH, room)) if room else 1

    def _queue_of(self, reply: Any) -> str:
        """The queue a claim's reply came from (its key without prefix and priority)."""
        return str(bytes_to_str(reply[0])[len(self.global_keyprefix) :].rsplit(self.sep, 1)[0])

    def _claimed_message(self, payload: Any, recorded: bool) -> dict[str, Any]:
        """A message of a claim's reply; a recorded one is not recorded again on append."""
        message: dict[str, Any] = loads(bytes_to_str(payload))
        properties = message.get("properties") if isinstance(message, dict) else None
        if recorded and isinstance(properties, dict):
            self._claimed.add(str(properties.get("delivery_tag")))
        return message

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._is_atomic():
            super()._brpop_start(timeout)
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys, acked = self._keys(queues)
        wait = self.brpop_timeout if timeout is None else timeout
        if self._peek_next:
            command = peek_args(keys, wait or 0)
        else:
            command = self._claim(keys, acked, self._room())
        self._sent = str(command[0])
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        if not self._is_atomic():
            return bool(super()._brpop_read(**options))
        try:
            try:
                reply = self.client.parse_response(self.client.connection, self._sent, **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next fetch reconnects
                raise
            if self._sent == "BLMOVE" or not reply:
                # A wait ended (a message arrived, or the wait timed out): claim next. A claim
                # that found nothing: wait next.
                self._peek_next = self._sent != "BLMOVE"
                raise Empty()
            self._peek_next = False
            dest = self._queue_of(reply)
            recorded = dest not in self._no_ack
            messages = [self._claimed_message(payload, recorded) for payload in reply[1:]]
            self._queue_cycle.rotate(dest)
            self._deliver_all(messages, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _deliver_all(self, messages: list[dict[str, Any]], queue: str) -> None:
        """Hand each claimed message to the consumer; one that fails does not keep the rest
        waiting in unacked for the visibility timeout. The first failure is raised after."""
        failure: BaseException | None = None
        for message in messages:
            try:
                self.connection._deliver(message, queue)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """Get one message synchronously, claimed the same way."""
        if not self._is_atomic():
            return super().basic_get(queue, no_ack=no_ack, **kwargs)
        keys, _ = self._keys([queue])
        with self.conn_or_acquire() as client:
            reply = client.execute_command(*self._claim(keys, [not no_ack] * len(keys)))
        if not reply:
            return None
        payload = self._claimed_message(reply[1], recorded=not no_ack)
        message = self.Message(payload, channel=self)
        if not no_ack:
            self.qos.append(message, message.delivery_tag)
        return message


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above."""

    Channel = Channel
    _ack_loop: Any = None  # the event loop whose ticks remove acked messages; None: at once

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        self._ack_loop = loop
        loop.on_tick.add(self.flush_acks)
        loop.on_close.add(self._loop_closing)

    def defers_acks(self) -> bool:
        """Whether an ack made now waits for the loop's tick: on the loop's own thread only."""
        loop = self._ack_loop
        return loop is not None and getattr(loop, "_loop_thread", None) == threading.get_ident()

    def flush_acks(self) -> None:
        """Every channel's kept acks, removed from `unacked` (the loop's tick)."""
        for channel in list(self.channels):
            if channel._qos is not None:
                channel._qos.flush_acks()

    def _loop_closing(self, loop: Any) -> None:
        # A closing loop runs its last callbacks (acks among them) once, and no tick after.
        self._unregister(loop)
        self.flush_acks()

    def close_connection(self, connection: Any) -> None:
        if self._ack_loop is not None:  # a reconnected consumer registers its new transport
            self._unregister(self._ack_loop)
        super().close_connection(connection)  # closing each channel removes what it kept

    def _unregister(self, loop: Any) -> None:
        self._ack_loop = None
        loop.on_tick.discard(self.flush_acks)
        loop.on_close.discard(self._loop_closing)
