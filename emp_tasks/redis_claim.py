"""Taking a message off a Redis queue and recording it as unacked in one atomic step.

kombu's Redis transport pops a message with BRPOP and records it in the `unacked` hash (HSET)
and `unacked_index` sorted set (ZADD) in a second round trip. A worker killed between the two -
or Redis killed after the pop and before the record - loses the message for good: it is on no
list and in no hash. Here one Lua script does the pop and the record together, so a message is
always either on its queue or in `unacked` (from where the visibility restore brings it back).

A script cannot block, so an idle consumer waits with `BLMOVE key key RIGHT RIGHT`: it returns
as soon as the list has a message and leaves the list exactly as it was (the last element is
moved to the end it came from), after which the claim script takes the message. Under load the
consumer claims again straight after each message, one round trip per message instead of two.

The unacked record is the same JSON kombu writes (`[message, exchange, routing_key]`), built by
concatenating the message's own text, so kombu's restore, ack and reject work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["CLAIM", "MULTI_KEY_WAIT", "claim_args", "peek_args", "supports_blmove"]

# KEYS: the unacked hash, the unacked index, then the queue lists in the order to try them.
# ARGV: the score for the index (the consumer's clock, as kombu scores it), then one flag per
# queue list: "1" when its messages are acknowledged (recorded), "0" for a no-ack consumer.
# A message that is not kombu's JSON is returned unrecorded, as BRPOP would have returned it.
CLAIM = """
for i = 3, #KEYS do
  local payload = redis.call('RPOP', KEYS[i])
  if payload then
    if ARGV[i - 1] == '1' then
      local ok, message = pcall(cjson.decode, payload)
      local properties = ok and type(message) == 'table' and message['properties']
      local info = type(properties) == 'table' and properties['delivery_info']
      local tag = type(properties) == 'table' and properties['delivery_tag']
      if type(info) == 'table' and type(tag) == 'string' then
        redis.call('ZADD', KEYS[2], ARGV[1], tag)
        redis.call('HSET', KEYS[1], tag, '[' .. payload .. ',' .. cjson.encode(info['exchange'])
          .. ',' .. cjson.encode(info['routing_key']) .. ']')
      end
    end
    return {KEYS[i], payload}
  end
end
return false
"""

# A consumer of several lists can block on one of them only; it looks at the others this
# often while idle (a busy consumer claims from all of them after every message).
MULTI_KEY_WAIT = 0.1


def claim_args(
    unacked: str, index: str, keys: Sequence[str], acked: Iterable[bool], now: float
) -> list[object]:
    """The EVAL command that claims the first message of `keys`, recording the acked ones."""
    flags = ["1" if ack else "0" for ack in acked]
    return ["EVAL", CLAIM, 2 + len(keys), unacked, index, *keys, repr(now), *flags]


def peek_args(keys: Sequence[str], timeout: float) -> list[object]:
    """The command that waits until the first of `keys` has a message, taking none."""
    wait = timeout if len(keys) == 1 else min(timeout or MULTI_KEY_WAIT, MULTI_KEY_WAIT)
    return ["BLMOVE", keys[0], keys[0], "RIGHT", "RIGHT", wait]


def supports_blmove(version: str) -> bool:
    """Whether a server of this `redis_version` has BLMOVE (Redis 6.2 and later)."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return True  # a Redis-compatible server with its own numbering: try it
    return (major, minor) >= (6, 2)
