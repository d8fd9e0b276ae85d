"""PostgreSQL queries for projects (the ``projects`` table of migration 0001).

psycopg is not imported here: the queries run on ``PostgresStore.connection()``,
whose module a handler imports only when it first needs the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from common.errors import StoreUnavailable

if TYPE_CHECKING:
    from common.stores.postgres import PostgresStore

_COLUMNS = "id, owner_key_id, name, size_bytes, created_at, updated_at"


class ProjectStore(Protocol):
    """What the projects domain needs from a store."""

    def insert_project(self, *, name: str, owner_key_id: UUID) -> dict[str, Any]: ...

    def find_project(self, *, project_id: UUID, owner_key_id: UUID) -> dict[str, Any] | None: ...


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


def get_project_store() -> PostgresProjectStore:
    """The project store on the process-wide PostgreSQL pool."""
    from common.stores.postgres import get_postgres

    return PostgresProjectStore(get_postgres())
