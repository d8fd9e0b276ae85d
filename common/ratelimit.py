"""Per-key rate limit in Redis: a fixed one-minute window per key.

Fails open: when Redis is unreachable the request is served and one warning is
logged for the outage (``RedisStore.note_down``), because a limiter that takes
the API down with it protects nothing.
"""

from __future__ import annotations

import time

from common.errors import RateLimited
from common.stores.redis_store import RedisDown, RedisStore


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
    if limit_per_minute <= 0:
        return None
    now = time.time() if now is None else now
    window = int(now // 60)
    key = redis.key("rl", key_id, str(window))
    try:
        pipe = redis.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 61 + 1)
        count, _ = pipe.execute()
    except RedisDown as exc:
        redis.note_down(exc, "rate limiting")
        return None
    redis.note_up()
    if int(count) > limit_per_minute:
        retry_after = max(1, int((window + 1) * 60 - now + 0.999))
        raise RateLimited(
            f"rate limit of {limit_per_minute} requests a minute reached for this key;"
            f" retry in {retry_after} s",
            retry_after=retry_after,
        )
    return limit_per_minute - int(count)
