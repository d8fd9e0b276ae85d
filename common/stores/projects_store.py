"""PostgreSQL queries for projects (the ``projects`` table of migration 0001).

psycopg is not imported here: the queries run on ``PostgresStore.connection()``,
whose module a handler imports only when it first needs the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import StoreUnavailable

if TYPE_CHECKING:
    from common.paging import Cursor
    from common.stores.postgres import PostgresStore

_COLUMNS = "id, owner_key_id, name, size_bytes, created_at, updated_at"


class ProjectStore(Protocol):
    """What the projects domain needs from a store."""

    def insert_project(self, *, name: str, owner_key_id: UUID) -> dict[str, Any]: ...

    def find_project(self, *, project_id: UUID, owner_key_id: UUID) -> dict[str, Any] | None: ...

    def list_projects(
        self, *, owner_key_id: UUID, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]: ...

    def touch_project(self, project_id: UUID) -> None: ...


class PostgresProjectStore:
    """:class:`ProjectStore` on the ``projects`` table."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def insert_project(self, *, name: str, owner_key_id: UUID) -> dict[str, Any]:
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"INSERT INTO projects (name, owner_key_id) VALUES (%s, %s) RETURNING {_COLUMNS}",
                (name, owner_key_id),
            ).fetchone()
        if row is None:
            raise StoreUnavailable("PostgreSQL returned no row for the new project")
        return row

    def find_project(self, *, project_id: UUID, owner_key_id: UUID) -> dict[str, Any] | None:
        # One query for "missing" and "someone else's": the caller cannot tell them apart.
        with self.postgres.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                f"SELECT {_COLUMNS} FROM projects WHERE id = %s AND owner_key_id = %s",
                (project_id, owner_key_id),
            ).fetchone()
        return row

    def list_projects(
        self, *, owner_key_id: UUID, after: Cursor | None, limit: int
    ) -> list[dict[str, Any]]:
        """The key's projects newest first, older than ``after`` if given, each with its
        git link and its latest sync run (one index probe per project, on
        ``git_sync_runs_project_idx``). Paged on ``projects_owner_created_idx`` (0006)."""
        where = "p.owner_key_id = %(owner)s"
        params: dict[str, Any] = {"owner": owner_key_id, "limit": limit}
        if after is not None:
            where += " AND (p.created_at, p.id) < (%(after_at)s, %(after_id)s)"
            params.update(after_at=after.created_at, after_id=after.id)
        with self.postgres.connection() as conn:
            rows: list[dict[str, Any]] = conn.execute(
                "SELECT p.id, p.name, p.created_at, p.updated_at, p.git_remote, p.git_branch,"
                " p.sync_schedule, p.next_sync_at, r.status AS last_sync_status,"
                " r.created_at AS last_sync_at"
                " FROM projects p LEFT JOIN LATERAL ("
                "  SELECT status, created_at FROM git_sync_runs"
                "  WHERE project_id = p.id ORDER BY created_at DESC LIMIT 1) r ON true"
                f" WHERE {where} ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s",
                params,
            ).fetchall()
        return rows

    def touch_project(self, project_id: UUID) -> None:
        """Its files changed: ``updated_at`` says when (lists show it)."""
        with self.postgres.connection() as conn:
            conn.execute("UPDATE projects SET updated_at = now() WHERE id = %s", (project_id,))


def get_project_store() -> PostgresProjectStore:
    """The project store on the process-wide PostgreSQL pool."""
    from common.stores.postgres import get_postgres

    return PostgresProjectStore(get_postgres())
