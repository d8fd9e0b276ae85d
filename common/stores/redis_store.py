"""Redis: one client per process, keys namespaced by ``REDIS_KEY_PREFIX``.

Redis holds nothing that a request cannot live without (rate limits, cache,
pub/sub): callers treat :class:`RedisDown` as "fail open".
"""

from __future__ import annotations

import time

import redis

from common.config import get_settings
from common.errors import StoreUnavailable
from common.lazy import Lazy
from common.logs import get_logger

log = get_logger("stores.redis")

RedisDown = (redis.ConnectionError, redis.TimeoutError, StoreUnavailable)


class RedisStore:
    """A Redis client plus the key prefix that isolates this deployment (or test run)."""

    def __init__(self, url: str, *, prefix: str = "") -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            health_check_interval=30,
            decode_responses=False,
        )
        self.prefix = prefix
        self._down_since: float | None = None

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def ping(self) -> None:
        self.client.ping()

    def note_down(self, exc: BaseException, doing: str) -> None:
        """Log once per outage, not once per request."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "Redis unreachable; %s fails open until it is back",
                doing,
                extra={"error": type(exc).__name__},
            )

    def note_up(self) -> None:
        if self._down_since is not None:
            log.info(
                "Redis reachable again",
                extra={"down_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None

    def close(self) -> None:
        self.client.close()


def _create() -> RedisStore:
    settings = get_settings()
    if not settings.REDIS_URL:
        raise StoreUnavailable("REDIS_URL is not set")
    return RedisStore(settings.REDIS_URL, prefix=settings.REDIS_KEY_PREFIX)


_store: Lazy[RedisStore] = Lazy(_create, RedisStore.close)
get_redis = _store.get
reset = _store.reset
