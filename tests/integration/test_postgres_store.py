"""Migrations and key queries against the run's real PostgreSQL."""

from common.stores.postgres import _migration_files, get_postgres


def test_migrations_are_applied_once_and_idempotent(stores: None) -> None:
    store = get_postgres()

    again = store.migrate()

    assert again == []
    with store.connection() as conn:
        tables = {
            r["table_name"]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
        versions = [
            r["version"]
            for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        ]
    assert {"users", "api_keys", "projects", "jobs", "metrics", "git_credentials"} <= tables
    # Every numbered file once, in order (0001_initial.sql, 0002_jobs_progress.sql, ...).
    assert versions == [version for version, _, _ in _migration_files()]
    assert versions[:2] == [1, 2]


def test_run_has_its_own_schema_or_database(stores: None, run_stores: object) -> None:
    with get_postgres().connection() as conn:
        schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]  # type: ignore[index]
    if "postgres" in run_stores.external:  # type: ignore[attr-defined]
        assert schema == f"t_{run_stores.run_id}"  # type: ignore[attr-defined]
    else:
        assert schema == "public"  # a fresh embedded server of its own
