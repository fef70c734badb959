"""Taking a message off a Redis queue and recording it as unacked in one atomic step.

kombu's Redis transport pops a message with BRPOP and records it in the `unacked` hash (HSET)
and `unacked_index` sorted set (ZADD) in a second round trip. A worker killed between the two -
or Redis killed after the pop and before the record - loses the message for good: it is on no
list and in no hash. Here one Lua script does the pop and the record together, so a message is
always either on its queue or in `unacked` (from where the visibility restore brings it back).

A script cannot block, so an idle consumer waits with `BLMOVE key key RIGHT RIGHT`: it returns
as soon as the list has a message and leaves the list exactly as it was (the last element is
moved to the end it came from), after which the claim script takes the message. Under load the
consumer claims again straight after each message, one round trip per message instead of two;
and it takes as many messages as it has room for (its prefetch window, at most `CLAIM_BATCH`)
in that one round trip, so a worker whose slots free up together refills them together.

The unacked record is the same JSON kombu writes (`[message, exchange, routing_key]`), built by
concatenating the message's own text, so kombu's restore, ack and reject work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["CLAIM", "CLAIM_BATCH", "MULTI_KEY_WAIT", "claim_args", "peek_args", "supports_blmove"]

# KEYS: the unacked hash, the unacked index, then the queue lists in the order to try them.
# ARGV: the score for the index (the consumer's clock, as kombu scores it), one flag per queue
# list ("1" when its messages are acknowledged, so recorded; "0" for a no-ack consumer), then
# the most messages to take. Returns the first list that has any, and up to that many of its
# messages, oldest first. A message that is not kombu's JSON is returned unrecorded, as BRPOP
# would have returned it.
CLAIM = """
local function record(payload)
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
local most = tonumber(ARGV[#KEYS]) or 1
for i = 3, #KEYS do
  local payload = redis.call('RPOP', KEYS[i])
  if payload then
    local taken = {KEYS[i]}
    while payload do
      if ARGV[i - 1] == '1' then record(payload) end
      taken[#taken + 1] = payload
      if #taken > most then break end
      payload = redis.call('RPOP', KEYS[i])
    end
    return taken
  end
end
return false
"""

# The most messages one claim takes: the room a worker has is its prefetch window, refilled as
# jobs end; a few at a time keeps one reply small and the queue's other workers their share.
CLAIM_BATCH = 16

# A consumer of several lists can block on one of them only; it looks at the others this
# often while idle (a busy consumer claims from all of them after every message).
MULTI_KEY_WAIT = 0.1


def claim_args(
    unacked: str,
    index: str,
    keys: Sequence[str],
    acked: Iterable[bool],
    now: float,
    most: int = 1,
) -> list[object]:
    """The EVAL command that claims up to `most` messages of the first of `keys` with any.

    The messages of acked queues are recorded as unacked in the same step.
    """
    flags = ["1" if ack else "0" for ack in acked]
    return ["EVAL", CLAIM, 2 + len(keys), unacked, index, *keys, repr(now), *flags, str(most)]


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
