"""Progress events on Redis pub/sub, for the WebSocket that follows a job.

Channel ``<REDIS_KEY_PREFIX>jobs:<job id>``; each message is one JSON object with
``seq`` (1, 2, 3, ... per job, across workers and attempts: a counter in Redis that
the same Lua call increments and publishes with, so numbers never repeat or go
back), ``job_id``, ``type`` and its fields:

- ``{"type": "status", "status": "running" | "succeeded" | ..., "attempt": n}``
- ``{"type": "progress", "step": ..., "percent": ..., "message": ...}``
- ``{"type": "token", "token": ...}`` (streamed model output)
- ``{"type": "cancel_requested"}``

Pub/sub is best effort: PostgreSQL holds the truth, so a Redis outage is logged
once and the job goes on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.logs import get_logger

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore

log = get_logger("jobs.events")

# The payload arrives without its seq; the script splices '"seq":N,' after the '{'.
# The event also goes into the job's bounded WebSocket stream (common/ws/events.py,
# entry id <seq>-0), so ``since=`` replays work behind any door, even where no
# server process listens to the channel (AWS). A process that copied it there
# first (the local door records what it hears) wins: an id is never added twice.
# KEYS: seq counter, channel, stream. ARGV: payload, ttl, stream maxlen.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local text = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if not top[1] or tonumber(string.match(top[1][1], '^(%d+)')) < seq then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'e', text)
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
redis.call('PUBLISH', KEYS[2], text)
return seq
"""
SEQ_TTL_S = 7 * 86_400


def channel(prefix: str, job_id: UUID) -> str:
    return f"{prefix}jobs:{job_id}"


class EventSink(Protocol):
    def publish(self, job_id: UUID, event: dict[str, Any]) -> None: ...


class NullEvents:
    """No Redis configured (SQS-only deployments may run without it): events go nowhere."""

    def publish(self, job_id: UUID, event: dict[str, Any]) -> None:
        return None


class RedisEvents:
    """:class:`EventSink` on Redis pub/sub."""

    def __init__(self, redis: RedisStore, *, maxlen: int = 1000) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._script = redis.client.register_script(_PUBLISH)

    def publish(self, job_id: UUID, event: dict[str, Any]) -> None:
        from common.stores.redis_store import RedisDown

        payload = json.dumps({"job_id": str(job_id), **event}, separators=(",", ":"))
        keys = [
            self.redis.key("jobs", str(job_id), "seq"),
            channel(self.redis.prefix, job_id),
            self.redis.key("ws", "log", "jobs", str(job_id)),
        ]
        try:
            self._script(keys=keys, args=[payload, SEQ_TTL_S, self.maxlen])
        except RedisDown as exc:
            self.redis.note_down(exc, "job progress events")
            return
        self.redis.note_up()


def get_event_sink() -> EventSink:
    from common.errors import StoreUnavailable
    from common.stores.redis_store import get_redis

    try:
        from common.config import get_settings

        return RedisEvents(get_redis(), maxlen=get_settings().WS_EVENT_STREAM_MAXLEN)
    except StoreUnavailable:
        return NullEvents()
