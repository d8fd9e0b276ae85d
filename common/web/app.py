"""The FastAPI app factory both doors use, so both answer exactly alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from common.web.errors import install_error_handlers
from common.web.middleware import BodyLimitMiddleware, RequestContextMiddleware

TITLE = "AI Orchestrator"
VERSION = "0.1.0"
DESCRIPTION = (
    "Code work with local models: every answer is checked before it is returned. "
    "Send your API key in the `X-API-Key` header."
)


def create_app(routers: Sequence[APIRouter], *, docs: bool = True, **kwargs: Any) -> FastAPI:
    """An app serving ``routers`` with the shared middleware and error mapping.

    Parameters
    ----------
    routers:
        One per function (the Lambda door passes one, the local server all).
    docs:
        Serve ``/docs`` and ``/openapi.json`` (the local server); a Lambda function
        behind API Gateway is only ever reached on its own route.
    """
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        **kwargs,
    )
    install_error_handlers(app)
    # Added last = outermost: the request context sees every answer, 413 included.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)
    for router in routers:
        app.include_router(router)
    return app
