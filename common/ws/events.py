"""Numbered events: one bounded Redis stream per (route, sid), and pub/sub to deliver.

:meth:`EventLog.publish` runs one Lua script: take the next ``seq`` of (route, sid),
add the event to its stream under the entry id ``<seq>-0`` (trimmed to about
``WS_EVENT_STREAM_MAXLEN``), and PUBLISH the same text. The stream and the channel
never disagree, and a reconnecting client's ``since=<seq>`` is an XRANGE from
``<seq+1>-0``.

Job events are numbered by :mod:`common.jobs.events` (its own counter and channel,
``<prefix>jobs:<id>``, published by the workers), which also adds each to the job's
stream here, so replays work where no server listens (AWS). The jobs route keeps
the same numbers: :meth:`EventLog.publish` on route "jobs" uses that counter and
channel, and every local server process records the events it receives on that
channel into the job's stream with :meth:`EventLog.record` (entry id ``<seq>-0``
again, so a second copy is refused as a duplicate).

Keys: ``<prefix>ws:seq:<route>:<sid>``, ``<prefix>ws:log:<route>:<sid>``; channel
``<prefix>ws:ev:<route>:<sid>`` (``-`` for no sid).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from common.ws.base import CLOSE_BAD_MESSAGE, WsRefused
from common.ws.connections import NO_SID

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore

JOBS_ROUTE = "jobs"
# As long as common.jobs.events keeps a job's counter, so both forget together.
EVENT_TTL_S = 7 * 86_400

# KEYS: seq counter, stream, channel. ARGV: the event's JSON (an object, without
# seq), maxlen, ttl. A counter that expired while its stream did not (it cannot,
# both are refreshed together; belt and braces) restarts above the stream's top.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if last >= seq then
    seq = last + 1
    redis.call('SET', KEYS[1], seq)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local text
if string.len(ARGV[1]) <= 2 then
  text = '{"seq":' .. seq .. '}'
else
  text = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', text)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], text)
return seq
"""

# KEYS: stream. ARGV: seq, text, maxlen, ttl. 0 when the stream already has it (or later).
RECORD_SCRIPT = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if last >= tonumber(ARGV[1]) then return 0 end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[1] .. '-0', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Event:
    """A numbered event as stored and sent: its seq and its JSON text."""

    seq: int
    text: str

    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value


def parse_since(value: str | None) -> int | None:
    """``?since=`` as a seq (None when absent).

    Raises
    ------
    WsRefused
        CLOSE_BAD_MESSAGE when it is not a non-negative integer.
    """
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise WsRefused(CLOSE_BAD_MESSAGE, "since must be a non-negative integer (an event's seq)")
    return int(value)


class Cursor:
    """The last seq one connection was sent: what makes replay and live delivery
    meet without a gap or a duplicate.

    The door starts buffering live events for a connection, reads the stream from
    ``since``, sends the replay, then the buffered events: each goes through
    :meth:`admit`, which lets a seq through once and in order.
    """

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def admit(self, seq: int) -> bool:
        if seq <= self.last:
            return False
        self.last = seq
        return True

    def take(self, events: Iterable[Event]) -> list[Event]:
        """The events of ``events`` not yet sent, in order."""
        return [e for e in sorted(events, key=lambda e: e.seq) if self.admit(e.seq)]


def _sid(sid: str | None) -> str:
    return sid or NO_SID


def _entry_events(entries: list[Any] | None) -> list[Event]:
    """Stream entries ``(b"<seq>-0", {b"e": text})`` as events."""
    events = []
    for entry_id, fields in entries or []:
        seq = int(bytes(entry_id).split(b"-", 1)[0])
        events.append(Event(seq, bytes(fields[b"e"]).decode()))
    return events


class EventLog:
    """Numbered, replayable events per (route, sid).

    Parameters
    ----------
    redis:
        The store (its prefix namespaces keys and channels).
    maxlen:
        About how many events each stream keeps (``WS_EVENT_STREAM_MAXLEN``).
    """

    def __init__(self, redis: RedisStore, *, maxlen: int, ttl_s: int = EVENT_TTL_S) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self._publish = redis.client.register_script(_PUBLISH)
        self._record = redis.client.register_script(RECORD_SCRIPT)

    def stream_key(self, route: str, sid: str | None) -> str:
        return self.redis.key("ws", "log", route, _sid(sid))

    def channel(self, route: str, sid: str | None) -> str:
        """Where (route, sid)'s events are published."""
        if route == JOBS_ROUTE and sid:
            from common.jobs.events import channel

            return channel(self.redis.prefix, UUID(sid))
        return self.redis.key("ws", "ev", route, _sid(sid))

    def bytes_channel(self, route: str, sid: str | None) -> str:
        return self.redis.key("ws", "bin", route, _sid(sid))

    def _seq_key(self, route: str, sid: str | None) -> str:
        if route == JOBS_ROUTE and sid:
            return self.redis.key("jobs", sid, "seq")  # common.jobs.events' counter
        return self.redis.key("ws", "seq", route, _sid(sid))

    def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        """Number ``event``, keep it and publish it; returns its seq."""
        payload = json.dumps(
            {k: v for k, v in event.items() if k != "seq"},
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        keys = [self._seq_key(route, sid), self.stream_key(route, sid), self.channel(route, sid)]
        return int(self._publish(keys=keys, args=[payload, self.maxlen, self.ttl_s]))

    def record(self, route: str, sid: str | None, event: Event) -> bool:
        """Keep an event numbered elsewhere (a job's); False when already kept."""
        keys = [self.stream_key(route, sid)]
        return bool(self._record(keys=keys, args=[event.seq, event.text, self.maxlen, self.ttl_s]))

    def since(self, route: str, sid: str | None, seq: int) -> list[Event]:
        """Every kept event after ``seq``, oldest first."""
        entries = self.redis.client.xrange(self.stream_key(route, sid), min=f"{seq + 1}-0")
        return _entry_events(entries)

    def last(self, route: str, sid: str | None, count: int) -> list[Event]:
        """The ``count`` newest kept events, oldest first."""
        if count <= 0:
            return []
        entries = self.redis.client.xrevrange(self.stream_key(route, sid), count=count)
        return list(reversed(_entry_events(entries)))

    def replay(
        self, route: str, sid: str | None, since: int | None, default_last: int
    ) -> list[Event]:
        """What a connecting client is sent first: after ``since``, or without it the
        ``default_last`` newest events."""
        if since is not None:
            return self.since(route, sid, since)
        return self.last(route, sid, default_last)


def get_event_log() -> EventLog:
    from common.config import get_settings
    from common.stores.redis_store import get_redis

    return EventLog(get_redis(), maxlen=get_settings().WS_EVENT_STREAM_MAXLEN)
