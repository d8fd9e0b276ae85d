"""Embedded Qdrant opens on first use; its folder's lock is still tried at start-up."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from common.config import Settings
from common.errors import StoreUnavailable
from common.stores import qdrant_store


def settings(path: Path) -> Settings:
    return Settings(_env_file=None, QDRANT_PATH=str(path), QDRANT_URL=None)


def test_a_free_folder_passes_and_stays_free(tmp_path: Path) -> None:
    assert qdrant_store.check_local_lock(settings(tmp_path))
    with open(tmp_path / ".lock") as handle:  # not left locked by the check
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_folder_another_process_holds_is_refused(tmp_path: Path) -> None:
    # flock belongs to the open file: a second open file stands for another process.
    with open(tmp_path / ".lock", "w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StoreUnavailable, match="in use by another process"):
            qdrant_store.check_local_lock(settings(tmp_path))


def test_a_server_url_needs_no_folder(tmp_path: Path) -> None:
    named = Settings(
        _env_file=None, QDRANT_URL="http://qdrant:6333", QDRANT_PATH=str(tmp_path / "x")
    )
    assert not qdrant_store.check_local_lock(named)
    assert not (tmp_path / "x").exists()
