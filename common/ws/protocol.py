"""What both doors do the same way around a route handler.

- ``{"action": "sync", "since": <seq>}`` (``since`` optional) from a client is the
  door's, not the route's: it replays the events after ``since`` and sends the
  route's snapshot again (a job's state). Behind API Gateway the first frame a
  client sends also delivers what the local door sends at once (see
  :mod:`common.ws.aws`), so a client that always starts with ``{"action": "sync"}``
  works behind both doors.
- Optional hooks a route handler may define besides the contract of
  :mod:`common.ws.base` (looked up with ``getattr``, so handlers without them are
  unaffected): ``replay_without_since`` (int: how many of the newest events a
  client that gave no ``since`` is sent first; default 0), ``claims_sid`` (bool,
  default True: the first key to use a sid owns it), ``ready(conn, out)`` (after the
  replay: send a snapshot), ``on_event(conn, event, out)`` (after each live
  event was queued for the connection) and ``shutdown()`` (the local server is
  stopping: end what the route holds in this process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.logs import get_logger
from common.ws.base import RouteHandler, WsConnection

log = get_logger("ws.protocol")

SYNC_ACTION = "sync"


@dataclass(frozen=True)
class SyncRequest:
    since: int | None


def sync_request(message: str | bytes) -> SyncRequest | None:
    """The sync request in ``message``, or None when it is a message for the route."""
    if not isinstance(message, str) or len(message) > 256 or '"sync"' not in message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("action") != SYNC_ACTION:
        return None
    since = data.get("since")
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        since = None
    return SyncRequest(since)


def replay_default(handler: RouteHandler) -> int:
    return int(getattr(handler, "replay_without_since", 0))


async def call_ready(handler: RouteHandler, conn: WsConnection, out: Any) -> None:
    ready = getattr(handler, "ready", None)
    if ready is not None:
        await ready(conn, out)


async def call_on_event(
    handler: RouteHandler, conn: WsConnection, event: dict[str, Any], out: Any
) -> None:
    on_event = getattr(handler, "on_event", None)
    if on_event is not None:
        await on_event(conn, event, out)


async def call_shutdown(handler: RouteHandler) -> None:
    shutdown = getattr(handler, "shutdown", None)
    if shutdown is None:
        return
    try:
        await shutdown()
    except Exception:
        log.exception("websocket route shutdown failed", extra={"route": handler.route})


def has_event_hook(handler: RouteHandler) -> bool:
    return getattr(handler, "on_event", None) is not None


def http_status(code: int) -> int:
    """The HTTP status of a refused handshake behind API Gateway: its ``$connect`` can
    only answer a status, not a close code. The application's codes mirror HTTP
    (4401 -> 401, 4403 -> 403, 4404 -> 404, 4429 -> 429, 4503 -> 503)."""
    if 4400 <= code < 4600:
        return code - 4000
    return 500
