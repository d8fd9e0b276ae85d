"""One app serving every function's routes, with the embedded stores it needs.

No logic lives here: the routers come from ``functions/*/handler.py``; the
lifespan starts what a bare machine lacks and stops it on the way out.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

import functions
from common.behind import flush_behind
from common.config import get_settings
from common.jobs.worker import start_local_worker
from common.logs import get_logger, redact_url
from common.scheduler import start_local_scheduler
from common.stores import prepare_stores, reset_stores
from common.stores.embedded import start_embedded
from common.web import create_app
from common.worker import publish_local_store_urls, withdraw_local_store_urls
from local.ws import build_router as build_ws_router
from local.ws import running as ws_running

log = get_logger("local")

THREADPOOL_SIZE = 200
# The web console, built by `make web` (local/web/build.mjs); `make run` builds it.
WEB_DIST = Path(__file__).resolve().parent / "web" / "dist"


def discover_routers() -> list[APIRouter]:
    """The ``router`` of every ``functions/<name>/handler.py``, in name order."""
    routers = []
    for info in sorted(pkgutil.iter_modules(functions.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"functions.{info.name}.handler")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    # Sync routes run in AnyIO's thread pool; its default of 40 threads would queue
    # the 41st concurrent model call behind a slow answer.
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADPOOL_SIZE
    embedded = start_embedded(settings)
    # The rest of the process (and anything it spawns) reaches the embedded
    # servers through the same variables a user would set.
    os.environ.update(embedded.urls)
    reset_stores()
    worker = None
    scheduler = None
    try:
        prepare_stores()
        settings = get_settings()
        # One job worker in-process; `python -m common.worker` adds more, on the
        # embedded stores' URLs published here.
        publish_local_store_urls(settings.DATA_DIR.expanduser().resolve(), embedded.urls)
        worker = start_local_worker()
        # The git-sync scheduler (on AWS, a scheduled function): queues due syncs.
        scheduler = start_local_scheduler()
        _warm_model()
        log.info(
            "stores ready",
            extra={
                "embedded": embedded.started,
                "postgres": redact_url(settings.DATABASE_URL or ""),
                "redis": redact_url(settings.REDIS_URL or ""),
                "mongodb": redact_url(settings.MONGODB_URL or ""),
                "qdrant": settings.QDRANT_URL or str(settings.qdrant_path),
                "ollama": redact_url(settings.OLLAMA_HOST),
            },
        )
        async with ws_running():  # WebSockets: subscriber, sampler (local/ws.py)
            yield
    finally:
        if scheduler is not None:
            scheduler.stop()
        # The worker first: the jobs it finishes in its grace time write history too.
        if worker is not None:
            worker.stop(grace_s=5.0)
        flush_behind(timeout_s=5.0)
        withdraw_local_store_urls(settings.DATA_DIR.expanduser().resolve())
        reset_stores()
        from common.models import reset as reset_model

        reset_model()
        embedded.stop()
        for name in embedded.urls:
            os.environ.pop(name, None)
        log.info("stopped", extra={"embedded": list(embedded.urls)})


def _warm_model() -> None:
    """Choose the provider now, and load an embedded model in the background, so the
    first request (or health check) does not pay seconds for it."""
    from common.models import get_model_client

    def warm() -> None:
        try:
            get_model_client().health()
        except Exception:  # health reports it; nothing to do at start-up
            pass

    threading.Thread(target=warm, name="model-warmup", daemon=True).start()


def build_app() -> FastAPI:
    app = create_app([*discover_routers(), build_ws_router()], lifespan=lifespan)
    if (WEB_DIST / "index.html").is_file():
        _serve_console(app)
    else:

        @app.get("/", include_in_schema=False)
        def root() -> HTMLResponse:
            return HTMLResponse(
                "<p>The web console is not built: <code>make web</code> (or <code>make run</code>)"
                ' builds it. The API is documented at <a href="/docs">/docs</a>.</p>'
            )

    return app


def _serve_console(app: FastAPI) -> None:
    """The built pages at ``/`` and ``/<page>.html``, their bundles under ``/assets``.

    Named routes, not a catch-all mount at ``/``: a mount would answer every path, so an
    unknown API route would no longer get its JSON 404, nor a wrong method its 405.
    """
    app.mount("/assets", StaticFiles(directory=WEB_DIST / "assets"), name="console-assets")
    for page in sorted(WEB_DIST.glob("*.html")):
        paths = ["/", "/index.html"] if page.name == "index.html" else [f"/{page.name}"]
        for path in paths:
            app.add_api_route(path, _page_endpoint(page), methods=["GET"], include_in_schema=False)


def _page_endpoint(page: Path) -> Callable[[], FileResponse]:
    def endpoint() -> FileResponse:
        # Pages are small and change with every build: revalidate, never guess.
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    return endpoint


app = build_app()
