"""Run one delivered job: claim it in PostgreSQL, run its kind, record the outcome.

Both workers use this: the local stream worker (:mod:`common.jobs.worker`) and the
SQS Lambda (``functions/jobs_worker``). The claim rules are in
:mod:`common.jobs.rules` and :mod:`common.jobs.store`; here:

- While the runner works, a heartbeat thread beats every third of
  ``JOB_LEASE_SECONDS``: it renews the lease, writes pending progress, learns about
  a cancel, and (on the stream) resets the entry's idle time.
- A runner raising ``AppError`` ends the job ``failed`` with the error's JSON
  (code, message, details); any other exception ends it ``failed`` with a generic
  ``internal_error`` naming the job id, and the traceback goes to the log only.
  Neither is retried: a runner's failure would fail again. Only a worker that dies
  (no outcome recorded) makes a job run again, up to ``JOB_MAX_ATTEMPTS`` starts.
- The outcome is written only while this worker still owns the claim; one line,
  ``"job ran"``, is logged for every run that reached its end, recorded or not.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic_core import PydanticSerializationError, to_jsonable_python

from common.errors import AppError
from common.jobs.context import JobCancelled, JobContext
from common.jobs.events import EventSink
from common.jobs.kinds import load_runner
from common.jobs.rules import ClaimDecision
from common.jobs.store import JobStore
from common.logs import get_logger

log = get_logger("jobs.runner")


def log_exception(message: str, fields: dict[str, str]) -> None:
    """Log the exception being handled with its traceback as a field: the log filter
    scrubs fields, not ``exc_info``, and an exception's text may quote a secret."""
    log.error(message, extra={**fields, "traceback": traceback.format_exc(limit=20)})


@dataclass(frozen=True)
class RunSettings:
    """The limits a worker runs jobs with (from ``Settings``: ``JOB_*``)."""

    lease_s: float = 30.0
    max_attempts: int = 3

    @property
    def heartbeat_s(self) -> float:
        # Three renewals per lease: one lost write does not make a live job look dead.
        return self.lease_s / 3

    @classmethod
    def from_settings(cls) -> RunSettings:
        from common.config import get_settings

        settings = get_settings()
        return cls(lease_s=settings.JOB_LEASE_SECONDS, max_attempts=settings.JOB_MAX_ATTEMPTS)


@dataclass(frozen=True)
class Outcome:
    """What :func:`process_job` did with one delivery."""

    job_id: UUID
    decision: ClaimDecision | None  # None: no such job
    status: str | None = None  # the job's status afterwards, when known

    @property
    def done_with_message(self) -> bool:
        """The message can go: only "busy" (someone else is on it) keeps it around."""
        return self.decision != "busy"


class _Heartbeat:
    """A thread that calls ``ctx.beat()`` (and ``also()``) every ``interval_s``."""

    def __init__(self, ctx: JobContext, interval_s: float, also: Callable[[], None] | None) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self._also = also
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{ctx.job_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._ctx.beat()
                if self._also is not None and not self._ctx.lost:
                    self._also()
            except Exception:  # a missed beat is survivable; a dead heartbeat thread is not
                log_exception("heartbeat failed", {"job_id": str(self._ctx.job_id)})


def _internal_error(job_id: UUID) -> dict[str, Any]:
    return {
        "code": "internal_error",
        "message": f"the job failed unexpectedly; quote job id {job_id}",
    }


def process_job(
    job_id: UUID,
    *,
    worker: str,
    store: JobStore,
    events: EventSink,
    limits: RunSettings,
    on_beat: Callable[[], None] | None = None,
) -> Outcome:
    """Claim ``job_id`` and, if this worker should run it, run it to an outcome.

    Parameters
    ----------
    job_id:
        From the queue message.
    worker:
        This worker's unique name (recorded in the row, part of the claim token).
    store, events:
        PostgreSQL jobs and the pub/sub sink.
    limits:
        Stale limit and maximum starts.
    on_beat:
        Called at each heartbeat (the stream worker resets the entry's idle time).

    Returns
    -------
    Outcome
        The claim decision; "busy" means the message should be kept for later.

    Raises
    ------
    StoreUnavailable
        PostgreSQL failed: nothing was decided, deliver the message again later.
    """
    claim = store.claim(
        job_id, worker=worker, lease_s=limits.lease_s, max_attempts=limits.max_attempts
    )
    fields = {"job_id": str(job_id), "worker": worker}
    if claim.row is None or claim.decision is None:
        log.warning("queued job not found; dropping the message", extra=fields)
        return Outcome(job_id, None)
    row = claim.row
    if claim.decision != "run":
        if claim.decision in ("cancel", "give_up"):
            events.publish(job_id, {"type": "status", "status": row["status"]})
            log.info(
                "job ended without running",
                extra={**fields, "status": row["status"], "attempts": row["attempts"]},
            )
        return Outcome(job_id, claim.decision, row["status"])

    attempt = int(row["attempts"])
    kind = str(row["kind"])
    fields.update(kind=kind, attempt=str(attempt))
    events.publish(job_id, {"type": "status", "status": "running", "attempt": attempt})
    ctx = JobContext(
        job_id=job_id,
        key_id=row.get("key_id"),
        project_id=row.get("project_id"),
        attempt=attempt,
        worker=worker,
        lease_s=limits.lease_s,
        store=store,
        events=events,
    )
    started = time.monotonic()
    result: Any = None
    error: dict[str, Any] | None = None
    outcome = "succeeded"
    with _Heartbeat(ctx, limits.heartbeat_s, on_beat):
        try:
            runner = load_runner(kind)
            result = to_jsonable_python(runner(dict(row.get("input") or {}), ctx))
        except JobCancelled:
            outcome = "cancelled"
        except AppError as exc:
            outcome, error = "failed", {"code": exc.code, "message": exc.message, **exc.details}
        except PydanticSerializationError:
            log_exception("job result is not JSON", fields)
            outcome, error = "failed", _internal_error(job_id)
        except Exception:
            log_exception("job failed", fields)
            outcome, error = "failed", _internal_error(job_id)
    if outcome == "succeeded" and result is not None and not isinstance(result, dict):
        result = {"value": result}
    ms = round((time.monotonic() - started) * 1000)
    status = store.finish(
        job_id,
        worker=worker,
        attempt=attempt,
        status=outcome,
        result=result,
        error=error,
        progress=ctx.snapshot(),
    )
    log.info(
        "job ran",
        extra={**fields, "outcome": outcome, "status": status or "not ours", "ms": ms},
    )
    if status is None:
        # Another worker took it over (we looked dead): its run is the one that counts.
        return Outcome(job_id, "busy")
    events.publish(job_id, {"type": "status", "status": status})
    return Outcome(job_id, "run", status)
