"""FastAPI dependencies: who is calling, with which settings, to which model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from common.auth import Principal, authenticate, presented_key
from common.config import Settings, get_settings
from common.context import current_request
from common.errors import StoreUnavailable
from common.logs import logger
from common.models import ModelClient, get_model_client

T = TypeVar("T")

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `python -m common.cli keys create --name NAME`.",
)


# Cheap lookups are async dependencies on purpose: FastAPI runs a sync dependency in
# the thread pool, and every hop there costs more event-loop CPU than the lookup.
async def _settings() -> Settings:
    return get_settings()


async def _model() -> ModelClient:
    return get_model_client()


SettingsDep = Annotated[Settings, Depends(_settings)]


async def require_principal(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
) -> Principal:
    """Authenticate the X-API-Key header, then count the request against the key's limit."""
    # async so that the log keys set here live in the request's context (a sync
    # dependency runs in a worker thread whose context is thrown away); the
    # blocking store calls go to the thread pool, in one hop.
    principal = await run_in_threadpool(_authenticate_and_count, api_key, settings)
    logger.thread_safe_append_keys(api_key_prefix=principal.prefix)
    info = current_request()
    if info is not None:
        info.key_id, info.key_prefix = str(principal.key_id), principal.prefix
    return principal


def _authenticate_and_count(api_key: str | None, settings: Settings) -> Principal:
    # Checked before the store is asked for: a missing key is a 401 whatever the
    # database's state.
    key = presented_key(api_key)
    from common.stores.postgres import get_postgres

    principal = authenticate(key, store=get_postgres())
    _count_request(principal, settings)
    return principal


def _count_request(principal: Principal, settings: Settings) -> int | None:
    # Imported here, not at the top: psycopg and redis cost every cold start ~0.2 s.
    from common.ratelimit import check_rate_limit
    from common.stores.redis_store import get_redis

    try:
        redis = get_redis()
    except StoreUnavailable:
        return None  # no Redis configured at all: nothing to count with, serve anyway
    return check_rate_limit(
        str(principal.key_id), limit_per_minute=settings.RATE_LIMIT_PER_MINUTE, redis=redis
    )


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking domain code in the thread pool from an ``async def`` route.

    A sync route costs two hops to the pool (the route, then the validation of its
    answer); an async route awaiting this costs one.
    """
    return await run_in_threadpool(fn, *args, **kwargs)


PrincipalDep = Annotated[Principal, Depends(require_principal)]
ModelDep = Annotated[ModelClient, Depends(_model)]
