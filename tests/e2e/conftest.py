from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.server import LocalServer


@pytest.fixture(scope="session")
def server(
    base_env: dict[str, str], _session_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """The local server on the run's stores (its own Qdrant folder: local mode is one process)."""
    import os

    _forget_leftover_jobs()
    folder = tmp_path_factory.mktemp("server")
    env = {**os.environ, **base_env, "DATA_DIR": str(folder), "QDRANT_PATH": str(folder / "qdrant")}
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()


def _forget_leftover_jobs() -> None:
    """Jobs the integration tier queued and never ran (202 answers) would otherwise be
    run by this server's worker, and eat answers scripted for the e2e tests."""
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        conn.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now()"
            " WHERE status IN ('queued', 'running')"
        )
