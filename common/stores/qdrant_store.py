"""Qdrant: embeddings of code chunks and of past work.

``QDRANT_URL`` selects a server; otherwise qdrant-client's local mode keeps the
vectors under ``QDRANT_PATH`` (one process at a time holds that folder's lock).
qdrant_client is imported on first use, and the client made then: it is the
heaviest thing we load (about 60 MB of the idle server's memory, with numpy and
grpc), and a server that never searches never needs it. At start-up only the
local folder's lock is tried (:func:`check_local_lock`), so a second process on
the same folder is still refused at once.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import Any

from common.config import Settings, get_settings
from common.errors import ConfigError, StoreUnavailable
from common.lazy import Lazy

# Collection name (before QDRANT_COLLECTION_PREFIX) -> what it holds.
COLLECTIONS = {
    "code_chunks": "embeddings of stored projects' code, for semantic search",
    "agent_memory": "embeddings of past tasks and their checked answers",
}


def collection_name(name: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return settings.QDRANT_COLLECTION_PREFIX + name


def _create() -> Any:
    settings = get_settings()
    if settings.QDRANT_URL:
        from qdrant_client import QdrantClient

        api_key = settings.QDRANT_API_KEY
        return QdrantClient(
            url=settings.QDRANT_URL,
            api_key=(api_key.get_secret_value() if api_key else "") or None,
            timeout=5,
        )
    if settings.on_lambda:
        raise ConfigError("QDRANT_URL: required on Lambda")
    from qdrant_client import QdrantClient

    path = settings.qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    try:
        client = QdrantClient(path=str(path))
    except RuntimeError as exc:
        # Local mode refuses a folder another process holds.
        raise _in_use(path) from exc
    ensure_collections(client, settings)
    return client


def tune_local(client: Any) -> int:
    """Make local mode's per-point commits cheap: WAL journal, ``synchronous=NORMAL``.

    Local mode keeps each collection in SQLite and commits every point in its own
    transaction under SQLite's defaults (rollback journal, ``synchronous=FULL``): a
    journal file made and removed and two fsyncs per point, which was three quarters
    of an index job's time (bench/index.py). The vectors are derived data, rebuilt by
    the index job from the stored files, so this durability is enough: after a crash
    the file is consistent and at most the last commits are lost, in order, so a lost
    chunk always goes with the meta point written after it and the next run reads
    that file again. Call after a collection is made or opened; nothing to do for a
    server (``QDRANT_URL``).

    Returns
    -------
    int
        The collections changed now (the others already were, or are not local).
    """
    # qdrant-client has no setting for this: reach its SQLite connections, and do
    # nothing if that layout ever changes (tests/integration/test_qdrant_local.py
    # fails then, so the speed is not lost without notice).
    collections = getattr(getattr(client, "_client", None), "collections", None)
    if not isinstance(collections, dict):
        return 0
    changed = 0
    for collection in collections.values():
        connection = getattr(getattr(collection, "storage", None), "storage", None)
        if not isinstance(connection, sqlite3.Connection):
            continue
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
            changed += 1
        connection.execute("PRAGMA synchronous=NORMAL")
    return changed


def _in_use(path: Path) -> StoreUnavailable:
    return StoreUnavailable(
        f"Qdrant local storage at {path} is in use by another process"
        " (QDRANT_PATH); stop it or set QDRANT_URL"
    )


def check_local_lock(settings: Settings | None = None) -> bool:
    """Refuse now, not at the first search, a local folder another process holds.

    Tries the lock qdrant-client's local mode takes (``flock`` on ``<path>/.lock``,
    through portalocker) and lets it go again. Nothing to do with ``QDRANT_URL``, on
    Lambda, or once this process has opened the folder.

    Returns
    -------
    bool
        Whether it checked: local mode, and the folder not opened by this process yet.

    Raises
    ------
    StoreUnavailable
        Another process holds the folder.
    """
    settings = settings or get_settings()
    if settings.QDRANT_URL or settings.on_lambda or _client.made:
        return False
    path = settings.qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(path) from None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return True


_client: Lazy[Any] = Lazy(_create, lambda client: client.close())
reset = _client.reset


def get_qdrant() -> Any:
    """The process-wide ``QdrantClient``."""
    return _client.get()


def ping(client: Any) -> None:
    try:
        client.get_collections()
    except Exception as exc:  # the client raises transport-specific errors
        raise StoreUnavailable("Qdrant is unreachable (QDRANT_URL)") from exc


def ensure_collections(client: Any, settings: Settings | None = None) -> None:
    from qdrant_client import models

    settings = settings or get_settings()
    for name in COLLECTIONS:
        full = collection_name(name, settings)
        if not client.collection_exists(full):
            client.create_collection(
                full,
                vectors_config=models.VectorParams(
                    size=settings.EMBEDDING_DIM, distance=models.Distance.COSINE
                ),
            )
    tune_local(client)
