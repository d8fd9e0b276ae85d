"""The local door's machinery: the sockets this process holds, and their fan-out.

One Redis pub/sub subscriber per process (pattern subscriptions to every route's
channel and to the jobs' channels) hands each numbered event to the local
connections of its (route, sid). An event is serialised once; each connection has
a queue and a writer task, so a slow client delays only itself (past
:data:`QUEUE_FRAMES` waiting frames it is closed with CLOSE_GOING_AWAY, and can
reconnect with ``since``). Job events, numbered by the workers, are first copied
into the job's stream (:meth:`EventLog.record`) so that ``since`` finds them.

A new connection buffers live events while its replay is read, then the replay and
the buffer go through its :class:`~common.ws.events.Cursor`: every seq once, in order.

Frames go out whole: a local socket has no size limit, and a binary protocol (Yjs)
must get its frames as they are. Only API Gateway's door splits (:mod:`.frames`).
A connection opened with ``?frames=base64`` gets each binary message as a text frame
holding its base64 instead (:func:`~common.ws.frames.as_text`), as behind API Gateway.

Nothing here knows FastAPI: a socket is anything with ``send_text``,
``send_bytes`` and ``close`` (Starlette's WebSocket is one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.logs import get_logger
from common.ws.admission import Admitted
from common.ws.base import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    RouteHandler,
    WsConnection,
    WsRefused,
)
from common.ws.connections import NO_SID, ConnectionTable
from common.ws.events import JOBS_ROUTE, RECORD_SCRIPT, Cursor, Event, EventLog
from common.ws.frames import Frame, as_text, base64_frames, dumps
from common.ws.protocol import (
    call_on_event,
    call_ready,
    has_event_hook,
    replay_default,
    sync_request,
)

log = get_logger("ws.hub")

QUEUE_FRAMES = 1000
CLOSE_INTERNAL = 1011


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


Receive = Callable[[], Awaitable[str | bytes | None]]  # None: the client went away


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass
class LocalConnection:
    conn: WsConnection
    socket: Socket
    handler: RouteHandler
    queue: asyncio.Queue[Frame | _Close] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_FRAMES)
    )
    cursor: Cursor = field(default_factory=Cursor)
    buffer: list[Event] | None = field(default_factory=list)  # None once caught up
    closing: bool = False
    writer: asyncio.Task[None] | None = None


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class LocalOutbox:
    """:class:`~common.ws.base.Outbox` of the local door."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def send(self, conn: WsConnection, message: dict[str, Any] | bytes) -> bool:
        local = self.hub.connections.get(conn.id)
        if local is None or local.closing:
            return False
        frame: Frame = message if isinstance(message, bytes) else dumps(message)
        if isinstance(frame, bytes) and base64_frames(local.conn.params):
            frame = as_text(frame)
        return self.hub.enqueue(local, [frame])

    async def publish(self, route: str, sid: str | None, event: dict[str, Any]) -> int:
        return await asyncio.to_thread(self.hub.events.publish, route, sid, event)

    async def broadcast_bytes(
        self, route: str, sid: str, data: bytes, *, exclude: str | None = None
    ) -> None:
        # Every process delivers it to its own connections; the sender's id rides in
        # front of the data so that its process can leave it out.
        payload = (exclude or "").encode() + b"\0" + data
        redis = self.hub.events.redis
        channel = self.hub.events.bytes_channel(route, sid)
        await asyncio.to_thread(redis.client.publish, channel, payload)

    async def close(self, conn: WsConnection, code: int, reason: str) -> None:
        local = self.hub.connections.get(conn.id)
        if local is not None and not local.closing:
            # Numbered events published before this close may still be on their way
            # through pub/sub: send them from the stream first, so that a close never
            # overtakes them (a shell's "exit" before its "the shell exited" close).
            await self.hub.flush_published(local)
            local.closing = True
            with contextlib.suppress(asyncio.QueueFull):
                local.queue.put_nowait(_Close(code, reason))
            if local.queue.full():
                await self.hub.drop(local, code, reason)


class Hub:
    """The connections of this process and their delivery.

    Parameters
    ----------
    events:
        The event log (sync Redis client: publish, replay).
    table:
        The connection table.
    redis_url:
        For this process's pub/sub subscriber (an asyncio client of its own).
    """

    def __init__(self, *, events: EventLog, table: ConnectionTable, redis_url: str) -> None:
        self.events = events
        self.table = table
        self.redis_url = redis_url
        self.connections: dict[str, LocalConnection] = {}
        self.topics: dict[tuple[str, str | None], set[str]] = {}
        self.outbox = LocalOutbox(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.subscribed = asyncio.Event()
        prefix = events.redis.prefix
        self._ev_prefix = events.redis.key("ws", "ev", "")
        self._bin_prefix = events.redis.key("ws", "bin", "")
        self._jobs_prefix = f"{prefix}jobs:"

    # -- connections ------------------------------------------------------------

    def attach(self, conn: WsConnection, socket: Socket, handler: RouteHandler) -> LocalConnection:
        local = LocalConnection(conn=conn, socket=socket, handler=handler)
        local.writer = asyncio.get_running_loop().create_task(self._write(local))
        self.connections[conn.id] = local
        self.topics.setdefault((conn.route, conn.sid), set()).add(conn.id)
        return local

    async def detach(self, conn_id: str) -> None:
        local = self.connections.pop(conn_id, None)
        if local is None:
            return
        topic = (local.conn.route, local.conn.sid)
        members = self.topics.get(topic)
        if members is not None:
            members.discard(conn_id)
            if not members:
                del self.topics[topic]
        if local.writer is not None and not local.writer.done():
            # Let queued frames (a final state, a close) go out, briefly.
            with contextlib.suppress(asyncio.QueueFull):
                local.queue.put_nowait(_Close(CLOSE_NORMAL, ""))
            try:
                await asyncio.wait_for(asyncio.shield(local.writer), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                local.writer.cancel()

    def enqueue(self, local: LocalConnection, frames: list[Frame]) -> bool:
        if local.closing:
            return False
        try:
            for frame in frames:
                local.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._spawn(self.drop(local, CLOSE_GOING_AWAY, "too slow: reconnect with since"))
            return False
        return True

    async def drop(self, local: LocalConnection, code: int, reason: str) -> None:
        """Close at once, without waiting for the queue (a client that cannot keep up)."""
        local.closing = True
        if local.writer is not None:
            local.writer.cancel()
        with contextlib.suppress(Exception):
            await local.socket.close(code, reason)

    async def _write(self, local: LocalConnection) -> None:
        socket = local.socket
        try:
            while True:
                item = await local.queue.get()
                if isinstance(item, _Close):
                    local.closing = True
                    await socket.close(item.code, item.reason)
                    return
                if isinstance(item, str):
                    await socket.send_text(item)
                else:
                    await socket.send_bytes(item)
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away mid-send: the receive loop sees it too
            local.closing = True

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def local_connections(self) -> list[WsConnection]:
        return [local.conn for local in self.connections.values()]

    # -- one connection's life ----------------------------------------------------

    async def serve(self, admitted: Admitted, socket: Socket, receive: Receive) -> None:
        """Run an admitted connection until either side closes it."""
        handler, conn = admitted.handler, admitted.conn
        out = self.outbox
        local = self.attach(conn, socket, handler)
        connected = False
        try:
            await asyncio.to_thread(self.table.add, conn)
            await handler.connect(conn, out)
            connected = True
            await self.catch_up(local, admitted.since, replay_default(handler))
            await call_ready(handler, conn, out)
            while not local.closing:
                message = await receive()
                if message is None:
                    break
                sync = sync_request(message)
                if sync is not None:
                    local.buffer = []
                    await self.catch_up(local, sync.since, 0, restart=sync.since is not None)
                    await call_ready(handler, conn, out)
                    continue
                await handler.receive(conn, message, out)
        except WsRefused as refused:
            await out.close(conn, refused.code, refused.reason)
        except Exception:
            log.exception("websocket route failed", extra={"route": conn.route, "sid": conn.sid})
            await out.close(conn, CLOSE_INTERNAL, "internal error")
        finally:
            if connected:
                try:
                    await handler.disconnect(conn, out)
                except Exception:
                    log.exception("websocket disconnect failed", extra={"route": conn.route})
            await self.detach(conn.id)
            try:
                await asyncio.to_thread(self.table.remove, conn.id)
            except Exception as exc:  # Redis away: the entry expires on its own
                log.warning("connection not removed", extra={"error": type(exc).__name__})

    async def catch_up(
        self, local: LocalConnection, since: int | None, default_last: int, *, restart: bool = True
    ) -> None:
        """Send the replay, then what arrived meanwhile; from then on events go straight."""
        conn = local.conn
        replay: list[Event] = []
        try:
            replay = await asyncio.to_thread(
                self.events.replay, conn.route, conn.sid, since, default_last
            )
        finally:
            # Even when the replay could not be read, what arrived meanwhile goes out.
            buffered, local.buffer = local.buffer or [], None
            if since is not None and restart:
                local.cursor.last = since
            for event in local.cursor.take(replay):
                self.enqueue(local, [event.text])
            for event in local.cursor.take(buffered):
                self._deliver_one(local, event, [event.text], None)

    async def flush_published(self, local: LocalConnection) -> None:
        """Enqueue the stream's events this connection has not been sent yet."""
        if local.buffer is not None or local.cursor.last == 0:
            # Still catching up (catch_up sends them), or sent nothing yet: "since 0"
            # would be the whole kept history, not what is in flight.
            return
        conn = local.conn
        try:
            events = await asyncio.to_thread(
                self.events.replay, conn.route, conn.sid, local.cursor.last, 0
            )
        except Exception as exc:  # Redis away: close anyway, since= recovers the rest
            log.warning("events not flushed before close", extra={"error": type(exc).__name__})
            return
        for event in local.cursor.take(events):
            self.enqueue(local, [event.text])

    # -- delivery -----------------------------------------------------------------

    def deliver(self, route: str, sid: str | None, event: Event) -> int:
        """Hand a numbered event to this process's connections of (route, sid)."""
        ids = self.topics.get((route, sid))
        if not ids:
            return 0
        frames: list[Frame] = [event.text]  # one text for every connection
        data: dict[str, Any] | None = None
        sent = 0
        for conn_id in list(ids):
            local = self.connections.get(conn_id)
            if local is None:
                continue
            if local.buffer is not None:
                local.buffer.append(event)
                continue
            if data is None and has_event_hook(local.handler):
                data = event.data()
            sent += self._deliver_one(local, event, frames, data)
        return sent

    def _deliver_one(
        self,
        local: LocalConnection,
        event: Event,
        frames: list[Frame],
        data: dict[str, Any] | None,
    ) -> int:
        if not local.cursor.admit(event.seq) or not self.enqueue(local, frames):
            return 0
        if has_event_hook(local.handler):
            self._spawn(self._hook(local, data or event.data()))
        return 1

    async def _hook(self, local: LocalConnection, event: dict[str, Any]) -> None:
        """A route's ``on_event``, off the delivery path; a refusal closes the connection."""
        try:
            await call_on_event(local.handler, local.conn, event, self.outbox)
        except WsRefused as refused:
            await self.outbox.close(local.conn, refused.code, refused.reason)
        except Exception:
            log.exception("websocket event hook failed", extra={"route": local.conn.route})

    def deliver_bytes(self, route: str, sid: str | None, payload: bytes) -> None:
        exclude, _, data = payload.partition(b"\0")
        skip = exclude.decode() or None
        text: str | None = None  # the base64 form, made once for the connections that want it
        for conn_id in list(self.topics.get((route, sid), ())):
            local = self.connections.get(conn_id)
            if local is not None and conn_id != skip and local.buffer is None:
                if base64_frames(local.conn.params):
                    text = text if text is not None else as_text(data)
                    self.enqueue(local, [text])
                else:
                    self.enqueue(local, [data])

    # -- the subscriber -------------------------------------------------------------

    async def run_subscriber(self) -> None:
        """Listen until cancelled; reconnect (and say so once) when Redis goes away."""
        import redis.asyncio as aioredis

        backoff = 0.2
        warned = False
        while True:
            client = aioredis.Redis.from_url(self.redis_url, health_check_interval=30)
            try:
                record = client.register_script(RECORD_SCRIPT)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.psubscribe(
                    _glob_escape(self._ev_prefix) + "*",
                    _glob_escape(self._bin_prefix) + "*",
                    _glob_escape(self._jobs_prefix) + "*",
                )
                self.subscribed.set()
                if warned:
                    log.info("websocket subscriber reconnected")
                    # What was published while we were away is in the streams.
                    self._spawn(self.heal())
                backoff, warned = 0.2, False
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "pmessage":
                        await self._on_message(message["channel"], message["data"], record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                if not warned:
                    warned = True
                    log.warning(
                        "websocket subscriber lost Redis; retrying",
                        extra={"error": type(exc).__name__},
                    )
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def heal(self) -> None:
        """Send every connection what its stream holds past its cursor (after an outage
        of the subscriber: events published meanwhile never reached this process)."""
        for local in list(self.connections.values()):
            if local.buffer is not None or local.closing:
                continue  # still catching up: its replay is read after the outage anyway
            local.buffer = []
            try:
                await self.catch_up(local, local.cursor.last, 0, restart=False)
            except Exception as exc:
                log.warning("connection not healed", extra={"error": type(exc).__name__})

    async def _on_message(self, channel_raw: bytes, data: bytes, record: Any) -> None:
        channel = channel_raw.decode()
        if channel.startswith(self._ev_prefix):
            route, _, sid = channel[len(self._ev_prefix) :].partition(":")
            text = data.decode()
            self.deliver(route, None if sid == NO_SID else sid, Event(_seq_of(text), text))
        elif channel.startswith(self._bin_prefix):
            route, _, sid = channel[len(self._bin_prefix) :].partition(":")
            self.deliver_bytes(route, None if sid == NO_SID else sid, data)
        elif channel.startswith(self._jobs_prefix):
            job_id = channel[len(self._jobs_prefix) :]
            text = data.decode()
            event = Event(_seq_of(text), text)
            if event.seq <= 0:
                return
            # Kept before it is delivered: whoever connects after this delivery finds
            # it in the stream.
            await record(
                keys=[self.events.stream_key(JOBS_ROUTE, job_id)],
                args=[event.seq, text, self.events.maxlen, self.events.ttl_s],
            )
            self.deliver(JOBS_ROUTE, job_id, event)

    async def close_all(self, code: int, reason: str) -> None:
        for local in list(self.connections.values()):
            await self.outbox.close(local.conn, code, reason)


def _seq_of(text: str) -> int:
    # Every numbered event starts with {"seq":N, (the Lua scripts put it first).
    head = text[:32]
    if head.startswith('{"seq":'):
        digits = head[7:].split(",", 1)[0].split("}", 1)[0]
        if digits.isdigit():
            return int(digits)
    try:
        return int(json.loads(text).get("seq", 0))
    except (ValueError, AttributeError, TypeError):
        return 0
