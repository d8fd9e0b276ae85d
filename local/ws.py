"""The local door's WebSockets: one route per registered handler path, and what
runs beside them in this process (:func:`running`, entered by the app's lifespan).

No logic here: admission, fan-out and the routes' logic live in ``common.ws``.

- One Redis pub/sub subscriber fans every published event out to this process's
  sockets (:class:`common.ws.hub.Hub`).
- The monitoring sampler runs in every server process but samples only while it
  holds a Redis lock, so two server processes (or a restart overlapping the old
  one) publish one stream, numbered once; another takes over within three
  intervals when the sampler's process dies.
- The metrics flusher sends this process's request figures to Redis every second.
- Open connections' table entries are refreshed, as a local socket may outlive
  their TTL (there is no 2-hour limit here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from common.config import get_settings
from common.logs import get_logger, scrub
from common.stores.redis_store import RedisStore
from common.ws.admission import SidOwners, admit
from common.ws.base import CLOSE_GOING_AWAY, CLOSE_UNAVAILABLE, WsRefused
from common.ws.hub import Hub
from common.ws.protocol import call_shutdown
from common.ws.registry import Registry, get_registry

log = get_logger("local.ws")


class _ScrubArgs(logging.Filter):
    """uvicorn logs each WebSocket handshake with its query string, where a browser's
    ``api_key`` is: mask it as our own log lines are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


for _name in ("uvicorn.error", "uvicorn.access"):
    logging.getLogger(_name).addFilter(_ScrubArgs())


@dataclass
class Runtime:
    registry: Registry
    redis: RedisStore
    hub: Hub
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


_runtime: Runtime | None = None


async def serve_websocket(websocket: WebSocket) -> None:
    """A WebSocket on any registered route (the path picks the handler)."""
    runtime = _runtime
    # Accepted first: a refusal is then a close with our code and reason, which a
    # browser can read, rather than a bare HTTP 403.
    await websocket.accept()
    if runtime is None:
        await websocket.close(CLOSE_UNAVAILABLE, "the server is starting or stopping")
        return
    try:
        admitted = await run_in_threadpool(
            admit,
            path=websocket.url.path,
            headers=dict(websocket.headers),
            query=dict(websocket.query_params),
            door="local",
            registry=runtime.registry,
            redis=runtime.redis,
        )
    except WsRefused as refused:
        await websocket.close(refused.code, refused.reason)
        return

    async def receive() -> str | bytes | None:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    await runtime.hub.serve(admitted, websocket, receive)


def build_router(registry: Registry | None = None) -> APIRouter:
    router = APIRouter()
    for path in (registry or get_registry()).paths():
        router.add_api_websocket_route(path, serve_websocket)
    return router


async def _sample(runtime: Runtime) -> None:
    from common.ws.monitoring import Leadership, make_sampler, publish_sample

    settings = get_settings()
    interval_s = settings.MONITOR_INTERVAL_MS / 1000
    leadership = Leadership(
        runtime.redis, "monitor", ttl_ms=max(3 * settings.MONITOR_INTERVAL_MS, 3000)
    )
    sampler = None
    next_at = time.monotonic()
    try:
        while True:
            try:
                if await asyncio.to_thread(leadership.hold):
                    if sampler is None:
                        sampler = await asyncio.to_thread(make_sampler)
                    await publish_sample(
                        sampler,
                        runtime.hub.outbox,
                        redis=runtime.redis,
                        persist_s=settings.MONITOR_PERSIST_SECONDS,
                    )
            except Exception as exc:  # Redis away: try again next interval
                log.warning("monitoring sample failed", extra={"error": type(exc).__name__})
            next_at += interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind (a slow store): skip, do not burst
                next_at = now + interval_s
            await asyncio.sleep(next_at - now)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(leadership.release)


async def _refresh(runtime: Runtime) -> None:
    """Keep open connections (and their sids) in the table past its TTL."""
    settings = get_settings()
    period = min(3600.0, settings.WS_CONNECTION_TTL_SECONDS / 3)
    owners = SidOwners(runtime.redis, ttl_s=settings.WS_CONNECTION_TTL_SECONDS)
    while True:
        await asyncio.sleep(period)
        conns = runtime.hub.local_connections()
        try:
            await asyncio.to_thread(runtime.hub.table.touch, conns)
            for conn in conns:
                handler = runtime.registry.by_route(conn.route)
                if conn.sid and handler is not None and getattr(handler, "claims_sid", True):
                    await asyncio.to_thread(owners.claim, conn.route, conn.sid, conn.key_id)
        except Exception as exc:
            log.warning("connections not refreshed", extra={"error": type(exc).__name__})


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[None]:
    """The WebSocket side of this process, while the stores are up."""
    global _runtime
    from common.stores.redis_store import get_redis
    from common.ws.connections import get_connection_table
    from common.ws.events import get_event_log
    from common.ws.metrics import start_flusher

    settings = get_settings()
    redis = get_redis()
    hub = Hub(
        events=get_event_log(), table=get_connection_table(), redis_url=settings.REDIS_URL or ""
    )
    runtime = Runtime(registry=get_registry(), redis=redis, hub=hub)
    loop = asyncio.get_running_loop()
    runtime.tasks = [
        loop.create_task(hub.run_subscriber(), name="ws-subscriber"),
        loop.create_task(_sample(runtime), name="ws-sampler"),
        loop.create_task(_refresh(runtime), name="ws-refresh"),
    ]
    start_flusher()
    # Events published before the subscription would reach nobody here: wait for it.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.subscribed.wait(), 5.0)
    _runtime = runtime
    try:
        yield
    finally:
        _runtime = None
        for handler in runtime.registry.handlers:
            await call_shutdown(handler)  # a route's own clean-up (the terminal's shells)
        await hub.close_all(CLOSE_GOING_AWAY, "the server is shutting down")
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
