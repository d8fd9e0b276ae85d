"""PostgreSQL side of jobs: the ``jobs`` table is the source of truth.

Exactly-once-safe claims
------------------------
:meth:`JobStore.claim` locks the row (``SELECT ... FOR UPDATE``) and lets
:func:`common.jobs.rules.decide_claim` choose; "run" then sets ``status='running'``,
``worker``, ``attempts = attempts + 1`` and a lease (``lease_until = now() +
JOB_LEASE_SECONDS``) in the same transaction. Two workers handed the same job (a
duplicate message, a reclaim racing a slow worker) serialise on the row lock: the
second one sees a running job whose lease has not expired and backs off. The pair
``(worker, attempts)`` is the claim's token: heartbeats and the finish write only
``WHERE worker = %s AND attempts = %s AND status = 'running'``, so a worker that
was presumed dead (and whose job was taken over) can neither overwrite the new
owner's progress nor finish the job.

Heartbeats and leases
---------------------
A running job's worker renews its lease every third of ``JOB_LEASE_SECONDS``
(:mod:`common.jobs.runner`); the same write returns whether a cancel was asked for.
The lease's end is stored, not derived from ``heartbeat_at`` and the reader's own
setting: workers (and the API) configured differently still agree on who is dead.

Sweeper
-------
Enqueueing happens after the insert commits, so a crash or a queue outage between
the two would leave a queued row nobody is told about. :meth:`JobStore.due_for_enqueue`
returns (and stamps) queued jobs never enqueued or enqueued longer than
``JOB_REQUEUE_SECONDS`` ago, and running jobs whose lease expired (not yet re-sent
since); workers run it every ``JOB_SWEEP_SECONDS`` (on AWS a schedule does) and send
those ids again. A duplicate costs one claim check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import InvalidInput, NotFound, StoreUnavailable
from common.jobs.rules import ClaimDecision, decide_claim
from common.paging import Cursor

if TYPE_CHECKING:
    from common.stores.postgres import PostgresStore

COLUMNS = (
    "id, key_id, project_id, kind, status, input, result, error, progress, progress_step,"
    " progress_message, attempts, worker, created_at, started_at, heartbeat_at, finished_at,"
    " cancel_requested_at, lease_until, enqueued_at"
)
# What a listing reads: no input or result (either may be megabytes).
LIST_COLUMNS = (
    "id, project_id, kind, status, error, progress, progress_step, progress_message, attempts,"
    " created_at, started_at, finished_at, cancel_requested_at"
)
_LEASE_END = "now() + make_interval(secs => %(lease_s)s)"


@dataclass(frozen=True)
class Claim:
    """What :meth:`JobStore.claim` decided, and the row after it (None: no such job)."""

    decision: ClaimDecision | None
    row: dict[str, Any] | None


@dataclass(frozen=True)
class ProgressSnapshot:
    step: str
    percent: float
    message: str


class JobStore(Protocol):
    """What the jobs domain needs from a store (:class:`PostgresJobStore` implements it)."""

    def insert_job(
        self,
        *,
        kind: str,
        input: dict[str, Any],
        key_id: UUID | None,
        project_id: UUID | None,
    ) -> dict[str, Any]: ...

    def mark_unsent(self, job_id: UUID) -> None: ...

    def find_job(self, job_id: UUID, *, key_id: UUID) -> dict[str, Any] | None: ...

    def list_jobs(
        self,
        *,
        key_id: UUID,
        statuses: list[str],
        kind: str | None,
        after: Cursor | None,
        limit: int,
    ) -> list[dict[str, Any]]: ...

    def get_row(self, job_id: UUID) -> dict[str, Any] | None: ...

    def request_cancel(self, job_id: UUID, *, key_id: UUID) -> dict[str, Any] | None: ...

    def claim(self, job_id: UUID, *, worker: str, lease_s: float, max_attempts: int) -> Claim: ...

    def heartbeat(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        lease_s: float,
        progress: ProgressSnapshot | None,
    ) -> bool | None: ...

    def finish(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        progress: ProgressSnapshot | None,
    ) -> str | None: ...

    def due_for_enqueue(self, *, requeue_s: float, limit: int) -> list[UUID]: ...


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return None if value is None else Jsonb(value)


class PostgresJobStore:
    """:class:`JobStore` on the ``jobs`` table (migrations 0001 and 0002)."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def insert_job(
        self,
        *,
        kind: str,
        input: dict[str, Any],
        key_id: UUID | None,
        project_id: UUID | None,
    ) -> dict[str, Any]:
        import psycopg

        # enqueued_at is set optimistically: one write per submit. A failed send
        # clears it (mark_unsent) so the sweeper sends the job at its next pass.
        try:
            with self.postgres.connection() as conn:
                row: dict[str, Any] | None = conn.execute(
                    "INSERT INTO jobs (kind, input, key_id, project_id, enqueued_at)"
                    f" VALUES (%s, %s, %s, %s, now()) RETURNING {COLUMNS}",
                    (kind, _jsonb(input), key_id, project_id),
                ).fetchone()
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(f"no project {project_id}") from exc
        except psycopg.errors.UntranslatableCharacter as exc:
            # JSONB holds no \u0000: the request cannot become a job as it is.
            raise InvalidInput(
                "the request holds a NUL character (\\u0000), which a job cannot keep:"
                " remove it, or send the request without options.async"
            ) from exc
        if row is None:
            raise StoreUnavailable("PostgreSQL returned no row for the new job")
        return row

    def mark_unsent(self, job_id: UUID) -> None:
        with self.postgres.connection() as conn:
            conn.execute(
                "UPDATE jobs SET enqueued_at = NULL WHERE id = %s AND status = 'queued'",
                (job_id,),
            )

    def find_job(self, job_id: UUID, *, key_id: UUID) -> dict[str, Any] | None:
        # One query for "missing" and "another key's": the caller cannot tell them apart.
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE id = %s AND key_id = %s", (job_id, key_id)
            ).fetchone()
        return row

    def list_jobs(
        self,
        *,
        key_id: UUID,
        statuses: list[str],
        kind: str | None,
        after: Cursor | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The key's jobs newest first (``LIST_COLUMNS``), older than ``after`` if given;
        ``statuses`` empty means any. Served by ``jobs_key_created_idx`` (migration 0006)."""
        where = ["key_id = %(key_id)s"]
        params: dict[str, Any] = {"key_id": key_id, "limit": limit}
        if statuses:
            where.append("status = ANY(%(statuses)s)")
            params["statuses"] = statuses
        if kind is not None:
            where.append("kind = %(kind)s")
            params["kind"] = kind
        if after is not None:
            where.append("(created_at, id) < (%(after_at)s, %(after_id)s)")
            params.update(after_at=after.created_at, after_id=after.id)
        with self.postgres.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                f"SELECT {LIST_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
                " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
                params,
            ).fetchall()
        return rows

    def get_row(self, job_id: UUID) -> dict[str, Any] | None:
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        return row

    def request_cancel(self, job_id: UUID, *, key_id: UUID) -> dict[str, Any] | None:
        # Queued (or running on a dead worker): cancelled at once. Running: the flag is
        # set and the worker's runner sees it at its next heartbeat. Finished: as is.
        now_cancelled = "(status = 'queued' OR (status = 'running' AND lease_until < now()))"
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "UPDATE jobs SET"
                " cancel_requested_at = CASE WHEN status IN ('queued', 'running')"
                "   THEN coalesce(cancel_requested_at, now()) ELSE cancel_requested_at END,"
                f" finished_at = CASE WHEN {now_cancelled} THEN now() ELSE finished_at END,"
                f" status = CASE WHEN {now_cancelled} THEN 'cancelled' ELSE status END"
                f" WHERE id = %(id)s AND key_id = %(key_id)s RETURNING {COLUMNS}",
                {"id": job_id, "key_id": key_id},
            ).fetchone()
        return row

    def claim(self, job_id: UUID, *, worker: str, lease_s: float, max_attempts: int) -> Claim:
        params = {"id": job_id, "worker": worker, "lease_s": lease_s}
        with self.postgres.connection() as conn, conn.transaction():
            current = conn.execute(
                "SELECT status, attempts, cancel_requested_at IS NOT NULL AS cancel_requested,"
                " coalesce(lease_until < now(), true) AS lease_expired"
                " FROM jobs WHERE id = %(id)s FOR UPDATE",
                params,
            ).fetchone()
            if current is None:
                return Claim(None, None)
            decision = decide_claim(
                status=current["status"],
                attempts=current["attempts"],
                cancel_requested=current["cancel_requested"],
                lease_expired=current["lease_expired"],
                max_attempts=max_attempts,
            )
            if decision == "run":
                sql = (
                    "UPDATE jobs SET status = 'running', worker = %(worker)s,"
                    " attempts = attempts + 1, started_at = coalesce(started_at, now()),"
                    f" heartbeat_at = now(), lease_until = {_LEASE_END}, error = NULL"
                )
            elif decision == "cancel":
                sql = (
                    "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL"
                )
            elif decision == "give_up":
                sql = (
                    "UPDATE jobs SET status = 'failed', finished_at = now(), lease_until = NULL,"
                    " error = jsonb_build_object('code', 'job_abandoned', 'message',"
                    " 'the job''s worker stopped ' || attempts || ' times before it finished;"
                    " it is not tried again', 'attempts', attempts)"
                )
            else:
                sql = "SELECT 1"  # finished or busy: nothing to write
            if sql != "SELECT 1":
                conn.execute(sql + " WHERE id = %(id)s", params)
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE id = %(id)s", params
            ).fetchone()
        return Claim(decision, row)

    def heartbeat(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        lease_s: float,
        progress: ProgressSnapshot | None,
    ) -> bool | None:
        """Renew the lease (and write progress). Returns whether a cancel was asked
        for, or None when this worker no longer owns the job."""
        sets = f"heartbeat_at = now(), lease_until = {_LEASE_END}"
        params: dict[str, Any] = {
            "id": job_id,
            "worker": worker,
            "attempt": attempt,
            "lease_s": lease_s,
        }
        if progress is not None:
            sets += ", progress = %(percent)s, progress_step = %(step)s, progress_message = %(msg)s"
            params.update(percent=progress.percent, step=progress.step, msg=progress.message)
        with self.postgres.connection() as conn:
            row = conn.execute(
                f"UPDATE jobs SET {sets} WHERE id = %(id)s AND worker = %(worker)s"
                " AND attempts = %(attempt)s AND status = 'running'"
                " RETURNING cancel_requested_at IS NOT NULL AS cancel_requested",
                params,
            ).fetchone()
        return None if row is None else bool(row["cancel_requested"])

    def finish(
        self,
        job_id: UUID,
        *,
        worker: str,
        attempt: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        progress: ProgressSnapshot | None,
    ) -> str | None:
        """Record the outcome if this worker still owns the job; the status written
        (a cancel asked for meanwhile wins), or None when the job is no longer ours.
        A job that succeeded is at 100 %, whatever its runner last reported."""
        sets = ""
        params: dict[str, Any] = {
            "id": job_id,
            "worker": worker,
            "attempt": attempt,
            "status": status,
            "result": _jsonb(result),
            "error": _jsonb(error),
            "percent": None if progress is None else progress.percent,
        }
        if progress is not None:
            sets = ", progress_step = %(step)s, progress_message = %(msg)s"
            params.update(step=progress.step, msg=progress.message)
        with self.postgres.connection() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = CASE WHEN cancel_requested_at IS NOT NULL"
                " THEN 'cancelled' ELSE %(status)s END,"
                " progress = CASE WHEN cancel_requested_at IS NULL AND %(status)s = 'succeeded'"
                " THEN 100 ELSE coalesce(%(percent)s::real, progress) END,"
                " result = %(result)s, error = %(error)s, finished_at = now(),"
                f" heartbeat_at = now(), lease_until = NULL{sets}"
                " WHERE id = %(id)s AND worker = %(worker)s AND attempts = %(attempt)s"
                " AND status = 'running' RETURNING status",
                params,
            ).fetchone()
        return None if row is None else str(row["status"])

    def due_for_enqueue(self, *, requeue_s: float, limit: int) -> list[UUID]:
        # SKIP LOCKED: two sweepers at once split the rows instead of sending each twice.
        # A running job whose lease expired is sent once per expiry: its enqueued_at
        # then lies after lease_until, until a new claim's lease expires in turn.
        with self.postgres.connection() as conn:
            rows = conn.execute(
                "UPDATE jobs SET enqueued_at = now() WHERE id IN ("
                " SELECT id FROM jobs WHERE"
                "  (status = 'queued' AND (enqueued_at IS NULL"
                "    OR enqueued_at < now() - make_interval(secs => %(requeue_s)s)))"
                "  OR (status = 'running' AND lease_until < now()"
                "    AND (enqueued_at IS NULL OR enqueued_at < lease_until))"
                " ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
                " RETURNING id",
                {"requeue_s": requeue_s, "limit": limit},
            ).fetchall()
        return [UUID(str(r["id"])) for r in rows]


def get_job_store() -> PostgresJobStore:
    """The job store on the process-wide PostgreSQL pool."""
    from common.stores.postgres import get_postgres

    return PostgresJobStore(get_postgres())
