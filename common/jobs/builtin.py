"""Built-in job kinds: ``noop``, for tests, benches and checking that workers run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from common.errors import InvalidInput

if TYPE_CHECKING:
    from common.jobs.context import JobContext

MAX_SLEEP_S = 30.0
# How often a sleeping noop reports progress (and so notices a cancel).
_TICK_S = 0.1


def noop(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Do nothing, optionally for a while or ending in an error.

    ``input``: ``sleep_s`` (float, capped at 30), ``fail`` (bool: raise an
    ``InvalidInput``, as a runner does for a failure the client should see).
    """
    try:
        sleep_s = min(MAX_SLEEP_S, max(0.0, float(input.get("sleep_s", 0) or 0)))
    except (TypeError, ValueError) as exc:
        raise InvalidInput("sleep_s must be a number") from exc
    started = time.monotonic()
    ctx.progress("sleeping" if sleep_s else "done", 0.0 if sleep_s else 100.0)
    while (elapsed := time.monotonic() - started) < sleep_s:
        ctx.raise_if_cancelled()
        time.sleep(min(_TICK_S, sleep_s - elapsed))
        ctx.progress("sleeping", min(100.0, 100.0 * (time.monotonic() - started) / sleep_s))
    if input.get("fail"):
        raise InvalidInput("this noop job was asked to fail", details={"job_id": str(ctx.job_id)})
    return {"slept_s": round(time.monotonic() - started, 3), "attempt": ctx.attempt}
