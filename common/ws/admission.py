"""Who may open a WebSocket, on which route and session: the checks both doors run.

- The API key comes in the ``X-API-Key`` header or, since browsers cannot set
  headers on a WebSocket, the ``api_key`` query parameter. It is checked like any
  request's (:func:`common.auth.authenticate`) and counted against the key's rate
  limit. It is never kept: the connection table stores the key's id, and
  ``api_key`` is dropped from the stored parameters. (The log scrubber masks
  ``api_key=...`` in any line that carries a URL.)
- A session id (``sid``) belongs to the first key that uses it: ``SET NX`` of
  ``<prefix>ws:sid:<route>:<sid>`` with a TTL refreshed on each use. Another key
  is refused with CLOSE_FORBIDDEN. Routes whose sid is owned elsewhere (a job id:
  the jobs table says whose it is) opt out with ``claims_sid = False``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from common.errors import StoreUnavailable, Unauthorized
from common.logs import get_logger
from common.ws.base import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    RouteHandler,
    WsConnection,
    WsRefused,
)
from common.ws.events import parse_since

if TYPE_CHECKING:
    from common.auth import Principal
    from common.stores.redis_store import RedisStore
    from common.ws.registry import Registry

log = get_logger("ws.admission")

# Query parameters that are the door's, not the route's: never stored with the connection.
DOOR_PARAMS = frozenset({"api_key", "path"})

# 1: the sid is (now) this key's, its TTL refreshed; 0: another key's.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if owner == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def presented_ws_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The API key from the X-API-Key header (any case), else from ``api_key``."""
    for name, value in headers.items():
        if name.lower() == "x-api-key" and value:
            return value
    return query.get("api_key") or None


def authenticate_ws(key: str | None) -> Principal:
    """The principal behind ``key``.

    Raises
    ------
    WsRefused
        CLOSE_UNAUTHORIZED for a missing, wrong or revoked key; CLOSE_UNAVAILABLE
        when PostgreSQL cannot be asked.
    """
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    if not key:
        raise WsRefused(
            CLOSE_UNAUTHORIZED,
            "missing API key: send the X-API-Key header or the api_key query parameter",
        )
    try:
        return authenticate(key, store=get_postgres())
    except Unauthorized as exc:
        raise WsRefused(CLOSE_UNAUTHORIZED, exc.message) from None
    except StoreUnavailable as exc:
        raise WsRefused(CLOSE_UNAVAILABLE, exc.message) from None


def count_connect(principal: Principal, redis: RedisStore | None) -> None:
    """A new connection counts as one request against the key's limit.

    Raises
    ------
    WsRefused
        CLOSE_RATE_LIMITED when over ``RATE_LIMIT_PER_MINUTE``.
    """
    from common.config import get_settings
    from common.ratelimit import count_requests

    limit = get_settings().RATE_LIMIT_PER_MINUTE
    if redis is None or limit <= 0:
        return
    left = count_requests(str(principal.key_id), 1, limit_per_minute=limit, redis=redis)
    if left is not None and left[0] < 0:
        raise WsRefused(
            CLOSE_RATE_LIMITED, f"over {limit} requests a minute for this key; retry in a minute"
        )


class SidOwners:
    """First key to use a sid owns it; the TTL is refreshed on each use."""

    def __init__(self, redis: RedisStore, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._script = redis.client.register_script(_CLAIM)

    def claim(self, route: str, sid: str, key_id: UUID) -> None:
        """Raises WsRefused(CLOSE_FORBIDDEN) when ``sid`` is another key's."""
        key = self.redis.key("ws", "sid", route, sid)
        if not int(self._script(keys=[key], args=[str(key_id), self.ttl_s])):
            raise WsRefused(CLOSE_FORBIDDEN, f"session {sid} belongs to another API key")

    def owner(self, route: str, sid: str) -> str | None:
        value = self.redis.client.get(self.redis.key("ws", "sid", route, sid))
        if isinstance(value, bytes):
            return value.decode()
        return value or None


@dataclass(frozen=True)
class Admitted:
    handler: RouteHandler
    conn: WsConnection
    since: int | None


def admit(
    *,
    path: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    door: str,
    registry: Registry,
    redis: RedisStore | None,
    conn_id: str | None = None,
) -> Admitted:
    """Every check before a connection is accepted, in order: the route exists, the
    key is valid (and within its rate), the route runs behind this door, the sid
    is the key's. Blocking (PostgreSQL and Redis): run it off the event loop.

    Parameters
    ----------
    path:
        The route's path (``/ws/jobs/<id>``); behind API Gateway the ``path`` query
        parameter, since its WebSocket URL has no path of its own.
    headers, query:
        The handshake's headers and query parameters.
    door:
        "local" or "aws".
    redis:
        None when no Redis is configured: no rate count, no sid ownership (the
        local server always has one; API Gateway's door refuses before).

    Returns
    -------
    Admitted
        The handler, the connection to register and the ``since`` asked for.

    Raises
    ------
    WsRefused
        With the close code of the first check that failed.
    """
    since = parse_since(query.get("since"))
    # The key first: an unauthenticated client learns nothing about routes or sessions.
    principal = authenticate_ws(presented_ws_key(headers, query))
    match = registry.match(path)
    if match is None:
        raise WsRefused(CLOSE_NOT_FOUND, f"no WebSocket route at {path}")
    handler = match.handler
    if door == "aws" and handler.local_only:
        raise WsRefused(
            CLOSE_UNAVAILABLE,
            f"{handler.route} needs a long-lived process: use the local server (make run)",
        )
    count_connect(principal, redis)
    if match.sid is not None and getattr(handler, "claims_sid", True) and redis is not None:
        from common.config import get_settings

        SidOwners(redis, ttl_s=get_settings().WS_CONNECTION_TTL_SECONDS).claim(
            handler.route, match.sid, principal.key_id
        )
    conn = WsConnection(
        id=conn_id or uuid.uuid4().hex,
        key_id=principal.key_id,
        route=handler.route,
        sid=match.sid,
        connected_at=time.time(),
        params={k: v for k, v in query.items() if k not in DOOR_PARAMS},
        door=door,
    )
    log.info(
        "websocket admitted",
        extra={"route": conn.route, "sid": conn.sid, "api_key_prefix": principal.prefix},
    )
    return Admitted(handler, conn, since)
