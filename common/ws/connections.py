"""The connection table in Redis, shared by both doors.

- ``<prefix>ws:conn:<connection id>``: a hash (key id, route, sid, connected at,
  query parameters, door, and for API Gateway the management endpoint to post to),
  with a TTL of ``WS_CONNECTION_TTL_SECONDS``: above API Gateway's 2-hour limit, so a
  live connection never drops out, while one whose ``$disconnect`` never came (it
  is best effort) goes away on its own. The local door refreshes it while open.
- ``<prefix>ws:members:<route>:<sid or ->``: the set of connection ids of one
  (route, sid), for fan-out where there is no process holding sockets (AWS).

An id in a members set whose hash expired is stale: :meth:`ConnectionTable.members`
skips it, and a post that finds it gone removes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from common.ws.base import WsConnection

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore

NO_SID = "-"


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class ConnectionTable:
    """Connections by id, and the ids of each (route, sid).

    Parameters
    ----------
    redis:
        The store; its prefix namespaces every key.
    ttl_s:
        How long an entry lives without a refresh.
    """

    def __init__(self, redis: RedisStore, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    def _conn_key(self, conn_id: str) -> str:
        return self.redis.key("ws", "conn", conn_id)

    def members_key(self, route: str, sid: str | None) -> str:
        return self.redis.key("ws", "members", route, sid or NO_SID)

    def add(self, conn: WsConnection, *, endpoint: str | None = None) -> None:
        """Register ``conn`` (and where to post to it, behind API Gateway)."""
        fields = {
            "key_id": str(conn.key_id),
            "route": conn.route,
            "sid": conn.sid or "",
            "connected_at": repr(conn.connected_at),
            "params": json.dumps(conn.params),
            "door": conn.door,
        }
        if endpoint:
            fields["endpoint"] = endpoint
        members = self.members_key(conn.route, conn.sid)
        pipe = self.redis.client.pipeline(transaction=True)
        pipe.hset(self._conn_key(conn.id), mapping=cast(Mapping[Any, Any], fields))
        pipe.expire(self._conn_key(conn.id), self.ttl_s)
        pipe.sadd(members, conn.id)
        pipe.expire(members, self.ttl_s)
        pipe.execute()

    def get(self, conn_id: str) -> WsConnection | None:
        row = self.redis.client.hgetall(self._conn_key(conn_id))
        return None if not row else _from_row(conn_id, row)

    def endpoint(self, conn_id: str) -> str | None:
        return _text(self.redis.client.hget(self._conn_key(conn_id), "endpoint"))

    def endpoint_and_params(self, conn_id: str) -> tuple[str | None, dict[str, str]]:
        """Where to post to ``conn_id`` and its query parameters, in one round trip
        (fan-out behind API Gateway: a ``frames=base64`` connection gets text)."""
        endpoint, params = self.redis.client.hmget(self._conn_key(conn_id), ["endpoint", "params"])
        try:
            parsed = json.loads(_text(params) or "{}")
        except ValueError:
            parsed = {}
        return _text(endpoint), parsed if isinstance(parsed, dict) else {}

    def set_field(self, conn_id: str, name: str, value: str) -> None:
        """Door bookkeeping on an existing entry (e.g. "synced" behind API Gateway)."""
        self.redis.client.hset(self._conn_key(conn_id), name, value)

    def field(self, conn_id: str, name: str) -> str | None:
        return _text(self.redis.client.hget(self._conn_key(conn_id), name))

    def remove(self, conn_id: str) -> WsConnection | None:
        """Forget ``conn_id``; the entry it had, if any."""
        conn = self.get(conn_id)
        pipe = self.redis.client.pipeline(transaction=True)
        pipe.delete(self._conn_key(conn_id))
        if conn is not None:
            pipe.srem(self.members_key(conn.route, conn.sid), conn_id)
        pipe.execute()
        return conn

    def touch(self, conns: list[WsConnection]) -> None:
        """Refresh the TTL of connections still open (the local door, every hour or so)."""
        if not conns:
            return
        pipe = self.redis.client.pipeline(transaction=False)
        for conn in conns:
            pipe.expire(self._conn_key(conn.id), self.ttl_s)
            pipe.expire(self.members_key(conn.route, conn.sid), self.ttl_s)
        pipe.execute()

    def members(self, route: str, sid: str | None) -> list[str]:
        """Ids of the live connections of (route, sid); stale ids are dropped on the way."""
        members = self.members_key(route, sid)
        ids = sorted(_text(m) or "" for m in self.redis.client.smembers(members))
        if not ids:
            return []
        pipe = self.redis.client.pipeline(transaction=False)
        for conn_id in ids:
            pipe.exists(self._conn_key(conn_id))
        alive = pipe.execute()
        stale = [i for i, ok in zip(ids, alive, strict=True) if not ok]
        if stale:
            self.redis.client.srem(members, *stale)
        return [i for i, ok in zip(ids, alive, strict=True) if ok]

    def ttl(self, conn_id: str) -> int:
        return int(self.redis.client.ttl(self._conn_key(conn_id)))


def _from_row(conn_id: str, row: Mapping[Any, Any]) -> WsConnection:
    values = {_text(k) or "": _text(v) or "" for k, v in row.items()}
    return WsConnection(
        id=conn_id,
        key_id=UUID(values["key_id"]),
        route=values["route"],
        sid=values.get("sid") or None,
        connected_at=float(values.get("connected_at") or time.time()),
        params=json.loads(values.get("params") or "{}"),
        door=values.get("door", "local"),
    )


def get_connection_table() -> ConnectionTable:
    """The table on the process-wide Redis (raises StoreUnavailable without REDIS_URL)."""
    from common.config import get_settings
    from common.stores.redis_store import get_redis

    return ConnectionTable(get_redis(), ttl_s=get_settings().WS_CONNECTION_TTL_SECONDS)
