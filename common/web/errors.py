"""The one mapping from errors to HTTP answers, installed on both doors.

Every error body is ``{"error": {"code": ..., "message": ...}}`` plus typed extras.
Validation errors are sanitised: field paths and reasons, never the input values
(they may be 2 MB of code, or a secret).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import AppError, InvalidInput, MalformedJson, MethodNotAllowed, NotFound
from common.text import shown


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status, headers=error.headers)


def error_body_bytes(error: AppError) -> bytes:
    return json.dumps(error.to_body(), separators=(",", ":")).encode()


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_error(exc: RequestValidationError) -> AppError:
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "not valid JSON")
            where = err.get("loc", ())
            at = f" at character {where[1]}" if len(where) > 1 else ""
            return MalformedJson(f"the request body is not valid JSON: {reason}{at}")
    fields = [
        {"path": _path(err.get("loc", ())), "type": err.get("type"), "message": err.get("msg")}
        for err in errors
    ]
    summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    return InvalidInput(
        f"the request does not match the schema: {summary}{more}", details={"fields": fields}
    )


def http_error(request: Request, exc: StarletteHTTPException) -> AppError:
    method, path = request.method, shown(request.url.path)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's words for a body it could not decode: not UTF-8, or nested past
        # the parser's depth. Unparsable either way, like any other malformed body.
        return MalformedJson(
            "the request body could not be parsed as JSON (not UTF-8, or nested too deeply)"
        )
    if exc.status_code == 404:
        return NotFound(f"no route for {method} {path}")
    if exc.status_code == 405:
        allow = _allowed(request) or (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(
            f"{method} is not allowed on {path}; allowed: {allow or 'none'}",
            headers={"Allow": allow} if allow else None,
        )
    error = AppError(str(exc.detail), headers=dict(exc.headers or {}))
    error.status = exc.status_code
    error.code = f"http_{exc.status_code}"
    return error


def _allowed(request: Request) -> str:
    """Every method some route takes at this path: the local server mounts one route
    per function, so the router's own Allow names only the first route it tried."""
    from starlette.routing import Match

    methods: set[str] = set()
    todo = list(request.app.router.routes)
    while todo:
        route = todo.pop()
        # An included router (FastAPI keeps the original inside) holds the routes.
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            todo.extend(inner)
            continue
        if getattr(route, "methods", None) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(http_error(request, exc))

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
