"""FastAPI dependencies: who is calling, with which settings, to which model."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from common.auth import Principal, presented_key
from common.config import Settings, get_settings
from common.context import current_request
from common.logs import logger
from common.models import ModelClient, get_model_client

T = TypeVar("T")
Check = Callable[[str, Settings, int], tuple[Principal, list[int] | None]]

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
    # dependency runs in a worker thread whose context is thrown away).
    key = presented_key(api_key)  # a missing key is a 401 whatever the stores' state
    principal = await _admissions().admit(key, settings)
    logger.thread_safe_append_keys(api_key_prefix=principal.prefix)
    info = current_request()
    if info is not None:
        info.key_id, info.key_prefix = str(principal.key_id), principal.prefix
    return principal


class Admissions:
    """Authenticates and counts the requests of one key together: one trip to the
    thread pool and one Redis round trip for a batch (plus a PostgreSQL lookup when
    the key is not remembered: common/admission.py).

    A request that arrives while its key's check is under way waits for the next
    check, never joins the one already under way: every request is checked against
    the state after it arrived, so a key revoked by any process is refused from the
    next request on. A burst of 50 requests with one key costs two checks instead of
    50: under a burst most of a check's time is spent queueing for the interpreter
    lock behind the other requests.

    One per event loop: its futures belong to the loop that made them.

    Parameters
    ----------
    check:
        ``check(key, settings, requests)`` authenticates ``key`` and counts
        ``requests`` requests for it: the principal, and for each request its
        requests left in the window (negative: over the limit), or None when not
        counted. Blocking: it runs in the thread pool.
    """

    def __init__(self, check: Check) -> None:
        self._check = check
        self._waiting: dict[str, list[asyncio.Future[Principal]]] = {}
        self._settings: dict[str, Settings] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, key: str, settings: Settings) -> Principal:
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._settings[key] = settings
        if key not in self._busy:
            self._start(key)
        return await future

    def _start(self, key: str) -> None:
        waiters = self._waiting.pop(key)
        settings = self._settings.pop(key)
        self._busy.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key, settings, waiters))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, key: str, settings: Settings, waiters: list[asyncio.Future[Principal]]
    ) -> None:
        try:
            principal, left = await run_in_threadpool(self._check, key, settings, len(waiters))
        except Exception as exc:
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            for future in waiters:
                future.cancel()
            raise
        else:
            for i, future in enumerate(waiters):
                if future.done():  # the client went away; it was counted all the same
                    continue
                if left is not None and left[i] < 0:
                    from common.ratelimit import over_limit

                    future.set_exception(over_limit(settings.RATE_LIMIT_PER_MINUTE))
                else:
                    future.set_result(principal)
        finally:
            self._busy.discard(key)
            if key in self._waiting:
                self._start(key)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admissions] = (
    weakref.WeakKeyDictionary()
)


def _admissions() -> Admissions:
    loop = asyncio.get_running_loop()
    admissions = _by_loop.get(loop)
    if admissions is None:
        admissions = _by_loop[loop] = Admissions(_authenticate_and_count)
    return admissions


def _authenticate_and_count(
    key: str, settings: Settings, requests: int
) -> tuple[Principal, list[int] | None]:
    # Imported here, not at the top: psycopg and redis cost every cold start ~0.2 s.
    from common.admission import admit

    return admit(key, settings, requests)


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking domain code in the thread pool from an ``async def`` route.

    A sync route costs two hops to the pool (the route, then the validation of its
    answer); an async route awaiting this costs one.
    """
    return await run_in_threadpool(fn, *args, **kwargs)


PrincipalDep = Annotated[Principal, Depends(require_principal)]
ModelDep = Annotated[ModelClient, Depends(_model)]
