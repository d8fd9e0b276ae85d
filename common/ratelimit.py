"""Per-key rate limit in Redis: a fixed one-minute window per key.

Fails open: when Redis is unreachable the request is served and one warning is
logged for the outage (``RedisStore.note_down``), because a limiter that takes
the API down with it protects nothing.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from common.errors import RateLimited
from common.stores.redis_store import RedisDown, RedisStore

WINDOW_S = 60

# One command, not MULTI/INCRBY/EXPIRE/EXEC: half the client's CPU and round-trip
# time. The window's key expires a little after the window, counted from its first
# request, as before. KEYS[1] empty: nothing counted; KEYS[2], when given, is read in
# the same round trip (admission reads its auth epoch so).
_COUNT = """
local count = -1
if KEYS[1] ~= '' then
  count = redis.call('INCRBY', KEYS[1], ARGV[1])
  if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
local read = false
if KEYS[2] then read = redis.call('GET', KEYS[2]) end
return {count, read}
"""
_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def count_and_read(
    redis: RedisStore,
    key_id: str,
    requests: int,
    *,
    limit_per_minute: int,
    read_key: str | None = None,
    now: float | None = None,
) -> tuple[list[int] | None, bytes | None]:
    """Count ``requests`` requests for ``key_id`` and read ``read_key``, in one round trip.

    Counting a batch with one ``INCRBY`` gives each request the place it would
    have had with one ``INCR`` each, so a batch is refused exactly where single
    requests would have been.

    Returns
    -------
    tuple
        For each request, in order, the requests left in this window after it
        (negative: over the limit), or None when not counted (no limit); and the
        value at ``read_key`` (None: unset, or none asked).

    Raises
    ------
    RedisDown
        Redis did not answer: the caller decides how to fail open.
    """
    counting = limit_per_minute > 0 and requests > 0
    now = time.time() if now is None else now
    counter = redis.key("rl", key_id, str(int(now // WINDOW_S))) if counting else ""
    script = _scripts.get(redis.client)
    if script is None:
        # Sent by its SHA-1 from then on, and loaded again if Redis forgot it.
        script = _scripts[redis.client] = redis.client.register_script(_COUNT)
    keys = [counter] if read_key is None else [counter, read_key]
    count, read = script(keys=keys, args=[requests, WINDOW_S + 2])
    if not counting:
        return None, read
    first = int(count) - requests + 1
    return [limit_per_minute - (first + i) for i in range(requests)], read


def count_requests(
    key_id: str,
    requests: int = 1,
    *,
    limit_per_minute: int,
    redis: RedisStore,
    now: float | None = None,
) -> list[int] | None:
    """Count ``requests`` requests for ``key_id`` (:func:`count_and_read`), failing open.

    Returns
    -------
    list[int] | None
        For each request, in order, the requests left in this window after it
        (negative: over the limit); None when not counted (no limit, Redis down).
    """
    if limit_per_minute <= 0 or requests <= 0:
        return None
    try:
        left, _ = count_and_read(
            redis, key_id, requests, limit_per_minute=limit_per_minute, now=now
        )
    except RedisDown as exc:
        redis.note_down(exc, "rate limiting")
        return None
    redis.note_up()
    return left


def over_limit(limit_per_minute: int, now: float | None = None) -> RateLimited:
    """The error for a request over the limit; ``retry_after``: seconds until the window turns."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    retry_after = max(1, int((window + 1) * WINDOW_S - now + 0.999))
    return RateLimited(
        f"rate limit of {limit_per_minute} requests a minute reached for this key;"
        f" retry in {retry_after} s",
        retry_after=retry_after,
    )


def check_rate_limit(
    key_id: str, *, limit_per_minute: int, redis: RedisStore, now: float | None = None
) -> int | None:
    """Count one request for ``key_id``.

    Returns
    -------
    int | None
        Requests left in this window, or None when not counted (no limit, Redis down).

    Raises
    ------
    RateLimited
        Over the limit; ``retry_after`` is the seconds until the window turns.
    """
    now = time.time() if now is None else now
    left = count_requests(key_id, limit_per_minute=limit_per_minute, redis=redis, now=now)
    if left is None:
        return None
    if left[0] < 0:
        raise over_limit(limit_per_minute, now)
    return left[0]
