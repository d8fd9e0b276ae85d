"""The jobs API the endpoints call: submit, look at, cancel.

A job belongs to the API key that submitted it: any other key gets the same
``NotFound`` as for a job that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, get_args
from uuid import UUID

from common.auth import Principal
from common.errors import InvalidInput, NotFound, StoreUnavailable
from common.jobs.kinds import KINDS, check_kind
from common.jobs.models import (
    JobAccepted,
    JobPage,
    JobStatus,
    JobView,
    status_url,
    summary_from_row,
    view_from_row,
    ws_url,
)
from common.jobs.queue import JobQueue, get_job_queue
from common.jobs.store import JobStore, get_job_store
from common.logs import get_logger
from common.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, field_error, next_cursor

log = get_logger("jobs")


class KeyHolder(Protocol):
    """Whose job it is: a caller's :class:`~common.auth.Principal`, or the key that owns
    a project when a job queues follow-up work (an index after a sync)."""

    @property
    def key_id(self) -> UUID: ...


@dataclass(frozen=True)
class KeyRef:
    """A :class:`KeyHolder` for work a job queues on behalf of a project's owner key."""

    key_id: UUID


def submit_job(
    *,
    kind: str,
    input: dict[str, Any],
    principal: KeyHolder,
    project_id: UUID | None = None,
    store: JobStore | None = None,
    queue: JobQueue | None = None,
) -> JobAccepted:
    """Store a job (PostgreSQL commits first), then put its id on the queue.

    Parameters
    ----------
    kind:
        A key of :data:`common.jobs.kinds.KINDS`.
    input:
        The runner's input, JSON-able.
    principal:
        The caller: only this key can see or cancel the job.
    project_id:
        The project it works on, if any (the caller checked it is theirs).
    store, queue:
        Injected for tests; default to the process-wide ones.

    Returns
    -------
    JobAccepted
        The job id and where to follow it (the body of a 202).

    Raises
    ------
    InvalidInput
        Unknown kind, or an input that is not JSON.
    NotFound
        ``project_id`` does not exist.
    StoreUnavailable
        PostgreSQL is down (nothing was stored). A queue outage is not an error:
        the job is stored, and a worker's sweeper sends it when the queue is back.
    """
    check_kind(kind)
    try:
        json.dumps(input)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("the job input is not JSON") from exc
    store = store or get_job_store()
    row = store.insert_job(kind=kind, input=input, key_id=principal.key_id, project_id=project_id)
    job_id = UUID(str(row["id"]))
    try:
        (queue or get_job_queue()).send(job_id)
    except Exception as exc:
        # Stored but not sent: the sweeper re-sends jobs whose enqueued_at is empty.
        log.warning(
            "job stored but not enqueued; a worker's sweeper will send it",
            extra={"job_id": str(job_id), "error": type(exc).__name__},
        )
        try:
            store.mark_unsent(job_id)
        except StoreUnavailable:
            pass  # it is found anyway once its enqueued_at is JOB_REQUEUE_SECONDS old
    log.info("job queued", extra={"job_id": str(job_id), "kind": kind})
    return JobAccepted(
        job_id=job_id, status="queued", status_url=status_url(job_id), ws_url=ws_url(job_id)
    )


def get_job(job_id: UUID, *, principal: Principal, store: JobStore | None = None) -> JobView:
    """The job's status, progress and (when finished) result or error.

    Raises
    ------
    NotFound
        No such job, or another key's: the two are not told apart.
    """
    row = (store or get_job_store()).find_job(job_id, key_id=principal.key_id)
    if row is None:
        raise NotFound(f"no job {job_id}")
    return view_from_row(row)


def list_jobs(
    *,
    principal: Principal,
    statuses: list[str] | None = None,
    kind: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    store: JobStore | None = None,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time, without their results.

    Parameters
    ----------
    principal:
        The caller: only its own jobs are listed.
    statuses:
        Keep jobs in these statuses; each entry may be a comma list
        (``["queued,running", "failed"]``). None or empty: any status.
    kind:
        Keep jobs of this kind only.
    limit:
        Jobs per page, 1 to :data:`~common.paging.MAX_LIMIT`.
    cursor:
        ``next_cursor`` of the previous page; None for the first.
    store:
        Injected for tests; defaults to the process-wide one.

    Returns
    -------
    JobPage
        The jobs (as ``GET /api/jobs/{id}`` shows them, minus ``result``) and the
        cursor of the next page, None on the last.

    Raises
    ------
    InvalidInput
        An unknown status or kind, a limit out of range, or a cursor this server did
        not give; ``fields`` names the query parameter.
    """
    wanted = parse_statuses(statuses or [])
    if kind is not None and kind not in KINDS:
        raise InvalidInput(
            f"unknown job kind {kind!r}",
            details={
                "kinds": sorted(KINDS),
                "fields": [field_error("query.kind", "enum", "not a job kind")],
            },
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}",
            details={"fields": [field_error("query.limit", "range", f"1 to {MAX_LIMIT}")]},
        )
    after = decode_cursor(cursor) if cursor else None
    rows = (store or get_job_store()).list_jobs(
        key_id=principal.key_id, statuses=wanted, kind=kind, after=after, limit=limit + 1
    )
    following = next_cursor(rows, limit)
    return JobPage(items=[summary_from_row(r) for r in rows], next_cursor=following)


STATUSES: tuple[str, ...] = get_args(JobStatus)


def parse_statuses(values: list[str]) -> list[str]:
    """``["queued,running", "failed"]`` -> ``["queued", "running", "failed"]``, checked.

    Raises
    ------
    InvalidInput
        A value that is not a job status.
    """
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            status = part.strip()
            if not status:
                continue
            if status not in STATUSES:
                raise InvalidInput(
                    f"unknown job status {status!r}: one of {', '.join(STATUSES)}",
                    details={
                        "fields": [
                            field_error("query.status", "enum", f"one of {', '.join(STATUSES)}")
                        ]
                    },
                )
            if status not in found:
                found.append(status)
    return found


def cancel_job(job_id: UUID, *, principal: Principal, store: JobStore | None = None) -> JobView:
    """Cancel a job: a queued one at once; a running one is asked to stop
    (``cancel_requested``; its runner sees ``ctx.cancelled()`` within a heartbeat,
    and the job ends ``cancelled``). A finished job is returned unchanged.

    Raises
    ------
    NotFound
        No such job, or another key's.
    """
    from common.jobs.events import get_event_sink

    row = (store or get_job_store()).request_cancel(job_id, key_id=principal.key_id)
    if row is None:
        raise NotFound(f"no job {job_id}")
    view = view_from_row(row)
    if view.status == "cancelled" or view.cancel_requested:
        event = {"type": "status", "status": "cancelled"}
        if view.status == "running":
            event = {"type": "cancel_requested"}
        get_event_sink().publish(job_id, event)
    return view
