"""One app serving every function's routes, with the embedded stores it needs.

No logic lives here: the routers come from ``functions/*/handler.py``; the
lifespan starts what a bare machine lacks and stops it on the way out.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse

import functions
from common.config import get_settings
from common.history import flush_history
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
        flush_history(timeout_s=5.0)
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

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


app = build_app()
