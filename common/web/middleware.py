"""Pure ASGI middleware shared by both doors: request context and the body limit."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.config import get_settings
from common.context import begin_request, current_request, end_request
from common.errors import AppError, InvalidInput, PayloadTooLarge
from common.logs import get_logger, logger
from common.paging import field_error
from common.text import first_unstorable, shown, unstorable
from common.web.errors import error_body_bytes
from common.ws.metrics import record_request

log = get_logger("http")


async def _send_error(
    send: Send, error: AppError, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    body = error_body_bytes(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Only a NUL escape or a surrogate escape can give text that cannot be stored (a raw
# NUL or surrogate byte is not valid JSON or UTF-8): a body without either is not parsed
# here at all.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _refusal(field: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{field} holds {reason}, which cannot be stored",
        details={"fields": [field_error(field, "unstorable_text", reason)]},
    )


def _unstorable_url(scope: Scope) -> InvalidInput | None:
    """A path or query value holding a NUL character (``%00``): the one rule of
    :mod:`common.text`, before any route sees it."""
    reason = unstorable(str(scope.get("path", "")))
    if reason:
        return _refusal("path", reason)
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query and "\x00" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        reason = unstorable(name) or unstorable(value)
        if reason:
            return _refusal(f"query.{shown(name, 60)}", reason)
    return None


def _unstorable_body(scope: Scope, body: bytes) -> InvalidInput | None:
    """A JSON body with a string (value or key) holding a NUL or a lone surrogate."""
    if not body or _MAYBE_UNSTORABLE.search(body) is None:
        return None
    content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
    if content_type and b"json" not in content_type.lower():
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's parser answers malformed_json
    found = first_unstorable(parsed)
    return _refusal(*found) if found else None


class RequestContextMiddleware:
    """Request id, one access-log line per request, and a JSON 500 for the unexpected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode())
        logger.thread_safe_append_keys(request_id=request_id)
        context_token = begin_request(request_id)
        info = current_request()
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = [*message.get("headers", []), id_header]
                cache_status = info.cache_status if info else None
                if cache_status:
                    headers.append((b"x-cache", cache_status.encode()))
                # Time spent in the app, so clients (and the benches) can tell the
                # server's share from the network's.
                app_ms = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={app_ms:.2f}".encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                status = 500
                await _send_error(
                    send,
                    AppError(f"internal error; quote request id {request_id}"),
                    [id_header],
                )
        finally:
            ms = (time.perf_counter() - started) * 1000
            # Per-endpoint figures for monitoring; an append, no I/O.
            endpoint = endpoint_label(scope)
            hits, misses = (info.cache_hits, info.cache_misses) if info else (0, 0)
            record_request(endpoint, status, ms, hits, misses)
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round(ms, 1),
                },
            )
            logger.thread_safe_remove_keys(["request_id", "api_key_prefix"])
            end_request(context_token)


# The web console's files (local/app.py): its pages at "/" and "/<page>.html", its
# bundles mounted under "/assets" (a mount sets no route, so they would be "unmatched").
CONSOLE_ENDPOINT = "console"
_CONSOLE_PATH = re.compile(r"/(?:[^/]*\.html|assets/.*)?")


def endpoint_label(scope: Scope) -> str:
    """The name a request is counted under in the per-endpoint metrics: its route's
    template (not the raw path, whose ids would make one series per job), one
    ``console`` label for every page and bundle of the web console, and ``unmatched``
    for a path no route answers."""
    route_path: str | None = getattr(scope.get("route"), "path", None)
    if _CONSOLE_PATH.fullmatch(route_path or scope.get("path", "")):
        return CONSOLE_ENDPOINT
    return route_path or "unmatched"


def _request_id(scope: Scope) -> str:
    event: dict[str, Any] | None = scope.get("aws.event")
    if event:
        rid = (event.get("requestContext") or {}).get("requestId")
        if rid:
            return str(rid)
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return str(value.decode("latin-1"))
    return uuid.uuid4().hex


# Routes that read their own body as a stream, each with its own limit (the name of a
# Settings field) in place of MAX_BODY_BYTES: their body is counted as it passes to the
# route, never held here (a Figma file can be tens of MB). Every other route keeps
# MAX_BODY_BYTES. One dict lookup per request.
STREAMED_ROUTES: dict[str, str] = {"/api/figma/analyze": "FIGMA_MAX_BODY_BYTES"}
# Streamed routes whose path holds ids: matched only for a PUT under /api/projects/, so
# every other request pays one string comparison at most.
_UPLOAD_CHUNK = re.compile(r"/api/projects/[^/]+/uploads/[^/]+")


def _streamed_setting(scope: Scope) -> str | None:
    path: str = scope["path"]
    setting = STREAMED_ROUTES.get(path)
    if setting is None and scope.get("method") == "PUT" and _UPLOAD_CHUNK.fullmatch(path):
        return "UPLOAD_MAX_BYTES"
    return setting


class BodyLimitMiddleware:
    """Refuse a body over ``max_bytes`` with 413 before any handler reads it.

    The body is read here (it is bounded) and replayed to the app, so a client that
    lies about Content-Length, or sends chunks without one, is cut off too.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int | None = None) -> None:
        self.app = app
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        # Read per request, not at import: the settings may change after the app is built.
        return self._max_bytes or get_settings().MAX_BODY_BYTES

    def _too_large(self, limit: int, setting: str = "MAX_BODY_BYTES") -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than {setting} ({limit} bytes)",
            details={"max_bytes": limit},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _unstorable_url(scope)
        if refused is not None:
            await _send_error(send, refused, [])
            return
        streamed = _streamed_setting(scope)
        if streamed is not None:
            await self._stream(scope, receive, send, streamed)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_error(send, self._too_large(limit), [])
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_error(send, self._too_large(limit), [])
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        refused = _unstorable_body(scope, body)
        if refused is not None:
            await _send_error(send, refused, [])
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, setting: str) -> None:
        """A streamed route: its own limit, on Content-Length and on the chunks as they pass."""
        limit = int(getattr(get_settings(), setting))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_error(send, self._too_large(limit, setting), [])
                return
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    # Raised into the route that is reading; the error mapper answers 413.
                    raise self._too_large(limit, setting)
            return message

        await self.app(scope, counted, send)
