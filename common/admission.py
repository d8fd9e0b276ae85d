"""Admitting a request: who is calling (API key) and whether the key is over its limit.

The key's principal is remembered in process, and trusted only while Redis's *auth
epoch* is the one read before the principal was looked up. Revoking a key changes
the epoch after PostgreSQL committed (``invalidate_principals``), and a remembered
request reads the epoch in the same Redis round trip that counts it against the
limit, so a key revoked by any process is refused from the next request on, as with
a lookup per request, and a remembered key costs one Redis round trip instead of a
PostgreSQL query plus that round trip.

What bounds the rest: with Redis unreachable nothing remembered is trusted (every
request looks the key up); a revoke that could not reach Redis is still seen within
``PRINCIPAL_TTL_S``, when the remembered principal expires; a Redis that lost its
data (no persistence) has no epoch, which matches none.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.auth import Principal, authenticate, hash_key
from common.errors import StoreUnavailable
from common.logs import get_logger

if TYPE_CHECKING:
    from common.config import Settings
    from common.stores.redis_store import RedisStore

log = get_logger("admission")

# A remembered principal is looked up again after this long, whatever the epoch: it
# bounds a revoke that could not reach Redis, and keeps "last used" (to the minute)
# written by the lookup.
PRINCIPAL_TTL_S = 30.0
MAX_PRINCIPALS = 4096
EPOCH_KEY = "auth:epoch"

# The epoch, created when Redis has none (first start, or a restart that lost it).
_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return epoch
"""


@dataclass(frozen=True, slots=True)
class _Remembered:
    principal: Principal
    epoch: bytes
    expires: float


class Principals:
    """Principals by the SHA-256 of their key, least recently used dropped first."""

    def __init__(self, *, ttl_s: float = PRINCIPAL_TTL_S, size: int = MAX_PRINCIPALS) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[bytes, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: bytes, now: float) -> _Remembered | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None:
                return None
            if item.expires <= now:
                del self._items[digest]
                return None
            self._items.move_to_end(digest)
            return item

    def put(self, digest: bytes, principal: Principal, epoch: bytes, now: float) -> None:
        with self._lock:
            self._items[digest] = _Remembered(principal, epoch, now + self.ttl_s)
            self._items.move_to_end(digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, digest: bytes) -> None:
        with self._lock:
            self._items.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


principals = Principals()
_epoch_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def admit(key: str, settings: Settings, requests: int) -> tuple[Principal, list[int] | None]:
    """Authenticate ``key`` and count ``requests`` requests for it.

    Returns
    -------
    tuple
        The principal, and for each request its requests left in the window (negative:
        over the limit), or None when not counted (no limit, no Redis).

    Raises
    ------
    Unauthorized
        Missing, malformed, unknown or revoked key.
    """
    redis = _redis()
    digest = hash_key(key)
    now = time.monotonic()
    remembered = principals.get(digest, now) if redis is not None else None
    if remembered is not None and redis is not None:
        answer = _count_and_epoch(redis, remembered.principal, settings, requests)
        if answer is not None:
            left, epoch = answer
            if epoch == remembered.epoch:
                return remembered.principal, left
            # The epoch moved (a key was revoked somewhere): look this one up again.
            # Its requests are counted already, against the key they were sent with.
            principals.forget(digest)
            return _look_up(key, digest, redis, now), left
    principal = _look_up(key, digest, redis, now)
    answer = _count_and_epoch(redis, principal, settings, requests) if redis else None
    return principal, answer[0] if answer else None


def _look_up(key: str, digest: bytes, redis: RedisStore | None, now: float) -> Principal:
    from common.stores.postgres import get_postgres

    # The epoch before the lookup: a revoke committed after it changes the epoch, so
    # what is remembered here is never trusted past that revoke.
    epoch = _epoch(redis) if redis is not None else None
    principal = authenticate(key, store=get_postgres())
    if epoch is not None:
        principals.put(digest, principal, epoch, now)
    return principal


def _count_and_epoch(
    redis: RedisStore, principal: Principal, settings: Settings, requests: int
) -> tuple[list[int] | None, bytes | None] | None:
    """The rate limit's count and the auth epoch, in one round trip; None: Redis down."""
    from common.ratelimit import count_and_read
    from common.stores.redis_store import RedisDown

    try:
        answer = count_and_read(
            redis,
            str(principal.key_id),
            requests,
            limit_per_minute=settings.RATE_LIMIT_PER_MINUTE,
            read_key=redis.key(EPOCH_KEY),
        )
    except RedisDown as exc:
        redis.note_down(exc, "rate limiting")
        return None
    redis.note_up()
    return answer


def _epoch(redis: RedisStore) -> bytes | None:
    from common.stores.redis_store import RedisDown

    script = _epoch_scripts.get(redis.client)
    if script is None:
        # Sent by its SHA-1 from then on, and loaded again if Redis forgot it.
        script = _epoch_scripts[redis.client] = redis.client.register_script(_EPOCH)
    try:
        epoch = script(keys=[redis.key(EPOCH_KEY)], args=[_new_epoch()])
    except RedisDown as exc:
        redis.note_down(exc, "remembering API keys")
        return None
    return bytes(epoch)


def invalidate_principals() -> bool:
    """After a key was revoked: no process trusts what it remembered any more.

    Returns
    -------
    bool
        False when Redis could not be reached: running servers then notice within
        ``PRINCIPAL_TTL_S``.
    """
    from common.stores.redis_store import RedisDown

    principals.clear()
    redis = _redis()
    if redis is None:
        return True  # no Redis: nothing is remembered anywhere
    try:
        redis.client.set(redis.key(EPOCH_KEY), _new_epoch())
    except RedisDown as exc:
        log.warning(
            "could not reach Redis to end remembered API keys; running servers refuse"
            " the revoked key within %d s",
            int(PRINCIPAL_TTL_S),
            extra={"error": type(exc).__name__},
        )
        return False
    return True


def _new_epoch() -> str:
    return uuid.uuid4().hex


def _redis() -> RedisStore | None:
    from common.stores.redis_store import get_redis

    try:
        return get_redis()
    except StoreUnavailable:
        return None  # no Redis configured at all
