"""Is everything up? Each store and the model server, with latency and the fix when down."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel

from common.errors import AppError, ConfigError

CHECK_TIMEOUT_S = 5.0


class Check(BaseModel):
    status: Literal["up", "down"]
    latency_ms: float
    error: str | None = None
    fix: str | None = None
    info: dict[str, Any] | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, Check]
    down: list[str]


def _postgres() -> dict[str, Any] | None:
    from common.stores.postgres import get_postgres

    get_postgres().ping()
    return None


def _redis() -> dict[str, Any] | None:
    from common.stores.redis_store import get_redis

    get_redis().ping()
    return None


def _mongo() -> dict[str, Any] | None:
    from common.stores import mongo

    mongo.ping(mongo.get_mongo())
    return None


def _qdrant() -> dict[str, Any] | None:
    from common.stores import qdrant_store

    # Local mode opens its folder on first use: checking it here would load the
    # heaviest client we have into a server that may never search. The folder being
    # free (not held by another process) is what can go wrong before then.
    if qdrant_store.check_local_lock():
        return {"mode": "local", "opened": False}
    qdrant_store.ping(qdrant_store.get_qdrant())
    return None


def _model() -> dict[str, Any] | None:
    from common.models import get_model_client

    return get_model_client().health()


CHECKS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "postgres": _postgres,
    "redis": _redis,
    "mongodb": _mongo,
    "qdrant": _qdrant,
    "model": _model,
}

FIXES = {
    "postgres": "check DATABASE_URL, or unset it to use the embedded PostgreSQL",
    "redis": "check REDIS_URL, or unset it to use the embedded Redis",
    "mongodb": "check MONGODB_URL, or unset it to use the embedded server",
    "qdrant": "check QDRANT_URL / QDRANT_PATH",
}


def _run(name: str, check: Callable[[], dict[str, Any] | None]) -> Check:
    started = time.perf_counter()
    try:
        info = check()
    except (AppError, ConfigError) as exc:
        fix = exc.details.get("fix") if isinstance(exc, AppError) else None
        message = exc.message if isinstance(exc, AppError) else str(exc)
        return Check(
            status="down",
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=message,
            fix=fix or FIXES.get(name),
        )
    except Exception as exc:  # a driver error we did not translate: still a "down"
        return Check(
            status="down",
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=f"{type(exc).__name__}",
            fix=FIXES.get(name),
        )
    return Check(
        status="up", latency_ms=round((time.perf_counter() - started) * 1000, 1), info=info
    )


def check_health(
    checks: dict[str, Callable[[], dict[str, Any] | None]] | None = None,
) -> HealthReport:
    """Run every check concurrently, each bounded by ``CHECK_TIMEOUT_S``."""
    checks = checks or CHECKS
    results: dict[str, Check] = {}
    # Not a with-block: its exit would wait for a hung check and defeat the timeout.
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
    try:
        futures = {name: pool.submit(_run, name, fn) for name, fn in checks.items()}
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                results[name] = Check(
                    status="down",
                    latency_ms=CHECK_TIMEOUT_S * 1000,
                    error=f"no answer within {CHECK_TIMEOUT_S:g} s",
                    fix=FIXES.get(name),
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    down = [name for name, check in results.items() if check.status == "down"]
    return HealthReport(status="degraded" if down else "ok", checks=results, down=down)
