"""Embedded Qdrant's SQLite files: WAL and ``synchronous=NORMAL``, and nothing lost on reopen.

qdrant-client's local mode commits each point on its own; under SQLite's defaults
that is two fsyncs per point (bench/index.py). ``tune_local`` reaches into the
client for its connections: if a qdrant-client release moves them, the first test
fails instead of the index silently getting four times slower.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from common.stores.qdrant_store import tune_local


def journal_modes(root: Path) -> dict[str, str]:
    modes = {}
    for database in root.rglob("storage.sqlite"):
        with sqlite3.connect(database) as connection:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        modes[database.parent.name] = mode
    return modes


def test_every_local_collection_is_switched_to_wal_once(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path))
    try:
        for name in ("first", "second"):
            client.create_collection(
                name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
            )
        assert tune_local(client) == 2
        assert tune_local(client) == 0  # already done: nothing changed again
        connection = client._client.collections["first"].storage.storage
        assert connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        client.close()
    assert journal_modes(tmp_path) == {"first": "wal", "second": "wal"}


def test_points_written_under_wal_are_there_after_reopening(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path))
    client.create_collection(
        "chunks", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE)
    )
    tune_local(client)
    client.upsert(
        "chunks",
        points=[
            models.PointStruct(id=i, vector=[1.0, float(i)], payload={"i": i}) for i in range(300)
        ],
        wait=True,
    )
    client.delete("chunks", points_selector=models.PointIdsList(points=[7]), wait=True)
    client.close()

    reopened = QdrantClient(path=str(tmp_path))
    try:
        assert reopened.count("chunks").count == 299
        (record,) = reopened.retrieve("chunks", ids=[42], with_payload=True)
        assert record.payload == {"i": 42}
        assert tune_local(reopened) == 0  # WAL is a property of the file: it stays
    finally:
        reopened.close()


def test_a_server_client_is_left_alone() -> None:
    from qdrant_client import QdrantClient

    # No request is made: the remote client connects on first use.
    assert tune_local(QdrantClient(url="http://127.0.0.1:9", check_compatibility=False)) == 0
