"""PostgreSQL for git sync: a project's link (remote, branch, schedule), its runs and
its merge proposals."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from common.stores.postgres import PostgresStore

_LINK = (
    "id, owner_key_id, git_remote, git_branch, sync_schedule, next_sync_at,"
    " git_host_kind, git_api_url"
)
_RUN = "id, project_id, trigger, job_id, status, message, created_at, finished_at"
_PROPOSAL = (
    "id, project_id, owner_key_id, branch, target_branch, ours, theirs, conflicts, files,"
    " tests, ok, status, merge_commit, created_at, decided_at"
)


def project_lock_id(project_id: UUID) -> int:
    """A signed 64-bit advisory-lock id for one project (a hash: uuid is 128 bits)."""
    digest = hashlib.blake2b(b"git-sync:" + project_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class GitSyncStore:
    """The projects' git columns and ``git_sync_runs`` (migration 0004)."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def find_link(self, *, project_id: UUID, owner_key_id: UUID | None) -> dict[str, Any] | None:
        """The project's git columns; ``owner_key_id=None`` only for the scheduler's jobs."""
        return self._owned_row(
            f"SELECT {_LINK} FROM projects WHERE id = %s", (project_id,), owner_key_id
        )

    def linked_projects(self) -> list[dict[str, Any]]:
        """Every project linked to a remote, of any key: a webhook is matched to one
        by its repository, and verified with that project's secret after."""
        with self.postgres.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                f"SELECT {_LINK} FROM projects WHERE git_remote IS NOT NULL"
            ).fetchall()
        return rows

    def set_link(
        self,
        *,
        project_id: UUID,
        owner_key_id: UUID,
        remote: str | None,
        branch: str | None,
        schedule: str | None,
        interval_s: int | None,
        host_kind: str | None = None,
        api_url: str | None = None,
    ) -> dict[str, Any] | None:
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "UPDATE projects SET git_remote = %s, git_branch = %s, sync_schedule = %s,"
                " next_sync_at = CASE WHEN %s::integer IS NULL THEN NULL"
                "   ELSE now() + make_interval(secs => %s::integer) END,"
                " git_host_kind = %s, git_api_url = %s, updated_at = now()"
                f" WHERE id = %s AND owner_key_id = %s RETURNING {_LINK}",
                (
                    remote,
                    branch,
                    schedule,
                    interval_s,
                    interval_s,
                    host_kind,
                    api_url,
                    project_id,
                    owner_key_id,
                ),
            ).fetchone()
        return row

    def insert_run(self, *, project_id: UUID, trigger: str) -> dict[str, Any]:
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"INSERT INTO git_sync_runs (project_id, trigger) VALUES (%s, %s) RETURNING {_RUN}",
                (project_id, trigger),
            ).fetchone()
        assert row is not None
        return row

    def update_run(
        self,
        run_id: UUID,
        *,
        status: str,
        message: str | None = None,
        job_id: UUID | None = None,
    ) -> None:
        finished = status in ("succeeded", "failed", "skipped")
        with self.postgres.connection() as conn:
            conn.execute(
                "UPDATE git_sync_runs SET status = %s, message = COALESCE(%s, message),"
                " job_id = COALESCE(%s, job_id),"
                " finished_at = CASE WHEN %s THEN now() ELSE finished_at END WHERE id = %s",
                (status, message, job_id, finished, run_id),
            )

    def list_runs(self, *, project_id: UUID, limit: int = 10) -> list[dict[str, Any]]:
        with self.postgres.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                f"SELECT {_RUN} FROM git_sync_runs WHERE project_id = %s"
                " ORDER BY created_at DESC LIMIT %s",
                (project_id, limit),
            ).fetchall()
        return rows

    def claim_due(
        self, *, limit: int, interval_of: Callable[[str], int | None]
    ) -> list[dict[str, Any]]:
        """Take the projects whose sync is due, move each one's next_sync_at on, and
        record a 'schedule' run for each, in one transaction.

        ``FOR UPDATE SKIP LOCKED``: a second scheduler running at the same moment
        skips the rows this one holds, and once committed they are no longer due.
        """
        claimed: list[dict[str, Any]] = []
        with self.postgres.connection() as conn:
            rows = conn.execute(
                f"SELECT {_LINK} FROM projects WHERE sync_schedule IS NOT NULL"
                " AND git_remote IS NOT NULL AND (next_sync_at IS NULL OR next_sync_at <= now())"
                " ORDER BY next_sync_at NULLS FIRST LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            ).fetchall()
            for row in rows:
                seconds = interval_of(str(row["sync_schedule"]))
                if seconds is None:
                    continue  # unparseable (set by hand): the caller logs it
                conn.execute(
                    "UPDATE projects SET next_sync_at = now() + make_interval(secs => %s)"
                    " WHERE id = %s",
                    (seconds, row["id"]),
                )
                run = conn.execute(
                    "INSERT INTO git_sync_runs (project_id, trigger) VALUES (%s, 'schedule')"
                    " RETURNING id",
                    (row["id"],),
                ).fetchone()
                assert run is not None
                claimed.append({**row, "run_id": run["id"]})
        return claimed

    # -- merge proposals (migration 0005) ------------------------------------

    def insert_proposal(
        self,
        *,
        proposal_id: UUID,
        project_id: UUID,
        owner_key_id: UUID,
        branch: str,
        target_branch: str,
        ours: str,
        theirs: str,
        conflicts: list[str],
        files: list[dict[str, Any]],
        tests: list[dict[str, Any]],
        ok: bool,
    ) -> dict[str, Any]:
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "INSERT INTO git_merge_proposals (id, project_id, owner_key_id, branch,"
                " target_branch, ours, theirs, conflicts, files, tests, ok)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {_PROPOSAL}",
                (
                    proposal_id,
                    project_id,
                    owner_key_id,
                    branch,
                    target_branch,
                    ours,
                    theirs,
                    Jsonb(conflicts),
                    Jsonb(files),
                    Jsonb(tests),
                    ok,
                ),
            ).fetchone()
        assert row is not None
        return row

    def find_proposal(
        self, *, proposal_id: UUID, project_id: UUID, owner_key_id: UUID | None
    ) -> dict[str, Any] | None:
        """The proposal, if it is this project's (and this key's, unless None)."""
        return self._owned_row(
            f"SELECT {_PROPOSAL} FROM git_merge_proposals WHERE id = %s AND project_id = %s",
            (proposal_id, project_id),
            owner_key_id,
        )

    def _owned_row(
        self, query: str, params: tuple[Any, ...], owner_key_id: UUID | None
    ) -> dict[str, Any] | None:
        """One row of ``query``, narrowed to ``owner_key_id``'s rows unless it is None."""
        if owner_key_id is not None:
            query += " AND owner_key_id = %s"
            params += (owner_key_id,)
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(query, params).fetchone()
        return row

    def decide_proposal(
        self, proposal_id: UUID, *, status: str, merge_commit: str | None = None
    ) -> bool:
        """Move a proposal out of 'proposed'; False when it had already left it.

        The ``status = 'proposed'`` guard makes the decision once: two accepts of
        one proposal cannot both be recorded.
        """
        with self.postgres.connection() as conn:
            cursor = conn.execute(
                "UPDATE git_merge_proposals SET status = %s, merge_commit = %s,"
                " decided_at = now() WHERE id = %s AND status = 'proposed'",
                (status, merge_commit, proposal_id),
            )
            return bool(cursor.rowcount)

    def list_proposals(self, *, project_id: UUID, limit: int = 10) -> list[dict[str, Any]]:
        with self.postgres.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                f"SELECT {_PROPOSAL} FROM git_merge_proposals WHERE project_id = %s"
                " ORDER BY created_at DESC LIMIT %s",
                (project_id, limit),
            ).fetchall()
        return rows

    def owner_principal(self, key_id: UUID) -> dict[str, Any] | None:
        """The owning key as a Principal's fields; None when it was revoked."""
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "SELECT k.id AS key_id, k.prefix, k.name, k.user_id, u.name AS user"
                " FROM api_keys k JOIN users u ON u.id = k.user_id"
                " WHERE k.id = %s AND k.revoked_at IS NULL",
                (key_id,),
            ).fetchone()
        return row

    @contextmanager
    def project_lock(self, project_id: UUID) -> Iterator[bool]:
        """Hold the project's advisory lock for the block; yields False if another holds it.

        A transaction-scoped lock on a connection kept for the whole git operation:
        it is released however the block ends, even when the process dies.
        """
        with self.postgres.connection() as conn:
            got = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s) AS got", (project_lock_id(project_id),)
            ).fetchone()
            yield bool(got and got["got"])


def get_git_sync_store() -> GitSyncStore:
    from common.stores.postgres import get_postgres

    return GitSyncStore(get_postgres())
