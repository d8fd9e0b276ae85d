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

    folder = tmp_path_factory.mktemp("server")
    env = {**os.environ, **base_env, "DATA_DIR": str(folder), "QDRANT_PATH": str(folder / "qdrant")}
    local = LocalServer(env, folder / "server.log").start()
    yield local
    local.stop()
