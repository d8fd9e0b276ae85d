"""The API Gateway door: ``$connect``, ``$disconnect``, messages and the monitor tick.

API Gateway holds the sockets; each event is one Lambda invocation, and answers go
back with the management API's ``post_to_connection`` (boto3, imported on first
use). Its WebSocket URL has no path of its own, so the route's path comes as a
query parameter: ``wss://<api>.execute-api.<region>.amazonaws.com/<stage>?path=/ws/jobs/<id>``.

What differs from the local door, and why:

- ``$connect`` can only accept or refuse the handshake: a refusal is the HTTP
  status mirrored by the close code (:func:`common.ws.protocol.http_status`: 401,
  403, 404, 429, 503), the reason in the body. Nothing can be posted before
  ``$connect`` returns, so what a handler sends while connecting is kept in a Redis
  list, and the client's first frame (``{"action": "sync"}`` is the polite one)
  delivers it, with the replay and the route's snapshot.
- API Gateway cannot close with our code: :meth:`AwsOutbox.close` posts
  ``{"type": "close", "code", "reason"}`` and then deletes the connection.
- A post to a connection that is gone (``GoneException``, checked before any other
  ``ClientError``) removes it from the table.
- Messages over 128 KB are split (:mod:`common.ws.frames`).
- API Gateway refuses binary frames from clients (it closes with 1003): a client of a
  binary protocol (the shared editor) connects with ``?frames=base64`` and sends each
  message as a text frame holding its base64; what is posted to such a connection
  is base64 text too (split first: see :mod:`common.ws.frames`).
- ``local_only`` routes (a pty) are refused with CLOSE_UNAVAILABLE (503).
- Nothing runs between invocations: monitoring gets one sample a minute from a
  scheduled function (:func:`monitor_tick`); job events are not pushed live (the
  workers publish them on Redis pub/sub, where only a local server listens): a job
  connection gets the job's state on its first frame and on each sync.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from common.errors import StoreUnavailable
from common.logs import get_logger
from common.ws.base import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAVAILABLE,
    WsConnection,
    WsRefused,
)
from common.ws.connections import ConnectionTable
from common.ws.events import EventLog, parse_since
from common.ws.frames import Frame, as_text, base64_frames, dumps, split_frame
from common.ws.protocol import call_ready, http_status, replay_default, sync_request

if TYPE_CHECKING:
    from common.stores.redis_store import RedisStore
    from common.ws.registry import Registry

log = get_logger("ws.aws")

PENDING_TTL_S = 300  # frames queued at $connect wait this long for the client's first frame
FANOUT_THREADS = 16

ClientFor = Callable[[str], Any]
T = TypeVar("T")
_clients: dict[str, Any] = {}


def management_client(endpoint: str) -> Any:
    """A boto3 ``apigatewaymanagementapi`` client for ``endpoint`` (cached)."""
    client = _clients.get(endpoint)
    if client is None:
        import boto3  # lazily: a cold start that never posts never pays for it
        from botocore.config import Config

        client = _clients[endpoint] = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}),
        )
    return client


def reset_clients() -> None:
    _clients.clear()


def endpoint_of(event: dict[str, Any]) -> str:
    """The management API's URL for the connection's API and stage."""
    ctx = event["requestContext"]
    return f"https://{ctx['domainName']}/{ctx['stage']}"


class Poster:
    """``post_to_connection`` and ``delete_connection``, with Gone told apart."""

    def __init__(self, client_for: ClientFor = management_client) -> None:
        self.client_for = client_for

    def post(self, endpoint: str, conn_id: str, data: Frame) -> bool:
        """False when the connection is gone (the caller removes it)."""
        from botocore.exceptions import ClientError

        client = self.client_for(endpoint)
        body = data.encode() if isinstance(data, str) else data
        try:
            client.post_to_connection(ConnectionId=conn_id, Data=body)
        except client.exceptions.GoneException:
            # Before ClientError, which it is too: only this one means "gone for good".
            return False
        except ClientError as exc:
            # Throttled, forbidden, too large: this frame is lost, the connection is not.
            log.warning(
                "post_to_connection failed",
                extra={"error": exc.response.get("Error", {}).get("Code"), "connection": conn_id},
            )
        return True

    def delete(self, endpoint: str, conn_id: str) -> None:
        from botocore.exceptions import ClientError

        client = self.client_for(endpoint)
        try:
            client.delete_connection(ConnectionId=conn_id)
        except client.exceptions.GoneException:
            pass
        except ClientError as exc:
            log.warning(
                "delete_connection failed",
                extra={"error": exc.response.get("Error", {}).get("Code"), "connection": conn_id},
            )


class AwsOutbox:
    """:class:`~common.ws.base.Outbox` behind API Gateway.

    Parameters
    ----------
    table, events, poster:
        The connection table, the event log, the management API.
    deferred:
        The id of a connection still in ``$connect``: frames to it go to its
        pending list until its first frame.
    """

    def __init__(
        self,
        *,
        table: ConnectionTable,
        events: EventLog,
        poster: Poster,
        deferred: str | None = None,
    ) -> None:
        self.table = table
        self.events = events
        self.poster = poster
        self.deferred = deferred

    def _pending_key(self, conn_id: str) -> str:
        return self.table.redis.key("ws", "pending", conn_id)

    def _post_frames(
        self,
        conn_id: str,
        frames: list[Frame],
        endpoint: str | None = None,
        *,
        text_frames: list[Frame] | None = None,
    ) -> bool:
        """Post ``frames`` to ``conn_id`` (``text_frames`` instead when given and the
        connection asked for ``frames=base64``); False when it is gone."""
        if conn_id == self.deferred:
            key = self._pending_key(conn_id)
            pipe = self.table.redis.client.pipeline(transaction=True)
            for frame in frames:
                # One type marker byte: t(ext) or b(inary).
                pipe.rpush(key, (b"t" + frame.encode()) if isinstance(frame, str) else b"b" + frame)
            pipe.expire(key, PENDING_TTL_S)
            pipe.execute()
            return True
        if text_frames is not None:
            found, params = self.table.endpoint_and_params(conn_id)
            endpoint = endpoint or found
            if base64_frames(params):
                frames = text_frames
        else:
            endpoint = endpoint or self.table.endpoint(conn_id)
        if endpoint is None:
            return False  # not in the table (any more)
        for frame in frames:
            if not self.poster.post(endpoint, conn_id, frame):
                self.table.remove(conn_id)
                log.info("stale connection removed", extra={"connection": conn_id})
                return False
        return True

    def post_pending(self, conn_id: str, endpoint: str) -> None:
        key = self._pending_key(conn_id)
        items = self.table.redis.client.lrange(key, 0, -1)
        self.table.redis.client.delete(key)
        frames: list[Frame] = []
        for item in items:
            raw = item if isinstance(item, bytes) else item.encode()
            frames.append(raw[1:].decode() if raw[:1] == b"t" else raw[1:])
        if frames:
            self._post_frames(conn_id, frames, endpoint)

    async def send(self, conn: WsConnection, message: dict[str, Any] | bytes) -> bool:
        frame: Frame = message if isinstance(message, bytes) else dumps(message)
        frames = split_frame(frame)
        if isinstance(frame, bytes) and base64_frames(conn.params):
            frames = [as_text(f) for f in frames]
        return await asyncio.to_thread(self._post_frames, conn.id, frames)

    def _fan_out(self, route: str, sid: str | None, frame: Frame, exclude: str | None) -> int:
        frames = split_frame(frame)
        # Binary: each member gets it as it asked at connect, binary or base64 text.
        text: list[Frame] | None = (
            [as_text(f) for f in frames] if isinstance(frame, bytes) else None
        )
        members = [m for m in self.table.members(route, sid) if m != exclude]

        def post(member: str) -> bool:
            return self._post_frames(member, frames, text_frames=text)

        if len(members) <= 1:
            return sum(post(m) for m in members)
        with ThreadPoolExecutor(min(FANOUT_THREADS, len(members))) as pool:
            return sum(pool.map(post, members))

    async def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        seq = await asyncio.to_thread(self.events.publish, route, sid, event)
        text = dumps({"seq": seq, **{k: v for k, v in event.items() if k != "seq"}})
        await asyncio.to_thread(self._fan_out, route, sid, text, None)
        return seq

    async def broadcast_bytes(
        self, route: str, sid: str, data: bytes, *, exclude: str | None = None
    ) -> None:
        await asyncio.to_thread(self._fan_out, route, sid, data, exclude)

    async def close(self, conn: WsConnection, code: int, reason: str) -> None:
        def close() -> None:
            endpoint = self.table.endpoint(conn.id)
            if endpoint is None:
                return
            self.poster.post(
                endpoint, conn.id, dumps({"type": "close", "code": code, "reason": reason})
            )
            self.poster.delete(endpoint, conn.id)
            self.table.remove(conn.id)

        await asyncio.to_thread(close)


class AwsDoor:
    """The three routes of the WebSocket API and the monitor tick, on injected parts."""

    def __init__(
        self,
        *,
        registry: Registry,
        redis: RedisStore,
        table: ConnectionTable,
        events: EventLog,
        poster: Poster,
    ) -> None:
        self.registry = registry
        self.redis = redis
        self.table = table
        self.events = events
        self.poster = poster

    def outbox(self, deferred: str | None = None) -> AwsOutbox:
        return AwsOutbox(
            table=self.table, events=self.events, poster=self.poster, deferred=deferred
        )

    async def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        from common.ws.admission import admit

        ctx = event["requestContext"]
        conn_id = str(ctx["connectionId"])
        query = dict(event.get("queryStringParameters") or {})
        try:
            admitted = await asyncio.to_thread(
                admit,
                path=query.get("path") or "",
                headers=dict(event.get("headers") or {}),
                query=query,
                door="aws",
                registry=self.registry,
                redis=self.redis,
                conn_id=conn_id,
            )
            # Registered once the handler agreed: an event published meanwhile must not
            # be posted to a connection API Gateway has not opened yet.
            await admitted.handler.connect(admitted.conn, self.outbox(deferred=conn_id))
            await asyncio.to_thread(self.table.add, admitted.conn, endpoint=endpoint_of(event))
        except WsRefused as refused:
            log.info("websocket refused", extra={"code": refused.code, "reason": refused.reason})
            return {"statusCode": http_status(refused.code), "body": refused.reason}
        return {"statusCode": 200}

    async def disconnect(self, event: dict[str, Any]) -> dict[str, Any]:
        conn_id = str(event["requestContext"]["connectionId"])
        conn = await asyncio.to_thread(self.table.remove, conn_id)
        if conn is not None:
            handler = self.registry.by_route(conn.route)
            if handler is not None:
                await handler.disconnect(conn, self.outbox())
        return {"statusCode": 200}

    async def message(self, event: dict[str, Any]) -> dict[str, Any]:
        conn_id = str(event["requestContext"]["connectionId"])
        endpoint = endpoint_of(event)
        out = self.outbox()
        conn = await asyncio.to_thread(self.table.get, conn_id)
        handler = self.registry.by_route(conn.route) if conn is not None else None
        if conn is None or handler is None:
            # Not in the table (expired, or Redis was emptied): the client must start over.
            def refuse() -> None:
                reason = "unknown connection: connect again"
                self.poster.post(
                    endpoint,
                    conn_id,
                    dumps({"type": "close", "code": CLOSE_NOT_FOUND, "reason": reason}),
                )
                self.poster.delete(endpoint, conn_id)

            await asyncio.to_thread(refuse)
            return {"statusCode": 200}
        body = event.get("body") or ""
        message: str | bytes = base64.b64decode(body) if event.get("isBase64Encoded") else body
        sync = sync_request(message)
        try:
            first = await asyncio.to_thread(self._first_frame, conn_id)
            if first:
                await asyncio.to_thread(out.post_pending, conn_id, endpoint)
                since = sync.since if sync and sync.since is not None else None
                if since is None:
                    since = parse_since(conn.params.get("since"))
                await self._replay(conn, since, replay_default(handler), endpoint)
                await call_ready(handler, conn, out)
            elif sync is not None:
                if sync.since is not None:
                    await self._replay(conn, sync.since, 0, endpoint)
                await call_ready(handler, conn, out)
            if sync is None:
                await self._refresh_sid(conn, handler)
                await handler.receive(conn, message, out)
        except WsRefused as refused:
            await out.close(conn, refused.code, refused.reason)
        return {"statusCode": 200}

    def _first_frame(self, conn_id: str) -> bool:
        # HSETNX: exactly one invocation sees the first frame, even two at once.
        key = self.table.redis.key("ws", "conn", conn_id)
        return bool(self.table.redis.client.hsetnx(key, "synced", "1"))

    async def _replay(
        self, conn: WsConnection, since: int | None, default_last: int, endpoint: str
    ) -> None:
        events = await asyncio.to_thread(
            self.events.replay, conn.route, conn.sid, since, default_last
        )
        out = self.outbox()
        for event in events:
            if not await asyncio.to_thread(
                out._post_frames, conn.id, split_frame(event.text), endpoint
            ):
                return

    async def _refresh_sid(self, conn: WsConnection, handler: Any) -> None:
        if conn.sid is None or not getattr(handler, "claims_sid", True):
            return
        from common.config import get_settings
        from common.ws.admission import SidOwners

        owners = SidOwners(self.redis, ttl_s=get_settings().WS_CONNECTION_TTL_SECONDS)
        await asyncio.to_thread(owners.claim, conn.route, conn.sid, conn.key_id)

    async def monitor_tick(self) -> dict[str, Any]:
        """One monitoring sample, posted to every monitoring connection and persisted when due."""
        from common.config import get_settings
        from common.ws.monitoring import make_sampler, publish_sample

        settings = get_settings()
        # The schedule is the interval here: rate(1 minute).
        sampler = await asyncio.to_thread(make_sampler, 60_000)
        sample = await publish_sample(
            sampler, self.outbox(), redis=self.redis, persist_s=settings.MONITOR_PERSIST_SECONDS
        )
        return {"seq": sample["seq"]}


def default_door() -> AwsDoor:
    """The door on the process-wide stores.

    Raises
    ------
    WsRefused
        CLOSE_UNAVAILABLE when REDIS_URL is not set: the connection table lives there.
    """
    from common.stores.redis_store import get_redis
    from common.ws.connections import get_connection_table
    from common.ws.events import get_event_log
    from common.ws.registry import get_registry

    try:
        redis = get_redis()
    except StoreUnavailable:
        raise WsRefused(CLOSE_UNAVAILABLE, "WebSockets need Redis: set REDIS_URL") from None
    return AwsDoor(
        registry=get_registry(),
        redis=redis,
        table=get_connection_table(),
        events=get_event_log(),
        poster=Poster(),
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without its last step, which sets the thread's event loop to
    None: Mangum (the HTTP door, in the same process in tests) asks for that loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def run(route_key: str, event: dict[str, Any]) -> dict[str, Any]:
    """Entry of the WebSocket functions: ``$connect``, ``$disconnect``, ``$default``."""
    try:
        door = default_door()
    except WsRefused as refused:
        return {"statusCode": http_status(refused.code), "body": refused.reason}
    if route_key == "$connect":
        return _run(door.connect(event))
    if route_key == "$disconnect":
        return _run(door.disconnect(event))
    return _run(door.message(event))


def run_monitor_tick() -> dict[str, Any]:
    """Entry of the scheduled monitor function."""
    try:
        door = default_door()
    except WsRefused as refused:
        log.warning("monitor tick skipped", extra={"reason": refused.reason})
        return {"skipped": refused.reason}
    return _run(door.monitor_tick())
