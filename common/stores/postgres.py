"""PostgreSQL: a connection pool, the migration runner and the queries the domain needs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from common.config import get_settings
from common.errors import Conflict, StoreUnavailable
from common.lazy import Lazy
from common.logs import get_logger

log = get_logger("stores.postgres")

# Any lock id will do as long as every process that migrates uses the same one.
_MIGRATION_LOCK_ID = 0x616F6D69  # "aomi"


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("common.stores") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class PostgresStore:
    """A pooled connection to PostgreSQL.

    Parameters
    ----------
    url:
        A libpq URL. Its ``options=-csearch_path=...`` parameter, if any, selects the
        schema (the test suite uses one schema per run).
    """

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 5.0) -> None:
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[dict[str, Any]],
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, int(timeout)), "row_factory": dict_row},
            open=True,
            name="orchestrator",
        )
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection inside a transaction; driver failures become StoreUnavailable."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable("PostgreSQL is unreachable (DATABASE_URL)") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("that item already exists") from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable("PostgreSQL is unreachable (DATABASE_URL)") from exc

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self._pool.close()

    def migrate(self) -> list[str]:
        """Apply the numbered .sql files not applied yet, under an advisory lock.

        Returns
        -------
        list[str]
            The names of the files applied by this call (empty when up to date).
        """
        applied_now: list[str] = []
        with self._lock, self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in _migration_files():
                if version in done:
                    continue
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                applied_now.append(name)
        self._migrated = True
        if applied_now:
            log.info("applied migrations", extra={"migrations": applied_now})
        return applied_now

    def ensure_migrated(self) -> None:
        if not self._migrated:
            self.migrate()

    # -- users and API keys -------------------------------------------------

    def ensure_user(self, name: str) -> UUID:
        with self.connection() as conn:
            row = conn.execute(
                "INSERT INTO users (name) VALUES (%s)"
                " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                (name,),
            ).fetchone()
        assert row is not None
        return UUID(str(row["id"]))

    def insert_api_key(
        self, *, user_id: UUID, name: str, prefix: str, key_hash: bytes
    ) -> dict[str, Any]:
        with self.connection() as conn:
            row = conn.execute(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash)"
                " VALUES (%s, %s, %s, %s)"
                " RETURNING id, name, prefix, created_at, revoked_at, last_used_at,"
                " (SELECT name FROM users WHERE id = %s) AS user_name",
                (user_id, name, prefix, key_hash, user_id),
            ).fetchone()
        assert row is not None
        return row

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        with self.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "SELECT k.id, k.user_id, k.name, k.prefix, k.key_hash, k.revoked_at,"
                " k.last_used_at, u.name AS user_name"
                " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.prefix = %s",
                (prefix,),
            ).fetchone()
        return row

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute(
                "SELECT k.id, k.name, k.prefix, k.created_at, k.revoked_at, k.last_used_at,"
                " u.name AS user_name FROM api_keys k JOIN users u ON u.id = k.user_id"
                " ORDER BY k.created_at"
            ).fetchall()

    def revoke_api_key(self, prefix: str) -> datetime | None:
        with self.connection() as conn:
            row = conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
                " WHERE prefix = %s RETURNING revoked_at",
                (prefix,),
            ).fetchone()
        return None if row is None else row["revoked_at"]

    def touch_api_key(self, key_id: UUID) -> None:
        # At most one write a minute per key: "last used" is for humans, not auditing.
        with self.connection() as conn:
            conn.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE id = %s"
                " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                (key_id,),
            )


def _create() -> PostgresStore:
    settings = get_settings()
    if not settings.DATABASE_URL:
        raise StoreUnavailable(
            "DATABASE_URL is not set (the local server starts an embedded PostgreSQL;"
            " on Lambda set it to your database)"
        )
    return PostgresStore(settings.DATABASE_URL, max_size=2 if settings.on_lambda else 10)


_store: Lazy[PostgresStore] = Lazy(_create, PostgresStore.close)
reset = _store.reset


def get_postgres() -> PostgresStore:
    """The process-wide PostgreSQL store, migrated on first use."""
    store = _store.get()
    store.ensure_migrated()
    return store
